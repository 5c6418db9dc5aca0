//! The machine's one loop (docs/services.md), for one service or many: it carries out the
//! actions of the pure [`Plan`] and turns every input into the plan's next actions. Each
//! kind of input has its own method: a message from a service's tasks (its exit, a check's
//! result, its ready line or `READY=1`, a restart's time), a command of the control API, a
//! signal to PID 1, the host's stop, a critical task's failure, a stop deadline. The loop
//! makes the syscalls; the plan makes the decisions.

use super::events::Event;
use super::handle::Command;
use super::live::Live;
use super::logs::{self, Console, ServiceLog};
use super::plan::{Action, Plan};
use super::{volumes, CriticalTasks, Outcome, Supervisor};
use crate::config::typed::{Service, SignalTarget, Volume};
use crate::containers::ContainerHost;
use crate::exit::{self, signal_name};
use crate::process::cgroup::{self, ServicesGroup, WorkloadCgroup};
use crate::process::reaper::ChildExit;
use crate::process::signals::SignalAction;
use crate::workload::WorkloadSpec;
use roost_platform::deadline::from_now;
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{sleep_until, Instant};

/// What the services need beyond their config.
#[derive(Debug)]
pub struct ServicesRun<'a> {
    pub services: &'a [Service],
    /// Each service resolved (argv, env, identity, directory), in the same order.
    pub specs: Vec<WorkloadSpec>,
    pub volumes: &'a [Volume],
    /// Where volumes live: `<dir>/<name>`.
    pub volume_dir: PathBuf,
    pub signal_target: SignalTarget,
    /// The bound of the whole stop (`KillTimeout`).
    pub kill_timeout: Duration,
    /// The runtime and images of `kind: container` services (None: there are none).
    pub containers: Option<&'a ContainerHost>,
    /// Per service, the directory of its broker's token files (None: it asks for no role).
    pub token_dirs: Vec<Option<PathBuf>>,
    /// The `/.fly/api` socket (None: no proxy), bound into containers with `fly_api`.
    pub api_socket: Option<PathBuf>,
}

impl ServicesRun<'_> {
    /// Whether the machine is the single workload, whose one leaf is the whole services'
    /// cgroup.
    pub(super) fn single_leaf(&self) -> bool {
        matches!(self.services, [only] if only.single_workload)
    }
}

/// What a service's tasks send back to the loop.
#[derive(Debug)]
pub(super) enum Msg {
    Exited {
        i: usize,
        generation: u64,
        exit: Option<ChildExit>,
    },
    Check {
        i: usize,
        generation: u64,
        check: usize,
        ok: bool,
    },
    RestartDue {
        i: usize,
    },
    LogReady {
        i: usize,
    },
    /// `READY=1` on the service's `NOTIFY_SOCKET`, from its own session.
    Notified {
        i: usize,
        generation: u64,
    },
}

/// How often a daemon service's leaf is looked at for its end (cgroup v1 has no event for
/// an empty leaf roost can wait on; v2's `cgroup.events` would, and is not on every host).
const DAEMON_POLL: Duration = Duration::from_millis(200);

/// One input of the loop, as [`RunLoop::next_input`] waits for them.
enum Input {
    Message(Msg),
    /// Every sender is gone (cannot happen while the loop holds one; ends the loop).
    MessagesClosed,
    Command(Command),
    CommandsClosed,
    /// The host's stop request changed (false: its sender is gone).
    HostStop(bool),
    CriticalFailed(String),
    Signal(i32),
    /// After a critical failure the reaper task may be gone: the loop reaps itself.
    ReapTick,
    KillDeadline,
    GiveUp,
}

/// Who decided the machine's exit code, and why.
#[derive(Debug, Clone, Copy)]
pub(super) struct Decision {
    pub code: i32,
    pub service: Option<usize>,
    pub reason: &'static str,
}

