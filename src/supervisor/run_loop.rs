//! The machine's one loop (docs/services.md), for one service or many: it carries out the
//! actions of the pure [`Plan`] and turns every input into the plan's next actions. Each
//! kind of input has its own method: a message from a service's tasks (its exit, a check's
//! result, its ready line or `READY=1`, a restart's time), a command of the control API, a
//! signal to PID 1, the host's stop, a critical task's failure, a stop deadline. The loop
//! makes the syscalls; the plan makes the decisions.

use super::events::Event;
use super::handle::ServiceCommand;
use super::live::Live;
use super::logs::{self, Console, ServiceLog};
use super::plan::{Action, Plan};
use super::{volumes, CriticalTasks, Outcome, Supervisor, SIGKILL_GRACE};
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

/// One input of the loop, as [`RunLoop::next_input`] waits for them.
enum Input {
    Message(Msg),
    /// Every sender is gone (cannot happen while the loop holds one; ends the loop).
    MessagesClosed,
    Command(ServiceCommand),
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
struct Decision {
    code: i32,
    service: Option<usize>,
    reason: &'static str,
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
    rx: mpsc::UnboundedReceiver<Msg>,
    /// The name every leaf of this machine is made from.
    pub(super) leaf_base: String,
    generation: u64,
    queue: VecDeque<Action>,
    decided: Option<Decision>,
    /// Whether listeners were told the decision (`/v1/exit_code` answers from then on).
    decision_told: bool,
    /// Leaves of services that exited once the machine was ending, stopped with the
    /// machine's leftovers and removed after them.
    ending_leaves: Vec<WorkloadCgroup>,
    oom_of: Vec<bool>,
    /// When the whole machine's stop escalates to SIGKILL (cleared once it has).
    pub(super) machine_deadline: Option<Instant>,
    /// The first stop deadline the machine had: what is left of it bounds the leftovers.
    stop_deadline: Option<Instant>,
    /// After the stop's SIGKILL, how long the loop waits for the last exits before it gives
    /// up on processes that do not die (uninterruptible sleep).
    give_up_at: Option<Instant>,
    internal_failure: bool,
    host_stop_seen: bool,
    commands: Option<mpsc::Receiver<ServiceCommand>>,
    critical: CriticalTasks,
    started: Instant,
    console: Console,
    mounted: Vec<PathBuf>,
    group: Option<ServicesGroup>,
}

impl Supervisor {
    /// Runs the services to the machine's end and stops everything left. The outcome's code
    /// is that of the service whose exit decided it (its `on_exit`), or, for a stop asked
    /// for, the main service's (the first).
    pub async fn run_services(&mut self, run: ServicesRun<'_>) -> Outcome {
        if let Some(main) = run.services.first() {
            self.service = Arc::from(main.name.as_str());
        }
        match RunLoop::new(self, run) {
            Ok(run_loop) => run_loop.run().await,
            Err(err) => {
                tracing::error!("{err}");
                self.outcome(exit::INTERNAL, None, false)
            }
        }
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
            run,
        };
        run_loop.publish_logs();
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
            if self.plan.is_stopping() && self.live.iter().all(Option::is_none) {
                break;
            }
            match self.next_input().await {
                Input::Message(msg) => self.on_message(msg).await,
                Input::MessagesClosed => break,
                Input::Command(command) => {
                    let result = self.on_command(&command.name, command.op);
                    let _ = command.reply.send(result);
                }
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
            .filter_map(|l| l.kill_at)
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
                    Err(code) => {
                        if code == exit::TEMPORARY {
                            let name = self.run.services[i].name.as_str();
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

    /// The machine's exit code is decided (the first decision counts): logged, the stop's
    /// bound set, and listeners told at once (`/v1/exit_code` answers at the deciding exit).
    fn decide(&mut self, decision: Decision) {
        if self.decided.is_some() {
            return;
        }
        let Decision {
            code,
            service,
            reason,
        } = decision;
        let who = service.map_or("no service", |i| self.run.services[i].name.as_str());
        tracing::info!(
            exit_code = code,
            service = who,
            "the machine stops with {code}: {who} decided ({reason})"
        );
        self.decided = Some(decision);
        self.machine_deadline = Some(from_now(self.run.kill_timeout));
        self.tell_decision(decision);
    }

    fn tell_decision(&mut self, decision: Decision) {
        self.decision_told = true;
        self.sup.emit(Event::Decided {
            code: decision.code,
            oom_killed: decision.service.is_some_and(|i| self.oom_of[i]),
            service: self.decider_name(decision.service),
            reason: decision.reason,
        });
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

    /// Every service stops, in reverse dependency order, within the machine's one bound.
    fn stop_machine(&mut self) {
        let kill_timeout = self.run.kill_timeout;
        self.machine_deadline
            .get_or_insert_with(|| from_now(kill_timeout));
        let actions = self.plan.stop_machine();
        self.then(actions);
    }

    /// A stop deadline passed: SIGKILL for each service whose own (or the machine's) came.
    fn on_kill_deadline(&mut self) {
        let now = Instant::now();
        let all = self.machine_deadline.is_some_and(|d| d <= now);
        for (i, l) in self.live.iter_mut().enumerate() {
            let Some(l) = l else { continue };
            if all || l.kill_at.is_some_and(|t| t <= now) {
                let name = self.run.services[i].name.as_str();
                tracing::warn!(
                    service = name,
                    "{name} did not stop in time: SIGKILL (sending SIGKILL to all it runs)"
                );
                l.signal(libc::SIGKILL);
                if !all {
                    // The machine goes on: the rest of its leaf goes now. At the machine's
                    // deadline the rest is the leftovers' stop.
                    l.cgroup.kill_all();
                }
                l.kill_at = None;
            }
        }
        if all {
            self.machine_deadline = None;
            self.give_up_at = Some(from_now(SIGKILL_GRACE));
        }
    }

    fn give_up(&self) {
        let left: Vec<&str> = self
            .live
            .iter()
            .zip(self.run.services)
            .filter(|(l, _)| l.is_some())
            .map(|(_, s)| s.name.as_str())
            .collect();
        tracing::error!(
            "{left:?} did not die within {} s of SIGKILL (uninterruptible sleep?): ending without their exits",
            SIGKILL_GRACE.as_secs()
        );
    }

    /// After the loop: the decision (if no service's exit made it), the leftovers stopped,
    /// the logs drained to the console, volumes and leaves removed.
    async fn finish(mut self) -> Outcome {
        let decision = self.decided.unwrap_or_else(|| Decision {
            // A stop asked for: the main service's code, as with the single workload.
            code: self
                .plan
                .state(0)
                .and_then(|s| s.last_exit)
                .unwrap_or(exit::INTERNAL),
            service: Some(0),
            reason: "a stop was asked for; the main service's code",
        });
        if !self.decision_told {
            // No service's exit decided (a stop asked for, a critical failure): decided now
            // that every service is over, before the leftovers.
            self.tell_decision(decision);
        }
        // Everything outside the services' groups and leaves (daemons that left both) gets
        // what is left of the machine's one KillTimeout, counted from when it began to stop.
        let kill_signal = self
            .run
            .services
            .first()
            .map_or(libc::SIGTERM, |s| s.stop.signal.number());
        let grace = self
            .stop_deadline
            .or(self.machine_deadline)
            .unwrap_or_else(|| from_now(self.run.kill_timeout));
        self.sup
            .stop_leftovers(kill_signal, grace, &self.ending_leaves)
            .await;
        drain_logs(std::mem::take(&mut self.logs), self.console).await;
        volumes::unmount(self.mounted);
        for leaf in self.ending_leaves {
            leaf.remove().await;
        }
        if let Some(group) = self.group {
            group.remove().await;
        }
        let oom = decision.service.is_some_and(|i| self.oom_of[i]);
        let mut outcome = self.sup.outcome(decision.code, None, oom);
        outcome.decided_by = decider_name(self.run.services, decision.service)
            .map(|name| (name.to_string(), decision.reason));
        outcome
    }

    pub(super) fn name_of(&self, i: usize) -> Arc<str> {
        Arc::from(self.run.services[i].name.as_str())
    }

    fn decider_name(&self, i: Option<usize>) -> Option<Arc<str>> {
        decider_name(self.run.services, i)
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

/// Each service's last output read to its end (5 s at most each), then the console's
/// queue written out (5 s at most): the last lines reach the console before roost reports.
async fn drain_logs(service_logs: Vec<ServiceLog>, console: Console) {
    for log in service_logs {
        drop(log.write_end);
        if tokio::time::timeout(Duration::from_secs(5), log.reader)
            .await
            .is_err()
        {
            tracing::warn!("a service's output pipe is still open; some output may be lost");
        }
    }
    let written = tokio::task::spawn_blocking(move || console.finish(Duration::from_secs(5)))
        .await
        .unwrap_or(false);
    if !written {
        tracing::warn!("the console did not take the services' last output in 5 s");
    }
}

/// The deciding service's name, for listeners and the outcome: none for the single
/// workload, which is the machine (its exit report keeps the `/v1/exit` shape host drivers
/// know, `{"code","oom_killed","machine_id"}`, naming no service).
fn decider_name(services: &[Service], i: Option<usize>) -> Option<Arc<str>> {
    let service = services.get(i?)?;
    (!service.single_workload).then(|| Arc::from(service.name.as_str()))
}

/// The next service command, or never when there is no command channel.
async fn next_command(
    commands: &mut Option<mpsc::Receiver<ServiceCommand>>,
) -> Option<ServiceCommand> {
    match commands {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

fn far_future() -> Instant {
    from_now(roost_platform::deadline::FAR)
}
