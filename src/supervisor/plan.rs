//! The services' state machine. The supervisor tells it what happened (a start, an exit, a
//! change of readiness, a ready line, a restart's time) and gets back what to do; it makes
//! no syscall and reads no clock (times come in as milliseconds), so every rule here is
//! tested without a process. docs/services.md states each rule and why.

use crate::config::typed::{Condition, OnExit, RestartPolicy, Service};
use std::collections::VecDeque;
use std::time::Duration;

/// Where a service is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Waiting for its dependencies.
    Pending,
    /// Its start was asked for; not yet known to have exec'd.
    Starting,
    Running,
    /// A stop was sent; not exited yet.
    Stopping,
    /// Exited, waiting out its restart backoff.
    Restarting,
    /// Exited for good.
    Exited,
    /// A dependency's condition can no longer hold: never started.
    Skipped,
    /// Could not be started, or gave up restarting.
    Failed,
    /// `start: manual`, not started yet: it runs only when asked.
    Manual,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Starting => "starting",
            Status::Running => "running",
            Status::Stopping => "stopping",
            Status::Restarting => "restarting",
            Status::Exited => "exited",
            Status::Skipped => "skipped",
            Status::Failed => "failed",
            Status::Manual => "manual",
        }
    }

    /// Whether it is over: nothing will run it again unless asked (a `manual` service that
    /// was never asked counts: the machine does not wait for it, and a dependent waiting
    /// for it is skipped).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Status::Exited | Status::Skipped | Status::Failed | Status::Manual
        )
    }

    /// Whether a process of it may be alive.
    pub fn has_process(self) -> bool {
        matches!(self, Status::Starting | Status::Running | Status::Stopping)
    }
}

/// What the supervisor is to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Start(usize),
    /// Start it again after `delay` ([`Plan::restart_due`] when the time comes).
    RestartIn(usize, Duration),
    /// Send the service its stop signal (SIGKILL after its timeout).
    Stop(usize),
    /// The machine ends with `code`, decided by `service` (None: every service is over and
    /// none decided). The machine's stop has begun: the [`Action::Stop`]s that follow stop
    /// the rest in reverse dependency order.
    EndMachine {
        code: i32,
        service: Option<usize>,
        reason: &'static str,
    },
}

/// The exit code of a skipped service, for `on_exit` (process-compose's `exit_on_skipped`).
pub const SKIPPED_CODE: i32 = 1;

/// How a service became final, for its `on_exit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    Succeeded,
    Failed,
    /// It never ran: what it waited for cannot hold any more.
    Skipped,
}

/// What the plan knows of one service.
#[derive(Debug, Clone)]
pub struct State {
    pub status: Status,
    pub ready: bool,
    pub started_ever: bool,
    pub ready_ever: bool,
    pub log_ready: bool,
    pub last_exit: Option<i32>,
    pub restarts: u32,
    /// Restart times within the window, oldest first (ms).
    window: VecDeque<u64>,
    /// Restarts in a row without a long enough run (the backoff's exponent).
    in_a_row: u32,
    started_at: u64,
    /// Stopped on request (the API): its exit is final and decides nothing.
    stop_requested: bool,
    /// Restarted on request: started again as soon as it has exited.
    restart_requested: bool,
}

#[derive(Debug, Clone)]
struct Rules {
    deps: Vec<(usize, Condition)>,
    dependents: Vec<usize>,
    restart: crate::config::typed::Restart,
    on_exit: OnExit,
    success: Vec<i32>,
}

/// The state machine.
#[derive(Debug, Clone)]
pub struct Plan {
    rules: Vec<Rules>,
    states: Vec<State>,
    /// A stop of the machine is under way: nothing starts or restarts.
    stopping: bool,
    ended: bool,
    reset_after: Duration,
}

