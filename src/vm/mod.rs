//! roost as PID 1 of a Firecracker VM: `roost` with no arguments, run by the kernel (or by a
//! tiny initramfs `/init` that loads modules first).
//!
//! Boot, each step logged with its duration and classified fatal or best-effort: devtmpfs,
//! /proc, /sys and the console; Ctrl-Alt-Del turned into SIGINT; the control API on vsock;
//! the config from MMDS (or the file in the initramfs); the switch to the root device; the
//! system mounts; rlimits; host name, /etc/hosts, /etc/resolv.conf; the network; volumes;
//! then the workload as in container mode. Shutdown: the graceful stop, the exit report,
//! volumes unmounted in reverse, `/` read-only, sync, reboot (Firecracker with `reboot=k`
//! exits on it). A boot failure is reported the same way; it never becomes a kernel panic.

pub mod clone;
pub mod cmdline;
pub mod etc;
pub mod mmds;
pub mod mounts;

use crate::boot::{self, Mode};
use crate::config::{self, Validated};
use crate::control::report::ReportTarget;
use crate::control::{self, ControlServer, ControlState, Listen};
use crate::exit::{self, BootFailure};
use crate::supervisor::CriticalTasks;
use cmdline::BootOptions;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The control API's default vsock port.
pub const DEFAULT_VSOCK_PORT: u32 = 10000;
/// Files descriptors a workload may open (Fly's default).
const NOFILE: u64 = 10_240;

/// Runs the VM's whole life. Returns only if the reboot itself fails.
pub fn main() -> i32 {
    let started = Instant::now();
    let mut early_failure = None;
    for step in mounts::early_mounts() {
        if let Err(e) = mounts::perform(&step) {
            if step.fatal && early_failure.is_none() {
                early_failure = Some(e);
            }
        }
    }
    attach_console();
    crate::logging::attach_console(std::path::Path::new("/dev/console"));
    // Ctrl-Alt-Del becomes SIGINT to PID 1 (a graceful stop) instead of an instant reset.
    if let Err(e) = nix::sys::reboot::set_cad_enabled(false) {
        tracing::warn!("cannot disable Ctrl-Alt-Del: {e}");
    }
    tracing::info!(
        "roost {} is PID 1 of the VM ({:.1} ms after exec)",
        env!("CARGO_PKG_VERSION"),
        started.elapsed().as_secs_f64() * 1e3
    );
    let opts = cmdline::parse(&std::fs::read_to_string("/proc/cmdline").unwrap_or_default());
    let power_off = opts.power_off;
    boot::run_to_end(
        VmMode {
            opts,
            early_failure,
            volumes: Vec::new(),
        },
        started,
    );
    end(power_off)
}

/// The console on fds 0, 1 and 2, whatever the kernel handed over.
fn attach_console() {
    use std::os::fd::AsRawFd;
    if let Ok(console) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags_noctty()
        .open("/dev/console")
    {
        for fd in 0..3 {
            // SAFETY: dup2 onto the standard descriptors with a valid open descriptor.
            unsafe { libc::dup2(console.as_raw_fd(), fd) };
        }
    }
}

trait NoCtty {
    fn custom_flags_noctty(&mut self) -> &mut Self;
}

impl NoCtty for std::fs::OpenOptions {
    fn custom_flags_noctty(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NOCTTY)
    }
}

/// The VM's end: sync, then reboot (Firecracker with `reboot=k` exits on it) or power off.
fn end(power_off: bool) -> i32 {
    crate::logging::flush(Duration::from_secs(2));
    nix::unistd::sync();
    let mode = if power_off {
        nix::sys::reboot::RebootMode::RB_POWER_OFF
    } else {
        nix::sys::reboot::RebootMode::RB_AUTOBOOT
    };
    match nix::sys::reboot::reboot(mode) {
        Ok(never) => match never {},
        Err(e) => {
            eprintln!("roost: reboot failed: {e}");
            exit::INTERNAL
        }
    }
}

/// Runs `f` as the boot phase `name` (logged with its duration by the state); returns its
/// result.
fn step<T>(state: &ControlState, name: &'static str, f: impl FnOnce() -> T) -> T {
    let out = f();
    state.phase(name);
    out
}

/// What VM mode adds to the one sequence.
struct VmMode {
    opts: BootOptions,
    /// A fatal early mount (devtmpfs, /proc, /sys) that failed before anything could log it.
    early_failure: Option<mounts::MountError>,
    /// Mounted volumes, unmounted in reverse at the end.
    volumes: Vec<PathBuf>,
}

