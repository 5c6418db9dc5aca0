//! The supervisor's command side: what the control API may ask of it (signal the main
//! service, end the boot, start an exec, kill an exec), as commands through
//! [`SupervisorHandle`]. The reaper, the spawn path and the process table stay behind it;
//! execs are children of the one reaper like every other process.

use crate::exit::signal_name;
pub use crate::process::exec::ExecCommand;
use crate::process::reaper::{ChildExit, Reaper};
use crate::process::{exec, procs};
use std::sync::Arc;
use tokio::sync::{oneshot, watch};

/// Where the main service is, as the supervisor records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MainState {
    NotStarted,
    Running { pid: i32 },
    Exited,
}

/// What became of a signal sent to the main service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalAnswer {
    /// Sent to the main service's process group.
    Sent,
    /// The boot was still going on and the signal is a stop: the boot ends, the main service
    /// is not started.
    EndsBoot,
    /// The boot is still going on; only a stop signal means anything yet.
    NotStarted,
    /// The main service has exited.
    NotRunning,
}

/// What the control API may ask of one named service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceOp {
    /// A signal to its process group.
    Signal(i32),
    /// Its stop signal, SIGKILL after its timeout; it then stays stopped.
    Stop,
    /// Start it again (it is over, or waiting out a restart's backoff).
    Start,
    /// Stop it and start it again.
    Restart,
}

/// Why a service command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceRefusal {
    #[error("no service named {0:?}")]
    NoSuchService(String),
    #[error("{0} is not running")]
    NotRunning(String),
    #[error("{0} is running already")]
    Running(String),
    #[error("the machine is stopping")]
    MachineStopping,
    #[error("too many service commands are waiting; try again")]
    Busy,
    #[error("{0} is the single workload: it is the machine and does not start again")]
    SingleWorkload(String),
}

/// A service command and where its answer goes.
#[derive(Debug)]
pub struct ServiceCommand {
    pub name: String,
    pub op: ServiceOp,
    pub reply: oneshot::Sender<Result<(), ServiceRefusal>>,
}

/// Signals that end a boot when they come before the main service has started.
const BOOT_STOP_SIGNALS: [i32; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGKILL];

/// Commands to the supervisor. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SupervisorHandle {
    reaper: Reaper,
    stop_requests: Arc<watch::Sender<Option<i32>>>,
    main: watch::Receiver<MainState>,
    services: tokio::sync::mpsc::Sender<ServiceCommand>,
}

impl SupervisorHandle {
    pub(super) fn new(
        reaper: Reaper,
        stop_requests: Arc<watch::Sender<Option<i32>>>,
        main: watch::Receiver<MainState>,
        services: tokio::sync::mpsc::Sender<ServiceCommand>,
    ) -> Self {
        SupervisorHandle {
            reaper,
            stop_requests,
            main,
            services,
        }
    }

    /// Asks the services' loop to do `op` to `name`, and waits (at most 5 s) for its answer.
    pub async fn service(&self, name: &str, op: ServiceOp) -> Result<(), ServiceRefusal> {
        let (reply, answer) = oneshot::channel();
        let command = ServiceCommand {
            name: name.to_string(),
            op,
            reply,
        };
        match self.services.try_send(command) {
            Ok(()) => {}
            Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                return Err(ServiceRefusal::Busy)
            }
            // The loop is gone: the machine has stopped (or not yet started its services).
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                return Err(ServiceRefusal::MachineStopping)
            }
        }
        match tokio::time::timeout(std::time::Duration::from_secs(5), answer).await {
            Ok(Ok(result)) => result,
            // The loop ended (the machine stopped) or did not answer in time.
            _ => Err(ServiceRefusal::MachineStopping),
        }
    }

    /// Sends `signal` (1..=64) to the main service's process group; during the boot, a stop
    /// signal (TERM, INT, QUIT, KILL) ends the boot instead.
    pub fn signal_main(&self, signal: i32) -> SignalAnswer {
        match *self.main.borrow() {
            MainState::Running { pid } => {
                tracing::info!("sending {} to the workload", signal_name(signal));
                procs::signal_group(pid, signal);
                SignalAnswer::Sent
            }
            MainState::NotStarted if BOOT_STOP_SIGNALS.contains(&signal) => {
                tracing::info!("{} during the boot: ending the boot", signal_name(signal));
                self.request_stop(signal);
                SignalAnswer::EndsBoot
            }
            MainState::NotStarted => SignalAnswer::NotStarted,
            MainState::Exited => SignalAnswer::NotRunning,
        }
    }

    /// Asks for a stop as if roost had received `signal` (only the first request counts).
    pub fn request_stop(&self, signal: i32) {
        self.stop_requests.send_if_modified(|slot| {
            let first = slot.is_none();
            slot.get_or_insert(signal);
            first
        });
    }

    /// Starts an exec in its own session and process group, registered with the one reaper
    /// before it can exit. Returns its pid and where its exit will arrive.
    pub fn exec(
        &self,
        command: ExecCommand<'_>,
    ) -> std::io::Result<(i32, oneshot::Receiver<ChildExit>)> {
        exec::start(&self.reaper, command)
    }

    /// Kills an exec's whole process group (its session ended, or its time ran out).
    pub fn kill_exec(&self, pid: i32) {
        exec::kill(pid);
    }
}