impl Plan {
    pub fn new(services: &[Service]) -> Self {
        let deps: Vec<Vec<usize>> = services
            .iter()
            .map(|s| s.depends_on.iter().map(|d| d.on).collect())
            .collect();
        let dependents = crate::config::graph::dependents(&deps);
        let rules = services
            .iter()
            .zip(dependents)
            .map(|(s, dependents)| Rules {
                deps: s.depends_on.iter().map(|d| (d.on, d.condition)).collect(),
                dependents,
                restart: s.restart,
                on_exit: s.on_exit,
                success: s.success_exit_codes.clone(),
            })
            .collect();
        let states = services
            .iter()
            .map(|s| State {
                status: if s.manual_start {
                    Status::Manual
                } else {
                    Status::Pending
                },
                ready: false,
                started_ever: false,
                ready_ever: false,
                log_ready: false,
                last_exit: None,
                restarts: 0,
                window: VecDeque::new(),
                in_a_row: 0,
                started_at: 0,
                stop_requested: false,
                restart_requested: false,
            })
            .collect();
        Plan {
            rules,
            states,
            stopping: false,
            ended: false,
            reset_after: crate::config::typed::defaults::RESTART_RESET_AFTER,
        }
    }

    pub fn state(&self, i: usize) -> Option<&State> {
        self.states.get(i)
    }

    pub fn len(&self) -> usize {
        self.states.len()
    }

    pub fn is_empty(&self) -> bool {
        self.states.is_empty()
    }

    /// Whether the machine's stop is under way.
    pub fn is_stopping(&self) -> bool {
        self.stopping
    }

    /// Whether the machine is over or stopping: nothing will start again, so what a
    /// service leaves behind is the machine's leftovers.
    pub fn is_ending(&self) -> bool {
        self.stopping || self.ended
    }

    /// The first starts (and skips).
    pub fn begin(&mut self) -> Vec<Action> {
        self.settle()
    }

    /// The service's exec succeeded.
    pub fn started(&mut self, i: usize, now_ms: u64) -> Vec<Action> {
        let Some(s) = self.states.get_mut(i) else {
            return Vec::new();
        };
        if s.status == Status::Starting {
            s.status = Status::Running;
        }
        s.started_ever = true;
        s.started_at = now_ms;
        s.ready = false;
        self.settle()
    }

    /// The service could not be started. `code` 75 ([`crate::exit::TEMPORARY`]: no pid, no
    /// memory, no descriptor for now) is an exit its restart policy handles; any other code
    /// (127 not found, 126 cannot execute, 78 a missing image) is final: such a start fails
    /// the same way again.
    pub fn start_failed(&mut self, i: usize, code: i32, now_ms: u64) -> Vec<Action> {
        if code == crate::exit::TEMPORARY {
            return self.exited(i, code, now_ms);
        }
        let Some(s) = self.states.get_mut(i) else {
            return Vec::new();
        };
        s.status = Status::Failed;
        s.last_exit = Some(code);
        let mut actions = self.final_exit(i, code, Ending::Failed);
        actions.extend(self.settle());
        actions
    }

    /// The service's readiness changed (its checks, or `READY=1`).
    pub fn ready_changed(&mut self, i: usize, ready: bool) -> Vec<Action> {
        let Some(s) = self.states.get_mut(i) else {
            return Vec::new();
        };
        if !s.status.has_process() {
            return Vec::new();
        }
        s.ready = ready;
        s.ready_ever |= ready;
        self.settle()
    }

    /// The service printed its ready line.
    pub fn log_ready(&mut self, i: usize) -> Vec<Action> {
        let Some(s) = self.states.get_mut(i) else {
            return Vec::new();
        };
        s.log_ready = true;
        self.settle()
    }

    /// A stop of this one service was sent (by the API or a failing check): it is Stopping.
    pub fn stop_sent(&mut self, i: usize, requested: bool) {
        if let Some(s) = self.states.get_mut(i) {
            if s.status.has_process() {
                s.status = Status::Stopping;
            } else if s.status == Status::Restarting && requested {
                // Waiting out a backoff: it just does not start again.
                s.status = Status::Exited;
            }
            s.stop_requested |= requested;
        }
    }

