//! How the machine ends: its exit code decided once (by the plan's `EndMachine`, a critical
//! failure, or, for a stop asked for, the main service's code), told to listeners at once;
//! its stop bounded by one `KillTimeout` with SIGKILL at the deadline; then the leftovers
//! stopped, the logs drained to the console, volumes and leaves removed, and the
//! [`Outcome`] made.

use super::events::Event;
use super::logs::{Console, ServiceLog};
use super::run_loop::{Decision, RunLoop};
use super::{volumes, Outcome, SIGKILL_GRACE};
use crate::config::typed::Service;
use crate::exit;
use roost_platform::deadline::from_now;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

impl RunLoop<'_> {
    /// The machine's exit code is decided (the first decision counts): logged, the stop's
    /// bound set, and listeners told at once (`/v1/exit_code` answers at the deciding exit).
    pub(super) fn decide(&mut self, decision: Decision) {
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

    pub(super) fn tell_decision(&mut self, decision: Decision) {
        self.decision_told = true;
        self.sup.emit(Event::Decided {
            code: decision.code,
            oom_killed: decision.service.is_some_and(|i| self.oom_of[i]),
            service: self.decider_name(decision.service),
            reason: decision.reason,
        });
    }

    /// Every service stops, in reverse dependency order, within the machine's one bound.
    pub(super) fn stop_machine(&mut self) {
        let kill_timeout = self.run.kill_timeout;
        self.machine_deadline
            .get_or_insert_with(|| from_now(kill_timeout));
        let actions = self.plan.stop_machine();
        self.then(actions);
    }

    /// A stop deadline passed: SIGKILL for each service whose own (or the machine's) came.
    pub(super) fn on_kill_deadline(&mut self) {
        let now = Instant::now();
        let all = self.machine_deadline.is_some_and(|d| d <= now);
        let machine_deadline = self.machine_deadline;
        for (i, l) in self.live.iter_mut().enumerate() {
            let Some(l) = l else { continue };
            if !all && l.signal_at.is_some_and(|t| t <= now) {
                let service = &self.run.services[i];
                let name = service.name.as_str();
                tracing::info!(
                    service = name,
                    "{name} still runs {} s after its stop command: its stop signal",
                    service.stop.timeout.as_secs_f64()
                );
                l.stop(service, machine_deadline);
                continue;
            }
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

    pub(super) fn give_up(&self) {
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
    pub(super) async fn finish(mut self) -> Outcome {
        // No command is answered from here on: closing the queue makes every later one a
        // refusal at once (the machine is stopping), not a wait for an answer that never comes.
        self.commands = None;
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
        outcome.decided_by = decider_name(self.run.services, decision.service).map(|name| {
            roost_control_protocol::DecidedBy {
                service: name.to_string(),
                reason: decision.reason.to_string(),
            }
        });
        outcome
    }

    fn decider_name(&self, i: Option<usize>) -> Option<Arc<str>> {
        decider_name(self.run.services, i)
    }
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
    // Nothing was ever written: nothing to wait for, and no blocking thread to start (and
    // join at the runtime's end) on the path every quiet machine takes.
    let written = if console.started() {
        tokio::task::spawn_blocking(move || console.finish(Duration::from_secs(5)))
            .await
            .unwrap_or(false)
    } else {
        console.finish(Duration::ZERO)
    };
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
