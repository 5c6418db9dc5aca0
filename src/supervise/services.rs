//! Several services (docs/services.md): the supervisor carrying out the plan of
//! [`crate::services::plan`]. Each service is started as the single workload is (its own
//! session and process group, cgroup leaf, identity, env, directory) through the one reaper;
//! its exits, health results, ready line and restart times come back as messages to one
//! loop, which also takes PID 1's signals, the host's stop and a critical task's failure.
//! The loop makes the syscalls; the plan makes the decisions.

use super::cgroup::{self, WorkloadCgroup};
use super::events::Event;
use super::handle::{ExecCommand, ServiceCommand, ServiceOp, ServiceRefusal, SupervisorHandle};
use super::reaper::ChildExit;
use super::signals::SignalAction;
use super::{oci_verb, procs, signal_name, spawn, Outcome, Supervisor};
use crate::config::typed::{CheckKind, Probe, Service, SignalTarget, Volume};
use crate::exit;
use crate::oci::runtime;
use crate::oci::{self, BundleInputs, ContainerHost, ExecTarget, LiveContainer};
use crate::services::health::{self, Change, Tracker};
use crate::services::logs::{self, Console, LogBuffer, ServiceLog};
use crate::services::notify::{self, NotifySocket};
use crate::services::plan::{Action, Plan, Status};
use crate::workload::WorkloadSpec;
use roost_platform::deadline::from_now;
use std::collections::VecDeque;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
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

/// One service's state as the control API shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServiceView {
    pub name: String,
    pub state: &'static str,
    pub ready: bool,
    pub restarts: u32,
    pub last_exit_code: Option<i32>,
    pub pid: Option<i32>,
    /// Milliseconds since roost started, of the current (or last) start.
    pub started_at_ms: Option<u64>,
    /// The commands of `/v2/services/NAME/...` it takes.
    pub accepts: &'static [&'static str],
    /// Its cgroup leaves' `cgroup.procs` files, for an exec inside it.
    #[serde(skip)]
    pub cgroup_procs: Vec<std::ffi::CString>,
    /// A `kind: container` service.
    #[serde(skip)]
    pub is_container: bool,
    /// Where an exec into it goes while its container runs.
    #[serde(skip)]
    pub exec_target: Option<ExecTarget>,
}

/// The commands a service of `Containers` takes.
pub const SERVICE_COMMANDS: [&str; 4] = ["signal", "stop", "start", "restart"];
/// What the single workload takes: it is the machine, so a stop stops the machine (as a
/// SIGTERM to roost would) and nothing starts it again.
pub const SINGLE_WORKLOAD_COMMANDS: [&str; 2] = ["signal", "stop"];