    /// The service's main process exited with `code` (its exit code or 128 + signal).
    pub fn exited(&mut self, i: usize, code: i32, now_ms: u64) -> Vec<Action> {
        let Some(rules) = self.rules.get(i) else {
            return Vec::new();
        };
        let success = rules.success.contains(&code);
        let restart = rules.restart;
        let reset_after = self.reset_after.as_millis() as u64;
        let stopping = self.stopping;
        let Some(s) = self.states.get_mut(i) else {
            return Vec::new();
        };
        s.last_exit = Some(code);
        s.ready = false;
        let wanted = match restart.policy {
            RestartPolicy::No => false,
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => !success,
        };
        let mut actions = Vec::new();
        if s.restart_requested && !stopping {
            s.restart_requested = false;
            s.stop_requested = false;
            s.status = Status::Starting;
            actions.push(Action::Start(i));
            return actions;
        }
        if stopping || s.stop_requested {
            // In the machine's stop, or stopped on request: over, and decides nothing. The
            // settle starts the next stops, or lets dependents that waited on it skip.
            s.status = Status::Exited;
            actions.extend(self.settle());
            return actions;
        }
        if wanted {
            let window = restart.window.as_millis() as u64;
            while s
                .window
                .front()
                .is_some_and(|&t| now_ms.saturating_sub(t) >= window)
            {
                s.window.pop_front();
            }
            if s.window.len() < restart.max_retries as usize {
                if now_ms.saturating_sub(s.started_at) >= reset_after {
                    s.in_a_row = 0;
                }
                let delay = backoff(restart.backoff, restart.max_backoff, s.in_a_row);
                s.in_a_row = s.in_a_row.saturating_add(1);
                s.window.push_back(now_ms);
                s.restarts = s.restarts.saturating_add(1);
                s.status = Status::Restarting;
                actions.push(Action::RestartIn(i, delay));
                actions.extend(self.settle());
                return actions;
            }
            // Gave up: max_retries within the window are spent. A last exit that succeeded
            // (an `always` service's) is a completion, as process-compose counts it: only a
            // failing one is a failure.
            s.status = if success {
                Status::Exited
            } else {
                Status::Failed
            };
        } else {
            s.status = Status::Exited;
        }
        let ending = if success {
            Ending::Succeeded
        } else {
            Ending::Failed
        };
        actions.extend(self.final_exit(i, code, ending));
        actions.extend(self.settle());
        actions
    }

    /// An operator's start of a service that is over (or waiting out a backoff): it starts
    /// now, with its restart count kept and its retry window forgotten. `None`: refused (it
    /// runs, or the machine is stopping).
    pub fn start_requested(&mut self, i: usize) -> Option<Vec<Action>> {
        let stopping = self.stopping;
        let s = self.states.get_mut(i)?;
        if stopping || !(s.status.is_final() || s.status == Status::Restarting) {
            return None;
        }
        s.status = Status::Starting;
        s.stop_requested = false;
        s.window.clear();
        s.in_a_row = 0;
        Some(vec![Action::Start(i)])
    }

    /// An operator's restart: a running service is stopped and started again once it has
    /// exited (true: the caller sends the stop); one that is over starts now.
    pub fn restart_requested(&mut self, i: usize) -> Option<(bool, Vec<Action>)> {
        if self.stopping {
            return None;
        }
        let s = self.states.get_mut(i)?;
        if matches!(s.status, Status::Starting | Status::Running) {
            s.status = Status::Stopping;
            s.stop_requested = true;
            s.restart_requested = true;
            return Some((true, Vec::new()));
        }
        self.start_requested(i).map(|a| (false, a))
    }

