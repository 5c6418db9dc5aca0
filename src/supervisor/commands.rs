//! The control side's commands, answered by the loop: a named service's signal, stop, start
//! and restart (`/v2/services/NAME/...`, checked against the plan), `/v1/signals` to the main
//! service, and where an exec into a service goes.

use super::handle::{Command, ExecInto, Placement, ServiceOp, ServiceRefusal, SignalAnswer};
use super::plan::Status;
use super::run_loop::RunLoop;
use crate::exit::signal_name;

impl RunLoop<'_> {
    /// One command, answered (an answer no one waits for any more is dropped).
    pub(super) fn on_control(&mut self, command: Command) {
        match command {
            Command::Service { name, op, reply } => {
                let _ = reply.send(self.on_command(&name, op));
            }
            Command::Exec { into, reply } => {
                let _ = reply.send(self.placement(&into));
            }
            Command::SignalMain { signal, reply } => {
                let _ = reply.send(self.signal_main(signal));
            }
        }
    }

    /// `/v1/signals`: the main service's process group (a container's init); before its
    /// first start a stop signal stops the machine, as it ends a boot.
    fn signal_main(&mut self, signal: i32) -> SignalAnswer {
        if let Some(l) = self.live.first().and_then(Option::as_ref) {
            tracing::info!("sending {} to the workload", signal_name(signal));
            l.signal(signal);
            return SignalAnswer::Sent;
        }
        let never_started = self
            .plan
            .state(0)
            .is_some_and(|s| s.status == Status::Pending || s.status == Status::Starting);
        if never_started {
            self.sup.handle().before_the_start(signal)
        } else {
            SignalAnswer::NotRunning
        }
    }

    /// Where an exec goes: a service as its current start runs (its user, env, directory and
    /// leaves; a container through the runtime's `exec`, refused while it is not running).
    /// The workload's user is the first service's, inside it when it is a container, else on
    /// the VM's root (None: the caller uses the workload's identity as the boot resolved it).
    fn placement(&self, into: &ExecInto) -> Result<Option<Placement>, ServiceRefusal> {
        let i = match into {
            ExecInto::Service(name) => self
                .run
                .services
                .iter()
                .position(|s| &s.name == name)
                .ok_or_else(|| ServiceRefusal::NoSuchService(name.clone()))?,
            ExecInto::WorkloadUser => match self.run.services.first() {
                Some(first) if first.container.is_some() => 0,
                _ => return Ok(None),
            },
        };
        let service = &self.run.services[i];
        let live = self.live[i].as_ref();
        let container = match (&service.container, live) {
            (None, _) => None,
            (Some(_), Some(l)) => l.exec_target.clone(),
            (Some(_), None) => return Err(ServiceRefusal::NotRunning(service.name.clone())),
        };
        Ok(Some(Placement {
            spec: self.run.specs[i].clone(),
            cgroup_joins: live.map(|l| l.cgroup_joins.clone()).unwrap_or_default(),
            container,
        }))
    }

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
