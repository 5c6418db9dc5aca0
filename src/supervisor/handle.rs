//! The supervisor's command side: what the control API may ask of it (signal the main
//! service, end the boot, start an exec, kill an exec), as commands through
//! [`SupervisorHandle`]. The reaper, the spawn path and the process table stay behind it;
//! execs are children of the one reaper like every other process.

use super::logs::LogBuffer;
use crate::containers::ExecTarget;
use crate::exit::signal_name;
use crate::process::exec;
pub use crate::process::exec::ChildSpec;
pub use crate::process::reaper::ChildExit;
use crate::process::reaper::Reaper;
use crate::workload::WorkloadSpec;
use std::sync::Arc;
use tokio::sync::{oneshot, watch};

/// Where the supervisor is: booting (no services yet), running the services (its loop takes
/// commands), or over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Boot,
    Services,
    Over,
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
    /// Too many commands are waiting for the services' loop; try again.
    Busy,
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

/// Where an exec into a service goes, as the supervisor resolves it from the service's
/// current start: its user, env and directory, its cgroup leaves (joined before exec), and,
/// for a container, the runtime's `exec` of it.
#[derive(Debug, Clone)]
pub struct Placement {
    pub spec: WorkloadSpec,
    pub cgroup_joins: Vec<std::ffi::CString>,
    /// A `kind: container` service: where its `exec` goes.
    pub container: Option<ExecTarget>,
}

/// What an exec asks to run inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecInto {
    /// The named service.
    Service(String),
    /// The workload's user: the first service's, inside it when it is a container.
    WorkloadUser,
}

/// Every command the control side sends the supervisor, over one bounded channel, each with
/// where its answer goes.
#[derive(Debug)]
pub enum Command {
    /// Signal, stop, start or restart a named service.
    Service {
        name: String,
        op: ServiceOp,
        reply: oneshot::Sender<Result<(), ServiceRefusal>>,
    },
    /// Where an exec into a service goes (None for `WorkloadUser` when the first service is a
    /// process: the workload's user on the VM's root, no cgroup).
    Exec {
        into: ExecInto,
        reply: oneshot::Sender<Result<Option<Placement>, ServiceRefusal>>,
    },
    /// A signal to the main service's process group (`/v1/signals`).
    SignalMain {
        signal: i32,
        reply: oneshot::Sender<SignalAnswer>,
    },
}

/// Each service's log buffer, by name: the supervisor's, filled when its services' loop
/// begins, and readable through the handles for as long as roost runs (a host reads a
/// service's last lines after the machine's end, during the linger, when no loop is left to
/// answer a command).
pub type ServiceLogs = Arc<std::sync::Mutex<Vec<(String, Arc<LogBuffer>)>>>;

/// Signals that end a boot when they come before the main service has started.
const BOOT_STOP_SIGNALS: [i32; 4] = [libc::SIGTERM, libc::SIGINT, libc::SIGQUIT, libc::SIGKILL];

/// Commands to the supervisor. Cheap to clone.
#[derive(Debug, Clone)]
pub struct SupervisorHandle {
    reaper: Reaper,
    stop_requests: Arc<watch::Sender<Option<i32>>>,
    stage: watch::Receiver<Stage>,
    commands: tokio::sync::mpsc::Sender<Command>,
    logs: ServiceLogs,
}

impl SupervisorHandle {
    pub(super) fn new(
        reaper: Reaper,
        stop_requests: Arc<watch::Sender<Option<i32>>>,
        stage: watch::Receiver<Stage>,
        commands: tokio::sync::mpsc::Sender<Command>,
        logs: ServiceLogs,
    ) -> Self {
        SupervisorHandle {
            reaper,
            stop_requests,
            stage,
            commands,
            logs,
        }
    }

    /// Sends a command and waits (at most 5 s) for its answer. A full queue is `Busy`; a
    /// closed one, or no answer, means the loop is not running (the machine is stopping, or
    /// its services have not started).
    async fn ask<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, ServiceRefusal> {
        let (reply, answer) = oneshot::channel();
        match self.commands.try_send(command(reply)) {
            Ok(()) => {}
            Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                return Err(ServiceRefusal::Busy)
            }
            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                return Err(ServiceRefusal::MachineStopping)
            }
        }
        match tokio::time::timeout(std::time::Duration::from_secs(5), answer).await {
            Ok(Ok(result)) => Ok(result),
            _ => Err(ServiceRefusal::MachineStopping),
        }
    }

    /// Where an exec into a service goes (see [`Command::Exec`]).
    pub async fn placement(&self, into: ExecInto) -> Result<Option<Placement>, ServiceRefusal> {
        self.ask(|reply| Command::Exec { into, reply }).await?
    }

    /// The log buffer of the service `name` (None: no such service, or its services have
    /// not begun).
    pub fn logs(&self, name: &str) -> Option<Arc<LogBuffer>> {
        self.logs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, buffer)| buffer.clone())
    }

    /// Asks the services' loop to do `op` to `name`, and waits (at most 5 s) for its answer.
    pub async fn service(&self, name: &str, op: ServiceOp) -> Result<(), ServiceRefusal> {
        let name = name.to_string();
        self.ask(|reply| Command::Service { name, op, reply })
            .await?
    }

    /// Sends `signal` (1..=64) to the main service's process group; during the boot, a stop
    /// signal (TERM, INT, QUIT, KILL) ends the boot instead.
    pub async fn signal_main(&self, signal: i32) -> SignalAnswer {
        let stage = *self.stage.borrow();
        match stage {
            Stage::Boot => self.before_the_start(signal),
            Stage::Over => SignalAnswer::NotRunning,
            Stage::Services => match self
                .ask(|reply| Command::SignalMain { signal, reply })
                .await
            {
                Ok(answer) => answer,
                Err(ServiceRefusal::Busy) => SignalAnswer::Busy,
                Err(_) => SignalAnswer::NotRunning,
            },
        }
    }

    /// A signal for the main service before it has started: a stop signal ends the boot (or,
    /// with the services' loop running, stops the machine); nothing else means anything yet.
    pub(super) fn before_the_start(&self, signal: i32) -> SignalAnswer {
        if BOOT_STOP_SIGNALS.contains(&signal) {
            tracing::info!(
                "{} before the workload started: stopping",
                signal_name(signal)
            );
            self.request_stop(signal);
            SignalAnswer::EndsBoot
        } else {
            SignalAnswer::NotStarted
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
        command: ChildSpec<'_>,
    ) -> std::io::Result<(i32, oneshot::Receiver<ChildExit>)> {
        exec::start(&self.reaper, command)
    }

    /// Kills an exec's whole process group (its session ended, or its time ran out).
    pub fn kill_exec(&self, pid: i32) {
        exec::kill(pid);
    }
}
