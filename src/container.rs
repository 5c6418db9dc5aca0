//! `roost container --config FILE`: PID 1 of a container or namespace.
//!
//! Not PID 1? Then roost makes itself a child subreaper (like `tini -s`) so orphans of the
//! workload still come to it, and stops only its own descendants.

use crate::config;
use crate::control::report::ReportTarget;
use crate::control::{self, ControlState, Listen};
use crate::lifecycle;
use crate::supervise::{Supervisor, EXIT_INTERNAL};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

pub use crate::lifecycle::EXIT_CONFIG;

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
    lifecycle::install_panic_hook();
    lifecycle::main_path(|| runtime.block_on(run_async(args))).unwrap_or(EXIT_INTERNAL)
}

async fn run_async(args: &ContainerArgs) -> i32 {
    let (mut supervisor, state) = match lifecycle::start(Instant::now(), "container") {
        Ok(pair) => pair,
        Err(code) => return code,
    };
    // The control API comes up first, so a host can watch the rest of the boot.
    let control = args.control.as_ref().and_then(|path| {
        match control::server::start(
            state.clone(),
            Listen::Unix(path.clone()),
            supervisor.critical(),
        ) {
            Ok(server) => Some(server),
            Err(err) => {
                tracing::error!("the control API cannot listen on {}: {err}", path.display());
                None
            }
        }
    });

    let (code, config) = match boot_and_run(args, &mut supervisor, &state).await {
        Ok((code, config)) => (code, Some(config)),
        Err(code) => (code, None),
    };
    let control_config = config.as_ref().map(|c| &c.config.control);
    let target = control_config
        .and_then(|c| c.exit_report_socket.as_ref())
        .map(|p| ReportTarget::Unix(PathBuf::from(p)));
    let machine_id = config.as_ref().and_then(|c| c.config.machine_id.as_deref());
    lifecycle::report_exit(&state, code, target, machine_id).await;
    let linger = control_config.and_then(|c| c.linger_seconds).unwrap_or(0);
    lifecycle::close_control(
        control.into_iter().collect(),
        Duration::from_secs(linger),
        &mut supervisor,
    )
    .await;
    code
}

/// Loads the config and runs the workload. `Err` carries the exit code of a boot failure.
async fn boot_and_run(
    args: &ContainerArgs,
    supervisor: &mut Supervisor,
    state: &ControlState,
) -> Result<(i32, config::Validated), i32> {
    let config = config::load_file(&args.config).map_err(|err| {
        tracing::error!("{err}");
        EXIT_CONFIG
    })?;
    state.set_config_source("file", false);
    state.phase("config");
    let spec = lifecycle::resolve(&config, Path::new("/"))?;
    tracing::info!(
        "roost {} in container mode as {}",
        env!("CARGO_PKG_VERSION"),
        if std::process::id() == 1 {
            "PID 1"
        } else {
            "a subreaper"
        }
    );
    let outcome = lifecycle::run(&config, spec, supervisor, state).await;
    Ok((outcome.code, config))
}
