//! `snapshot` of a service (and `Snapshot` of the single workload): what runs before the VM is
//! snapshotted and after it is restored (docs/snapshots.md). A roost extension.

use super::checks::*;
use super::containers::Seconds;
use super::decode::parse_go_duration;
use super::limits::{DEFAULT_HOOK_TIMEOUT, MAX_HOOK_TIMEOUT};
use super::schema::SignalSpec;
use super::typed::{Hook, HookAction, SnapshotHooks};
use super::ConfigError;
use serde::Deserialize;
use std::time::Duration;

/// `{"before": HOOK, "after": HOOK}`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SnapshotHooksConfig {
    pub before: Option<HookConfig>,
    pub after: Option<HookConfig>,
}

/// One hook: exactly one of `exec`, `signal`, `http` or `notify`, and its `timeout`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HookConfig {
    pub exec: Option<Vec<String>>,
    pub signal: Option<SignalSpec>,
    pub http: Option<HookHttpConfig>,
    pub notify: Option<HookNotifyConfig>,
    /// Seconds, or a Go duration (`"10s"`). Default 10 s, at most 300 s.
    pub timeout: Option<Seconds>,
}

/// `POST http://127.0.0.1:PORT/PATH`, answered 2xx.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HookHttpConfig {
    pub port: u16,
    pub path: Option<String>,
}

/// `{"signal"?}`: the signal (default SIGHUP), then `READY=1` on the service's
/// `NOTIFY_SOCKET` when it is done: systemd's `Type=notify-reload` exchange.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HookNotifyConfig {
    pub signal: Option<SignalSpec>,
}

/// The hooks of a service; `notify` says whether it has a `NOTIFY_SOCKET` (a `notify` hook
/// needs one).
pub(super) fn snapshot_hooks(
    field: &str,
    config: Option<&SnapshotHooksConfig>,
    notify: bool,
) -> Result<SnapshotHooks, ConfigError> {
    let Some(config) = config else {
        return Ok(SnapshotHooks::default());
    };
    let one = |name: &str, hook: &Option<HookConfig>| {
        hook.as_ref()
            .map(|h| self::hook(&format!("{field}.{name}"), h, notify))
            .transpose()
    };
    Ok(SnapshotHooks {
        before: one("before", &config.before)?,
        after: one("after", &config.after)?,
    })
}

const ONE_OF: &str = "needs exactly one of exec, signal, http or notify";

fn hook(field: &str, h: &HookConfig, notify: bool) -> Result<Hook, ConfigError> {
    let at = |rest: &str| format!("{field}.{rest}");
    let given = [
        h.exec.is_some(),
        h.signal.is_some(),
        h.http.is_some(),
        h.notify.is_some(),
    ];
    if given.iter().filter(|&&g| g).count() != 1 {
        return Err(f(field, ONE_OF));
    }
    let action = if let Some(argv) = &h.exec {
        if argv.first().is_none_or(String::is_empty) {
            return Err(f(at("exec"), "must be a non-empty list of strings"));
        }
        for arg in argv {
            check_no_nul(&at("exec"), arg)?;
        }
        HookAction::Exec(argv.clone())
    } else if let Some(spec) = &h.signal {
        HookAction::Signal(super::parse_signal(spec).map_err(|e| f(at("signal"), e))?)
    } else if let Some(http) = &h.http {
        if http.port == 0 {
            return Err(f(at("http.port"), "is not a port (1..=65535)"));
        }
        let path = http.path.clone().unwrap_or_else(|| "/".to_string());
        if !path.starts_with('/') || path.chars().any(|c| c.is_control() || c == ' ') {
            return Err(f(
                at("http.path"),
                "must start with / and have no spaces or control characters",
            ));
        }
        HookAction::Http {
            port: http.port,
            path,
        }
    } else if let Some(n) = &h.notify {
        if !notify {
            return Err(f(
                at("notify"),
                "waits for READY=1 on the service's NOTIFY_SOCKET: the service needs \"notify\": true",
            ));
        }
        let signal = match &n.signal {
            Some(spec) => super::parse_signal(spec).map_err(|e| f(at("notify.signal"), e))?,
            None => super::typed::Signal::HUP,
        };
        HookAction::Notify(signal)
    } else {
        return Err(f(field, ONE_OF));
    };
    let timeout = match &h.timeout {
        None => DEFAULT_HOOK_TIMEOUT,
        Some(Seconds::Number(n)) if n.is_finite() && *n > 0.0 => {
            Duration::from_secs_f64(n.min(MAX_HOOK_TIMEOUT.as_secs_f64() + 1.0))
        }
        Some(Seconds::Number(n)) => return Err(f(at("timeout"), format!("{n} is not > 0"))),
        Some(Seconds::Text(text)) => parse_go_duration(text).map_err(|e| f(at("timeout"), e))?,
    };
    if timeout.is_zero() || timeout > MAX_HOOK_TIMEOUT {
        return Err(f(
            at("timeout"),
            format!("must be in (0, {}] s", MAX_HOOK_TIMEOUT.as_secs()),
        ));
    }
    Ok(Hook { action, timeout })
}

#[cfg(test)]
mod tests {
    use crate::config::typed::{HookAction, Signal};
    use crate::config::{parse, ConfigError};

    fn hooks_of(service: &str) -> Result<crate::config::typed::SnapshotHooks, ConfigError> {
        let doc = format!(r#"{{"Containers": [{service}]}}"#);
        let v = parse(doc.as_bytes())?;
        Ok(v.services[0].snapshot.clone())
    }

    #[test]
    fn a_notify_hook_sends_sighup_by_default_and_needs_a_notify_socket() {
        let hooks = hooks_of(
            r#"{"name": "db", "exec": ["db"], "notify": true,
                "snapshot": {"after": {"notify": {}}, "before": {"notify": {"signal": "SIGUSR2"}, "timeout": 3}}}"#,
        )
        .expect("valid");
        let after = hooks.after.expect("after");
        assert_eq!(after.action, HookAction::Notify(Signal::HUP));
        assert_eq!(after.timeout, super::DEFAULT_HOOK_TIMEOUT);
        let before = hooks.before.expect("before");
        assert_eq!(
            before.action,
            HookAction::Notify(Signal::new(libc::SIGUSR2.into()).expect("signal"))
        );
        assert_eq!(before.timeout.as_secs(), 3);
        // Without `notify: true` nothing would ever answer: refused, saying why.
        match hooks_of(r#"{"name": "db", "exec": ["db"], "snapshot": {"after": {"notify": {}}}}"#) {
            Err(ConfigError::Field { field, problem }) => {
                assert_eq!(field, "Containers[0].snapshot.after.notify");
                assert!(problem.contains("\"notify\": true"), "{problem}");
            }
            other => panic!("expected a field error, got {other:?}"),
        }
        // One action per hook.
        match hooks_of(
            r#"{"name": "db", "exec": ["db"], "notify": true,
                "snapshot": {"after": {"notify": {}, "signal": "SIGHUP"}}}"#,
        ) {
            Err(ConfigError::Field { problem, .. }) => {
                assert!(problem.contains("exactly one of"), "{problem}")
            }
            other => panic!("expected a field error, got {other:?}"),
        }
    }
}
