//! One start of one service: its files, its cgroup leaf, its process (or its container),
//! then what watches it: a task for its exit, its checks, its `NOTIFY_SOCKET` listener.
//! Every failed path removes the leaf it made and returns the exit code that stands for the
//! failure (for the service's restart policy).

use super::checks::{self, CheckOf};
use super::live::Live;
use super::notify::{self, NotifySocket};
use super::run_loop::{Msg, RunLoop};
use crate::config::typed::Service;
use crate::containers::lifecycle::{Container, ContainerError};
use crate::containers::{BundleInputs, ContainerHost};
use crate::exit;
use crate::process::cgroup::WorkloadCgroup;
use crate::process::reaper::ChildExit;
use crate::process::spawn;
use crate::workload::WorkloadSpec;
use std::borrow::Cow;
use std::os::fd::OwnedFd;
use tokio::sync::oneshot;

/// Why a start failed; each has the exit code the service's restart policy sees (as a boot
/// failure has the code roost ends with). Logged once, by the loop.
#[derive(Debug, thiserror::Error)]
pub(super) enum StartError {
    #[error("its files: {0}")]
    Files(std::io::Error),
    #[error("its output pipe: {0}")]
    Output(std::io::Error),
    #[error("its NOTIFY_SOCKET: {0}")]
    Notify(std::io::Error),
    #[error("{argv:?}: {source}")]
    Spawn {
        argv: Vec<String>,
        source: std::io::Error,
    },
    #[error("{0}")]
    Container(ContainerError),
    #[error("no container runtime was prepared")]
    NoRuntime,
}

impl StartError {
    /// The exit code that stands for it: 126 for what will not pass (files, the program, the
    /// container's bundle or runtime), 75 for what may (no descriptor, `EAGAIN`), 70 for
    /// roost's own fault.
    pub(super) fn code(&self) -> i32 {
        match self {
            StartError::Files(_) => exit::CANNOT_EXECUTE,
            StartError::Output(_) | StartError::Notify(_) => exit::TEMPORARY,
            StartError::Spawn { source, .. } => spawn::spawn_failure_code(source),
            StartError::Container(err) => err.code(),
            StartError::NoRuntime => exit::INTERNAL,
        }
    }
}

/// What a start made run.
struct Launched {
    pid: i32,
    exit: oneshot::Receiver<ChildExit>,
    container: Option<Container>,
    notify: Option<NotifySocket>,
}

