//! The config as roost uses it: every value parsed once, by validation, into its type
//! (addresses, prefixes, the upstream URL, the path patterns, signals, durations), with the
//! defaults applied. Nothing downstream parses a config string again.
//!
//! The services are a list: today the one implicit main service built from the image config
//! and the overrides; more services are more entries, not a second path.

use roost_platform::policy::Policy;
use roost_platform::{Token, Upstream};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The name of the implicit main service: today's single workload.
pub const MAIN_SERVICE: &str = "main";

/// A signal number in 1..=64 (SIGRTMAX). Built by validation only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signal(i32);

impl Signal {
    pub const TERM: Signal = Signal(libc::SIGTERM);
    /// systemd's `ReloadSignal=` default.
    pub const HUP: Signal = Signal(libc::SIGHUP);

    /// A signal, if `n` is one (1..=64).
    pub fn new(n: i64) -> Option<Signal> {
        (1..=64).contains(&n).then_some(Signal(n as i32))
    }

    pub fn number(self) -> i32 {
        self.0
    }
}

/// How a service is stopped: its signal, then SIGKILL after the timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stop {
    pub signal: Signal,
    pub timeout: Duration,
    /// The signal to the service's own process only, not its process group (a process
    /// that passes it on to its children itself, such as `bun run dev`); SIGKILL at the
    /// timeout still goes to the whole group.
    pub parent_only: bool,
}

/// What a service runs: an image config and its overrides, resolved against the image's own
/// `/etc/passwd` and `/etc/group` by [`crate::workload`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Process {
    pub image_config: super::ImageConfig,
    pub exec_override: Option<Vec<String>>,
    pub cmd_override: Option<String>,
    pub user_override: Option<String>,
    pub extra_env: std::collections::BTreeMap<String, String>,
    /// Variables from the machine's secrets, after `extra_env` (kept apart so no Debug of
    /// the config shows a value).
    pub secret_env: std::collections::BTreeMap<String, Token>,
}

/// One supervised service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// `main` for the implicit service of the image config.
    pub name: String,
    pub process: Process,
    pub stop: Stop,
    /// Its cgroup's `memory.max`, in MiB.
    pub memory_limit_mib: Option<u64>,
    /// Its cgroup's `pids.max`; None: the default reserve rule.
    pub pids_max: Option<u64>,
    /// Its cgroup's `cpu.weight` (1..=10000).
    pub cpu_weight: Option<u64>,
    /// What must hold before it starts (indices into the service list).
    pub depends_on: Vec<Dependency>,
    pub restart: Restart,
    pub healthchecks: Vec<HealthCheck>,
    pub on_exit: OnExit,
    /// Exit codes that count as success.
    pub success_exit_codes: Vec<i32>,
    /// The line `log_ready` dependents wait for.
    pub ready_log_line: Option<String>,
    /// Whether it gets a `NOTIFY_SOCKET` (systemd's protocol; `READY=1` makes it ready).
    pub notify: bool,
    /// Written before it starts.
    pub files: Vec<ServiceFile>,
    /// Volumes mounted before it starts.
    pub mounts: Vec<ServiceMount>,
    /// `kind: container`: a root of its own from an image, run by the OCI runtime.
    pub container: Option<ContainerSpec>,
    /// What runs before a snapshot and after a restore (docs/snapshots.md).
    pub snapshot: SnapshotHooks,
    /// `start: manual`: not started with the machine, only when asked.
    pub manual_start: bool,
    /// `daemon`: its command forks and exits 0; the service lives while its leaf has
    /// processes, and its signals go to every process of the leaf.
    pub daemon: bool,
    /// `stop.command`: run as the service to stop it; its signal follows only if it is still
    /// running `stop.timeout` later (then SIGKILL after another `stop.timeout`).
    pub stop_command: Option<Vec<String>>,
    /// The single workload of a config without `Containers`: it is the machine. Its output
    /// goes to the console as written (no name prefix, no line cut), a stop of it is the
    /// machine's stop, and nothing starts it again (docs/services.md, "One road").
    pub single_workload: bool,
}