impl Mode for VmMode {
    const NAME: &'static str = "vm";

    fn sigint_stops(&self) -> bool {
        true
    }

    fn early_control(&self, state: &ControlState, critical: &CriticalTasks) -> Vec<ControlServer> {
        let listen = Listen::Vsock {
            port: DEFAULT_VSOCK_PORT,
            allow_cids: Vec::new(),
        };
        let servers = match control::server::start(state.clone(), listen, critical) {
            Ok(server) => vec![server],
            Err(e) => {
                tracing::error!("control API on vsock port {DEFAULT_VSOCK_PORT}: {e}");
                Vec::new()
            }
        };
        state.phase("control_api");
        servers
    }

    async fn load_config(&mut self, state: &ControlState) -> Result<Validated, BootFailure> {
        if let Some(e) = &self.early_failure {
            return Err(BootFailure::Internal(format!("boot failed: {e}")));
        }
        if !self.opts.unknown.is_empty() {
            tracing::warn!(
                "unknown roost options on the kernel command line: {:?}",
                self.opts.unknown
            );
        }
        load_config(&self.opts, state).await
    }

    fn configure_control(
        &self,
        config: &Validated,
        state: &ControlState,
        critical: &CriticalTasks,
        servers: &mut Vec<ControlServer>,
    ) {
        let control = &config.control;
        // A clone reads its own identity where the original read its config.
        if self.opts.mmds {
            state.set_reidentify(
                clone::reidentify(
                    self.opts.iface.clone(),
                    self.opts.mmds_wait,
                    config.network.clone(),
                ),
                config.vm.reread_identity_on_unannounced_restore,
            );
        }
        // A restore the host does not announce still gets what needs no host data.
        control::restore_watch::watch_restores(
            state.clone(),
            PathBuf::from("/dev/kmsg"),
            PathBuf::from(crate::snapshot::vmclock::DEVICE),
        );
        // The default listener started before the config: it learns Control.AllowCids now.
        for server in servers.iter() {
            server.set_allow_cids(control.allow_cids.clone());
        }
        if let Some(port) = control.vsock_port.filter(|p| *p != DEFAULT_VSOCK_PORT) {
            // A host that asked for another port gets it too (the default stays up). Every
            // server's handle is kept: dropping one ends its accept loop.
            let listen = Listen::Vsock {
                port,
                allow_cids: control.allow_cids.clone(),
            };
            match control::server::start(state.clone(), listen, critical) {
                Ok(server) => servers.push(server),
                Err(e) => tracing::error!("control API on vsock port {port}: {e}"),
            }
        }
    }

    async fn prepare(
        &mut self,
        config: &Validated,
        state: &ControlState,
    ) -> Result<(), BootFailure> {
        let root = config.vm.root_device.clone();
        step(state, "root", || {
            if root.exists() {
                let fs = mounts::switch_root(&root).map_err(|e| {
                    BootFailure::Internal(format!("cannot switch to the root device: {e}"))
                })?;
                tracing::info!("root: {} ({fs})", root.display());
            } else {
                tracing::info!(
                    "no {}: the workload runs from the initramfs",
                    root.display()
                );
            }
            Ok::<(), BootFailure>(())
        })?;
        step(state, "mounts", || {
            for m in mounts::system_mounts() {
                if let Err(e) = mounts::perform(&m) {
                    if m.fatal {
                        return Err(BootFailure::Internal(e.to_string()));
                    }
                    tracing::warn!("{e} (best effort, boot goes on)");
                }
            }
            Ok(())
        })?;
        step(state, "rlimits", || {
            use nix::sys::resource::{getrlimit, setrlimit, Resource};
            let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((1024, 1024));
            let limit = hard.max(NOFILE);
            if let Err(e) = setrlimit(Resource::RLIMIT_NOFILE, limit, limit) {
                tracing::warn!("RLIMIT_NOFILE: {e}");
            }
        });
        let hostname = config.machine.vm_hostname().map(str::to_string);
        step(state, "etc", || {
            if let Some(name) = &hostname {
                if let Err(e) = nix::unistd::sethostname(name) {
                    tracing::warn!("hostname: {e}");
                }
            }
            let hosts = Path::new("/etc/hosts");
            let old = std::fs::read_to_string(hosts).unwrap_or_default();
            if let Err(e) = etc::write_atomic(
                hosts,
                &etc::render_hosts(&old, hostname.as_deref(), &config.network),
            ) {
                tracing::warn!("/etc/hosts: {e}");
            }
            if let Some(resolv) = etc::render_resolv(&config.network) {
                if let Err(e) = etc::write_atomic(Path::new("/etc/resolv.conf"), &resolv) {
                    tracing::warn!("/etc/resolv.conf: {e}");
                }
            }
        });
        let iface = self.opts.iface.clone().unwrap_or_else(|| "eth0".into());
        if let Err(e) = crate::net::configure(&iface, &config.network).await {
            // A VM without its network can still run (and report); Fly's init and pigeon-init
            // panic here.
            tracing::error!("network: {e}");
        }
        // Containers share this network without CAP_NET_RAW: ICMP echo through datagram
        // sockets for every group, as systemd's default sysctl and Docker (per container)
        // set it, so iputils' ping works in them.
        if let Err(e) = std::fs::write(PING_GROUP_RANGE, "0 2147483647") {
            tracing::warn!("cannot set {PING_GROUP_RANGE}: {e}");
        }
        state.phase("network");
        Ok(())
    }