/// What comes back to the loop.
#[derive(Debug)]
enum Msg {
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

/// A running start of a service.
#[derive(Debug)]
struct Live {
    pid: i32,
    generation: u64,
    cgroup: WorkloadCgroup,
    checks: Vec<tokio::task::AbortHandle>,
    trackers: Vec<Tracker>,
    /// When its stop escalates to SIGKILL.
    kill_at: Option<Instant>,
    started_at_ms: u64,
    procs: Vec<std::ffi::CString>,
    /// `READY=1` came (services with `notify`).
    notified: bool,
    /// A `kind: container` service's container, deleted when its init has exited.
    container: Option<LiveContainer>,
    exec_target: Option<ExecTarget>,
}

impl Live {
    /// A signal to the service: a process's whole group; a container's init, directly (what
    /// the runtime's `kill` would do, without a process per signal). In its own PID
    /// namespace the init passes it on, or, without a handler, the kernel drops it; SIGKILL
    /// is never dropped and ends the whole namespace.
    fn signal(&self, sig: i32) {
        if self.container.is_some() {
            // SAFETY: kill(2) has no memory effects; the pid is the adopted init, registered
            // with the reaper and not yet reaped (its exit removes this Live).
            unsafe { libc::kill(self.pid, sig) };
        } else {
            procs::signal_group(self.pid, sig);
        }
    }
}

impl Supervisor {
    /// Runs the services to the machine's end and stops everything left. The outcome's code
    /// is that of the service whose exit decided it (its `on_exit`), or, for a stop asked
    /// for, the main service's (the first).
    pub async fn run_services(&mut self, run: ServicesRun<'_>) -> Outcome {
        let n = run.services.len();
        if let Some(main) = run.services.first() {
            self.service = Arc::from(main.name.as_str());
        }
        let console = Console::new();
        let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
        let mut logs: Vec<ServiceLog> = Vec::with_capacity(n);
        for (i, service) in run.services.iter().enumerate() {
            let ready_tx = tx.clone();
            let style = if service.single_workload {
                logs::ConsoleStyle::Raw
            } else {
                logs::ConsoleStyle::Prefixed
            };
            match logs::start(
                &service.name,
                &console,
                style,
                service.ready_log_line.clone(),
                move || {
                    let _ = ready_tx.send(Msg::LogReady { i });
                },
            ) {
                Ok(log) => logs.push(log),
                Err(err) => {
                    tracing::error!("cannot create {}'s output pipe: {err}", service.name);
                    return self.outcome(exit::INTERNAL, None, false);
                }
            }
        }
        self.publish_logs(&run, &logs);
        let mounted = match mount_volumes(&run) {
            Ok(m) => m,
            Err(err) => {
                tracing::error!("{err}");
                return self.outcome(exit::INTERNAL, None, false);
            }
        };

        let leaf_base = cgroup::leaf_name();
        // Every service's leaves under one group whose pids.max keeps roost's reserve once.
        // The single workload needs no group: its one leaf keeps the reserve itself (a
        // cgroup level fewer to make and remove on the path every plain machine takes).
        let group = if single_leaf(&run) {
            None
        } else {
            let (group, warnings) = cgroup::ServicesGroup::create(&leaf_base);
            for warning in warnings {
                tracing::warn!("{warning}");
            }
            if let Some(max) = group.pids_max() {
                tracing::info!(
                    "workload pids.max: {max} (the services' group: all of them together)"
                );
            }
            Some(group)
        };
        let started = Instant::now();
        let now_ms = move || started.elapsed().as_millis() as u64;
        let mut plan = Plan::new(run.services);
        let mut live: Vec<Option<Live>> = (0..n).map(|_| None).collect();
        let mut generation = 0u64;
        let mut decided: Option<(i32, Option<usize>, &'static str)> = None;
        // Whether listeners were told the decision (`/v1/exit_code` answers from then on).
        let mut decision_told = false;
        // Leaves of services that exited once the machine was ending, stopped with the
        // machine's leftovers and removed after them.
        let mut ending_leaves: Vec<WorkloadCgroup> = Vec::new();
        let mut oom_of: Vec<bool> = vec![false; n];
        let mut machine_deadline: Option<Instant> = None;
        // The first stop deadline the machine had (machine_deadline is cleared at SIGKILL):
        // what is left of it bounds the leftovers, as on the single workload's path.
        let mut stop_deadline: Option<Instant> = None;
        // After the stop's SIGKILL, how long the loop waits for the last exits before it gives
        // up on processes that do not die (uninterruptible sleep).
        let mut give_up_at: Option<Instant> = None;
        let mut internal_failure = false;
        let mut host_stop_seen = false;
        let critical = self.critical.clone();
        let mut commands = self.service_commands.take();
        let mut queue: VecDeque<Action> = plan.begin().into();

        loop {
            if stop_deadline.is_none() {
                stop_deadline = machine_deadline;
            }
            while let Some(action) = queue.pop_front() {
                match action {
                    Action::Start(i) => {
                        generation += 1;
                        match self
                            .start_service(&run, i, &logs[i], &leaf_base, generation, &tx)
                            .await
                        {
                            Ok(mut started) => {
                                started.started_at_ms = now_ms();
                                let pid = started.pid;
                                live[i] = Some(started);
                                self.emit(Event::Started {
                                    service: Arc::from(run.services[i].name.as_str()),
                                    pid,
                                });
                                queue.extend(plan.started(i, now_ms()));
                            }
                            Err(code) => {
                                if code == exit::TEMPORARY {
                                    tracing::warn!(
                                        service = run.services[i].name.as_str(),
                                        "{} could not start for now: an exit with {code} for its restart policy",
                                        run.services[i].name
                                    );
                                }
                                queue.extend(plan.start_failed(i, code, now_ms()));
                            }
                        }
                    }
                    Action::RestartIn(i, delay) => {
                        tracing::info!(
                            service = run.services[i].name.as_str(),
                            "{} restarts in {:.1} s",
                            run.services[i].name,
                            delay.as_secs_f64()
                        );
                        let tx = tx.clone();
                        tokio::spawn(async move {
                            tokio::time::sleep(delay).await;
                            let _ = tx.send(Msg::RestartDue { i });
                        });
                    }
                    Action::Stop(i) => {
                        if let Some(l) = live[i].as_mut() {
                            stop_one(&run.services[i], l, machine_deadline);
                            self.emit(Event::Stopping {
                                service: Arc::from(run.services[i].name.as_str()),
                                signal: run.services[i].stop.signal.number(),
                            });
                        }
                    }
                    Action::EndMachine {
                        code,
                        service,
                        reason,
                    } => {
                        if decided.is_none() {
                            let who =
                                service.map_or("no service", |i| run.services[i].name.as_str());
                            tracing::info!(
                                exit_code = code,
                                service = who,
                                "the machine stops with {code}: {who} decided ({reason})"
                            );
                            decided = Some((code, service, reason));
                            machine_deadline = Some(from_now(run.kill_timeout));
                            decision_told = true;
                            self.emit(Event::Decided {
                                code,
                                oom_killed: service.is_some_and(|i| oom_of[i]),
                                service: decider_name(run.services, service),
                                reason,
                            });
                        }
                    }
                }
            }
            self.publish_views(&run, &plan, &live);
            if plan.is_stopping() && live.iter().all(Option::is_none) {
                break;
            }
            let next_kill = live
                .iter()
                .flatten()
                .filter_map(|l| l.kill_at)
                .chain(machine_deadline)
                .min();
            tokio::select! {
                biased;
                msg = rx.recv() => {
                    let Some(msg) = msg else { break };
                    match msg {
                        Msg::Exited { i, generation, exit } => {
                            if live[i].as_ref().is_none_or(|l| l.generation != generation) {
                                continue;
                            }
                            let Some(mut ended) = live[i].take() else { continue };
                            for check in &ended.checks {
                                check.abort();
                            }
                            oom_of[i] = ended.cgroup.oom_kills() > 0;
                            if let (Some(container), Some(host)) = (ended.container.take(), run.containers) {
                                self.remove_container(host, container).await;
                            }
                            let code = exit.map_or(exit::INTERNAL, |e| e.exit_code());
                            let name = run.services[i].name.as_str();
                            tracing::info!(
                                service = name,
                                exit_code = code,
                                oom_killed = oom_of[i],
                                "{name} exited: code {code}"
                            );
                            self.emit(Event::Exited {
                                service: Arc::from(name),
                                code,
                                signal: exit.and_then(|e| e.signal),
                                oom_killed: oom_of[i],
                            });
                            queue.extend(plan.exited(i, code, now_ms()));
                            if plan.is_ending() {
                                // Nothing starts again: what it left in its leaf is the
                                // machine's leftovers (its KillSignal, what is left of the
                                // KillTimeout, then SIGKILL), as the single workload's were.
                                ending_leaves.push(ended.cgroup);
                            } else {
                                // A restart or the other services go on: what it left goes
                                // with it, at once.
                                ended.cgroup.kill_all();
                                tokio::spawn(ended.cgroup.remove());
                            }
                        }
                        Msg::Check { i, generation, check, ok } => {
                            let service = &run.services[i];
                            let Some(l) = live[i].as_mut().filter(|l| l.generation == generation) else {
                                continue;
                            };
                            let before = is_ready(service, &l.trackers, l.notified);
                            let change = l.trackers.get_mut(check).map(|t| t.record(ok));
                            let after = is_ready(service, &l.trackers, l.notified);
                            if before != after {
                                tracing::info!(
                                    service = service.name.as_str(),
                                    "{} is {}",
                                    service.name,
                                    if after { "ready" } else { "not ready" }
                                );
                                queue.extend(plan.ready_changed(i, after));
                            }
                            let stop = service.healthchecks.get(check).is_some_and(|c| c.stop_when_unhealthy);
                            let running = plan.state(i).is_some_and(|s| s.status == Status::Running);
                            if change == Some(Change::NowFailing) && stop && running {
                                tracing::warn!(
                                    service = service.name.as_str(),
                                    "{}'s check {:?} failed {} times in a row: stopping it",
                                    service.name,
                                    service.healthchecks[check].name,
                                    service.healthchecks[check].failure_threshold
                                );
                                plan.stop_sent(i, false);
                                stop_one(service, l, machine_deadline);
                            }
                        }
                        Msg::Notified { i, generation } => {
                            let service = &run.services[i];
                            let Some(l) = live[i].as_mut().filter(|l| l.generation == generation && !l.notified) else {
                                continue;
                            };
                            let before = is_ready(service, &l.trackers, false);
                            l.notified = true;
                            let after = is_ready(service, &l.trackers, true);
                            tracing::info!(service = service.name.as_str(), "{} sent READY=1", service.name);
                            if before != after {
                                tracing::info!(service = service.name.as_str(), "{} is ready", service.name);
                                queue.extend(plan.ready_changed(i, after));
                            }
                        }
                        Msg::RestartDue { i } => queue.extend(plan.restart_due(i)),
                        Msg::LogReady { i } => queue.extend(plan.log_ready(i)),
                    }
                }
                command = next_command(&mut commands) => {
                    let Some(command) = command else {
                        commands = None;
                        continue;
                    };
                    let result = self.service_command(&run, &mut plan, &mut live, machine_deadline, &mut queue, command.name.as_str(), command.op);
                    let _ = command.reply.send(result);
                }
                changed = self.stop_requests.changed(), if !host_stop_seen => {
                    host_stop_seen = true;
                    if changed.is_ok() && self.stop_requests.borrow_and_update().is_some() {
                        tracing::info!("stop requested by the host: stopping the services");
                        machine_deadline.get_or_insert_with(|| from_now(run.kill_timeout));
                        queue.extend(plan.stop_machine());
                    }
                }
                why = critical.failed(), if !internal_failure => {
                    tracing::error!("{why}: stopping the services");
                    internal_failure = true;
                    decided.get_or_insert((exit::INTERNAL, None, "a critical task failed"));
                    machine_deadline.get_or_insert_with(|| from_now(run.kill_timeout));
                    queue.extend(plan.stop_machine());
                }
                sig = self.signals.recv() => match self.action_for(sig) {
                    SignalAction::GracefulStop => {
                        tracing::info!(
                            "{}: stopping the services in reverse dependency order, all within {} s",
                            signal_name(sig),
                            run.kill_timeout.as_secs()
                        );
                        machine_deadline.get_or_insert_with(|| from_now(run.kill_timeout));
                        queue.extend(plan.stop_machine());
                    }
                    SignalAction::Forward(sig) => {
                        for (i, l) in live.iter().enumerate() {
                            let Some(l) = l else { continue };
                            if i == 0 || run.signal_target == SignalTarget::All {
                                tracing::info!("forwarding {} to {}", signal_name(sig), run.services[i].name);
                                l.signal(sig);
                            }
                        }
                    }
                },
                // The reaper task may be what failed: reap here until the services are gone.
                _ = tokio::time::sleep(Duration::from_millis(100)), if internal_failure => {
                    self.reaper.reap();
                }
                _ = sleep_until(next_kill.unwrap_or_else(far_future)), if next_kill.is_some() => {
                    let now = Instant::now();
                    let all = machine_deadline.is_some_and(|d| d <= now);
                    for (i, l) in live.iter_mut().enumerate() {
                        let Some(l) = l else { continue };
                        if all || l.kill_at.is_some_and(|t| t <= now) {
                            tracing::warn!(
                                service = run.services[i].name.as_str(),
                                "{} did not stop in time: SIGKILL (sending SIGKILL to all it runs)",
                                run.services[i].name
                            );
                            l.signal(libc::SIGKILL);
                            if !all {
                                // The machine goes on: the rest of its leaf goes now. At
                                // the machine's deadline the rest is the leftovers' stop.
                                l.cgroup.kill_all();
                            }
                            l.kill_at = None;
                        }
                    }
                    if all {
                        machine_deadline = None;
                        give_up_at = Some(from_now(super::SIGKILL_GRACE));
                    }
                }
                _ = sleep_until(give_up_at.unwrap_or_else(far_future)), if give_up_at.is_some() => {
                    let left: Vec<&str> = live
                        .iter()
                        .enumerate()
                        .filter(|(_, l)| l.is_some())
                        .map(|(i, _)| run.services[i].name.as_str())
                        .collect();
                    tracing::error!(
                        "{left:?} did not die within {} s of SIGKILL (uninterruptible sleep?): ending without their exits",
                        super::SIGKILL_GRACE.as_secs()
                    );
                    break;
                }
            }
        }

        let main_code = plan
            .state(0)
            .and_then(|s| s.last_exit)
            .unwrap_or(exit::INTERNAL);
        let (code, by, reason) = match decided {
            Some((code, Some(i), reason)) => (code, Some(i), reason),
            Some((code, None, reason)) => (code, None, reason),
            // A stop asked for: the main service's code, as with the single workload.
            None => (
                main_code,
                Some(0),
                "a stop was asked for; the main service's code",
            ),
        };
        let oom = by.is_some_and(|i| oom_of[i]);
        if !decision_told {
            // No service's exit decided (a stop asked for, a critical failure): decided now
            // that every service is over, before the leftovers.
            self.emit(Event::Decided {
                code,
                oom_killed: oom,
                service: decider_name(run.services, by),
                reason,
            });
        }
        // Everything outside the services' groups and leaves (daemons that left both).
        let kill_signal = run
            .services
            .first()
            .map_or(libc::SIGTERM, |s| s.stop.signal.number());
        stop_deadline = stop_deadline.or(machine_deadline);
        // One rule on both paths (docs/services.md): the leftovers get what is left of the
        // machine's one KillTimeout, counted from when it began to stop.
        let grace = stop_deadline.unwrap_or_else(|| from_now(run.kill_timeout));
        self.stop_leftovers(kill_signal, grace, &ending_leaves)
            .await;
        for log in logs {
            drop(log.write_end);
            if tokio::time::timeout(Duration::from_secs(5), log.reader)
                .await
                .is_err()
            {
                tracing::warn!("a service's output pipe is still open; some output may be lost");
            }
        }
        // The last lines reach the console before roost reports and exits.
        let written = tokio::task::spawn_blocking(move || console.finish(Duration::from_secs(5)))
            .await
            .unwrap_or(false);
        if !written {
            tracing::warn!("the console did not take the services' last output in 5 s");
        }
        unmount_volumes(mounted);
        for leaf in ending_leaves {
            leaf.remove().await;
        }
        if let Some(group) = group {
            group.remove().await;
        }
        let mut outcome = self.outcome(code, None, oom);
        outcome.decided_by = decider_name(run.services, by).map(|name| (name.to_string(), reason));
        outcome
    }

    /// One command of the control API for a named service.
    #[allow(clippy::too_many_arguments)]
    fn service_command(
        &self,
        run: &ServicesRun<'_>,
        plan: &mut Plan,
        live: &mut [Option<Live>],
        machine_deadline: Option<Instant>,
        queue: &mut VecDeque<Action>,
        name: &str,
        op: ServiceOp,
    ) -> Result<(), ServiceRefusal> {
        let Some(i) = run.services.iter().position(|s| s.name == name) else {
            return Err(ServiceRefusal::NoSuchService(name.to_string()));
        };
        let service = &run.services[i];
        if plan.is_stopping() && op != ServiceOp::Stop && !matches!(op, ServiceOp::Signal(_)) {
            return Err(ServiceRefusal::MachineStopping);
        }
        tracing::info!(service = name, "control API: {op:?} {name}");
        match op {
            ServiceOp::Signal(sig) => match live[i].as_ref() {
                Some(l) => {
                    l.signal(sig);
                    Ok(())
                }
                None => Err(ServiceRefusal::NotRunning(name.to_string())),
            },
            // The single workload is the machine: its stop is the machine's, as a SIGTERM.
            ServiceOp::Stop if service.single_workload => {
                self.handle().request_stop(libc::SIGTERM);
                Ok(())
            }
            ServiceOp::Start | ServiceOp::Restart if service.single_workload => {
                Err(ServiceRefusal::SingleWorkload(name.to_string()))
            }
            ServiceOp::Stop => {
                let status = plan.state(i).map(|s| s.status);
                plan.stop_sent(i, true);
                match live[i].as_mut() {
                    Some(l) if status != Some(Status::Stopping) => {
                        stop_one(service, l, machine_deadline);
                        self.emit(Event::Stopping {
                            service: Arc::from(name),
                            signal: service.stop.signal.number(),
                        });
                        Ok(())
                    }
                    Some(_) => Ok(()),
                    None if status == Some(Status::Restarting) => Ok(()),
                    None => Err(ServiceRefusal::NotRunning(name.to_string())),
                }
            }
            ServiceOp::Start => match plan.start_requested(i) {
                Some(actions) => {
                    queue.extend(actions);
                    Ok(())
                }
                None => Err(ServiceRefusal::Running(name.to_string())),
            },
            ServiceOp::Restart => match plan.restart_requested(i) {
                Some((true, _)) => {
                    if let Some(l) = live[i].as_mut() {
                        stop_one(service, l, machine_deadline);
                    }
                    Ok(())
                }
                Some((false, actions)) => {
                    queue.extend(actions);
                    Ok(())
                }
                None => Err(ServiceRefusal::MachineStopping),
            },
        }
    }

    /// Starts service `i`: its files, its cgroup leaf, the process (or its container), its
    /// checks.
    async fn start_service(
        &self,
        run: &ServicesRun<'_>,
        i: usize,
        log: &ServiceLog,
        leaf_base: &str,
        generation: u64,
        tx: &mpsc::UnboundedSender<Msg>,
    ) -> Result<Live, i32> {
        let service = &run.services[i];
        let spec = &run.specs[i];
        let name = service.name.as_str();
        if service.container.is_none() {
            if let Err(err) = write_files(service, spec) {
                tracing::error!(service = name, "cannot start {name}: {err}");
                return Err(exit::CANNOT_EXECUTE);
            }
        }
        // Inside the services' group: `<base>/<base>-<name>`; the single workload's leaf is
        // `<base>` itself.
        let leaf_path = if single_leaf(run) {
            leaf_base.to_string()
        } else {
            format!("{leaf_base}/{leaf_base}-{name}")
        };
        let (cg, warnings) =
            WorkloadCgroup::create(&leaf_path, service.memory_limit_mib, service.pids_max);
        if single_leaf(run) {
            if let Some(max) = cg.pids_max() {
                tracing::info!(service = name, "workload pids.max: {max}");
            }
        }
        let mut warnings = warnings;
        if let Some(weight) = service.cpu_weight {
            warnings.extend(cg.set_cpu_weight(weight));
        }
        for warning in warnings {
            tracing::warn!(service = name, "{name}: {warning}");
        }
        if !cg.describe().is_empty() {
            tracing::info!(
                service = name,
                "{} cgroup: {}",
                label(service),
                cg.describe()
            );
        }
        // From here on every failed path removes the leaf it made.
        let output = match log.write_end.try_clone() {
            Ok(fd) => fd,
            Err(err) => {
                tracing::error!(service = name, "cannot start {name}: {err}");
                tokio::spawn(cg.remove());
                return Err(exit::TEMPORARY);
            }
        };
        // systemd's readiness protocol: a socket of this start's own, named in its env, with
        // a random part no other service can guess and take first.
        let notify = if service.notify {
            match NotifySocket::bind_unguessable(&format!("{leaf_base}-{name}-{generation}")) {
                Ok(sock) => Some(sock),
                Err(err) => {
                    tracing::error!(
                        service = name,
                        "cannot create {name}'s NOTIFY_SOCKET: {err}"
                    );
                    tokio::spawn(cg.remove());
                    return Err(exit::TEMPORARY);
                }
            }
        } else {
            None
        };
        let with_notify;
        let spec = match &notify {
            Some(sock) => {
                let mut s = spec.clone();
                s.env.retain(|(k, _)| k != "NOTIFY_SOCKET");
                s.env.push(("NOTIFY_SOCKET".into(), sock.env_value()));
                with_notify = s;
                &with_notify
            }
            None => spec,
        };
        let (pid, exit_rx, container) = match (&service.container, run.containers) {
            (None, _) => match self.spawn_in_cgroup(spec, output, &cg) {
                Ok(started) => {
                    if let spawn::Born::InCgroup { .. } = started.born {
                        tracing::info!(
                            service = name,
                            "workload born in its cgroup (clone3 CLONE_INTO_CGROUP): {name}"
                        );
                    }
                    for warning in started.join_warnings {
                        tracing::warn!(service = name, "{name}: {warning}");
                    }
                    (started.pid, started.exit_rx, None)
                }
                Err(err) => {
                    tracing::error!(service = name, "cannot start {name} {:?}: {err}", spec.argv);
                    tokio::spawn(cg.remove());
                    return Err(spawn::spawn_failure_code(&err));
                }
            },
            (Some(_), Some(host)) => {
                let leaf = format!("{leaf_base}-{name}");
                match self
                    .start_container(run, host, i, spec, output, (&cg, &leaf))
                    .await
                {
                    Ok((pid, exit_rx, container)) => (pid, exit_rx, Some(container)),
                    Err(code) => {
                        tokio::spawn(cg.remove());
                        return Err(code);
                    }
                }
            }
            (Some(_), None) => {
                tracing::error!(
                    service = name,
                    "cannot start {name}: no container runtime was prepared"
                );
                tokio::spawn(cg.remove());
                return Err(exit::INTERNAL);
            }
        };
        let exec_target = match (&container, run.containers) {
            (Some(c), Some(host)) => Some(ExecTarget {
                runtime: host.runtime.clone(),
                id: c.id.clone(),
            }),
            _ => None,
        };
        tracing::info!(
            service = name,
            pid,
            uid = spec.identity.uid,
            gid = spec.identity.gid,
            container = container.is_some(),
            "{} started: pid {pid}, uid {}, gid {}, argv {:?}{}",
            label(service),
            spec.identity.uid,
            spec.identity.gid,
            spec.argv,
            if container.is_some() {
                " (its container's init)"
            } else {
                ""
            }
        );
        let exit_tx = tx.clone();
        tokio::spawn(async move {
            let exit = exit_rx.await.ok();
            let _ = exit_tx.send(Msg::Exited {
                i,
                generation,
                exit,
            });
        });
        let handle = self.handle();
        let mut checks: Vec<tokio::task::AbortHandle> = service
            .healthchecks
            .iter()
            .enumerate()
            .map(|(k, check)| {
                let (tx, check, spec, handle, target) = (
                    tx.clone(),
                    check.clone(),
                    spec.clone(),
                    handle.clone(),
                    exec_target.clone(),
                );
                tokio::spawn(async move {
                    tokio::time::sleep(check.grace_period).await;
                    loop {
                        let ok =
                            probe(&check.probe, check.timeout, &spec, &handle, target.as_ref())
                                .await;
                        if tx
                            .send(Msg::Check {
                                i,
                                generation,
                                check: k,
                                ok,
                            })
                            .is_err()
                        {
                            return;
                        }
                        tokio::time::sleep(check.interval).await;
                    }
                })
                .abort_handle()
            })
            .collect();
        if let Some(sock) = notify {
            let tx = tx.clone();
            let service_name = name.to_string();
            let in_container = container.is_some();
            checks.push(
                tokio::spawn(async move {
                    let mut spoofs = notify::SpoofLog::default();
                    let mut window = tokio::time::interval(notify::SPOOF_WINDOW);
                    window.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    loop {
                        let (sender, message) = tokio::select! {
                            received = sock.recv() => match received {
                                Ok(received) => received,
                                Err(_) => return,
                            },
                            _ = window.tick() => {
                                for line in spoofs.end_window(&service_name) {
                                    tracing::warn!(service = service_name.as_str(), "{line}");
                                }
                                continue;
                            }
                        };
                        if !notify::says_ready(&message) {
                            continue;
                        }
                        // A container's READY=1 may come from any of its processes (the
                        // abstract socket is reachable over the shared network namespace).
                        let ours = |p: i32| {
                            if in_container {
                                notify::in_pid_namespace_of(p, pid)
                            } else {
                                notify::from_service(p, pid)
                            }
                        };
                        if sender.is_some_and(ours) {
                            let _ = tx.send(Msg::Notified { i, generation });
                            for line in spoofs.end_window(&service_name) {
                                tracing::warn!(service = service_name.as_str(), "{line}");
                            }
                            return;
                        }
                        if spoofs.record(sender) {
                            tracing::warn!(
                                service = service_name.as_str(),
                                "READY=1 for {service_name} from pid {sender:?}, not of its session or container: ignored"
                            );
                        }
                    }
                })
                .abort_handle(),
            );
        }
        let trackers = service
            .healthchecks
            .iter()
            .map(|c| Tracker::new(c.success_threshold, c.failure_threshold))
            .collect();
        let procs = cg.procs_files();
        Ok(Live {
            procs,
            pid,
            generation,
            cgroup: cg,
            checks,
            trackers,
            kill_at: None,
            started_at_ms: 0,
            notified: false,
            container,
            exec_target,
        })
    }

    /// A container's start, the runtime's verbs in order: its bundle, `create` (the init
    /// then waits, its stdio the service's log), the init's pid adopted by the one reaper
    /// and moved into the service's cgroup, then `start`. A failure at any step removes
    /// what was made.
    async fn start_container(
        &self,
        run: &ServicesRun<'_>,
        host: &ContainerHost,
        i: usize,
        spec: &WorkloadSpec,
        output: std::os::fd::OwnedFd,
        (cg, leaf): (&WorkloadCgroup, &str),
    ) -> Result<
        (
            i32,
            tokio::sync::oneshot::Receiver<super::reaper::ChildExit>,
            LiveContainer,
        ),
        i32,
    > {
        let service = &run.services[i];
        let name = service.name.as_str();
        let handle = self.handle();
        // A container of this id that an earlier roost left (killed mid-stop) goes first.
        if host.runtime.root.join(name).exists() {
            let _ = oci_verb::run_verb(
                &handle,
                &host.runtime.delete_argv(name),
                None,
                runtime::VERB_TIMEOUT,
            )
            .await;
        }
        // The service's own v2 leaf on a pure v2 machine; elsewhere the runtime's cgroups get
        // the leaf's name, which no other roost on the host shares (a runtime's default,
        // `:youki:<id>` or `/<id>`, would be shared by every roost with a service of that name).
        let cgroups_path = Some(cg.v2_path().unwrap_or_else(|| format!("/{leaf}")));
        let inputs = BundleInputs {
            volumes: run.volumes,
            volume_dir: &run.volume_dir,
            cgroups_path: cgroups_path.as_deref(),
            token_dir: run.token_dirs.get(i).and_then(|d| d.as_deref()),
            api_socket: run.api_socket.as_deref(),
        };
        let container = match oci::write_bundle(host, i, service, spec, &inputs) {
            Ok(c) => c,
            Err(err) => {
                tracing::error!(service = name, "cannot start {name}: its bundle: {err}");
                return Err(exit::CANNOT_EXECUTE);
            }
        };
        let pid_file = container.bundle.join("init.pid");
        let create = host
            .runtime
            .create_argv(&container.id, &container.bundle, &pid_file);
        if let Err(err) =
            oci_verb::run_verb(&handle, &create, Some(output), runtime::CREATE_TIMEOUT).await
        {
            tracing::error!(
                service = name,
                "cannot start {name}: {err} (the runtime's own words are in {name}'s log)"
            );
            self.remove_container(host, container).await;
            return Err(exit::CANNOT_EXECUTE);
        }
        let pid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|text| oci::parse_pid_file(&text));
        let adopted = match pid {
            Some(pid) => self
                .reaper
                .adopt(pid)
                .map(|rx| (pid, rx))
                .map_err(|e| e.to_string()),
            None => Err(format!("no pid in {}", pid_file.display())),
        };
        let (pid, exit_rx) = match adopted {
            Ok(adopted) => adopted,
            Err(err) => {
                tracing::error!(
                    service = name,
                    "cannot start {name}: its container's init: {err}"
                );
                self.remove_container(host, container).await;
                return Err(exit::TEMPORARY);
            }
        };
        for warning in cg.join(pid) {
            tracing::warn!(service = name, "{name}: {warning}");
        }
        let start = host.runtime.start_argv(&container.id);
        if let Err(err) = oci_verb::run_verb(&handle, &start, None, runtime::VERB_TIMEOUT).await {
            tracing::error!(service = name, "cannot start {name}: {err}");
            // SAFETY: kill(2) has no memory effects; the pid is the adopted, unreaped init.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            let _ = tokio::time::timeout(Duration::from_secs(5), exit_rx).await;
            self.remove_container(host, container).await;
            return Err(exit::CANNOT_EXECUTE);
        }
        Ok((pid, exit_rx, container))
    }

