//! What the control API sees of the services: each one's state as a [`ServiceView`], and
//! each one's log buffer, published as events after every turn of the loop.

use super::events::Event;
use super::logs::LogBuffer;
use super::plan::Status;
use super::run_loop::RunLoop;
use crate::containers::ExecTarget;
use std::sync::Arc;

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
    /// Its cgroup leaves' `cgroup.procs` files, for an exec inside it.
    pub cgroup_procs: Vec<std::ffi::CString>,
    /// A `kind: container` service.
    pub is_container: bool,
    /// Where an exec into it goes while its container runs.
    pub exec_target: Option<ExecTarget>,
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
        }
    }
}

/// The commands a service of `Containers` takes.
pub const SERVICE_COMMANDS: [&str; 4] = ["signal", "stop", "start", "restart"];
/// What the single workload takes: it is the machine, so a stop stops the machine (as a
/// SIGTERM to roost would) and nothing starts it again.
pub const SINGLE_WORKLOAD_COMMANDS: [&str; 2] = ["signal", "stop"];

impl RunLoop<'_> {
    /// Each service's state, for the control API.
    pub(super) fn publish_views(&self) {
        let views: Vec<ServiceView> = self
            .run
            .services
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let state = self.plan.state(i);
                let l = self.live.get(i).and_then(Option::as_ref);
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
        self.sup.events.emit(Event::Services(Arc::new(views)));
    }

    /// Each service's log buffer, once, for the control API's `logs`.
    pub(super) fn publish_logs(&self) {
        let buffers: Vec<(String, Arc<LogBuffer>)> = self
            .run
            .services
            .iter()
            .zip(&self.logs)
            .map(|(s, l)| (s.name.clone(), l.buffer.clone()))
            .collect();
        self.sup.events.emit(Event::Logs(Arc::new(buffers)));
    }
}
