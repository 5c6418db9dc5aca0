//! PID 1's side of `kind: container` services (docs/containers.md): the images mounted
//! once, each container's bundle (`config.json` from [`bundle`], a root from [`rootfs`]),
//! and the OCI runtime's verbs ([`runtime`], each run to its end by [`verb`]). The runtime is
//! a short-lived child, as containerd runs runc: it is not linked into PID 1. A container's
//! life (create, adopt its init, start, delete) is [`lifecycle`]; it builds on the process
//! layer ([`crate::process`]) only, and the supervisor picks a container or a process per
//! service.

pub mod bundle;
pub mod lifecycle;
pub mod rootfs;
pub mod runtime;
pub mod seccomp_profile;
pub mod verb;

use crate::config::typed::{ImageRoot, Service, Volume};
use crate::config::Validated;
use crate::process::exec::ChildSpec;
use crate::workload::{Identity, WorkloadSpec};
use bundle::{Bind, BundleSpec, Rlimit};
use rootfs::Rootfs;
use runtime::Runtime;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Where bundles, the runtime's state and device images live unless `ROOST_CONTAINER_DIR`
/// (container mode on a shared host) moves them.
pub const DEFAULT_DIR: &str = "/run/roost/containers";

/// The machine's containers: runtime, images, where bundles go.
#[derive(Debug)]
pub struct ContainerHost {
    pub runtime: Runtime,
    /// `<dir>/<service>` is each container's bundle.
    pub dir: PathBuf,
    /// Per service (same order as the config's): its image's lower directory.
    lowers: Vec<Option<PathBuf>>,
    /// roost's own executable, bind-mounted into containers that ask for an init.
    pub roost_exe: PathBuf,
    /// Image devices mounted, unmounted by [`ContainerHost::release`].
    mounted: Vec<PathBuf>,
}

/// Where an exec into a running container goes: the runtime's `exec` of its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecTarget {
    pub runtime: Runtime,
    pub id: String,
}

impl ExecTarget {
    /// The one way into a running container, for the control API's execs and exec checks
    /// alike: the runtime's `exec` runs `command` inside as `identity` in `cwd`; the runtime
    /// itself runs as root in `/` with [`runtime::runtime_env`] (the container's own env
    /// comes from its bundle).
    pub fn exec(&self, identity: &Identity, cwd: &Path, command: &[String]) -> ContainerExec {
        ContainerExec {
            argv: self.runtime.exec_argv(&self.id, identity, cwd, command),
            env: runtime::runtime_env(),
            identity: Identity::root(),
        }
    }
}

/// The runtime's `exec` of a command, ready to start through the one reaper.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerExec {
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub identity: Identity,
}

impl ContainerExec {
    /// The exec command (in `/`, no cgroup to join: the runtime puts the process inside).
    pub fn command(&self, stdio: [std::process::Stdio; 3], tty: bool) -> ChildSpec<'_> {
        let [stdin, stdout, stderr] = stdio;
        ChildSpec {
            argv: &self.argv,
            env: &self.env,
            identity: &self.identity,
            cwd: Path::new("/"),
            stdin,
            stdout,
            stderr,
            cgroup_joins: Vec::new(),
            controlling_tty: tty,
        }
    }
}

/// A container that is there (created, maybe started), for its removal.
#[derive(Debug)]
pub struct LiveContainer {
    pub id: String,
    pub bundle: PathBuf,
    pub rootfs: Rootfs,
}

