//! What the supervisor tells the rest of roost: events, emitted as they happen. Whoever wants
//! to know (the control API's state) folds them into its own projection; the supervisor knows
//! nothing of its listeners.
//!
//! Delivery is synchronous, in order, on the supervisor's own task, so a projection is never
//! behind the supervisor by more than the event being handled, and an exit that a listener
//! has seen is an exit the supervisor has recorded.

use std::sync::Arc;

pub use crate::config::typed::MAIN_SERVICE;

/// One thing that happened to a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The service's process started.
    Started { service: Arc<str>, pid: i32 },
    /// A stop of the service began: `signal` went to its process group.
    Stopping { service: Arc<str>, signal: i32 },
    /// The service's process ended: `code` is the shell's (its exit code or 128 + signal).
    Exited {
        service: Arc<str>,
        code: i32,
        signal: Option<i32>,
        /// Whether the OOM killer killed a process of the service's cgroup.
        oom_killed: bool,
    },
    /// The machine's exit code is decided (a service's exit and its `on_exit`, or a critical
    /// task's failure): `/v1/exit_code` answers from here on, before leftovers are stopped.
    Decided {
        code: i32,
        oom_killed: bool,
        /// The deciding service and why (None: no service decided).
        service: Option<Arc<str>>,
        reason: &'static str,
    },
    /// `READY=1` from the service on its `NOTIFY_SOCKET`: the first makes it ready, a later
    /// one ends a reload it was asked for. Several sent while the loop was busy are one.
    Notified { service: Arc<str> },
    /// One service's state changed (its status, readiness, restarts, last exit or pid): what
    /// it is now. Every service is told once at the start (pending), then on each change.
    ServiceChanged(ServiceView),
}

/// One service's state as the control API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
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
}

impl ServiceView {
    /// What the control API answers of it.
    pub fn status(&self) -> roost_control_protocol::ServiceStatus {
        roost_control_protocol::ServiceStatus {
            name: self.name.clone(),
            state: self.state.to_string(),
            ready: self.ready,
            restarts: self.restarts,
            last_exit_code: self.last_exit_code,
            pid: self.pid,
            started_at_ms: self.started_at_ms,
            accepts: self.accepts.iter().map(|a| a.to_string()).collect(),
            snapshot_hooks: Vec::new(),
        }
    }
}

/// The commands a service of `Containers` takes.
pub const SERVICE_COMMANDS: [&str; 4] = ["signal", "stop", "start", "restart"];
/// What the single workload takes: it is the machine, so a stop stops the machine (as a
/// SIGTERM to roost would) and nothing starts it again.
pub const SINGLE_WORKLOAD_COMMANDS: [&str; 2] = ["signal", "stop"];

/// A listener: called for every event, in order. It must not block.
pub type Listener = Arc<dyn Fn(&Event) + Send + Sync>;

/// The supervisor's outgoing events and who listens to them.
#[derive(Clone, Default)]
pub struct Events {
    listeners: Vec<Listener>,
}

impl std::fmt::Debug for Events {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Events")
            .field("listeners", &self.listeners.len())
            .finish()
    }
}

impl Events {
    /// Adds a listener for every later event.
    pub fn listen(&mut self, listener: Listener) {
        self.listeners.push(listener);
    }

    /// Tells every listener, and the log at debug level.
    pub fn emit(&self, event: Event) {
        tracing::debug!("supervisor event: {event:?}");
        for listener in &self.listeners {
            listener(&event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn every_listener_sees_every_event_in_order() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let mut events = Events::default();
        for n in 0..2 {
            let seen = seen.clone();
            events.listen(Arc::new(move |e: &Event| {
                if let Ok(mut v) = seen.lock() {
                    v.push((n, e.clone()));
                }
            }));
        }
        let service: Arc<str> = Arc::from(MAIN_SERVICE);
        events.emit(Event::Started {
            service: service.clone(),
            pid: 7,
        });
        events.emit(Event::Exited {
            service,
            code: 143,
            signal: Some(15),
            oom_killed: false,
        });
        let seen = seen.lock().map(|v| v.clone()).unwrap_or_default();
        assert_eq!(seen.len(), 4);
        assert!(matches!(seen[0], (0, Event::Started { pid: 7, .. })));
        assert!(matches!(seen[1], (1, Event::Started { pid: 7, .. })));
        assert!(matches!(seen[3], (1, Event::Exited { code: 143, .. })));
    }
}
