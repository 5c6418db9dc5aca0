//! The part of a roost's life that container mode and VM mode share: supervision set-up, the
//! workload's preparation (proxy, broker) and run, and the exit report.

use crate::config::Validated;
use crate::control::report::{self, ReportTarget};
use crate::control::{ControlServer, ControlState, ExitCode, WorkloadState};
use crate::supervise::procs::InitMode;
use crate::supervise::{BootInterrupted, Outcome, StopPolicy, Supervisor, EXIT_INTERNAL};
use crate::workload::WorkloadSpec;
use std::path::Path;
use std::time::{Duration, Instant};

/// Exit code for a config roost refuses (EX_CONFIG from sysexits.h).
pub const EXIT_CONFIG: i32 = 78;

/// Subreaper (when not PID 1), non-dumpable, signal handlers and the reaper, the state.
pub fn start(started: Instant, mode_name: &'static str) -> Result<(Supervisor, ControlState), i32> {
    let mode = InitMode::detect();
    if mode == InitMode::Subreaper {
        if let Err(err) = nix::sys::prctl::set_child_subreaper(true) {
            tracing::warn!("cannot become a child subreaper: {err}; orphans will not be reaped");
        }
    }
    // Keep secrets (the macaroon) out of core dumps and ptrace by same-uid processes.
    if let Err(err) = nix::sys::prctl::set_dumpable(false) {
        tracing::warn!("cannot mark roost non-dumpable: {err}");
    }
    let supervisor = Supervisor::start(mode).map_err(|err| {
        tracing::error!("cannot install signal handlers: {err}");
        EXIT_INTERNAL
    })?;
    let state = ControlState::new(
        started,
        mode_name,
        mode == InitMode::Pid1,
        supervisor.reaper().clone(),
        supervisor.stop_handle(),
    );
    state.phase("signals");
    Ok((supervisor, state))
}

/// Resolves the workload against the root at `root`.
pub fn resolve(config: &Validated, root: &Path) -> Result<WorkloadSpec, i32> {
    let spec = WorkloadSpec::resolve(config, root).map_err(|err| {
        tracing::error!("cannot resolve the workload: {err}");
        EXIT_CONFIG
    })?;
    for warning in &spec.warnings {
        tracing::warn!("{warning}");
    }
    Ok(spec)
}

/// Starts the proxy and the broker, then runs the workload to its end.
pub async fn run(
    config: &Validated,
    mut spec: WorkloadSpec,
    supervisor: &mut Supervisor,
    state: &ControlState,
) -> Outcome {
    // The proxy listens before the workload starts, so its socket is there from the first
    // instruction on.
    let critical = supervisor.critical().clone();
    state.set_proxy(crate::api::start(config, &critical));
    state.phase("api_proxy");
    // Identity tokens and their SDK variables, before the workload's first instruction. A
    // stop during the wait for the first token ends the boot here.
    let broker = supervisor
        .during_boot(crate::oidc::prepare(config, &mut spec, &critical))
        .await;
    let broker = match broker {
        Ok(status) => status,
        Err(interrupted) => return boot_interrupted(supervisor, &interrupted),
    };
    state.set_broker(broker);
    state.phase("oidc");
    state.set_spec(&spec);
    let policy = StopPolicy {
        kill_signal: config.kill_signal,
        kill_timeout: config.kill_timeout,
    };
    state.phase("workload_start");
    let outcome = supervisor
        .run(
            &spec,
            policy,
            config.config.memory_limit_mib,
            config.config.pids_max,
            state,
        )
        .await;
    tracing::info!(
        "workload done: code {} (oom_killed: {}, orphans reaped: {})",
        outcome.code,
        outcome.oom_killed,
        outcome.orphans_reaped
    );
    outcome
}

/// The outcome of a boot that a stop or a critical failure ended before the workload started.
pub fn boot_interrupted(supervisor: &Supervisor, why: &BootInterrupted) -> Outcome {
    match why {
        BootInterrupted::Stopped { signal, by } => tracing::warn!(
            "stop requested during the boot by {by} ({}): the workload is not started",
            crate::supervise::signal_name(*signal)
        ),
        BootInterrupted::Failed(failure) => {
            tracing::error!("{failure} during the boot: the workload is not started")
        }
    }
    supervisor.outcome_without_workload(why.code())
}

/// Publishes the final exit code: the control API, the console line, the push to the host.
pub async fn report_exit(
    state: &ControlState,
    code: i32,
    target: Option<ReportTarget>,
    machine_id: Option<&str>,
) -> ExitCode {
    let exit = match state.workload() {
        WorkloadState::Exited(exit) if exit.code == code => exit,
        _ => ExitCode {
            code,
            oom_killed: false,
        },
    };
    state.set_workload(WorkloadState::Exited(exit));
    crate::logging::console_line(&report::console_line(&exit));
    if let Some(target) = target {
        report::push(&target, &exit, machine_id).await;
    }
    exit
}

/// Keeps the control API up for `linger` (a stop signal ends it early), then lets answers in
/// flight finish. From here on the end of a critical task is part of the shutdown.
pub async fn close_control(
    servers: Vec<ControlServer>,
    linger: Duration,
    supervisor: &mut Supervisor,
) {
    if !servers.is_empty() && !linger.is_zero() {
        tracing::info!(
            "the control API stays up {} s for the exit code",
            linger.as_secs()
        );
        supervisor.linger(linger).await;
    }
    supervisor.critical().shutting_down();
    for server in servers {
        server.shutdown(Duration::from_secs(2)).await;
    }
}

/// The panic policy of both modes: a panic is logged where it happens and nothing else. One
/// inside a task (a connection, an exec, a critical task) is contained by tokio and handled
/// as that task's end (see [`crate::supervise::critical`]), so the workload runs on and its
/// real exit code is reported.
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| tracing::error!("panic: {info}")));
}

/// Runs roost's main path; a panic that ends it is an internal failure with its console exit
/// line (70), never an end without one. `None` then.
pub fn main_path<T>(f: impl FnOnce() -> T) -> Option<T> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(out) => Some(out),
        Err(_) => {
            report_exit_console_only(EXIT_INTERNAL);
            None
        }
    }
}

/// The console line alone, for a failure before any state exists.
pub fn report_exit_console_only(code: i32) {
    crate::logging::console_line(&report::console_line(&ExitCode {
        code,
        oom_killed: false,
    }));
}