    /// The runtime's `delete` of a container whose init has exited, then its root and bundle.
    async fn remove_container(&self, host: &ContainerHost, container: LiveContainer) {
        let delete = host.runtime.delete_argv(&container.id);
        if let Err(err) =
            oci_verb::run_verb(&self.handle(), &delete, None, runtime::VERB_TIMEOUT).await
        {
            tracing::warn!("cannot delete the container {}: {err}", container.id);
        }
        oci::remove_bundle(container);
    }

    /// Each service's state, for the control API.
    fn publish_views(&self, run: &ServicesRun<'_>, plan: &Plan, live: &[Option<Live>]) {
        let views: Vec<ServiceView> = run
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let state = plan.state(i);
                let l = live.get(i).and_then(Option::as_ref);
                ServiceView {
                    name: s.name.clone(),
                    state: state.map_or("pending", |st| st.status.name()),
                    ready: state.is_some_and(|st| st.ready)
                        || (s.healthchecks.is_empty()
                            && !s.notify
                            && state.is_some_and(|st| st.status == Status::Running)),
                    restarts: state.map_or(0, |st| st.restarts),
                    last_exit_code: state.and_then(|st| st.last_exit),
                    pid: l.map(|l| l.pid),
                    started_at_ms: l.map(|l| l.started_at_ms),
                    cgroup_procs: l.map(|l| l.procs.clone()).unwrap_or_default(),
                    is_container: s.container.is_some(),
                    exec_target: l.and_then(|l| l.exec_target.clone()),
                    accepts: if s.single_workload {
                        &SINGLE_WORKLOAD_COMMANDS
                    } else {
                        &SERVICE_COMMANDS
                    },
                }
            })
            .collect();
        self.events.emit(Event::Services(Arc::new(views)));
    }

    fn publish_logs(&self, run: &ServicesRun<'_>, logs: &[ServiceLog]) {
        let buffers: Vec<(String, Arc<LogBuffer>)> = run
            .services
            .iter()
            .zip(logs)
            .map(|(s, l)| (s.name.clone(), l.buffer.clone()))
            .collect();
        self.events.emit(Event::Logs(Arc::new(buffers)));
    }
}