/// The loop's state: the plan, each service's running start, the deadlines of the stop.
pub(super) struct RunLoop<'a> {
    pub(super) sup: &'a mut Supervisor,
    pub(super) run: ServicesRun<'a>,
    pub(super) plan: Plan,
    /// Each service's current start, if it runs.
    pub(super) live: Vec<Option<Live>>,
    pub(super) logs: Vec<ServiceLog>,
    pub(super) tx: mpsc::UnboundedSender<Msg>,
    pub(super) rx: mpsc::UnboundedReceiver<Msg>,
    /// The name every leaf of this machine is made from.
    pub(super) leaf_base: String,
    pub(super) generation: u64,
    pub(super) queue: VecDeque<Action>,
    pub(super) decided: Option<Decision>,
    /// Whether listeners were told the decision (`/v1/exit_code` answers from then on).
    pub(super) decision_told: bool,
    /// Leaves of services that exited once the machine was ending, stopped with the
    /// machine's leftovers and removed after them.
    pub(super) ending_leaves: Vec<WorkloadCgroup>,
    pub(super) oom_of: Vec<bool>,
    /// When the whole machine's stop escalates to SIGKILL (cleared once it has).
    pub(super) machine_deadline: Option<Instant>,
    /// The first stop deadline the machine had: what is left of it bounds the leftovers.
    pub(super) stop_deadline: Option<Instant>,
    /// After the stop's SIGKILL, how long the loop waits for the last exits before it gives
    /// up on processes that do not die (uninterruptible sleep).
    pub(super) give_up_at: Option<Instant>,
    pub(super) internal_failure: bool,
    pub(super) host_stop_seen: bool,
    pub(super) commands: Option<mpsc::Receiver<Command>>,
    pub(super) critical: CriticalTasks,
    pub(super) started: Instant,
    pub(super) console: Console,
    pub(super) mounted: Vec<PathBuf>,
    pub(super) group: Option<ServicesGroup>,
    /// Each service's state as last told to the listeners.
    pub(super) published: Vec<super::events::ServiceView>,
}

impl Supervisor {
    /// Runs the services to the machine's end and stops everything left. The outcome's code
    /// is that of the service whose exit decided it (its `on_exit`), or, for a stop asked
    /// for, the main service's (the first).
    pub async fn run_services(&mut self, run: ServicesRun<'_>) -> Outcome {
        if let Some(main) = run.services.first() {
            self.service = Arc::from(main.name.as_str());
        }
        self.stage.send_replace(super::handle::Stage::Services);
        let outcome = match RunLoop::new(self, run) {
            Ok(run_loop) => run_loop.run().await,
            Err(err) => {
                tracing::error!("{err}");
                self.outcome(exit::INTERNAL, None, false)
            }
        };
        self.stage.send_replace(super::handle::Stage::Over);
        outcome
    }
}

impl<'a> RunLoop<'a> {
    /// The set-up every machine needs before its first start: each service's log, the
    /// volumes, the services' cgroup group (none for the single workload: its one leaf keeps
    /// roost's reserve itself, a cgroup level fewer on the path every plain machine takes).
    fn new(sup: &'a mut Supervisor, run: ServicesRun<'a>) -> Result<Self, String> {
        let n = run.services.len();
        let console = Console::new();
        let (tx, rx) = mpsc::unbounded_channel::<Msg>();
        let mut service_logs = Vec::with_capacity(n);
        for (i, service) in run.services.iter().enumerate() {
            let ready_tx = tx.clone();
            let style = if service.single_workload {
                logs::ConsoleStyle::Raw
            } else {
                logs::ConsoleStyle::Prefixed
            };
            let on_ready = move || {
                let _ = ready_tx.send(Msg::LogReady { i });
            };
            let log = logs::start(
                &service.name,
                &console,
                style,
                service.ready_log_line.clone(),
                on_ready,
            )
            .map_err(|err| format!("cannot create {}'s output pipe: {err}", service.name))?;
            service_logs.push(log);
        }
        *sup.logs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = run
            .services
            .iter()
            .zip(&service_logs)
            .map(|(s, log)| (s.name.clone(), log.buffer.clone()))
            .collect();
        let mounted = volumes::mount(run.volumes, &run.volume_dir, run.services)?;
        let leaf_base = cgroup::leaf_name();
        let group = (!run.single_leaf()).then(|| services_group(&leaf_base));
        let mut plan = Plan::new(run.services);
        let queue = plan.begin().into();
        let critical = sup.critical.clone();
        let commands = sup.service_commands.take();
        let run_loop = RunLoop {
            sup,
            plan,
            live: (0..n).map(|_| None).collect(),
            logs: service_logs,
            tx,
            rx,
            leaf_base,
            generation: 0,
            queue,
            decided: None,
            decision_told: false,
            ending_leaves: Vec::new(),
            oom_of: vec![false; n],
            machine_deadline: None,
            stop_deadline: None,
            give_up_at: None,
            internal_failure: false,
            host_stop_seen: false,
            commands,
            critical,
            started: Instant::now(),
            console,
            mounted,
            group,
            published: Vec::with_capacity(n),
            run,
        };
        Ok(run_loop)
    }

