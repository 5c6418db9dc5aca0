//! The serde shape of the run config (docs/run-config.md). Field names are the wire contract.

use roost_platform::Token;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

/// `null` means "absent" for every collection: Go host drivers marshal empty slices as `null`.
fn nullable<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

/// The whole run config document.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct RunConfig {
    #[serde(deserialize_with = "nullable")]
    pub image_config: ImageConfig,
    pub exec_override: Option<Vec<String>>,
    pub cmd_override: Option<String>,
    pub user_override: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub extra_env: BTreeMap<String, String>,

    #[serde(rename = "MTU")]
    pub mtu: Option<u32>,
    #[serde(rename = "IPConfigs", deserialize_with = "nullable")]
    pub ip_configs: Vec<IpConfig>,
    pub hostname: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub mounts: Vec<MountSpec>,
    pub root_device: Option<String>,
    pub etc_resolv: Option<EtcResolv>,
    #[serde(deserialize_with = "nullable")]
    pub etc_hosts: Vec<EtcHost>,

    pub machine_id: Option<String>,
    pub app_name: Option<String>,
    pub kill_signal: Option<SignalSpec>,
    pub kill_timeout: Option<u64>,
    /// roost extension: memory limit of the workload's cgroup, so an OOM takes the workload,
    /// not PID 1.
    #[serde(rename = "MemoryLimitMiB")]
    pub memory_limit_mib: Option<u64>,
    /// roost extension: `pids.max` of the workload's cgroup, so a fork bomb cannot take the
    /// pids PID 1 needs. Default: the pids available to roost less a reserve.
    pub pids_max: Option<u64>,
    pub api: Option<ApiConfig>,
    pub oidc: Option<OidcConfig>,
    #[serde(deserialize_with = "nullable")]
    pub control: ControlConfig,
    #[serde(deserialize_with = "nullable")]
    pub mmds: MmdsConfig,

    /// Several services (docs/services.md): Fly's machine-config `containers`, snake_case.
    #[serde(deserialize_with = "nullable")]
    pub containers: Vec<super::containers::ContainerConfig>,
    #[serde(deserialize_with = "nullable")]
    pub volumes: Vec<super::containers::VolumeConfig>,
    /// The machine's secrets by name, for the services' `secrets` and `files`.
    #[serde(deserialize_with = "nullable")]
    pub secrets: BTreeMap<String, Token>,
    /// roost extension: where signals to PID 1 go with several services: `main` (the first
    /// service, the default) or `all`.
    pub forward_signals: Option<String>,
    /// roost extension: the OCI runtime (runc's command line) that runs `kind: container`
    /// services, an absolute path. Default: `roost-oci` beside roost's own executable.
    pub container_runtime: Option<String>,
    /// roost extension: the single workload's snapshot hooks (as a service's `snapshot`).
    #[serde(rename = "Snapshot")]
    pub snapshot: Option<super::snapshot_hooks::SnapshotHooksConfig>,
}

/// The subset of the OCI image config that decides how the workload runs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ImageConfig {
    #[serde(deserialize_with = "nullable")]
    pub entrypoint: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub cmd: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub env: Vec<String>,
    pub working_dir: Option<String>,
    pub user: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IpConfig {
    #[serde(rename = "IP")]
    pub ip: String,
    /// Prefix length (Fly and pigeon send it as a number).
    pub mask: u8,
    pub gateway: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MountSpec {
    pub device_path: String,
    pub mount_path: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EtcResolv {
    #[serde(deserialize_with = "nullable")]
    pub nameservers: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct EtcHost {
    pub host: String,
    #[serde(rename = "IP")]
    pub ip: String,
    pub desc: Option<String>,
}

/// A signal given by number (15) or by name ("SIGTERM" or "TERM").
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum SignalSpec {
    Number(i64),
    Name(String),
}

/// `/.fly/api` proxy settings.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ApiConfig {
    pub upstream: Option<String>,
    pub token: Option<Token>,
    pub token_scheme: Option<String>,
    /// roost extension: PEM file of extra CA certificates for an `https://` upstream.
    pub upstream_ca_file: Option<String>,
    pub socket_path: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub allow_uids: Vec<u32>,
    #[serde(deserialize_with = "nullable")]
    pub allow_gids: Vec<u32>,
    #[serde(deserialize_with = "nullable")]
    pub paths: Vec<String>,
    pub attenuate: bool,
    /// roost extensions: request body cap (default 1 MiB), time limit per request (default
    /// 60 s), concurrent upstream requests (default 64).
    pub max_body_bytes: Option<u64>,
    pub request_timeout_seconds: Option<u64>,
    pub max_concurrent: Option<usize>,
}

/// OIDC broker settings.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct OidcConfig {
    pub token_path: Option<String>,
    pub boot_wait_seconds: Option<u64>,
    /// roost extension: token files 0440 with the workload's gid instead of 0400.
    pub group_readable: bool,
}

/// Host control API settings.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ControlConfig {
    pub vsock_port: Option<u32>,
    pub exit_report_port: Option<u32>,
    /// roost extensions: the exit report to a Unix socket (container mode), how long the
    /// control API stays up after the workload's exit, and vsock CIDs besides the host's.
    pub exit_report_socket: Option<String>,
    pub linger_seconds: Option<u64>,
    #[serde(deserialize_with = "nullable")]
    pub allow_cids: Vec<u32>,
    /// roost extension: which host driver's forms `/v1` answers in (`pigeon`, `fly`).
    pub dialect: roost_control_protocol::Dialect,
}

/// What happens to MMDS reachability after bootstrap.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct MmdsConfig {
    pub after_boot: MmdsAfterBoot,
    /// roost extension: what a restore roost notices without the host's call does with
    /// the machine's identity (docs/snapshots.md).
    pub on_restore: MmdsOnRestore,
}

/// `Mmds.OnRestore`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MmdsOnRestore {
    /// Keep the identity: only the host's `restored` with `clone: true` changes it.
    #[default]
    Keep,
    /// Read MMDS again and take the identity it gives, as for a clone.
    Reread,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MmdsAfterBoot {
    #[default]
    Block,
    Keep,
}