/// Whether the machine is the single workload, whose one leaf is the whole services' cgroup.
fn single_leaf(run: &ServicesRun<'_>) -> bool {
    matches!(run.services, [only] if only.single_workload)
}

/// The deciding service's name, for listeners and the outcome: none for the single
/// workload, which is the machine (its exit report keeps the `/v1/exit` shape host drivers
/// know, `{"code","oom_killed","machine_id"}`, naming no service).
fn decider_name(services: &[Service], i: Option<usize>) -> Option<Arc<str>> {
    let service = services.get(i?)?;
    (!service.single_workload).then(|| Arc::from(service.name.as_str()))
}

/// What the log calls a service: its name, or `workload` for the single workload (the
/// words operators and host drivers already grep for).
fn label(service: &Service) -> &str {
    if service.single_workload {
        "workload"
    } else {
        &service.name
    }
}

/// Whether a service is ready: its readiness checks all pass (all its checks, when none is
/// a readiness check).
/// With `notify`, `READY=1` is needed too (and is enough without checks).
fn is_ready(service: &Service, trackers: &[Tracker], notified: bool) -> bool {
    let readiness: Vec<&Tracker> = service
        .healthchecks
        .iter()
        .zip(trackers)
        .filter(|(c, _)| c.kind == CheckKind::Readiness)
        .map(|(_, t)| t)
        .collect();
    let checks = if readiness.is_empty() {
        trackers.iter().all(Tracker::passing)
    } else {
        readiness.iter().all(|t| t.passing())
    };
    if service.notify {
        notified && checks
    } else {
        !trackers.is_empty() && checks
    }
}