/// A service's snapshot hooks: `before` runs in reverse dependency order before the VM is
/// snapshotted, `after` in dependency order once it is restored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SnapshotHooks {
    pub before: Option<Hook>,
    pub after: Option<Hook>,
}

/// One snapshot hook and its bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub action: HookAction,
    pub timeout: std::time::Duration,
}

/// What a hook does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HookAction {
    /// A command run as the service, in its cgroup (in its container for a container); it
    /// succeeds by exiting 0.
    Exec(Vec<String>),
    /// A signal to the service's process group; it succeeds once sent.
    Signal(Signal),
    /// `POST http://127.0.0.1:PORT/PATH`; it succeeds on a 2xx answer.
    Http { port: u16, path: String },
    /// The signal, then `READY=1` from the service on its `NOTIFY_SOCKET` (systemd's
    /// `Type=notify-reload` exchange); it succeeds when that comes within the timeout.
    Notify(Signal),
}

/// What a `kind: container` service runs in (docs/containers.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerSpec {
    pub image: ImageRoot,
    /// roost itself (bind-mounted read-only, in container mode) is the container's PID 1,
    /// as `docker run --init` does, so zombies inside are reaped and the stop signal is
    /// handled even when the workload ignores it.
    pub init: bool,
    /// Docker's default seccomp profile in the bundle (true unless `seccomp: unconfined`).
    pub seccomp: bool,
    /// `/.fly/api` is bound into the container (`fly_api: true`).
    pub fly_api: bool,
}

/// Where an image's root filesystem comes from; always mounted read-only, under a
/// writable layer of each container's own.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ImageRoot {
    /// A directory that already holds the image's root.
    Directory(PathBuf),
    /// A block device holding an ext4, erofs or squashfs file system.
    Device { path: PathBuf, fstype: String },
}

impl Service {
    /// The implicit main service: today's single workload, which neither restarts nor waits.
    pub fn single(name: &str, process: Process, stop: Stop) -> Self {
        Service {
            name: name.to_string(),
            process,
            stop,
            memory_limit_mib: None,
            pids_max: None,
            cpu_weight: None,
            depends_on: Vec::new(),
            restart: Restart::never(),
            healthchecks: Vec::new(),
            on_exit: OnExit::StopMachine,
            success_exit_codes: vec![0],
            ready_log_line: None,
            notify: false,
            files: Vec::new(),
            mounts: Vec::new(),
            container: None,
            snapshot: SnapshotHooks::default(),
            stop_command: None,
            manual_start: false,
            daemon: false,
            single_workload: true,
        }
    }

    /// Whether `code` (an exit code, or 128 + a signal) counts as success.
    pub fn succeeded(&self, code: i32) -> bool {
        self.success_exit_codes.contains(&code)
    }
}

/// What a dependent waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Condition {
    /// The target's exec succeeded.
    Started,
    /// The target passed its readiness checks `success_threshold` times in a row.
    Healthy,
    /// The target exited with a success code.
    ExitedSuccessfully,
    /// roost's extension: the target exited, with any code.
    Completed,
    /// roost's extension: the target printed its `ready_log_line`.
    LogReady,
}

impl Condition {
    pub fn name(self) -> &'static str {
        match self {
            Condition::Started => "started",
            Condition::Healthy => "healthy",
            Condition::ExitedSuccessfully => "exited_successfully",
            Condition::Completed => "completed",
            Condition::LogReady => "log_ready",
        }
    }
}

/// One edge of the dependency graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    /// The target's index in the service list.
    pub on: usize,
    pub condition: Condition,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    No,
    Always,
    OnFailure,
}

/// When a service is started again after it exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restart {
    pub policy: RestartPolicy,
    /// Restarts allowed within `window`; one more exit is final.
    pub max_retries: u32,
    /// The first delay; each restart in a row doubles it, up to `max_backoff`.
    pub backoff: Duration,
    pub max_backoff: Duration,
    pub window: Duration,
    /// `max_retries` was given, below the most there is: the restarts end, so a dependent
    /// may wait for the last exit.
    pub limited: bool,
}

