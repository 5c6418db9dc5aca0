//! One supervisor for one service or many (a config without `Containers` is a machine of one
//! service): the plan's decisions carried out over the process layer ([`crate::process`]) and
//! the containers ([`crate::containers`]).
//!
//! [`Supervisor`] holds what outlives the services' loop: the signal handlers, the reaper, the
//! watched task set, the stop requests, the log buffers. [`run_loop`] is the loop itself, one
//! method per input; [`plan`] decides (pure); `start`, `checks`, `notify`, `logs`, `volumes`
//! and `ending` each do one job of it. Out of it come [`events::Event`]s; into it come
//! [`handle::Command`]s through [`handle::SupervisorHandle`]. It knows nothing of the control
//! API that listens and asks.

mod checks;
mod commands;
pub mod critical;
mod ending;
pub mod events;
pub mod handle;
pub mod health;
mod live;
pub mod logs;
pub mod notify;
pub mod plan;
pub mod run_loop;
mod start;
pub mod view;
mod volumes;

use crate::exit;
use crate::process::cgroup::WorkloadCgroup;
use crate::process::procs::InitMode;
pub use crate::process::reaper::ChildExit;
use crate::process::reaper::{ReapState, Reaper};
use crate::process::signals::{SignalAction, Signals};
use crate::process::{procs, signals, spawn};
use crate::workload::WorkloadSpec;
pub use critical::CriticalTasks;
use events::{Event, Events, Listener};
use handle::{Stage, SupervisorHandle};
use roost_platform::deadline::from_now;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{sleep_until, Instant};

/// How long SIGKILLed processes get to disappear before roost gives up waiting for them.
const SIGKILL_GRACE: Duration = Duration::from_secs(10);

/// What became of the workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// roost's exit code: the workload's code, 128 + signal, or a spawn failure code.
    pub code: i32,
    pub exit: Option<ChildExit>,
    /// Whether the OOM killer killed a process of the workload's cgroup.
    pub oom_killed: bool,
    pub orphans_reaped: u64,
    /// With several services: the one whose exit decided the code, and why.
    pub decided_by: Option<roost_control_protocol::DecidedBy>,
}

pub use crate::exit::signal_name;

impl Outcome {
    /// The exit report of this outcome.
    pub fn report(&self) -> exit::Report {
        exit::Report {
            code: self.code,
            oom_killed: self.oom_killed,
            decided_by: self.decided_by.clone(),
        }
    }
}

impl From<BootInterrupted> for exit::BootFailure {
    fn from(why: BootInterrupted) -> Self {
        match why {
            BootInterrupted::Stopped { signal, by } => exit::BootFailure::Stopped { signal, by },
            BootInterrupted::Failed(failure) => exit::BootFailure::CriticalTask(failure),
        }
    }
}

/// Why the boot ended before the workload started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootInterrupted {
    /// A stop was requested (by a signal to roost or by the host): exit 128 + `signal`.
    Stopped { signal: i32, by: &'static str },
    /// A critical task failed: exit 70.
    Failed(String),
}

/// Owns the signal handlers and the reaper for the life of the workload.
#[derive(Debug)]
pub struct Supervisor {
    mode: InitMode,
    reaper: Reaper,
    signals: Signals,
    /// In a VM, SIGINT is Ctrl-Alt-Del (with RB_DISABLE_CAD): a graceful stop, not a forward.
    sigint_stops: bool,
    critical: CriticalTasks,
    stop_requests: tokio::sync::watch::Receiver<Option<i32>>,
    /// The sending side of the stop requests, for the handles.
    stop_sender: Arc<tokio::sync::watch::Sender<Option<i32>>>,
    /// The main service's state, as the handles read it.
    stage: tokio::sync::watch::Sender<Stage>,
    /// Each service's log buffer, shared with the handles.
    logs: handle::ServiceLogs,
    events: Events,
    /// The main service's name in events.
    service: Arc<str>,
    /// Commands for named services, read by the services' loop; the handles hold the sender
    /// (dropped unread with the single workload, so a command is refused at once).
    service_commands: Option<tokio::sync::mpsc::Receiver<handle::Command>>,
    service_sender: tokio::sync::mpsc::Sender<handle::Command>,
}

