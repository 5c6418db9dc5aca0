//! `roost container --config FILE`: PID 1 of a container or namespace.
//!
//! Not PID 1? Then roost makes itself a child subreaper (like `tini -s`) so orphans of the
//! workload still come to it, and stops only its own descendants. The sequence is
//! [`crate::boot`]'s; this mode supplies a config file and an optional Unix control socket.

use crate::boot::{self, Mode};
use crate::config::{self, Validated};
use crate::control::report::ReportTarget;
use crate::control::{self, ControlServer, ControlState, Listen};
use crate::exit::BootFailure;
use crate::supervisor::CriticalTasks;
use std::path::PathBuf;
use std::time::Instant;

/// Options of `roost container`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerArgs {
    pub config: PathBuf,
    /// `--control unix:PATH`: the control API on a Unix socket.
    pub control: Option<PathBuf>,
}

/// Runs the workload of `args` to its end; returns roost's exit code.
pub fn run(args: &ContainerArgs) -> i32 {
    boot::run_to_end(ContainerMode { args }, Instant::now())
}

struct ContainerMode<'a> {
    args: &'a ContainerArgs,
}

impl Mode for ContainerMode<'_> {
    const NAME: &'static str = "container";

    fn early_control(&self, state: &ControlState, critical: &CriticalTasks) -> Vec<ControlServer> {
        let Some(path) = &self.args.control else {
            return Vec::new();
        };
        match control::server::start(state.clone(), Listen::Unix(path.clone()), critical) {
            Ok(server) => vec![server],
            Err(err) => {
                tracing::error!("the control API cannot listen on {}: {err}", path.display());
                Vec::new()
            }
        }
    }

    fn configure_control(
        &self,
        _config: &Validated,
        state: &ControlState,
        _critical: &CriticalTasks,
        _servers: &mut Vec<ControlServer>,
    ) {
        // The host's kernel log and VMClock are not this machine's: a container never
        // watches them. Tests (the fault-injection build only) hand a FIFO or a file in
        // their place, to drive a restore the host does not announce (tests/snapshot.rs).
        #[cfg(feature = "fault-injection")]
        if let Some(vmclock) = std::env::var_os("ROOST_TEST_VMCLOCK") {
            let kmsg = std::path::PathBuf::from("/nonexistent");
            control::restore_watch::watch_restores(state.clone(), kmsg, vmclock.into());
        } else if let Some(kmsg) = std::env::var_os("ROOST_TEST_KMSG") {
            control::restore_watch::watch_kernel_log(state.clone(), kmsg.into());
        }
        let _ = state;
    }

    async fn load_config(&mut self, state: &ControlState) -> Result<Validated, BootFailure> {
        let config = config::load_file(&self.args.config)
            .map_err(|err| BootFailure::Config(err.to_string()))?;
        state.set_config_source("file", false);
        Ok(config)
    }

    async fn prepare(
        &mut self,
        _config: &Validated,
        _state: &ControlState,
    ) -> Result<(), BootFailure> {
        tracing::info!(
            "roost {} in container mode as {}",
            env!("CARGO_PKG_VERSION"),
            if std::process::id() == 1 {
                "PID 1"
            } else {
                "a subreaper"
            }
        );
        Ok(())
    }

    fn report_target(&self, config: &Validated) -> Option<ReportTarget> {
        let path = config.control.exit_report_socket.clone()?;
        Some(ReportTarget::Unix(path))
    }

    async fn teardown(self) {}
}