impl RunLoop<'_> {
    /// Starts service `i` as start number `generation`.
    pub(super) async fn start(&mut self, i: usize, generation: u64) -> Result<Live, StartError> {
        let service = &self.run.services[i];
        if service.container.is_none() {
            write_files(service, &self.run.specs[i]).map_err(StartError::Files)?;
        }
        let cg = self.make_leaf(service);
        match self.launch(i, generation, &cg).await {
            Ok(launched) => Ok(self.watch(i, generation, cg, launched)),
            Err(err) => {
                tokio::spawn(cg.remove());
                Err(err)
            }
        }
    }

    /// The service's cgroup leaf: `<base>/<base>-<name>` inside the services' group; the
    /// single workload's leaf is `<base>` itself.
    fn make_leaf(&self, service: &Service) -> WorkloadCgroup {
        let name = service.name.as_str();
        let base = &self.leaf_base;
        let path = if self.run.single_leaf() {
            base.clone()
        } else {
            format!("{base}/{base}-{name}")
        };
        let (cg, mut warnings) =
            WorkloadCgroup::create(&path, service.memory_limit_mib, service.pids_max);
        if self.run.single_leaf() {
            if let Some(max) = cg.pids_max() {
                tracing::info!(service = name, "workload pids.max: {max}");
            }
        }
        if let Some(weight) = service.cpu_weight {
            warnings.extend(cg.set_cpu_weight(weight));
        }
        for warning in warnings {
            tracing::warn!(service = name, "{name}: {warning}");
        }
        if !cg.describe().is_empty() {
            tracing::info!(
                service = name,
                "{} cgroup: {}",
                label(service),
                cg.describe()
            );
        }
        cg
    }

    /// The process or the container, its output the service's log.
    async fn launch(
        &self,
        i: usize,
        generation: u64,
        cg: &WorkloadCgroup,
    ) -> Result<Launched, StartError> {
        let service = &self.run.services[i];
        let name = service.name.as_str();
        let output = self.logs[i]
            .write_end
            .try_clone()
            .map_err(StartError::Output)?;
        // systemd's readiness protocol: a socket of this start's own, named in its env, with
        // a random part no other service can guess and take first.
        let notify = if service.notify {
            let prefix = format!("{}-{name}-{generation}", self.leaf_base);
            let sock = NotifySocket::bind_unguessable(&prefix).map_err(StartError::Notify)?;
            Some(sock)
        } else {
            None
        };
        let spec = with_notify_socket(&self.run.specs[i], notify.as_ref());
        let (pid, exit, container) = match (&service.container, self.run.containers) {
            (None, _) => {
                let (pid, exit) = self.spawn_process(service, &spec, output, cg)?;
                (pid, exit, None)
            }
            (Some(_), Some(host)) => {
                let (pid, exit, container) =
                    self.start_container(host, i, &spec, output, cg).await?;
                (pid, exit, Some(container))
            }
            (Some(_), None) => return Err(StartError::NoRuntime),
        };
        log_started(service, &spec, pid, container.is_some());
        Ok(Launched {
            pid,
            exit,
            container,
            notify,
        })
    }

    fn spawn_process(
        &self,
        service: &Service,
        spec: &WorkloadSpec,
        output: OwnedFd,
        cg: &WorkloadCgroup,
    ) -> Result<(i32, oneshot::Receiver<ChildExit>), StartError> {
        let name = service.name.as_str();
        match self.sup.spawn_in_cgroup(spec, output, cg) {
            Ok(started) => {
                if let spawn::Born::InCgroup { v1_joined } = started.born {
                    tracing::info!(
                        service = name,
                        "workload born in its cgroup (clone3 CLONE_INTO_CGROUP): {name}"
                    );
                    if !v1_joined {
                        // Its limits held only from the parent's move, just after its exec.
                        tracing::warn!(
                            service = name,
                            "{name}: the child could not join its cgroup v1 leaves before its exec; roost moved it after"
                        );
                    }
                }
                for warning in started.join_warnings {
                    tracing::warn!(service = name, "{name}: {warning}");
                }
                Ok((started.pid, started.exit_rx))
            }
            Err(source) => Err(StartError::Spawn {
                argv: spec.argv.clone(),
                source,
            }),
        }
    }

    /// A container's start through its lifecycle: create, adopt, start; what was made is
    /// deleted at a failure.
    async fn start_container(
        &self,
        host: &ContainerHost,
        i: usize,
        spec: &WorkloadSpec,
        output: OwnedFd,
        cg: &WorkloadCgroup,
    ) -> Result<(i32, oneshot::Receiver<ChildExit>, Container), StartError> {
        let service = &self.run.services[i];
        let name = service.name.as_str();
        let reaper = &self.sup.reaper;
        let fail = StartError::Container;
        // The service's own v2 leaf on a pure v2 machine; elsewhere the runtime's cgroups get
        // the leaf's name, which no other roost on the host shares (a runtime's default,
        // `:youki:<id>` or `/<id>`, would be shared by every roost with a service of that name).
        let leaf = format!("{}-{name}", self.leaf_base);
        let cgroups_path = Some(cg.v2_path().unwrap_or_else(|| format!("/{leaf}")));
        let inputs = BundleInputs {
            volumes: self.run.volumes,
            volume_dir: &self.run.volume_dir,
            cgroups_path: cgroups_path.as_deref(),
            token_dir: self.run.token_dirs.get(i).and_then(|d| d.as_deref()),
            api_socket: self.run.api_socket.as_deref(),
        };
        let mut container = Container::create(reaper, host, (i, service, spec), &inputs, output)
            .await
            .map_err(fail)?;
        let mut exit = match container.adopt(reaper, cg) {
            Ok((exit, warnings)) => {
                for warning in warnings {
                    tracing::warn!(service = name, "{name}: {warning}");
                }
                exit
            }
            Err(err) => {
                container.delete(reaper, host).await;
                return Err(fail(err));
            }
        };
        match container.start(reaper, host, &mut exit).await {
            Ok(pid) => Ok((pid, exit, container)),
            Err(err) => {
                container.delete(reaper, host).await;
                Err(fail(err))
            }
        }
    }

    /// What watches a started service: a task that sends its exit to the loop, its checks,
    /// its `NOTIFY_SOCKET` listener.
    fn watch(&self, i: usize, generation: u64, cgroup: WorkloadCgroup, launched: Launched) -> Live {
        let Launched {
            pid,
            exit,
            container,
            notify,
        } = launched;
        let service = &self.run.services[i];
        let exit_tx = self.tx.clone();
        tokio::spawn(async move {
            let exit = exit.await.ok();
            let _ = exit_tx.send(Msg::Exited {
                i,
                generation,
                exit,
            });
        });
        let exec_target = container
            .as_ref()
            .zip(self.run.containers)
            .map(|(c, host)| c.exec_target(host));
        let mut checks = checks::spawn_all(
            service,
            CheckOf { i, generation },
            &self.run.specs[i],
            &self.sup.handle(),
            exec_target.as_ref(),
            &self.tx,
        );
        let notify_in_flight = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        if let Some(sock) = notify {
            let ours = if container.is_some() {
                notify::Sender::PidNamespaceOf(pid)
            } else {
                notify::Sender::SessionOf(pid)
            };
            let tx = self.tx.clone();
            // One message in flight at a time, however fast READY=1s come: the loop clears
            // the flag as it takes the message.
            let in_flight = notify_in_flight.clone();
            let ready = move || {
                if !in_flight.swap(true, std::sync::atomic::Ordering::AcqRel) {
                    let _ = tx.send(Msg::Notified { i, generation });
                }
            };
            let listener = notify::listen(sock, service.name.clone(), ours, ready);
            checks.push(tokio::spawn(listener).abort_handle());
        }
        Live {
            cgroup_joins: cgroup.join_files(),
            pid,
            generation,
            cgroup,
            checks,
            trackers: checks::trackers(service),
            kill_at: None,
            started_at_ms: 0,
            notified: false,
            notify_in_flight,
            stop_command: service
                .stop_command
                .clone()
                .map(|argv| super::live::StopCommand {
                    service: service.name.clone(),
                    argv,
                    spec: self.run.specs[i].clone(),
                    handle: self.sup.handle(),
                    target: exec_target.clone(),
                }),
            signal_at: None,
            daemonized: false,
            container,
            exec_target,
        }
    }
}