/// A workload started by [`Supervisor::spawn_in_cgroup`].
struct InCgroup {
    pid: i32,
    exit_rx: tokio::sync::oneshot::Receiver<ChildExit>,
    born: spawn::Born,
    join_warnings: Vec<String>,
}

impl Supervisor {
    /// Installs the signal handlers and reaps once (anything that exited before the handlers
    /// existed would otherwise wait for a SIGCHLD that never comes). Needs a tokio runtime.
    pub fn start(mode: InitMode) -> std::io::Result<Self> {
        let (sigchld, signals) = Signals::install()?;
        let reaper = Reaper::new();
        reaper.reap();
        let critical = CriticalTasks::new();
        critical.spawn("reaper", reaper.clone().reap_forever(sigchld));
        let (tx, stop_requests) = tokio::sync::watch::channel(None);
        // Bounded: a host that floods commands gets Busy, not PID 1's memory.
        let (service_sender, service_commands) = tokio::sync::mpsc::channel(64);
        Ok(Supervisor {
            service_commands: Some(service_commands),
            service_sender,
            mode,
            reaper,
            signals,
            sigint_stops: false,
            critical,
            stop_requests,
            stop_sender: Arc::new(tx),
            stage: tokio::sync::watch::Sender::new(Stage::Boot),
            logs: handle::ServiceLogs::default(),
            events: Events::default(),
            service: Arc::from(events::MAIN_SERVICE),
        })
    }

    /// Waits `linger` after the exit (so the host can still ask for the exit code), ending
    /// early on a stop signal (SIGTERM, SIGINT): a host or operator that says stop is not
    /// made to wait for the linger. Other signals are logged.
    pub async fn linger(&mut self, linger: Duration) {
        if linger.is_zero() {
            return;
        }
        let until = from_now(linger);
        loop {
            tokio::select! {
                _ = sleep_until(until) => return,
                sig = self.signals.recv() => {
                    if matches!(sig, libc::SIGTERM | libc::SIGINT) {
                        tracing::info!("{} while lingering: ending the linger", signal_name(sig));
                        return;
                    }
                    tracing::info!("{} while lingering: no workload to forward it to", signal_name(sig));
                }
            }
        }
    }

    /// The watched task set the critical tasks are spawned into.
    pub fn critical(&self) -> &CriticalTasks {
        &self.critical
    }

    /// A handle through which the control API sends its commands.
    pub fn handle(&self) -> SupervisorHandle {
        SupervisorHandle::new(
            self.reaper.clone(),
            self.stop_sender.clone(),
            self.stage.subscribe(),
            self.service_sender.clone(),
            self.logs.clone(),
        )
    }

    /// Adds a listener for the supervisor's events.
    pub fn listen(&mut self, listener: Listener) {
        self.events.listen(listener);
    }

    /// Tells the listeners.
    fn emit(&self, event: Event) {
        self.events.emit(event);
    }

