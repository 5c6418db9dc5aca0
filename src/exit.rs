//! Every way roost ends, in one place: the exit codes, the typed boot failures and their one
//! map to a code, the exit report, and the one console line.
//!
//! The report flows one way: the supervisor's outcome (or a [`BootFailure`]) becomes a
//! [`Report`], which the boot sequence hands to the control state, the console and the host.
//! This module depends on nothing of roost's but the log; the supervisor builds on it.

/// A bad command line (EX_USAGE).
pub const USAGE: i32 = 64;
/// roost itself failed before or around the workload (EX_SOFTWARE).
pub const INTERNAL: i32 = 70;
/// A start that failed for a reason that may pass (EX_TEMPFAIL): `EAGAIN` or `ENOMEM` from
/// the spawn, no descriptor left, a notify socket's name taken. A service's restart policy
/// handles it as an exit with this code; only a program that cannot be executed is final.
pub const TEMPORARY: i32 = 75;
/// A config roost refuses (EX_CONFIG).
pub const CONFIG: i32 = 78;
/// The workload was found but cannot be executed (shell and Docker convention).
pub const CANNOT_EXECUTE: i32 = 126;
/// The workload was not found (shell and Docker convention).
pub const NOT_FOUND: i32 = 127;

/// The code of a death by `signal`: 128 + N (N is 1..=64, so this cannot overflow; saturating
/// all the same).
pub fn of_signal(signal: i32) -> i32 {
    128i32.saturating_add(signal)
}

/// The exit report: the console line, `/v2/status`, the push to the host (and its code
/// part, `GET /v1/exit_code`).
pub use roost_control_protocol::ExitReport as Report;

/// The report of a run that ended with `code` and nothing else known.
pub fn report_of_code(code: i32) -> Report {
    Report {
        code,
        oom_killed: false,
        decided_by: None,
    }
}

/// A signal number as its name, for logs and messages (`SIGTERM`, or `signal 40`).
pub fn signal_name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {sig}"))
}

/// Why a boot ended before the workload ran. Each is logged once, where the sequence ends.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BootFailure {
    /// The config is missing, malformed or refused (78).
    #[error("{0}")]
    Config(String),
    /// A step roost cannot boot without failed (70).
    #[error("{0}")]
    Internal(String),
    /// A stop signal to roost, or a stop the host asked for (128 + the signal).
    #[error("stop requested during the boot by {by} ({}): the workload is not started", signal_name(*signal))]
    Stopped { signal: i32, by: &'static str },
    /// A critical task ended (70).
    #[error("{0} during the boot: the workload is not started")]
    CriticalTask(String),
}

impl BootFailure {
    /// roost's exit code for it: the one map.
    pub fn code(&self) -> i32 {
        match self {
            BootFailure::Config(_) => CONFIG,
            BootFailure::Internal(_) | BootFailure::CriticalTask(_) => INTERNAL,
            BootFailure::Stopped { signal, .. } => of_signal(*signal),
        }
    }

    /// Logs it at the level it deserves: a requested stop is not an error.
    pub fn log(&self) {
        match self {
            BootFailure::Stopped { .. } => tracing::warn!("{self}"),
            _ => tracing::error!("{self}"),
        }
    }
}

/// The console line: `roost: exit {"code":N,"oom_killed":false}` on stderr, unformatted (not
/// a log line), so a host reading the serial console can grep it. It carries the report's
/// anchor part ([`roost_control_protocol::ExitCode`], what `/v1/exit_code` answers), never
/// more: hosts match this line as it has always been; `decided_by` is in `/v2/status` and the
/// pushed report.
pub fn console_line(report: &Report) -> String {
    let code = report.exit_code();
    let json =
        serde_json::to_string(&code).unwrap_or_else(|_| format!("{{\"code\":{}}}", code.code));
    format!("roost: exit {json}")
}

/// Writes the console line. Every end of roost writes it exactly once, through here.
pub fn print_console(report: &Report) {
    crate::logging::console_line(&console_line(report));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_failure_has_its_code() {
        assert_eq!(BootFailure::Config("x".into()).code(), 78);
        assert_eq!(BootFailure::Internal("x".into()).code(), 70);
        assert_eq!(BootFailure::CriticalTask("x".into()).code(), 70);
        let stopped = BootFailure::Stopped {
            signal: libc::SIGTERM,
            by: "a signal",
        };
        assert_eq!(stopped.code(), 143);
        assert_eq!(
            stopped.to_string(),
            "stop requested during the boot by a signal (SIGTERM): the workload is not started"
        );
        assert_eq!(of_signal(64), 192);
        assert_eq!(of_signal(i32::MAX), i32::MAX);
    }

    #[test]
    fn the_console_line_is_one_grep_able_json_object() {
        let line = console_line(&Report {
            code: 137,
            oom_killed: true,
            decided_by: None,
        });
        assert_eq!(line, r#"roost: exit {"code":137,"oom_killed":true}"#);
        let line = console_line(&Report {
            code: 3,
            oom_killed: false,
            decided_by: Some(roost_control_protocol::DecidedBy {
                service: "setup".into(),
                reason: "its on_exit is stop_machine".into(),
            }),
        });
        assert_eq!(line, r#"roost: exit {"code":3,"oom_killed":false}"#);
    }
}