/// A stop of one service: its signal to its group, SIGKILL after its timeout (sooner if the
/// machine's stop bound comes first).
fn stop_one(service: &Service, l: &mut Live, machine_deadline: Option<Instant>) {
    l.signal(service.stop.signal.number());
    let own = from_now(service.stop.timeout);
    let at = machine_deadline.map_or(own, |d| d.min(own));
    l.kill_at = Some(l.kill_at.map_or(at, |k| k.min(at)));
}

async fn probe(
    probe: &Probe,
    timeout: Duration,
    spec: &WorkloadSpec,
    handle: &SupervisorHandle,
    target: Option<&ExecTarget>,
) -> bool {
    match probe {
        Probe::Tcp { port } => health::tcp(*port, timeout).await,
        Probe::Http {
            port,
            method,
            path,
            headers,
            https,
            tls_skip_verify,
            tls_server_name,
        } => {
            let transport = if *https {
                health::Transport::Tls {
                    server_name: tls_server_name
                        .clone()
                        .unwrap_or_else(|| "localhost".into()),
                    skip_verify: *tls_skip_verify,
                }
            } else {
                health::Transport::Plain
            };
            health::http(*port, method, path, headers, timeout, &transport).await
        }
        Probe::Exec { command } => exec_probe(command, timeout, spec, handle, target).await,
    }
}