impl ContainerHost {
    /// Mounts each image once (services with the same image share it) and picks the runtime.
    /// None when no service is a container.
    pub fn prepare(config: &Validated) -> Result<Option<Self>, String> {
        if config.services.iter().all(|s| s.container.is_none()) {
            return Ok(None);
        }
        let dir = std::env::var_os("ROOST_CONTAINER_DIR")
            .map_or_else(|| PathBuf::from(DEFAULT_DIR), PathBuf::from);
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)))
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let exe_path = own_exe_path()?;
        let program = match &config.container_runtime {
            Some(path) => path.clone(),
            None => exe_path.with_file_name("roost-oci"),
        };
        if !program.is_file() {
            return Err(format!(
                "the container runtime {} is not there (ContainerRuntime names another)",
                program.display()
            ));
        }
        let wants_init = config
            .services
            .iter()
            .any(|s| s.container.as_ref().is_some_and(|c| c.init));
        let roost_exe = if wants_init {
            init_binary(&exe_path, &dir)?
        } else {
            exe_path
        };
        let mut host = ContainerHost {
            runtime: Runtime {
                program,
                root: dir.join(".state"),
            },
            lowers: Vec::with_capacity(config.services.len()),
            roost_exe,
            mounted: Vec::new(),
            dir,
        };
        let mut images: Vec<(ImageRoot, PathBuf)> = Vec::new();
        for service in &config.services {
            let Some(container) = &service.container else {
                host.lowers.push(None);
                continue;
            };
            if let Some((_, lower)) = images.iter().find(|(image, _)| *image == container.image) {
                host.lowers.push(Some(lower.clone()));
                continue;
            }
            let mount_point = host.dir.join(".images").join(images.len().to_string());
            let lower = match rootfs::mount_image(&container.image, &mount_point) {
                Ok(lower) => lower,
                Err(err) => {
                    host.release();
                    return Err(format!("service {:?}: {err}", service.name));
                }
            };
            if matches!(container.image, ImageRoot::Device { .. }) {
                host.mounted.push(mount_point);
            }
            tracing::info!(
                service = service.name.as_str(),
                "{}'s image: {}",
                service.name,
                lower.display()
            );
            images.push((container.image.clone(), lower.clone()));
            host.lowers.push(Some(lower));
        }
        Ok(Some(host))
    }

    /// The image root of service `i`, if it is a container.
    pub fn image_root(&self, i: usize) -> Option<&Path> {
        self.lowers.get(i).and_then(|l| l.as_deref())
    }

    pub fn bundle_dir(&self, service: &str) -> PathBuf {
        self.dir.join(service)
    }

    /// Unmounts the image devices (also when dropped).
    pub fn release(&mut self) {
        for path in self.mounted.drain(..).rev() {
            if let Err(err) = nix::mount::umount2(&path, nix::mount::MntFlags::MNT_DETACH) {
                tracing::warn!("cannot unmount the image at {}: {err}", path.display());
            }
        }
    }
}

impl Drop for ContainerHost {
    fn drop(&mut self) {
        self.release();
    }
}

/// Where roost's executable was started from. In a VM that is the initramfs's, gone after
/// the root switch: the kernel then names it `PATH (deleted)`.
fn own_exe_path() -> Result<PathBuf, String> {
    let exe = std::fs::read_link("/proc/self/exe")
        .map_err(|e| format!("cannot find roost's own executable: {e}"))?;
    let text = exe.to_string_lossy();
    Ok(match text.strip_suffix(" (deleted)") {
        Some(path) => PathBuf::from(path),
        None => exe,
    })
}

/// The roost executable the containers with an init bind-mount: the running one's file when
/// it is still there (the same inode as `/proc/self/exe`), else a copy of it under `dir`
/// (after a VM's root switch the initramfs's file is reachable only through
/// `/proc/self/exe`, which a runtime cannot bind-mount as roost's).
fn init_binary(exe_path: &Path, dir: &Path) -> Result<PathBuf, String> {
    use std::os::unix::fs::MetadataExt;
    let running = std::fs::metadata("/proc/self/exe")
        .map_err(|e| format!("cannot stat /proc/self/exe: {e}"))?;
    if let Ok(meta) = std::fs::metadata(exe_path) {
        if meta.dev() == running.dev() && meta.ino() == running.ino() {
            return Ok(exe_path.to_path_buf());
        }
    }
    let copy = dir.join(".init");
    std::fs::create_dir_all(&copy).map_err(|e| format!("cannot create {}: {e}", copy.display()))?;
    let copy = copy.join("roost");
    let _ = std::fs::remove_file(&copy);
    std::fs::copy("/proc/self/exe", &copy)
        .and_then(|_| std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o555)))
        .map_err(|e| {
            format!(
                "cannot copy roost for the containers' init to {}: {e}",
                copy.display()
            )
        })?;
    tracing::info!(
        "roost's executable is gone from its path (the root was switched): the containers' init is a copy at {}",
        copy.display()
    );
    Ok(copy)
}

/// What a bundle is written from, beyond the service and its workload.
#[derive(Debug)]
pub struct BundleInputs<'a> {
    pub volumes: &'a [Volume],
    pub volume_dir: &'a Path,
    /// The container's `cgroupsPath`: the service's cgroup v2 leaf relative to the cgroup2
    /// mount, or a name of the leaf's own on a hybrid host.
    pub cgroups_path: Option<&'a str>,
    /// The directory of the service's OIDC token files, when it asks for a cloud role.
    pub token_dir: Option<&'a Path>,
    /// The `/.fly/api` socket, bound in when the service says `fly_api: true`.
    pub api_socket: Option<&'a Path>,
}

/// Writes service `i`'s bundle: its root (overlay over the image), its files, `config.json`
/// and, with an init, roost's run config; all root-only (0700, 0600), since the config holds
/// the service's env and secrets. Whatever an earlier start left is cleared first.
pub fn write_bundle(
    host: &ContainerHost,
    i: usize,
    service: &Service,
    spec: &WorkloadSpec,
    inputs: &BundleInputs<'_>,
) -> Result<LiveContainer, String> {
    let lower = host
        .image_root(i)
        .ok_or_else(|| format!("{} has no image root", service.name))?;
    let dir = host.bundle_dir(&service.name);
    rootfs::clear_leftovers(&dir);
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot clear {}: {e}", dir.display())),
    }
    std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)))
        .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let rootfs = Rootfs::assemble(lower, &dir).map_err(|e| e.to_string())?;
    let live = LiveContainer {
        id: service.name.clone(),
        bundle: dir.clone(),
        rootfs,
    };
    match fill_bundle(host, service, spec, inputs, &live) {
        Ok(()) => Ok(live),
        Err(err) => {
            remove_bundle(live);
            Err(err)
        }
    }
}