    /// Runs one step of the boot (waiting for MMDS, for the first identity token...) until it
    /// is done or the boot is interrupted: a stop signal to roost, a stop asked for by the
    /// host, or a critical task's failure end the boot at once, without starting the
    /// workload. Other signals have no workload to go to yet and are logged.
    pub async fn during_boot<T>(
        &mut self,
        step: impl std::future::Future<Output = T>,
    ) -> Result<T, BootInterrupted> {
        tokio::pin!(step);
        let critical = self.critical.clone();
        loop {
            tokio::select! {
                biased;
                out = &mut step => return Ok(out),
                why = critical.failed() => return Err(BootInterrupted::Failed(why)),
                changed = self.stop_requests.changed() => {
                    let asked = *self.stop_requests.borrow_and_update();
                    match (changed, asked) {
                        (Ok(()), Some(signal)) => {
                            return Err(BootInterrupted::Stopped { signal, by: "the host" })
                        }
                        // The handle lives in self: cannot close. Wait on the rest.
                        _ => std::future::pending::<()>().await,
                    }
                }
                sig = self.signals.recv() => match self.action_for(sig) {
                    SignalAction::GracefulStop => {
                        return Err(BootInterrupted::Stopped { signal: sig, by: "a signal" })
                    }
                    SignalAction::Forward(sig) => tracing::info!(
                        "{} during the boot: no workload to forward it to yet",
                        signal_name(sig)
                    ),
                },
            }
        }
    }

    fn action_for(&self, sig: i32) -> SignalAction {
        if self.sigint_stops {
            signals::action_in_vm(sig)
        } else {
            signals::action_for(sig)
        }
    }

    /// Treats SIGINT as a stop request (VM mode: Ctrl-Alt-Del).
    pub fn stop_on_sigint(&mut self) {
        self.sigint_stops = true;
    }

    /// The outcome when the workload never started.
    pub fn outcome_without_workload(&self, code: i32) -> Outcome {
        self.outcome(code, None, false)
    }

    /// Starts `spec` in `cgroup`'s leaves through the one reaper: born there where the kernel
    /// can (clone3 CLONE_INTO_CGROUP), else joined by the child before exec. A parent-side
    /// move would only take the cgroup lock again, so it runs only when a join may have
    /// failed; its warnings are returned for the caller's log.
    fn spawn_in_cgroup(
        &self,
        spec: &WorkloadSpec,
        output: std::os::fd::OwnedFd,
        cgroup: &WorkloadCgroup,
    ) -> std::io::Result<InCgroup> {
        let placement = cgroup.placement();
        let mut born = spawn::Born::Forked;
        let (pid, exit_rx) = self.reaper.spawn(|| {
            let (pid, how) = spawn::spawn_workload(spec, output, &placement)?;
            born = how;
            Ok(pid)
        })?;
        let join_warnings = if born.parent_must_join() {
            cgroup.join(pid)
        } else {
            Vec::new()
        };
        Ok(InCgroup {
            pid,
            exit_rx,
            born,
            join_warnings,
        })
    }

    fn outcome(&self, code: i32, exit: Option<ChildExit>, oom_killed: bool) -> Outcome {
        Outcome {
            code,
            exit,
            oom_killed,
            orphans_reaped: self.reaper.orphans_reaped(),
            decided_by: None,
        }
    }

    /// Stops whatever the workload left behind: `kill_signal` to every remaining process,
    /// until `grace_until` for them to exit, SIGKILL for the rest, and reap them all.
    async fn stop_leftovers(
        &mut self,
        kill_signal: i32,
        grace_until: Instant,
        leaves: &[WorkloadCgroup],
    ) {
        if self.reaper.reap() == ReapState::NoChildren {
            return;
        }
        tracing::info!(
            "stopping the workload's leftover processes with {}",
            signal_name(kill_signal)
        );
        procs::signal_everyone(self.mode, kill_signal);
        if self.reaper.until_empty(grace_until).await {
            return;
        }
        tracing::warn!("leftover processes are still running: sending SIGKILL");
        let deadline = from_now(SIGKILL_GRACE);
        while Instant::now() < deadline {
            for leaf in leaves {
                leaf.kill_all();
            }
            procs::signal_everyone(self.mode, libc::SIGKILL);
            // Short rounds: in subreaper mode a process forked after the scan needs another.
            if self
                .reaper
                .until_empty(from_now(Duration::from_millis(200)))
                .await
            {
                return;
            }
        }
        tracing::error!("some processes did not die after SIGKILL (uninterruptible sleep?)");
    }
}
