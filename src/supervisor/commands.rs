//! The control API's commands for one named service (`/v2/services/NAME/...`): signal, stop,
//! start, restart, checked against the plan and carried out by the loop.

use super::handle::{ServiceOp, ServiceRefusal};
use super::plan::Status;
use super::run_loop::RunLoop;

impl RunLoop<'_> {
    /// One command for the service `name`.
    pub(super) fn on_command(&mut self, name: &str, op: ServiceOp) -> Result<(), ServiceRefusal> {
        let Some(i) = self.run.services.iter().position(|s| s.name == name) else {
            return Err(ServiceRefusal::NoSuchService(name.to_string()));
        };
        if self.plan.is_stopping() && op != ServiceOp::Stop && !matches!(op, ServiceOp::Signal(_)) {
            return Err(ServiceRefusal::MachineStopping);
        }
        tracing::info!(service = name, "control API: {op:?} {name}");
        let single_workload = self.run.services[i].single_workload;
        match op {
            ServiceOp::Signal(sig) => match self.live[i].as_ref() {
                Some(l) => {
                    l.signal(sig);
                    Ok(())
                }
                None => Err(ServiceRefusal::NotRunning(name.to_string())),
            },
            // The single workload is the machine: its stop is the machine's, as a SIGTERM.
            ServiceOp::Stop if single_workload => {
                self.sup.handle().request_stop(libc::SIGTERM);
                Ok(())
            }
            ServiceOp::Start | ServiceOp::Restart if single_workload => {
                Err(ServiceRefusal::SingleWorkload(name.to_string()))
            }
            ServiceOp::Stop => self.stop_asked(i),
            ServiceOp::Start => match self.plan.start_requested(i) {
                Some(actions) => {
                    self.then(actions);
                    Ok(())
                }
                None => Err(ServiceRefusal::Running(name.to_string())),
            },
            ServiceOp::Restart => match self.plan.restart_requested(i) {
                Some((true, _)) => {
                    let machine_deadline = self.machine_deadline;
                    if let Some(l) = self.live[i].as_mut() {
                        l.stop(&self.run.services[i], machine_deadline);
                    }
                    Ok(())
                }
                Some((false, actions)) => {
                    self.then(actions);
                    Ok(())
                }
                None => Err(ServiceRefusal::MachineStopping),
            },
        }
    }

    /// A stop asked for: the service stays stopped (a stop already under way goes on).
    fn stop_asked(&mut self, i: usize) -> Result<(), ServiceRefusal> {
        let status = self.plan.state(i).map(|s| s.status);
        self.plan.stop_sent(i, true);
        match self.live[i].as_ref() {
            Some(_) if status != Some(Status::Stopping) => {
                self.stop_service(i);
                Ok(())
            }
            Some(_) => Ok(()),
            None if status == Some(Status::Restarting) => Ok(()),
            None => Err(ServiceRefusal::NotRunning(
                self.run.services[i].name.to_string(),
            )),
        }
    }
}