/// An exec check: the service's user, env and directory, its own process group, no stdio;
/// exit 0 passes; killed (the whole group) at its timeout. In a container, the runtime's
/// `exec` runs it there (as root in the VM; the runtime becomes the service's user inside).
async fn exec_probe(
    command: &[String],
    timeout: Duration,
    spec: &WorkloadSpec,
    handle: &SupervisorHandle,
    target: Option<&ExecTarget>,
) -> bool {
    use std::process::Stdio;
    let (argv, env, identity, cwd);
    (argv, env, identity, cwd) = match target {
        Some(target) => (
            target.argv(&spec.identity, &spec.working_dir, command),
            runtime::runtime_env(),
            crate::workload::Identity::root(),
            PathBuf::from("/"),
        ),
        None => (
            command.to_vec(),
            spec.env.clone(),
            spec.identity.clone(),
            spec.working_dir.clone(),
        ),
    };
    let started = handle.exec(ExecCommand {
        argv: &argv,
        env: &env,
        identity: &identity,
        cwd: &cwd,
        stdio: [Stdio::null(), Stdio::null(), Stdio::null()],
        tty: false,
        cgroup_procs: Vec::new(),
    });
    let Ok((pid, mut exit)) = started else {
        return false;
    };
    match tokio::time::timeout(timeout, &mut exit).await {
        Ok(Ok(e)) => e.exit_code() == 0,
        _ => {
            handle.kill_exec(pid);
            let _ = tokio::time::timeout(Duration::from_secs(5), exit).await;
            false
        }
    }
}

