//! A service's health checks run here: one task per check, started with each start after its
//! grace period, its probe ([`super::health`]) every interval, each result a message to the
//! loop, where the thresholds turn results into ready, not ready and unhealthy
//! ([`RunLoop::on_check`]). `READY=1` joins the same readiness ([`RunLoop::on_notified`]).

use super::handle::{ChildSpec, SupervisorHandle};
use super::health::{self, Change, Tracker};
use super::plan::Status;
use super::run_loop::{Msg, RunLoop};
use crate::config::typed::{CheckKind, HealthCheck, Probe, Service};
use crate::containers::ExecTarget;
use crate::workload::WorkloadSpec;
use std::time::Duration;
use tokio::sync::mpsc;

/// Which start of which service a check belongs to.
#[derive(Debug, Clone, Copy)]
pub(super) struct CheckOf {
    pub i: usize,
    pub generation: u64,
}

/// Starts one task per check of `service`; their results go to `tx`.
pub(super) fn spawn_all(
    service: &Service,
    of: CheckOf,
    spec: &WorkloadSpec,
    handle: &SupervisorHandle,
    target: Option<&ExecTarget>,
    tx: &mpsc::UnboundedSender<Msg>,
) -> Vec<tokio::task::AbortHandle> {
    service
        .healthchecks
        .iter()
        .enumerate()
        .map(|(k, check)| {
            let (tx, check, spec, handle, target) = (
                tx.clone(),
                check.clone(),
                spec.clone(),
                handle.clone(),
                target.cloned(),
            );
            tokio::spawn(async move {
                run_check(of, k, &check, &spec, &handle, target.as_ref(), &tx).await;
            })
            .abort_handle()
        })
        .collect()
}

/// Each check starts with a fresh tracker.
pub(super) fn trackers(service: &Service) -> Vec<Tracker> {
    service
        .healthchecks
        .iter()
        .map(|c| Tracker::new(c.success_threshold, c.failure_threshold))
        .collect()
}

async fn run_check(
    of: CheckOf,
    check_index: usize,
    check: &HealthCheck,
    spec: &WorkloadSpec,
    handle: &SupervisorHandle,
    target: Option<&ExecTarget>,
    tx: &mpsc::UnboundedSender<Msg>,
) {
    tokio::time::sleep(check.grace_period).await;
    loop {
        let ok = probe(&check.probe, check.timeout, spec, handle, target).await;
        let result = Msg::Check {
            i: of.i,
            generation: of.generation,
            check: check_index,
            ok,
        };
        if tx.send(result).is_err() {
            return;
        }
        tokio::time::sleep(check.interval).await;
    }
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
        Probe::Exec { command } => {
            let ran = run_as_service(command, timeout, spec, handle, target).await;
            ran == RunAsService::Exited(0)
        }
    }
}

/// How a command run as the service ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RunAsService {
    /// Its exit code (128 + the signal that killed it).
    Exited(i32),
    /// Still running at its bound: its whole group was killed.
    TimedOut,
    NotStarted,
}

/// A command as the service (an exec check, a stop command): the service's user, env and
/// directory, its own process group, no stdio; killed (the whole group) at `timeout`. In a
/// container, the runtime's `exec` runs it there (as root in the VM; the runtime becomes the
/// service's user inside).
pub(super) async fn run_as_service(
    command: &[String],
    timeout: Duration,
    spec: &WorkloadSpec,
    handle: &SupervisorHandle,
    target: Option<&ExecTarget>,
) -> RunAsService {
    use std::process::Stdio;
    let null = || [Stdio::null(), Stdio::null(), Stdio::null()];
    let started = match target {
        Some(target) => {
            let inside = target.exec(&spec.identity, &spec.working_dir, command);
            handle.exec(inside.command(null(), false))
        }
        None => {
            let [stdin, stdout, stderr] = null();
            handle.exec(ChildSpec {
                argv: command,
                env: &spec.env,
                identity: &spec.identity,
                cwd: &spec.working_dir,
                stdin,
                stdout,
                stderr,
                cgroup_joins: Vec::new(),
                controlling_tty: false,
            })
        }
    };
    let Ok((pid, mut exit)) = started else {
        return RunAsService::NotStarted;
    };
    match tokio::time::timeout(timeout, &mut exit).await {
        Ok(Ok(e)) => RunAsService::Exited(e.exit_code()),
        _ => {
            handle.kill_exec(pid);
            let _ = tokio::time::timeout(Duration::from_secs(5), exit).await;
            RunAsService::TimedOut
        }
    }
}

/// Whether a service is ready: its readiness checks all pass (all its checks, when none is
/// a readiness check). With `notify`, `READY=1` is needed too (and is enough without checks).
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

impl RunLoop<'_> {
    /// A check's result: readiness may change; a check that stops its service when it fails
    /// (`stop_when_unhealthy`) stops it at its failure threshold.
    pub(super) fn on_check(&mut self, i: usize, generation: u64, check: usize, ok: bool) {
        let service = &self.run.services[i];
        let machine_deadline = self.machine_deadline;
        let Some(l) = self.live[i].as_mut().filter(|l| l.generation == generation) else {
            return;
        };
        let before = is_ready(service, &l.trackers, l.notified);
        let change = l.trackers.get_mut(check).map(|t| t.record(ok));
        let after = is_ready(service, &l.trackers, l.notified);
        let mut actions = Vec::new();
        if before != after {
            tracing::info!(
                service = service.name.as_str(),
                "{} is {}",
                service.name,
                if after { "ready" } else { "not ready" }
            );
            actions.extend(self.plan.ready_changed(i, after));
        }
        let stop = service
            .healthchecks
            .get(check)
            .is_some_and(|c| c.stop_when_unhealthy);
        let running = self
            .plan
            .state(i)
            .is_some_and(|s| s.status == Status::Running);
        if change == Some(Change::NowFailing) && stop && running {
            tracing::warn!(
                service = service.name.as_str(),
                "{}'s check {:?} failed {} times in a row: stopping it",
                service.name,
                service.healthchecks[check].name,
                service.healthchecks[check].failure_threshold
            );
            self.plan.stop_sent(i, false);
            l.stop(service, machine_deadline);
        }
        self.then(actions);
    }

    /// `READY=1` from the service's own session (or container).
    pub(super) fn on_notified(&mut self, i: usize, generation: u64) {
        let Some(l) = self.live[i].as_mut().filter(|l| l.generation == generation) else {
            return;
        };
        l.notify_in_flight
            .store(false, std::sync::atomic::Ordering::Release);
        let service = &self.run.services[i];
        self.sup.emit(super::events::Event::Notified {
            service: std::sync::Arc::from(service.name.as_str()),
        });
        if l.notified {
            return;
        }
        let before = is_ready(service, &l.trackers, false);
        l.notified = true;
        let after = is_ready(service, &l.trackers, true);
        tracing::info!(
            service = service.name.as_str(),
            "{} sent READY=1",
            service.name
        );
        if before != after {
            tracing::info!(service = service.name.as_str(), "{} is ready", service.name);
            let actions = self.plan.ready_changed(i, after);
            self.then(actions);
        }
    }
}
