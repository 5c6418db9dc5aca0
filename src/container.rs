//! `roost container --config FILE`: PID 1 of a container or namespace.
//!
//! Not PID 1? Then roost makes itself a child subreaper (like `tini -s`) so orphans of the
//! workload still come to it, and stops only its own descendants.

use crate::config;
use crate::control::report::{self, ReportTarget};
use crate::control::{self, ControlState, ExitCode, Listen, WorkloadState};
use crate::supervise::procs::InitMode;
use crate::supervise::{Outcome, StopPolicy, Supervisor, EXIT_INTERNAL};
use crate::workload::WorkloadSpec;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Exit code for a config roost refuses (EX_CONFIG from sysexits.h).
pub const EXIT_CONFIG: i32 = 78;

/// Options of `roost container`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerArgs {
    pub config: PathBuf,
    /// `--control unix:PATH`: the control API on a Unix socket.
    pub control: Option<PathBuf>,
}

/// Runs the workload of `args` to its end; returns roost's exit code.
pub fn run(args: &ContainerArgs) -> i32 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            tracing::error!("cannot start the async runtime: {err}");
            return EXIT_INTERNAL;
        }
    };
    runtime.block_on(run_async(args))
}

async fn run_async(args: &ContainerArgs) -> i32 {
    let started = Instant::now();
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
    // Signal handlers and the reaper before anything else can be spawned.
    let mut supervisor = match Supervisor::start(mode) {
        Ok(s) => s,
        Err(err) => {
            tracing::error!("cannot install signal handlers: {err}");
            return EXIT_INTERNAL;
        }
    };
    let state = ControlState::new(
        started,
        "container",
        mode == InitMode::Pid1,
        supervisor.reaper().clone(),
    );
    state.phase("signals");
    // The control API comes up first, so a host can watch the rest of the boot.
    let control = args.control.as_ref().and_then(|path| {
        match control::server::start(state.clone(), Listen::Unix(path.clone())) {
            Ok(server) => Some(server),
            Err(err) => {
                tracing::error!("the control API cannot listen on {}: {err}", path.display());
                None
            }
        }
    });

    let (code, config) = match boot_and_run(args, mode, &mut supervisor, &state).await {
        Ok((outcome, config)) => (outcome.code, Some(config)),
        Err(code) => (code, None),
    };
    let exit = match state.workload() {
        WorkloadState::Exited(exit) if exit.code == code => exit,
        _ => ExitCode {
            code,
            oom_killed: false,
        },
    };
    state.set_workload(WorkloadState::Exited(exit));
    eprintln!("{}", report::console_line(&exit));

    let control_config = config.as_ref().map(|c| &c.config.control);
    if let Some(path) = control_config.and_then(|c| c.exit_report_socket.as_ref()) {
        let machine_id = config.as_ref().and_then(|c| c.config.machine_id.as_deref());
        report::push(&ReportTarget::Unix(PathBuf::from(path)), &exit, machine_id).await;
    }
    if let Some(server) = control {
        let linger = control_config.and_then(|c| c.linger_seconds).unwrap_or(0);
        if linger > 0 {
            tracing::info!("the control API stays up {linger} s for the exit code");
            tokio::time::sleep(Duration::from_secs(linger)).await;
        }
        server.shutdown(Duration::from_secs(2)).await;
    }
    code
}

/// Loads the config, prepares the workload (proxy, broker) and runs it. `Err` carries the
/// exit code of a boot failure.
async fn boot_and_run(
    args: &ContainerArgs,
    mode: InitMode,
    supervisor: &mut Supervisor,
    state: &ControlState,
) -> Result<(Outcome, config::Validated), i32> {
    let config = match config::load_file(&args.config) {
        Ok(config) => config,
        Err(err) => {
            tracing::error!("{err}");
            return Err(EXIT_CONFIG);
        }
    };
    state.set_config_source("file", false);
    state.phase("config");
    let mut spec = match WorkloadSpec::resolve(&config, Path::new("/")) {
        Ok(spec) => spec,
        Err(err) => {
            tracing::error!("cannot resolve the workload: {err}");
            return Err(EXIT_CONFIG);
        }
    };
    for warning in &spec.warnings {
        tracing::warn!("{warning}");
    }
    tracing::info!(
        "roost {} in container mode as {}",
        env!("CARGO_PKG_VERSION"),
        match mode {
            InitMode::Pid1 => "PID 1",
            InitMode::Subreaper => "a subreaper",
        }
    );

    // The proxy listens before the workload starts, so its socket is there from the first
    // instruction on.
    state.set_proxy(crate::api::start(&config));
    state.phase("api_proxy");
    // Identity tokens and their SDK variables, before the workload's first instruction.
    state.set_broker(crate::oidc::prepare(&config, &mut spec).await);
    state.phase("oidc");
    state.set_spec(&spec);

    let policy = StopPolicy {
        kill_signal: config.kill_signal,
        kill_timeout: config.kill_timeout,
    };
    state.phase("workload_start");
    let outcome = supervisor
        .run(&spec, policy, config.config.memory_limit_mib, state)
        .await;
    tracing::info!(
        "roost exiting with code {} (oom_killed: {}, orphans reaped: {})",
        outcome.code,
        outcome.oom_killed,
        outcome.orphans_reaped
    );
    Ok((outcome, config))
}