/// Writes the service's files, owned by its user (parents created, root-owned, 0755).
fn write_files(service: &Service, spec: &WorkloadSpec) -> std::io::Result<()> {
    for file in &service.files {
        crate::services::files::write_file(&file.path, file, &spec.identity)?;
        if !file.secret {
            tracing::debug!(
                "wrote {} ({} bytes)",
                file.path.display(),
                file.contents.len()
            );
        }
    }
    Ok(())
}

/// The volumes: a directory each under `volume_dir` (a tmpfs for `memory`), bind-mounted at
/// every service's mount path. Returns what to unmount, innermost first.
fn mount_volumes(run: &ServicesRun<'_>) -> Result<Vec<PathBuf>, String> {
    use nix::mount::{mount, MsFlags};
    let mut mounted = Vec::new();
    let mut dirs = Vec::new();
    for volume in run.volumes {
        let dir = run.volume_dir.join(&volume.name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create volume {}: {e}", dir.display()))?;
        if volume.memory {
            let size = volume
                .size_mb
                .map(|mb| format!("size={mb}m,"))
                .unwrap_or_default();
            mount(
                Some("tmpfs"),
                &dir,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(format!("{size}mode=1777").as_str()),
            )
            .map_err(|e| format!("cannot mount volume {} in memory: {e}", volume.name))?;
            mounted.push(dir.clone());
        } else {
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777));
        }
        dirs.push(dir);
    }
    // A container's mounts are binds in its bundle, inside its own root.
    for service in run.services.iter().filter(|s| s.container.is_none()) {
        for m in &service.mounts {
            let Some(source) = dirs.get(m.volume) else {
                continue;
            };
            std::fs::create_dir_all(&m.path)
                .map_err(|e| format!("cannot create mount point {}: {e}", m.path.display()))?;
            mount(
                Some(source.as_path()),
                &m.path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| format!("cannot mount volume at {}: {e}", m.path.display()))?;
            mounted.push(m.path.clone());
        }
    }
    Ok(mounted)
}

fn unmount_volumes(mut mounted: Vec<PathBuf>) {
    mounted.reverse();
    for path in mounted {
        if let Err(err) = nix::mount::umount2(Path::new(&path), nix::mount::MntFlags::MNT_DETACH) {
            tracing::warn!("cannot unmount {}: {err}", path.display());
        }
    }
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
