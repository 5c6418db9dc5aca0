//! One container's life, the runtime's verbs in order: [`Container::create`] (its bundle,
//! then `create`: the init waits, its stdio the service's log), [`Container::adopt`] (the
//! init's pid registered with the one reaper and moved into the service's cgroup),
//! [`Container::start`], and [`Container::delete`] once the init has exited. A failure at any
//! step leaves the container in a status [`Container::delete`] cleans up from.

use super::runtime::{self, RuntimeError};
use super::{verb, BundleInputs, ContainerHost, ExecTarget, LiveContainer};
use crate::config::typed::Service;
use crate::process::cgroup::WorkloadCgroup;
use crate::process::reaper::{ChildExit, Reaper};
use crate::workload::WorkloadSpec;
use std::time::Duration;
use tokio::sync::oneshot;

/// Where a container is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Its bundle is written and the runtime's `create` ran: the init waits to be started.
    Created,
    /// The init is registered with the reaper and in the service's cgroup.
    Adopted { pid: i32 },
    /// `start` ran: the workload runs.
    Running { pid: i32 },
}

/// Why a step failed, and the exit code that stands for it (for the service's restart
/// policy, as a process's spawn failure does).
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error("its bundle: {0}")]
    Bundle(String),
    /// The runtime's own words are in the service's log (the init's stdio).
    #[error("{0} (the runtime's own words are in the service's log)")]
    Create(RuntimeError),
    #[error("its container's init: {0}")]
    Init(String),
    #[error("{0}")]
    Start(RuntimeError),
}

impl ContainerError {
    /// The exit code the service's policy sees.
    pub fn code(&self) -> i32 {
        match self {
            ContainerError::Init(_) => crate::exit::TEMPORARY,
            ContainerError::Bundle(_) | ContainerError::Create(_) | ContainerError::Start(_) => {
                crate::exit::CANNOT_EXECUTE
            }
        }
    }
}

/// A container of one service's start.
#[derive(Debug)]
pub struct Container {
    live: LiveContainer,
    status: Status,
}

impl Container {
    /// Writes the bundle of `service` (the `i`th) and runs the runtime's `create`, the init's
    /// stdio `output`. A container of this id that an earlier roost left (killed mid-stop)
    /// is deleted first.
    pub async fn create(
        reaper: &Reaper,
        host: &ContainerHost,
        (i, service, spec): (usize, &Service, &WorkloadSpec),
        inputs: &BundleInputs<'_>,
        output: std::os::fd::OwnedFd,
    ) -> Result<Container, ContainerError> {
        let name = service.name.as_str();
        if host.runtime.root.join(name).exists() {
            let stale = host.runtime.delete_argv(name);
            let _ = verb::run_verb(reaper, &stale, None, runtime::VERB_TIMEOUT).await;
        }
        let live =
            super::write_bundle(host, i, service, spec, inputs).map_err(ContainerError::Bundle)?;
        let container = Container {
            live,
            status: Status::Created,
        };
        let create = host.runtime.create_argv(
            &container.live.id,
            &container.live.bundle,
            &container.pid_file(),
        );
        match verb::run_verb(reaper, &create, Some(output), runtime::CREATE_TIMEOUT).await {
            Ok(()) => Ok(container),
            Err(err) => {
                container.delete(reaper, host).await;
                Err(ContainerError::Create(err))
            }
        }
    }

    /// Registers the waiting init with the one reaper and moves it into `cgroup` (warnings
    /// for the log come back with its exit's receiver).
    pub fn adopt(
        &mut self,
        reaper: &Reaper,
        cgroup: &WorkloadCgroup,
    ) -> Result<(oneshot::Receiver<ChildExit>, Vec<String>), ContainerError> {
        let pid_file = self.pid_file();
        let pid = std::fs::read_to_string(&pid_file)
            .ok()
            .and_then(|text| super::parse_pid_file(&text))
            .ok_or_else(|| ContainerError::Init(format!("no pid in {}", pid_file.display())))?;
        let exit = reaper
            .adopt(pid)
            .map_err(|e| ContainerError::Init(e.to_string()))?;
        self.status = Status::Adopted { pid };
        Ok((exit, cgroup.join(pid)))
    }

    /// The runtime's `start`. On failure the adopted init is killed and waited for (5 s at
    /// most) through `exit`, which is then spent.
    pub async fn start(
        &mut self,
        reaper: &Reaper,
        host: &ContainerHost,
        exit: &mut oneshot::Receiver<ChildExit>,
    ) -> Result<i32, ContainerError> {
        let Status::Adopted { pid } = self.status else {
            return Err(ContainerError::Init("not adopted".into()));
        };
        let start = host.runtime.start_argv(&self.live.id);
        match verb::run_verb(reaper, &start, None, runtime::VERB_TIMEOUT).await {
            Ok(()) => {
                self.status = Status::Running { pid };
                Ok(pid)
            }
            Err(err) => {
                // SAFETY: kill(2) has no memory effects; the pid is the adopted, unreaped init.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                let _ = tokio::time::timeout(Duration::from_secs(5), exit).await;
                Err(ContainerError::Start(err))
            }
        }
    }

    /// Where it is in its life.
    pub fn status(&self) -> Status {
        self.status
    }

    /// Where an exec into it goes.
    pub fn exec_target(&self, host: &ContainerHost) -> ExecTarget {
        ExecTarget {
            runtime: host.runtime.clone(),
            id: self.live.id.clone(),
        }
    }

    /// The runtime's `delete` (its init has exited, or never started), then its root and
    /// bundle.
    pub async fn delete(self, reaper: &Reaper, host: &ContainerHost) {
        let delete = host.runtime.delete_argv(&self.live.id);
        if let Err(err) = verb::run_verb(reaper, &delete, None, runtime::VERB_TIMEOUT).await {
            tracing::warn!("cannot delete the container {}: {err}", self.live.id);
        }
        super::remove_bundle(self.live);
    }

    fn pid_file(&self) -> std::path::PathBuf {
        self.live.bundle.join("init.pid")
    }
}
