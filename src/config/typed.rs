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
}
