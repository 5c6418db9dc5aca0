//! Supervision of the workload: spawn, reap, forward signals, stop, and report.
//!
//! [`Supervisor`] wires the parts (each its own module with one job) in the order that makes
//! PID 1 correct: handlers first, an initial reap, then the spawn; a graceful stop that
//! escalates; every leftover process stopped and reaped; the output pipe drained last.
//!
//! Out of it come [`events::Event`]s (started, stopping, exited); into it come commands
//! through [`handle::SupervisorHandle`] (signal, stop, exec). It knows nothing of the control
//! API that listens and asks.

pub mod cgroup;
pub mod clone_into;
pub mod critical;
pub mod events;
pub mod handle;
pub mod oci_verb;
pub mod output;
pub mod procs;
pub mod reaper;
pub mod services;
pub mod signals;
pub mod spawn;

use crate::config::typed::Service;
use crate::exit;
use crate::workload::WorkloadSpec;
use cgroup::WorkloadCgroup;
pub use critical::CriticalTasks;
use events::{Event, Events, Listener};
use handle::{MainState, SupervisorHandle};
use output::OutputPump;
use procs::InitMode;
pub use reaper::ChildExit;
use reaper::{ReapState, Reaper};
use roost_platform::deadline::from_now;
use signals::{SignalAction, Signals};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::{sleep_until, Instant};

/// How long SIGKILLed processes get to disappear before roost gives up waiting for them.
const SIGKILL_GRACE: Duration = Duration::from_secs(10);
/// How long roost waits for the output pipe to reach end-of-file once every process is gone.
const OUTPUT_DRAIN: Duration = Duration::from_secs(5);

/// How the workload is stopped, as the supervisor uses it.
#[derive(Debug, Clone, Copy)]
struct StopPolicy {
    pub kill_signal: i32,
    pub kill_timeout: Duration,
}

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
    pub decided_by: Option<(String, &'static str)>,
}

pub use crate::exit::signal_name;

impl Outcome {
    /// The exit report of this outcome.
    pub fn report(&self) -> exit::Report {
        exit::Report {
            code: self.code,
            oom_killed: self.oom_killed,
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
    main: tokio::sync::watch::Sender<MainState>,
    events: Events,
    /// The main service's name in events.
    service: Arc<str>,
    /// Commands for named services, read by the services' loop; the handles hold the sender
    /// (dropped unread with the single workload, so a command is refused at once).
    service_commands: Option<tokio::sync::mpsc::Receiver<handle::ServiceCommand>>,
    service_sender: tokio::sync::mpsc::Sender<handle::ServiceCommand>,
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
        reaper.spawn_task(sigchld, &critical);
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
            main: tokio::sync::watch::Sender::new(MainState::NotStarted),
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
            self.main.subscribe(),
            self.service_sender.clone(),
        )
    }

    /// Adds a listener for the supervisor's events.
    pub fn listen(&mut self, listener: Listener) {
        self.events.listen(listener);
    }