    fn before_services(
        &mut self,
        config: &Validated,
        owner: &crate::workload::Identity,
        state: &ControlState,
    ) {
        self.volumes = step(state, "volumes", || {
            mounts::mount_volumes(&config.vm.disks, owner.uid, owner.gid)
        });
    }

    fn report_target(&self, config: &Validated) -> Option<ReportTarget> {
        let port = config.control.exit_report_port?;
        Some(ReportTarget::Vsock { port })
    }

    async fn teardown(self) {
        mounts::unmount_volumes(&self.volumes).await;
        mounts::remount_root_readonly();
    }
}

/// Which groups may open ICMP datagram sockets (`ping` without CAP_NET_RAW).
const PING_GROUP_RANGE: &str = "/proc/sys/net/ipv4/ping_group_range";

/// The config from MMDS (unless turned off), else from the file. Either way the file is then
/// removed (it may hold the macaroon, and without a root device it stays visible to the
/// workload) and, with `Mmds.AfterBoot: block`, MMDS is made unreachable, also after a
/// fallback to the file (a late-populated MMDS would otherwise be readable by every process).
async fn load_config(opts: &BootOptions, state: &ControlState) -> Result<Validated, BootFailure> {
    let mut loaded = None;
    if opts.mmds {
        match config_from_mmds(opts).await {
            Ok(config) => {
                state.set_config_source("mmds", true);
                loaded = Some(config);
            }
            Err(e) => tracing::warn!(
                "no config from MMDS ({e}); trying {}",
                opts.config_file.display()
            ),
        }
    }
    let config = match loaded {
        Some(config) => config,
        None => {
            let config = config::load_file(&opts.config_file)
                .map_err(|e| BootFailure::Config(e.to_string()));
            state.set_config_source("file", false);
            config?
        }
    };
    remove_config_file(&opts.config_file);
    if !config.vm.mmds_reachable_after_boot {
        mmds::block_after_boot().await;
    }
    Ok(config)
}

/// Removes the config file; when it cannot be removed (a read-only root), makes it root's
/// and unreadable. Says so when neither works.
fn remove_config_file(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::remove_file(path) {
        Ok(()) => tracing::info!("{} removed (it may hold the token)", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            let locked = std::os::unix::fs::chown(path, Some(0), Some(0)).and_then(|()| {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o000))
            });
            match locked {
                Ok(()) => tracing::warn!(
                    "cannot remove {} ({e}): it is now root's and mode 0000",
                    path.display()
                ),
                Err(e2) => tracing::error!(
                    "cannot remove {} ({e}) nor lock it ({e2}): other processes may read the token",
                    path.display()
                ),
            }
        }
    }
}

/// Why no config came from MMDS (the boot then tries the file).
#[derive(Debug, thiserror::Error)]
enum FromMmds {
    #[error(transparent)]
    Fetch(#[from] mmds::FetchError),
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("the document: {0}")]
    Document(#[from] serde_json::Error),
}

/// The config from MMDS: the document fetched over a temporary route, then validated.
async fn config_from_mmds(opts: &BootOptions) -> Result<Validated, FromMmds> {
    let document = mmds::fetch_over_link_local(opts.iface.as_deref(), opts.mmds_wait).await?;
    let bytes = serde_json::to_vec(&document)?;
    Ok(config::parse(&bytes)?)
}
