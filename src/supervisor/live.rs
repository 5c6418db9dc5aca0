//! A service's running start: its pid, its cgroup leaf, its checks' tasks and trackers, its
//! container if it is one, and where its stop stands.

use super::health::Tracker;
use crate::config::typed::Service;
use crate::containers::lifecycle::Container;
use crate::containers::ExecTarget;
use crate::process::cgroup::WorkloadCgroup;
use crate::process::procs;
use roost_platform::deadline::from_now;
use tokio::time::Instant;

/// A running start of a service.
#[derive(Debug)]
pub(super) struct Live {
    pub pid: i32,
    /// Which start this is: messages of an earlier start are ignored.
    pub generation: u64,
    pub cgroup: WorkloadCgroup,
    /// Its checks' and `NOTIFY_SOCKET` listener's tasks, aborted at its exit.
    pub checks: Vec<tokio::task::AbortHandle>,
    pub trackers: Vec<Tracker>,
    /// When its stop escalates to SIGKILL.
    pub kill_at: Option<Instant>,
    pub started_at_ms: u64,
    /// Its leaves' join files (v2 `cgroup.procs`, v1 `tasks`), for an exec inside it.
    pub cgroup_joins: Vec<std::ffi::CString>,
    /// `READY=1` came (services with `notify`).
    pub notified: bool,
    /// A `Msg::Notified` of this start is queued and not yet taken (the listener sends no
    /// other until it is).
    pub notify_in_flight: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// A `kind: container` service's container, deleted when its init has exited.
    pub container: Option<Container>,
    pub exec_target: Option<ExecTarget>,
    /// Its `stop.command`, until a stop runs it.
    pub stop_command: Option<StopCommand>,
    /// When its stop signal goes, if it still runs after its stop command.
    pub signal_at: Option<Instant>,
    /// A `daemon` service whose command has exited 0, leaving its daemon in the leaf: the
    /// service is the leaf's processes now.
    pub daemonized: bool,
}

/// A service's `stop.command`, ready to run as the service.
#[derive(Debug)]
pub(super) struct StopCommand {
    pub service: String,
    pub argv: Vec<String>,
    pub spec: crate::workload::WorkloadSpec,
    pub handle: super::handle::SupervisorHandle,
    pub target: Option<ExecTarget>,
}

impl StopCommand {
    /// Runs it in a task of its own, bounded by `timeout`; how it ended is logged.
    fn run(self, timeout: std::time::Duration) {
        tokio::spawn(async move {
            let started = std::time::Instant::now();
            let ran = super::checks::run_as_service(
                &self.argv,
                timeout,
                &self.spec,
                &self.handle,
                self.target.as_ref(),
            )
            .await;
            let name = self.service.as_str();
            let secs = started.elapsed().as_secs_f64();
            match ran {
                super::checks::RunAsService::Exited(0) => {
                    tracing::info!(
                        service = name,
                        "{name}'s stop command ended (0) after {secs:.1} s"
                    )
                }
                super::checks::RunAsService::Exited(code) => tracing::warn!(
                    service = name,
                    "{name}'s stop command exited {code} after {secs:.1} s"
                ),
                super::checks::RunAsService::TimedOut => tracing::warn!(
                    service = name,
                    "{name}'s stop command did not end within {} s: killed",
                    timeout.as_secs_f64()
                ),
                super::checks::RunAsService::NotStarted => tracing::warn!(
                    service = name,
                    "{name}'s stop command could not start: its stop signal follows at the timeout"
                ),
            }
        });
    }
}

impl Live {
    /// A signal to the service: a process's whole group; a container's init, directly (what
    /// the runtime's `kill` would do, without a process per signal). In its own PID
    /// namespace the init passes it on, or, without a handler, the kernel drops it; SIGKILL
    /// is never dropped and ends the whole namespace.
    pub fn signal(&self, sig: i32) {
        if self.daemonized {
            // Its command is gone: every process of its leaf is the service.
            for pid in leaf_members(self.cgroup.members_file().as_deref()) {
                // SAFETY: kill(2) has no memory effects; a pid that exited since the read
                // gets ESRCH (reaped pids are not reused within the leaf's life here: a new
                // process would have to be born into this leaf).
                unsafe { libc::kill(pid, sig) };
            }
        } else if self.container.is_some() {
            // SAFETY: kill(2) has no memory effects; the pid is the adopted init, registered
            // with the reaper and not yet reaped (its exit removes this Live).
            unsafe { libc::kill(self.pid, sig) };
        } else {
            procs::signal_group(self.pid, sig);
        }
    }

    /// A stop of the service: its signal now, SIGKILL after its timeout (sooner if the
    /// machine's stop bound comes first).
    pub fn stop(&mut self, service: &Service, machine_deadline: Option<Instant>) {
        let own = from_now(service.stop.timeout);
        let at = machine_deadline.map_or(own, |d| d.min(own));
        // The service's own way to stop first (`pg_ctl stop`); its signal only if it still
        // runs `stop.timeout` later. A second stop (or that moment) sends the signal.
        if let Some(command) = self.stop_command.take() {
            command.run(service.stop.timeout);
            self.signal_at = Some(at);
            return;
        }
        self.signal_at = None;
        if service.stop.parent_only && !self.daemonized && self.container.is_none() {
            // SAFETY: kill(2) has no memory effects; the pid is the service's own process,
            // registered with the reaper and not yet reaped (its exit removes this Live).
            unsafe { libc::kill(self.pid, service.stop.signal.number()) };
        } else {
            self.signal(service.stop.signal.number());
        }
        self.kill_at = Some(self.kill_at.map_or(at, |k| k.min(at)));
    }

    /// Its checks end with it.
    pub fn end_checks(&self) {
        for check in &self.checks {
            check.abort();
        }
    }
}

/// The pids listed in a leaf's `cgroup.procs` (none when it cannot be read).
pub(super) fn leaf_members(procs: Option<&std::path::Path>) -> Vec<i32> {
    procs
        .and_then(|p| crate::process::cgroup::read_kernel_file(p).ok())
        .map(|text| {
            text.lines()
                .filter_map(|l| l.trim().parse::<i32>().ok())
                .filter(|pid| *pid > 0)
                .collect()
        })
        .unwrap_or_default()
}