    /// A restart's backoff has passed.
    pub fn restart_due(&mut self, i: usize) -> Vec<Action> {
        let stopping = self.stopping;
        match self.states.get_mut(i) {
            Some(s) if s.status == Status::Restarting && !stopping => {
                s.status = Status::Starting;
                vec![Action::Start(i)]
            }
            Some(s) if s.status == Status::Restarting => {
                s.status = Status::Exited;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// The machine stops: nothing starts or restarts any more; pending services are
    /// skipped. Returns the first stops (services no running service depends on).
    pub fn stop_machine(&mut self) -> Vec<Action> {
        self.stopping = true;
        self.ended = true;
        for s in &mut self.states {
            match s.status {
                Status::Pending => s.status = Status::Skipped,
                Status::Restarting => s.status = Status::Exited,
                _ => {}
            }
        }
        self.next_stops()
    }

    /// During the machine's stop: the running services whose dependents have all exited,
    /// to be stopped now (reverse dependency order). Each is returned once.
    pub fn next_stops(&mut self) -> Vec<Action> {
        if !self.stopping {
            return Vec::new();
        }
        let mut actions = Vec::new();
        for i in 0..self.states.len() {
            let status = self.states[i].status;
            if !matches!(status, Status::Starting | Status::Running) {
                continue;
            }
            let dependents_down = self.rules[i]
                .dependents
                .iter()
                .all(|&d| !self.states[d].status.has_process());
            if dependents_down {
                self.states[i].status = Status::Stopping;
                actions.push(Action::Stop(i));
            }
        }
        actions
    }

    /// Whether every service is over (no process left of any).
    pub fn all_final(&self) -> bool {
        self.states.iter().all(|s| s.status.is_final())
    }

    /// What a final exit does to the machine (`on_exit`); the first decision wins. A skip
    /// is a failed final exit (code 1) that also decides for `stop_machine_on_skip`.
    fn final_exit(&mut self, i: usize, code: i32, ending: Ending) -> Vec<Action> {
        if self.ended || self.stopping {
            return Vec::new();
        }
        let reason = match (self.rules[i].on_exit, ending) {
            (OnExit::StopMachine, _) => "its on_exit is stop_machine",
            (OnExit::StopMachineOnFailure, Ending::Failed | Ending::Skipped) => {
                "it failed and its on_exit is stop_machine_on_failure"
            }
            (OnExit::StopMachineOnSkip, Ending::Skipped) => {
                "it was skipped and its on_exit is stop_machine_on_skip"
            }
            _ => return Vec::new(),
        };
        self.ended = true;
        let mut actions = vec![Action::EndMachine {
            code,
            service: Some(i),
            reason,
        }];
        actions.extend(self.stop_machine());
        actions
    }

    fn holds(&self, target: usize, condition: Condition) -> bool {
        let s = &self.states[target];
        match condition {
            Condition::Started => s.started_ever,
            Condition::Healthy => s.ready_ever,
            Condition::ExitedSuccessfully => {
                s.status == Status::Exited
                    && s.last_exit
                        .is_some_and(|c| self.rules[target].success.contains(&c))
            }
            Condition::Completed => s.status == Status::Exited && s.last_exit.is_some(),
            Condition::LogReady => s.log_ready,
        }
    }

    fn impossible(&self, target: usize, condition: Condition) -> bool {
        let s = &self.states[target];
        if !s.status.is_final() {
            return false;
        }
        !self.holds(target, condition)
    }

    /// Starts what may start and skips what never can, until nothing changes; then, when
    /// everything is over and nothing decided, ends the machine with 0.
    fn settle(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        if self.stopping {
            actions.extend(self.next_stops());
            return actions;
        }
        loop {
            let mut changed = false;
            for i in 0..self.states.len() {
                if self.states[i].status != Status::Pending {
                    continue;
                }
                let deps = &self.rules[i].deps;
                if deps.iter().any(|&(t, c)| self.impossible(t, c)) {
                    self.states[i].status = Status::Skipped;
                    self.states[i].last_exit = None;
                    changed = true;
                    actions.extend(self.final_exit(i, SKIPPED_CODE, Ending::Skipped));
                } else if deps.iter().all(|&(t, c)| self.holds(t, c)) {
                    self.states[i].status = Status::Starting;
                    changed = true;
                    actions.push(Action::Start(i));
                }
            }
            if !changed {
                break;
            }
        }
        // A machine of `manual` services none of which was asked for yet waits for a start
        // (or its stop): it has not run anything to be over with.
        let waits_for_a_start = self.states.iter().all(|s| s.status == Status::Manual);
        if !self.ended && self.all_final() && !waits_for_a_start {
            self.ended = true;
            actions.push(Action::EndMachine {
                code: 0,
                service: None,
                reason: "every service is over",
            });
        }
        actions
    }
}

/// `base`, doubled `n` times, capped at `max`.
pub fn backoff(base: Duration, max: Duration, n: u32) -> Duration {
    let factor = 1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(max).min(max)
}

#[cfg(test)]
mod tests;