    /// Records an event in the supervisor's own state, then tells the listeners.
    fn emit(&self, event: Event) {
        match &event {
            // The handles signal the main service: with several, only its events count.
            Event::Started { pid, service } if *service == self.service => {
                self.main.send_replace(MainState::Running { pid: *pid });
            }
            Event::Exited { service, .. } if *service == self.service => {
                self.main.send_replace(MainState::Exited);
            }
            Event::Started { .. } | Event::Exited { .. } => {}
            Event::Stopping { .. } | Event::Services(_) | Event::Logs(_) => {}
        }
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

    /// Runs the workload to its end and stops everything it left behind. Listeners learn the
    /// workload's pid when it starts and its exit the moment it ends (before leftovers are
    /// stopped).
    pub async fn run(&mut self, spec: &WorkloadSpec, service: &Service) -> Outcome {
        // No services' loop: commands for named services are refused at once.
        self.service_commands = None;
        let policy = StopPolicy {
            kill_signal: service.stop.signal.number(),
            kill_timeout: service.stop.timeout,
        };
        let (memory_limit_mib, pids_max) = (service.memory_limit_mib, service.pids_max);
        self.service = Arc::from(service.name.as_str());
        let (cgroup, warnings) =
            WorkloadCgroup::create(&cgroup::leaf_name(), memory_limit_mib, pids_max);
        for warning in warnings {
            tracing::warn!("{warning}");
        }
        if !cgroup.describe().is_empty() {
            tracing::info!("workload cgroup: {}", cgroup.describe());
        }
        if let Some(max) = cgroup.pids_max() {
            tracing::info!("workload pids.max: {max}");
        }
        let (pump, output) = match OutputPump::start() {
            Ok(pair) => pair,
            Err(err) => {
                tracing::error!("cannot create the workload's output pipe: {err}");
                cgroup.remove().await;
                return self.outcome(exit::INTERNAL, None, false);
            }
        };

        let InCgroup {
            pid,
            exit_rx,
            born,
            join_warnings,
        } = match self.spawn_in_cgroup(spec, output, &cgroup) {
            Ok(started) => started,
            Err(err) => {
                tracing::error!("cannot start the workload {:?}: {err}", spec.argv);
                pump.finish(OUTPUT_DRAIN);
                cgroup.remove().await;
                return self.outcome(spawn::spawn_failure_code(&err), None, false);
            }
        };
        if let spawn::Born::InCgroup { .. } = born {
            tracing::info!("workload born in its cgroup (clone3 CLONE_INTO_CGROUP)");
        }
        for warning in join_warnings {
            tracing::warn!("{warning}");
        }
        self.emit(Event::Started {
            service: self.service.clone(),
            pid,
        });
        tracing::info!(
            pid,
            uid = spec.identity.uid,
            gid = spec.identity.gid,
            "workload started: pid {pid}, uid {}, gid {}, argv {:?}",
            spec.identity.uid,
            spec.identity.gid,
            spec.argv
        );

        let (exit, stop_deadline) = self.wait_workload(pid, exit_rx, policy).await;
        // The OOM counter already holds the kill that ended the workload, if there was one.
        self.emit(Event::Exited {
            service: self.service.clone(),
            code: exit.map_or(exit::INTERNAL, |e| e.exit_code()),
            signal: exit.and_then(|e| e.signal),
            oom_killed: cgroup.oom_kills() > 0,
        });
        // A requested stop is bounded by one KillTimeout in all; a workload that exited by
        // itself leaves its leftovers a full KillTimeout to exit.
        let grace_until = stop_deadline.unwrap_or_else(|| from_now(policy.kill_timeout));
        self.stop_leftovers(policy.kill_signal, grace_until, &cgroup)
            .await;

        let oom_kills = cgroup.oom_kills();
        if oom_kills > 0 {
            tracing::warn!("the OOM killer killed {oom_kills} process(es) of the workload");
        }
        if pump.finish(OUTPUT_DRAIN).is_none() {
            tracing::warn!("the workload's output pipe is still open; some output may be lost");
        }
        cgroup.remove().await;
        let code = match exit {
            // A critical task's failure stopped the workload: roost's own failure is the code.
            Some(_) if self.critical.failure().is_some() => exit::INTERNAL,
            Some(exit) => exit.exit_code(),
            None => exit::INTERNAL,
        };
        self.outcome(code, exit, oom_kills > 0)
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

    /// Waits for the workload's exit, reaping on every SIGCHLD, forwarding signals, and
    /// escalating a graceful stop to SIGKILL after KillTimeout. Returns the exit and, when a
    /// stop was requested, its deadline.
    async fn wait_workload(
        &mut self,
        pid: i32,
        mut exit_rx: tokio::sync::oneshot::Receiver<ChildExit>,
        policy: StopPolicy,
    ) -> (Option<ChildExit>, Option<Instant>) {
        // When to send SIGKILL (cleared once sent), and the stop's deadline (kept).
        let mut kill_at: Option<Instant> = None;
        let mut stop_deadline: Option<Instant> = None;
        let critical = self.critical.clone();
        // False even when a task failed already: its arm below then fires at once.
        let mut internal_failure = false;
        let mut host_stop_seen = false;
        loop {
            let deadline = kill_at.unwrap_or_else(far_future);
            tokio::select! {
                biased;
                exit = &mut exit_rx => {
                    let exit = exit.ok();
                    match exit {
                        Some(exit) => tracing::info!(
                            "workload exited: code {:?}, signal {:?}",
                            exit.code,
                            exit.signal.map(signal_name)
                        ),
                        None => tracing::error!("the workload's exit status was lost"),
                    }
                    return (exit, stop_deadline);
                }
                // A stop the host asked for as the boot ended, before the workload ran (later
                // ones reach the workload's group directly).
                changed = self.stop_requests.changed(), if !host_stop_seen => {
                    host_stop_seen = true;
                    if changed.is_ok() && self.stop_requests.borrow_and_update().is_some() {
                        tracing::info!("stop requested by the host as the workload started");
                        self.begin_stop(pid, policy, &mut stop_deadline, &mut kill_at);
                    }
                }
                why = critical.failed(), if !internal_failure => {
                    tracing::error!("{why}: stopping the workload");
                    internal_failure = true;
                    self.begin_stop(pid, policy, &mut stop_deadline, &mut kill_at);
                }
                sig = self.signals.recv() => match self.action_for(sig) {
                    SignalAction::GracefulStop => {
                        tracing::info!(
                            "stop requested: sending {} to the workload, SIGKILL in {} s",
                            signal_name(policy.kill_signal),
                            policy.kill_timeout.as_secs()
                        );
                        self.begin_stop(pid, policy, &mut stop_deadline, &mut kill_at);
                    }
                    SignalAction::Forward(sig) => {
                        tracing::info!("forwarding {} to the workload", signal_name(sig));
                        procs::signal_group(pid, sig);
                    }
                },
                // The reaper task may be what failed: reap here until the workload is gone.
                _ = tokio::time::sleep(Duration::from_millis(100)), if internal_failure => {
                    self.reaper.reap();
                }
                _ = sleep_until(deadline), if kill_at.is_some() => {
                    tracing::warn!(
                        "the workload did not stop within {} s: sending SIGKILL",
                        policy.kill_timeout.as_secs()
                    );
                    procs::signal_group(pid, libc::SIGKILL);
                    kill_at = None;
                }
            }
        }
    }

    /// A graceful stop of the workload's group: `KillSignal` now, SIGKILL at the stop's
    /// deadline (one `KillTimeout` from the first request, however many come).
    fn begin_stop(
        &self,
        pid: i32,
        policy: StopPolicy,
        stop_deadline: &mut Option<Instant>,
        kill_at: &mut Option<Instant>,
    ) {
        procs::signal_group(pid, policy.kill_signal);
        let first = stop_deadline.is_none();
        let deadline = *stop_deadline.get_or_insert(from_now(policy.kill_timeout));
        if kill_at.is_none() && deadline > Instant::now() {
            *kill_at = Some(deadline);
        }
        if first {
            self.emit(Event::Stopping {
                service: self.service.clone(),
                signal: policy.kill_signal,
            });
        }
    }

    /// Stops whatever the workload left behind: `kill_signal` to every remaining process,
    /// until `grace_until` for them to exit, SIGKILL for the rest, and reap them all.
    async fn stop_leftovers(
        &mut self,
        kill_signal: i32,
        grace_until: Instant,
        cgroup: &WorkloadCgroup,
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
            cgroup.kill_all();
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

fn far_future() -> Instant {
    from_now(roost_platform::deadline::FAR)
}