    /// Milliseconds since the loop began, the plan's clock.
    pub(super) fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Queues the plan's next actions.
    pub(super) fn then(&mut self, actions: impl IntoIterator<Item = Action>) {
        self.queue.extend(actions);
    }

    async fn run(mut self) -> Outcome {
        loop {
            if self.stop_deadline.is_none() {
                self.stop_deadline = self.machine_deadline;
            }
            while let Some(action) = self.queue.pop_front() {
                self.carry_out(action).await;
            }
            self.publish_views();
            // Over once nothing runs and nothing will start again: a stop that has finished,
            // or every service over by itself (no stop then: nothing is left to wait for).
            if self.plan.is_ending() && self.live.iter().all(Option::is_none) {
                break;
            }
            match self.next_input().await {
                Input::Message(msg) => self.on_message(msg).await,
                Input::MessagesClosed => break,
                Input::Command(command) => self.on_control(command),
                Input::CommandsClosed => self.commands = None,
                Input::HostStop(open) => self.on_host_stop(open),
                Input::CriticalFailed(why) => self.on_critical_failure(&why),
                Input::Signal(sig) => self.on_signal(sig),
                Input::ReapTick => {
                    self.sup.reaper.reap();
                }
                Input::KillDeadline => self.on_kill_deadline(),
                Input::GiveUp => {
                    self.give_up();
                    break;
                }
            }
        }
        self.finish().await
    }

    /// Waits for the next input. Messages first: an exit already in is not overtaken by a
    /// deadline.
    async fn next_input(&mut self) -> Input {
        let next_kill = self
            .live
            .iter()
            .flatten()
            .flat_map(|l| [l.kill_at, l.signal_at])
            .flatten()
            .chain(self.machine_deadline)
            .min();
        let give_up_at = self.give_up_at;
        tokio::select! {
            biased;
            msg = self.rx.recv() => msg.map_or(Input::MessagesClosed, Input::Message),
            command = next_command(&mut self.commands) => {
                command.map_or(Input::CommandsClosed, Input::Command)
            }
            changed = self.sup.stop_requests.changed(), if !self.host_stop_seen => {
                Input::HostStop(changed.is_ok())
            }
            why = self.critical.failed(), if !self.internal_failure => Input::CriticalFailed(why),
            sig = self.sup.signals.recv() => Input::Signal(sig),
            _ = tokio::time::sleep(Duration::from_millis(100)), if self.internal_failure => {
                Input::ReapTick
            }
            _ = sleep_until(next_kill.unwrap_or_else(far_future)), if next_kill.is_some() => {
                Input::KillDeadline
            }
            _ = sleep_until(give_up_at.unwrap_or_else(far_future)), if give_up_at.is_some() => {
                Input::GiveUp
            }
        }
    }