impl Restart {
    pub fn never() -> Self {
        Restart {
            policy: RestartPolicy::No,
            max_retries: 0,
            backoff: defaults::RESTART_BACKOFF,
            max_backoff: defaults::RESTART_MAX_BACKOFF,
            window: defaults::RESTART_WINDOW,
            limited: true,
        }
    }
}

/// What a service's final exit does to the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnExit {
    StopMachine,
    StopMachineOnFailure,
    /// Only a skip (what it waits for cannot hold) ends the machine, with code 1
    /// (process-compose's `exit_on_skipped`).
    StopMachineOnSkip,
    Ignore,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckKind {
    Readiness,
    Liveness,
}

/// How a check probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// Runs as the service's user, with its env and directory; success is exit 0.
    Exec { command: Vec<String> },
    /// A connect to 127.0.0.1:port.
    Tcp { port: u16 },
    /// A request to 127.0.0.1:port; 2xx and 3xx pass.
    Http {
        port: u16,
        method: String,
        path: String,
        headers: Vec<(String, String)>,
        https: bool,
        tls_skip_verify: bool,
        tls_server_name: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    pub name: String,
    pub kind: CheckKind,
    /// Stop the service (then its restart policy applies) after `failure_threshold` failures.
    pub stop_when_unhealthy: bool,
    pub grace_period: Duration,
    pub interval: Duration,
    pub timeout: Duration,
    pub success_threshold: u32,
    pub failure_threshold: u32,
    pub probe: Probe,
}

/// A file written before the service starts, owned by the service's user.
#[derive(Clone, PartialEq, Eq)]
pub struct ServiceFile {
    pub path: PathBuf,
    pub contents: Vec<u8>,
    pub mode: u32,
    /// From a secret: never in a log.
    pub secret: bool,
}

impl std::fmt::Debug for ServiceFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceFile")
            .field("path", &self.path)
            .field("bytes", &self.contents.len())
            .field("mode", &format_args!("{:o}", self.mode))
            .finish()
    }
}

/// A volume mounted at `path` for a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceMount {
    pub volume: usize,
    pub path: PathBuf,
}

/// One entry of `Volumes`: an ephemeral directory, on disk or in memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Volume {
    pub name: String,
    pub memory: bool,
    pub size_mb: Option<u64>,
}

/// Where signals sent to PID 1 go when several services run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignalTarget {
    /// The first service of `Containers`.
    #[default]
    Main,
    All,
}

/// One address of the interface, with its prefix length and gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Address {
    pub ip: IpAddr,
    pub prefix: u8,
    pub gateway: Option<IpAddr>,
}

/// One `/etc/hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    pub ip: IpAddr,
    pub host: String,
    pub desc: Option<String>,
}

/// The VM's network and name resolution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Network {
    pub mtu: Option<u32>,
    pub addresses: Vec<Address>,
    /// None: `/etc/resolv.conf` is left as the image has it.
    pub nameservers: Option<Vec<IpAddr>>,
    pub hosts: Vec<HostEntry>,
}

/// The `/.fly/api` proxy and the platform behind it.
#[derive(Debug, Clone)]
pub struct Api {
    pub upstream: Upstream,
    pub token: Token,
    pub scheme: String,
    pub ca_file: Option<PathBuf>,
    pub socket_path: PathBuf,
    pub allow_uids: Vec<u32>,
    pub allow_gids: Vec<u32>,
    /// The allow-list, bound to this app and machine.
    pub policy: Policy,
    pub attenuate: bool,
    pub max_body_bytes: u64,
    pub request_timeout: Duration,
    pub max_concurrent: usize,
}

