//! What the control API sees of the services: each one's state as a [`ServiceView`], and
//! each one's log buffer, published as events after every turn of the loop.

use super::events::{Event, ServiceView, SERVICE_COMMANDS, SINGLE_WORKLOAD_COMMANDS};
use super::plan::Status;
use super::run_loop::RunLoop;

impl RunLoop<'_> {
    /// Each service whose state changed since the last turn, told to the listeners.
    pub(super) fn publish_views(&mut self) {
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
                    accepts: if s.single_workload {
                        &SINGLE_WORKLOAD_COMMANDS
                    } else {
                        &SERVICE_COMMANDS
                    },
                }
            })
            .collect();
        for (i, view) in views.into_iter().enumerate() {
            if self.published.get(i) != Some(&view) {
                self.sup.events.emit(Event::ServiceChanged(view.clone()));
                match self.published.get_mut(i) {
                    Some(slot) => *slot = view,
                    None => self.published.push(view),
                }
            }
        }
    }
}