    /// One action of the plan.
    async fn carry_out(&mut self, action: Action) {
        match action {
            Action::Start(i) => {
                self.generation += 1;
                let generation = self.generation;
                match self.start(i, generation).await {
                    Ok(mut started) => {
                        started.started_at_ms = self.now_ms();
                        let pid = started.pid;
                        self.live[i] = Some(started);
                        self.sup.emit(Event::Started {
                            service: self.name_of(i),
                            pid,
                        });
                        let actions = self.plan.started(i, self.now_ms());
                        self.then(actions);
                    }
                    Err(err) => {
                        let code = err.code();
                        let name = self.run.services[i].name.as_str();
                        tracing::error!(service = name, "cannot start {name}: {err}");
                        if code == exit::TEMPORARY {
                            tracing::warn!(
                                service = name,
                                "{name} could not start for now: an exit with {code} for its restart policy"
                            );
                        }
                        let actions = self.plan.start_failed(i, code, self.now_ms());
                        self.then(actions);
                    }
                }
            }
            Action::RestartIn(i, delay) => {
                let name = self.run.services[i].name.as_str();
                tracing::info!(
                    service = name,
                    "{name} restarts in {:.1} s",
                    delay.as_secs_f64()
                );
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let _ = tx.send(Msg::RestartDue { i });
                });
            }
            Action::Stop(i) => self.stop_service(i),
            Action::EndMachine {
                code,
                service,
                reason,
            } => self.decide(Decision {
                code,
                service,
                reason,
            }),
        }
    }

    /// The service's stop signal now, SIGKILL after its timeout, and listeners told.
    pub(super) fn stop_service(&mut self, i: usize) {
        let service = &self.run.services[i];
        if let Some(l) = self.live[i].as_mut() {
            l.stop(service, self.machine_deadline);
            self.sup.emit(Event::Stopping {
                service: Arc::from(service.name.as_str()),
                signal: service.stop.signal.number(),
            });
        }
    }

    async fn on_message(&mut self, msg: Msg) {
        match msg {
            Msg::Exited {
                i,
                generation,
                exit,
            } => self.on_exit(i, generation, exit).await,
            Msg::Check {
                i,
                generation,
                check,
                ok,
            } => self.on_check(i, generation, check, ok),
            Msg::Notified { i, generation } => self.on_notified(i, generation),
            Msg::RestartDue { i } => {
                let actions = self.plan.restart_due(i);
                self.then(actions);
            }
            Msg::LogReady { i } => {
                let actions = self.plan.log_ready(i);
                self.then(actions);
            }
        }
    }

    /// A service's start exited: its checks end, its container goes, the plan decides what
    /// follows, and what it left in its leaf goes now (or with the machine's leftovers).
    async fn on_exit(&mut self, i: usize, generation: u64, exit: Option<ChildExit>) {
        let current = self.live[i]
            .as_ref()
            .is_some_and(|l| l.generation == generation);
        if current && self.daemon_went_on(i, generation, exit) {
            return;
        }
        let Some(mut ended) = self.live[i].take_if(|_| current) else {
            return;
        };
        ended.end_checks();
        self.oom_of[i] = ended.cgroup.oom_kills() > 0;
        if let (Some(container), Some(host)) = (ended.container.take(), self.run.containers) {
            container.delete(&self.sup.reaper, host).await;
        }
        let code = exit.map_or(exit::INTERNAL, |e| e.exit_code());
        let name = self.run.services[i].name.as_str();
        tracing::info!(
            service = name,
            exit_code = code,
            oom_killed = self.oom_of[i],
            "{name} exited: code {code}"
        );
        self.sup.emit(Event::Exited {
            service: Arc::from(name),
            code,
            signal: exit.and_then(|e| e.signal),
            oom_killed: self.oom_of[i],
        });
        let actions = self.plan.exited(i, code, self.now_ms());
        self.then(actions);
        if self.plan.is_ending() {
            // Nothing starts again: what it left in its leaf is the machine's leftovers (its
            // KillSignal, what is left of the KillTimeout, then SIGKILL).
            self.ending_leaves.push(ended.cgroup);
        } else {
            // A restart or the other services go on: what it left goes with it, at once.
            ended.cgroup.kill_all();
            tokio::spawn(ended.cgroup.remove());
        }
    }

    /// A `daemon` service's command exited 0 and left processes in its leaf: the service
    /// goes on as them, watched until the leaf is empty (then its exit, code 0, comes).
    fn daemon_went_on(&mut self, i: usize, generation: u64, exit: Option<ChildExit>) -> bool {
        let service = &self.run.services[i];
        let Some(l) = self.live[i].as_mut() else {
            return false;
        };
        if !service.daemon || l.daemonized || exit.is_none_or(|e| e.exit_code() != 0) {
            return false;
        }
        let members = l.cgroup.members_file();
        let left = super::live::leaf_members(members.as_deref()).len();
        if left == 0 {
            return false;
        }
        l.daemonized = true;
        let name = service.name.as_str();
        tracing::info!(
            service = name,
            "{name}'s command exited 0 and left {left} process(es) in its cgroup: a daemon, running while they are"
        );
        let tx = self.tx.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(DAEMON_POLL).await;
                if super::live::leaf_members(members.as_deref()).is_empty() {
                    let gone = ChildExit {
                        pid: 0,
                        code: Some(0),
                        signal: None,
                    };
                    let _ = tx.send(Msg::Exited {
                        i,
                        generation,
                        exit: Some(gone),
                    });
                    return;
                }
                if tx.is_closed() {
                    return;
                }
            }
        });
        true
    }

    fn on_host_stop(&mut self, open: bool) {
        self.host_stop_seen = true;
        if open && self.sup.stop_requests.borrow_and_update().is_some() {
            tracing::info!("stop requested by the host: stopping the services");
            self.stop_machine();
        }
    }

    fn on_critical_failure(&mut self, why: &str) {
        tracing::error!("{why}: stopping the services");
        self.internal_failure = true;
        self.decided.get_or_insert(Decision {
            code: exit::INTERNAL,
            service: None,
            reason: "a critical task failed",
        });
        self.stop_machine();
    }

    /// A signal to PID 1: the stop signals stop the machine; every other catchable one goes
    /// to the main service (to all with `SignalTarget::All`).
    fn on_signal(&mut self, sig: i32) {
        match self.sup.action_for(sig) {
            SignalAction::GracefulStop => {
                tracing::info!(
                    "{}: stopping the services in reverse dependency order, all within {} s",
                    signal_name(sig),
                    self.run.kill_timeout.as_secs()
                );
                self.stop_machine();
            }
            SignalAction::Forward(sig) => {
                for (i, l) in self.live.iter().enumerate() {
                    let Some(l) = l else { continue };
                    if i == 0 || self.run.signal_target == SignalTarget::All {
                        let name = &self.run.services[i].name;
                        tracing::info!("forwarding {} to {name}", signal_name(sig));
                        l.signal(sig);
                    }
                }
            }
        }
    }

    pub(super) fn name_of(&self, i: usize) -> Arc<str> {
        Arc::from(self.run.services[i].name.as_str())
    }
}

/// The services' group, where every service's leaf lives, whose pids.max keeps roost's
/// reserve once for all of them.
fn services_group(leaf_base: &str) -> ServicesGroup {
    let (group, warnings) = ServicesGroup::create(leaf_base);
    for warning in warnings {
        tracing::warn!("{warning}");
    }
    if let Some(max) = group.pids_max() {
        tracing::info!("workload pids.max: {max} (the services' group: all of them together)");
    }
    group
}

/// The next service command, or never when there is no command channel.
async fn next_command(commands: &mut Option<mpsc::Receiver<Command>>) -> Option<Command> {
    match commands {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn far_future() -> Instant {
    from_now(roost_platform::deadline::FAR)
}