fn fill_bundle(
    host: &ContainerHost,
    service: &Service,
    spec: &WorkloadSpec,
    inputs: &BundleInputs<'_>,
    live: &LiveContainer,
) -> Result<(), String> {
    let dir = &live.bundle;
    let mut binds = Vec::new();
    // The machine's DNS and hosts files, which roost wrote for the shared network.
    for etc in ["/etc/resolv.conf", "/etc/hosts"] {
        if Path::new(etc).is_file() {
            binds.push(Bind {
                source: etc.into(),
                destination: etc.into(),
                readonly: true,
            });
        }
    }
    // The broker's token files, where the env's AWS_WEB_IDENTITY_TOKEN_FILE (and the GCP and
    // Azure variables) name them. The directory, not the files: the broker replaces a file by
    // renaming a new one over it, which a file's bind would not see.
    if let Some(token_dir) = inputs.token_dir {
        if token_dir.is_dir() {
            binds.push(Bind {
                source: token_dir.to_path_buf(),
                destination: token_dir.to_path_buf(),
                readonly: true,
            });
        } else {
            tracing::warn!(
                service = service.name.as_str(),
                "{}'s token directory {} is not there: its SDK finds no token",
                service.name,
                token_dir.display()
            );
        }
    }
    // The API socket only for a service that asks for it (a container's root is uid 0,
    // which the proxy allows): the socket file itself, at its path.
    if service.container.as_ref().is_some_and(|c| c.fly_api) {
        match inputs.api_socket {
            Some(socket) if socket.exists() => binds.push(Bind {
                source: socket.to_path_buf(),
                destination: socket.to_path_buf(),
                readonly: false,
            }),
            _ => tracing::warn!(
                service = service.name.as_str(),
                "{} asks for /.fly/api (fly_api) but no API proxy is running",
                service.name
            ),
        }
    }
    for m in &service.mounts {
        if let Some(volume) = inputs.volumes.get(m.volume) {
            binds.push(Bind {
                source: inputs.volume_dir.join(&volume.name),
                destination: m.path.clone(),
                readonly: false,
            });
        }
    }
    if !service.files.is_empty() {
        let files = dir.join("files");
        std::fs::create_dir(&files)
            .map_err(|e| format!("cannot create {}: {e}", files.display()))?;
        for (j, file) in service.files.iter().enumerate() {
            let source = files.join(j.to_string());
            crate::workload::files::write_file(&source, file, &spec.identity)
                .map_err(|e| format!("cannot write {}: {e}", file.path.display()))?;
            binds.push(Bind {
                source,
                destination: file.path.clone(),
                readonly: false,
            });
        }
    }
    let init = service.container.as_ref().is_some_and(|c| c.init);
    if init {
        let config = dir.join("init.json");
        write_private(&config, &bundle::init_config(service, spec))?;
        binds.push(Bind {
            source: host.roost_exe.clone(),
            destination: bundle::INIT_PATH.into(),
            readonly: true,
        });
        binds.push(Bind {
            source: config,
            destination: bundle::INIT_CONFIG_PATH.into(),
            readonly: true,
        });
    }
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let rlimits: Vec<Rlimit> =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map(|(soft, hard)| {
                vec![Rlimit {
                    name: "RLIMIT_NOFILE",
                    soft,
                    hard,
                }]
            })
            .unwrap_or_default();
    let config = bundle::config_json(&BundleSpec {
        service,
        spec,
        rootfs: &live.rootfs.path,
        hostname: &hostname,
        cgroups_path: inputs.cgroups_path,
        binds: &binds,
        rlimits: &rlimits,
    });
    write_private(&dir.join("config.json"), &config)
}

fn write_private(path: &Path, value: &serde_json::Value) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let text = serde_json::to_vec_pretty(value).map_err(|e| e.to_string())?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(&text))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Unmounts a container's root and removes its bundle (after the runtime's `delete`).
pub fn remove_bundle(live: LiveContainer) {
    live.rootfs.tear_down();
    if let Err(err) = std::fs::remove_dir_all(&live.bundle) {
        if err.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("cannot remove {}: {err}", live.bundle.display());
        }
    }
}

/// The pid the runtime wrote to its pid file: one positive number.
pub fn parse_pid_file(text: &str) -> Option<i32> {
    text.trim().parse::<i32>().ok().filter(|&pid| pid > 1)
}