/// The spec with this start's `NOTIFY_SOCKET` in its env (replacing any the config set).
fn with_notify_socket<'s>(
    spec: &'s WorkloadSpec,
    notify: Option<&NotifySocket>,
) -> Cow<'s, WorkloadSpec> {
    match notify {
        Some(sock) => {
            let mut spec = spec.clone();
            spec.env.set("NOTIFY_SOCKET", &sock.env_value());
            Cow::Owned(spec)
        }
        None => Cow::Borrowed(spec),
    }
}

fn log_started(service: &Service, spec: &WorkloadSpec, pid: i32, container: bool) {
    tracing::info!(
        service = service.name.as_str(),
        pid,
        uid = spec.identity.uid,
        gid = spec.identity.gid,
        container,
        "{} started: pid {pid}, uid {}, gid {}, argv {:?}{}",
        label(service),
        spec.identity.uid,
        spec.identity.gid,
        spec.argv,
        if container {
            " (its container's init)"
        } else {
            ""
        }
    );
}

/// What the log calls a service: its name, or `workload` for the single workload (the
/// words operators and host drivers already grep for).
fn label(service: &Service) -> &str {
    if service.single_workload {
        "workload"
    } else {
        &service.name
    }
}

/// Writes the service's files, owned by its user (parents created, root-owned, 0755).
fn write_files(service: &Service, spec: &WorkloadSpec) -> std::io::Result<()> {
    for file in &service.files {
        crate::workload::files::write_file(&file.path, file, &spec.identity)?;
        if !file.secret {
            tracing::debug!(
                "wrote {} ({} bytes)",
                file.path.display(),
                file.contents.len()
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_start_failure_has_its_code() {
        let io = |errno| std::io::Error::from_raw_os_error(errno);
        assert_eq!(StartError::Files(io(libc::EACCES)).code(), 126);
        assert_eq!(StartError::Output(io(libc::EMFILE)).code(), 75);
        assert_eq!(StartError::Notify(io(libc::EADDRINUSE)).code(), 75);
        let spawn = |errno| StartError::Spawn {
            argv: vec!["/bin/app".into()],
            source: io(errno),
        };
        assert_eq!(spawn(libc::ENOENT).code(), 127);
        assert_eq!(spawn(libc::EAGAIN).code(), 75);
        assert_eq!(spawn(libc::EACCES).code(), 126);
        assert_eq!(StartError::NoRuntime.code(), 70);
        assert_eq!(
            StartError::Container(ContainerError::Init("no pid".into())).code(),
            75
        );
        assert_eq!(
            StartError::Container(ContainerError::Bundle("x".into())).code(),
            126
        );
    }
}
