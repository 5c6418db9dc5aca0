//! The serde shape of `Containers`, `Volumes` and `Secrets` (docs/services.md): Fly's
//! machine-config container objects as fly-go's `ContainerConfig` defines them, snake_case
//! inside, so a Machines API `config.containers` pastes in unchanged; roost's extensions are
//! marked. Unknown keys are ignored, as everywhere in the run config.

use super::schema::ImageConfig;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

fn nullable<'de, D, T>(de: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(de)?.unwrap_or_default())
}

/// One entry of `Containers`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ContainerConfig {
    pub name: String,
    pub image: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub exec: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub entrypoint: Vec<String>,
    #[serde(deserialize_with = "nullable")]
    pub cmd: Vec<String>,
    pub user: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub env: BTreeMap<String, String>,
    #[serde(deserialize_with = "nullable")]
    pub secrets: Vec<SecretRef>,
    #[serde(deserialize_with = "nullable")]
    pub env_from: Vec<EnvFrom>,
    #[serde(deserialize_with = "nullable")]
    pub files: Vec<FileSpec>,
    pub restart: Option<RestartConfig>,
    pub stop: Option<StopConfig>,
    #[serde(deserialize_with = "nullable")]
    pub depends_on: Vec<DependsOn>,
    #[serde(deserialize_with = "nullable")]
    pub healthchecks: Vec<HealthcheckConfig>,
    #[serde(deserialize_with = "nullable")]
    pub mounts: Vec<ContainerMount>,

    // roost's extensions.
    /// `process` (the default): runs in the VM's own root filesystem.
    pub kind: Option<String>,
    /// The image's OCI config (as the top-level `ImageConfig`).
    pub image_config: Option<ImageConfig>,
    pub working_dir: Option<String>,
    /// Exit codes that count as success (default `[0]`).
    pub success_exit_codes: Option<Vec<i64>>,
    /// The line a `log_ready` dependent waits for.
    pub ready_log_line: Option<String>,
    /// Give the service a `NOTIFY_SOCKET`; `READY=1` on it makes the service ready.
    pub notify: bool,
    /// `stop_machine`, `stop_machine_on_failure`, `stop_machine_on_skip` or `ignore`.
    pub on_exit: Option<String>,
    pub cgroup: Option<CgroupLimits>,
    /// With `kind: container`: the image's root file system, as the host delivered it.
    pub image_root: Option<ImageRootConfig>,
    /// With `kind: container`: roost is the container's PID 1 (`docker run --init`).
    pub init: bool,
    /// With `kind: container`: `default` (Docker's default seccomp profile, the default) or
    /// `unconfined` (no filter, as `docker run --security-opt seccomp=unconfined`).
    pub seccomp: Option<String>,
    /// With `kind: container`: `/.fly/api` is bound into the container (process services
    /// always reach it; a container only when it asks).
    pub fly_api: bool,
    /// What runs before a snapshot and after a restore (docs/snapshots.md).
    pub snapshot: Option<super::snapshot_hooks::SnapshotHooksConfig>,
    /// `auto` (the default) or `manual`: defined, but started only when asked
    /// (`/v2/services/NAME/start`).
    pub start: Option<String>,
    /// The command forks a daemon and exits (`pg_ctl start`): the service lives while its
    /// cgroup leaf has processes.
    pub daemon: bool,
}

/// `image_root`: exactly one of `directory` or `device` (with its `fstype`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ImageRootConfig {
    pub directory: Option<String>,
    pub device: Option<String>,
    /// `ext4` (the default), `erofs` or `squashfs`.
    pub fstype: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SecretRef {
    pub env_var: String,
    pub name: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct EnvFrom {
    pub env_var: String,
    pub field_ref: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct FileSpec {
    pub guest_path: String,
    pub raw_value: Option<String>,
    pub secret_name: Option<String>,
    pub image_config: Option<String>,
    /// Permission bits (fly-go sends them as a decimal number, e.g. 420 for 0644).
    pub mode: Option<u32>,
    /// flyctl's, not the API's: flyctl reads the file and sends `raw_value`. Named here only
    /// to refuse it clearly.
    pub local_path: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct RestartConfig {
    pub policy: Option<String>,
    pub max_retries: Option<u64>,
    // roost's extensions.
    pub backoff_seconds: Option<f64>,
    pub max_backoff_seconds: Option<f64>,
    pub window_seconds: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct StopConfig {
    pub signal: Option<super::SignalSpec>,
    /// A Go duration string ("10s") or nanoseconds.
    pub timeout: Option<GoDuration>,
    /// roost extension: a command run as the service to stop it (`pg_ctl stop`), before the
    /// signal.
    #[serde(deserialize_with = "nullable")]
    pub command: Vec<String>,
    /// roost extension: the signal to the service's process only, not its process group.
    pub parent_only: bool,
}

/// fly-go's `Duration`: a JSON number of nanoseconds or a Go duration string.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum GoDuration {
    Nanos(u64),
    Text(String),
}

/// A health check's period: fly-go's seconds (an integer), or (roost's extension) a Go
/// duration string or fractional seconds.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Seconds {
    Number(f64),
    Text(String),
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct DependsOn {
    pub name: String,
    pub condition: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HealthcheckConfig {
    pub name: Option<String>,
    pub interval: Option<Seconds>,
    pub grace_period: Option<Seconds>,
    pub timeout: Option<Seconds>,
    pub success_threshold: Option<u32>,
    pub failure_threshold: Option<u32>,
    pub kind: Option<String>,
    pub unhealthy: Option<String>,
    pub http: Option<HttpCheck>,
    pub tcp: Option<TcpCheck>,
    pub exec: Option<ExecCheck>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HttpCheck {
    pub port: u16,
    pub method: Option<String>,
    pub path: Option<String>,
    #[serde(deserialize_with = "nullable")]
    pub headers: Vec<HttpHeader>,
    pub scheme: Option<String>,
    pub tls_skip_verify: Option<bool>,
    pub tls_server_name: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct HttpHeader {
    pub name: String,
    #[serde(deserialize_with = "nullable")]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TcpCheck {
    pub port: u16,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ExecCheck {
    #[serde(deserialize_with = "nullable")]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct ContainerMount {
    pub name: String,
    pub path: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CgroupLimits {
    pub memory_mib: Option<u64>,
    pub cpu_weight: Option<u64>,
    pub pids_max: Option<u64>,
}

/// One entry of `Volumes`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct VolumeConfig {
    pub name: String,
    pub temp_dir: Option<TempDir>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct TempDir {
    /// `disk` (the default) or `memory`.
    pub storage_type: Option<String>,
    pub size_mb: Option<u64>,
}
