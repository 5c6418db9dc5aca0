//! `roost container --config FILE`: PID 1 of a container or namespace.
//!
//! Not PID 1? Then roost makes itself a child subreaper (like `tini -s`) so orphans of the
//! workload still come to it, and stops only its own descendants.

use crate::config;
use crate::supervise::procs::InitMode;
use crate::supervise::{StopPolicy, Supervisor, EXIT_INTERNAL};
use crate::workload::WorkloadSpec;
use std::path::{Path, PathBuf};

/// Exit code for a config roost refuses (EX_CONFIG from sysexits.h).
pub const EXIT_CONFIG: i32 = 78;

/// Options of `roost container`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerArgs {
    pub config: PathBuf,
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
    // Signal handlers before anything else can be spawned.
    let mut supervisor = match Supervisor::start(mode) {
        Ok(s) => s,
        Err(err) => {
            tracing::error!("cannot install signal handlers: {err}");
            return EXIT_INTERNAL;
        }
    };

    let config = match config::load_file(&args.config) {
        Ok(config) => config,
        Err(err) => {
            tracing::error!("{err}");
            return EXIT_CONFIG;
        }
    };
    let mut spec = match WorkloadSpec::resolve(&config, Path::new("/")) {
        Ok(spec) => spec,
        Err(err) => {
            tracing::error!("cannot resolve the workload: {err}");
            return EXIT_CONFIG;
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
    let _proxy_stats = crate::api::start(&config);
    // Identity tokens and their SDK variables, before the workload's first instruction.
    let _broker_status = crate::oidc::prepare(&config, &mut spec).await;

    let policy = StopPolicy {
        kill_signal: config.kill_signal,
        kill_timeout: config.kill_timeout,
    };
    let outcome = supervisor
        .run(&spec, policy, config.config.memory_limit_mib)
        .await;
    tracing::info!(
        "roost exiting with code {} (oom_killed: {}, orphans reaped: {})",
        outcome.code,
        outcome.oom_killed,
        outcome.orphans_reaped
    );
    outcome.code
}