/// Who the machine is, as the platform named it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Machine {
    /// `MachineId`: the proxy's and the broker's machine, and the host name's fallback.
    pub id: Option<String>,
    /// `AppName`: the proxy's app.
    pub app_name: Option<String>,
    /// `Hostname` (checked as a host name).
    pub hostname: Option<String>,
    /// `KillTimeout`: the bound of the whole machine's stop.
    pub kill_timeout: Duration,
}

impl Machine {
    /// The host name the VM takes: `Hostname`, else the machine's id.
    pub fn vm_hostname(&self) -> Option<&str> {
        self.hostname.as_deref().or(self.id.as_deref())
    }
}

/// What only a VM does with the config: its root device, its disks, MMDS after the boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vm {
    /// `RootDevice` (default `/dev/vda`).
    pub root_device: PathBuf,
    /// `Mounts`: block devices mounted before the workload starts.
    pub disks: Vec<Disk>,
    /// `Mmds.AfterBoot`: whether the workload may still reach MMDS.
    pub mmds_reachable_after_boot: bool,
    /// `Mmds.OnRestore: "reread"`: a restore noticed without the host's call reads MMDS
    /// again and takes the identity there (a clone's), as `restored` with `clone` does.
    pub reread_identity_on_unannounced_restore: bool,
}

/// One of `Mounts`: a block device and where it goes (both absolute).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disk {
    pub device: PathBuf,
    pub mount_path: PathBuf,
}

/// The host control API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    pub vsock_port: Option<u32>,
    pub exit_report_port: Option<u32>,
    pub exit_report_socket: Option<PathBuf>,
    /// How long the API stays up after the exit.
    pub linger: Duration,
    pub allow_cids: Vec<u32>,
    /// Which host driver's forms `/v1` answers in.
    pub dialect: roost_control_protocol::Dialect,
}

/// The OIDC broker (it runs when a workload's env asks for a cloud's token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Oidc {
    pub token_path: PathBuf,
    pub boot_wait: Duration,
    pub group_readable: bool,
}

/// Defaults of the typed values.
pub mod defaults {
    use std::time::Duration;

    /// The control API stays up this long after the exit, in both modes, so a host can still
    /// ask for the exit code (a stop signal ends it early).
    pub const LINGER: Duration = Duration::from_secs(2);
    /// The wait for the first identity token at boot.
    pub const BOOT_WAIT: Duration = Duration::from_secs(10);
    pub const TOKEN_SCHEME: &str = "FlyV1";
    pub const MAX_BODY_BYTES: u64 = 1024 * 1024;
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
    pub const MAX_CONCURRENT: usize = 64;
    /// Where the `/.fly/api` socket is.
    pub const API_SOCKET: &str = "/.fly/api";
    /// Where the identity token is written.
    pub const TOKEN_PATH: &str = broker::DEFAULT_TOKEN_PATH;
    /// Restarts (Fly's machine restart default: on-failure, 10 in 5 minutes; s6's 1 s floor,
    /// doubling as Kubernetes and systemd's RestartSteps do, to a 30 s cap).
    pub const RESTART_MAX_RETRIES: u32 = 10;
    pub const RESTART_BACKOFF: Duration = Duration::from_secs(1);
    pub const RESTART_MAX_BACKOFF: Duration = Duration::from_secs(30);
    pub const RESTART_WINDOW: Duration = Duration::from_secs(300);
    /// A run this long resets the backoff to its first delay.
    pub const RESTART_RESET_AFTER: Duration = Duration::from_secs(60);
    /// Health checks (Kubernetes' defaults: Fly publishes none).
    pub const CHECK_INTERVAL: Duration = Duration::from_secs(10);
    pub const CHECK_TIMEOUT: Duration = Duration::from_secs(1);
    pub const CHECK_SUCCESS_THRESHOLD: u32 = 1;
    pub const CHECK_FAILURE_THRESHOLD: u32 = 3;
    /// A service's stop timeout (supervisord's and process-compose's 10 s).
    pub const SERVICE_STOP_TIMEOUT: Duration = Duration::from_secs(10);
}
