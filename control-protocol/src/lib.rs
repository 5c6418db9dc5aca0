//! The control API's wire types (docs/control-api.md), shared by the server in PID 1 and roostctl.
//! Field names are the contract with the existing Fly and pigeon-init host drivers.

use serde::{Deserialize, Serialize};

/// `GET /v1/exit_code`, and the exit report pushed to the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitCode {
    pub code: i32,
    pub oom_killed: bool,
}

/// Which service's exit decided the machine's code, and why (machines of several services).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecidedBy {
    pub service: String,
    pub reason: String,
}

/// The exit report, in one shape wherever it goes whole: `workload.exit` of `GET /v2/status`
/// and the report pushed to the host (`POST /v1/exit`, with `machine_id` beside it). The
/// console line and `GET /v1/exit_code` carry its [`ExitCode`] part, the anchors' shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitReport {
    pub code: i32,
    pub oom_killed: bool,
    /// None for the single workload, which is the machine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decided_by: Option<DecidedBy>,
}

impl ExitReport {
    /// The anchors' part: code and OOM.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode {
            code: self.code,
            oom_killed: self.oom_killed,
        }
    }
}

/// `POST /v1/exit`: the exit report and the machine it is of.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushedExitReport {
    #[serde(flatten)]
    pub report: ExitReport,
    pub machine_id: Option<String>,
}

/// `POST /v1/signals`.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct SignalRequest {
    #[serde(deserialize_with = "integral::i64")]
    pub signal: i64,
}

/// Which host driver's forms `/v1` answers in, where the Fly and pigeon-init servers
/// disagree (`Control.Dialect` in the run config).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// pigeon-init's (the one with a public client): exec output as strings, `exit_code`
    /// -1 for a signal death (a Go client decoding `null` into an `int` would read 0).
    #[default]
    Pigeon,
    /// Fly's init's: exec output as arrays of bytes, `exit_code` null for a signal death.
    Fly,
}

/// How exec output is encoded: strings (pigeon; lossy UTF-8) or byte arrays (Fly).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputEncoding {
    #[default]
    String,
    Bytes,
}

/// `POST /v1/exec`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct ExecRequest {
    /// argv, kept in order.
    pub cmd: Vec<String>,
    /// Seconds before the exec's whole process group is killed (default 30, at most 3600).
    pub timeout: Option<f64>,
    /// Run as the workload's user and in its directory (default: root, `/`).
    pub workload_user: bool,
    /// Bytes kept of each of stdout and stderr (default 1 MiB, at most 16 MiB).
    #[serde(deserialize_with = "integral::opt_usize")]
    pub max_output: Option<usize>,
    /// roost extension: the encoding of this answer; without it, the dialect's.
    pub output: Option<OutputEncoding>,
    /// roost extension: run inside this service (its user, env, directory and cgroup), as
    /// Fly's `exec --container` does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// Output as a string or a byte array, per [`OutputEncoding`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Output {
    Text(String),
    Bytes(Vec<u8>),
}

impl Output {
    pub fn encode(bytes: Vec<u8>, encoding: OutputEncoding) -> Self {
        match encoding {
            OutputEncoding::String => Output::Text(String::from_utf8_lossy(&bytes).into_owned()),
            OutputEncoding::Bytes => Output::Bytes(bytes),
        }
    }

    pub fn into_bytes(self) -> Vec<u8> {
        match self {
            Output::Text(s) => s.into_bytes(),
            Output::Bytes(b) => b,
        }
    }
}

/// The answer to `POST /v1/exec`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecResponse {
    pub exit_code: Option<i32>,
    pub exit_signal: Option<i32>,
    pub stdout: Output,
    pub stderr: Output,
    #[serde(default)]
    pub stdout_truncated: bool,
    #[serde(default)]
    pub stderr_truncated: bool,
    #[serde(default)]
    pub timed_out: bool,
}

/// The first text frame of `GET /v1/ws/exec`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct WsInit {
    pub command: Vec<String>,
    pub tty: bool,
    pub cols: Option<u16>,
    pub rows: Option<u16>,
    pub workload_user: bool,
    /// roost extension: binary frames from the client are the command's stdin (an empty one
    /// closes it). Without it a command without a tty gets `/dev/null` as stdin, as the Fly
    /// and pigeon-init servers give it, so `cat` or `sh` end instead of waiting.
    pub stdin: bool,
    /// roost extension: stderr comes apart in `{"Stderr": "..."}` text frames. Without it
    /// stderr goes into the binary frames with stdout, and the only text frames are `Exit`
    /// and `Error` (the frame set the anchors' clients decode).
    pub separate_stderr: bool,
    /// roost extension: run inside this service (its user, env, directory and cgroup).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// A text frame from the client after the first: a terminal resize.
#[derive(Debug, Clone, Copy, Deserialize, Serialize)]
pub struct WsResize {
    pub cols: u16,
    pub rows: u16,
}

/// Server text frames.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub enum WsServerMessage {
    /// Sent once, after all output has been sent.
    Exit {
        code: Option<i32>,
        signal: Option<i32>,
    },
    Error {
        message: String,
    },
    /// Standard error in non-tty mode (standard output goes in binary frames).
    Stderr(String),
}

/// `GET /v2/status`: `{"ok": true}` (what `/v1/status` answers) and roost's additions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub ok: bool,
    pub version: String,
    /// `vm` or `container`.
    pub mode: String,
    pub pid1: bool,
    pub uptime_ms: f64,
    /// Where the config came from (`mmds`, `file`, ...).
    pub config_source: String,
    /// Whether the boot is over (in a VM, MMDS is blocked from then on).
    pub bootstrapped: bool,
    pub phases: Vec<Phase>,
    pub workload: WorkloadStatus,
    /// Each identity token the broker keeps fresh (null: no broker runs).
    pub broker: Option<Vec<TokenStatus>>,
    /// The `/.fly/api` proxy's counters (null: no proxy).
    pub proxy: Option<ProxyCounters>,
    /// Log lines dropped because the console could not keep up.
    pub log_lines_dropped: u64,
    /// Each service's state (null until the supervisor has published them).
    pub services: Option<Vec<ServiceStatus>>,
    /// Where the machine is in the snapshot cycle (docs/snapshots.md).
    #[serde(default)]
    pub snapshot: SnapshotStatus,
}

/// `/v2/status` `snapshot`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SnapshotStatus {
    /// Restores this machine has gone through (0: never restored).
    pub generation: u64,
    /// When the last restore was applied, in ms since 1970 (null: never).
    pub last_restore_at: Option<u64>,
    /// `prepare` or `restored` while one runs; null otherwise.
    pub in_progress: Option<String>,
    /// Whether the machine is prepared (a `prepare` succeeded and no restore came yet).
    pub prepared: bool,
    /// Restores roost noticed without the host's call (the kernel's VM-fork line).
    #[serde(default)]
    pub detected_restores: u64,
    /// Whether the last restore stepped the wall clock (false: it is behind by the time the
    /// VM spent saved until the host calls `restored`); null before any restore.
    #[serde(default)]
    pub clock_stepped: Option<bool>,
}

/// What one service's snapshot hook did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HookOutcome {
    pub service: String,
    /// `exec`, `signal` or `http`.
    pub hook: String,
    /// `ok`, or what went wrong (`exited 3`, `timed out after 10 s`, ...).
    pub outcome: String,
    pub duration_ms: f64,
}

/// One step of a restore and how long it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepTime {
    pub step: String,
    pub duration_ms: f64,
}

/// `POST /v2/snapshot/prepare`'s answer: the machine may be snapshotted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrepareAnswer {
    /// The generation the snapshot is of.
    pub generation: u64,
    pub hooks: Vec<HookOutcome>,
    pub steps: Vec<StepTime>,
    pub duration_ms: f64,
}

/// `POST /v2/snapshot/restored`'s answer: what the restore did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoredAnswer {
    pub generation: u64,
    /// How far the wall clock was stepped, in ms (positive: it was behind); null when it was
    /// not stepped (`clock` says why).
    pub clock_step_ms: Option<f64>,
    /// `stepped`, or why not.
    pub clock: String,
    /// Whether the host's entropy was credited and the CRNG reseeded.
    pub reseeded: bool,
    pub identity_changed: bool,
    /// Identity tokens fetched anew.
    pub tokens_refreshed: u32,
    pub hooks: Vec<HookOutcome>,
    pub steps: Vec<StepTime>,
    pub duration_ms: f64,
    /// This generation was restored before: nothing was done again.
    #[serde(default)]
    pub replayed: bool,
}

/// One boot phase and when it ended, in ms since roost started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Phase {
    pub name: String,
    pub at_ms: f64,
}

/// The machine's workload: `starting`, `running` (with its main process's pid), `exited`
/// (with the exit report).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadStatus {
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<ExitReport>,
}

/// One identity token the broker keeps fresh.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenStatus {
    pub cloud: String,
    pub path: String,
    pub audience: String,
    /// Unix seconds.
    pub expires_at: Option<u64>,
    pub last_refresh: Option<u64>,
    pub last_error: Option<String>,
    pub refreshes: u64,
    pub failures: u64,
    /// When the platform's tokens do not live long enough for this cloud's SDKs, what that
    /// means; said once in the log too.
    pub warning: Option<String>,
    /// How many times the refresher was restarted after it died (a panic).
    pub restarts: u64,
}

/// The `/.fly/api` proxy's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyCounters {
    pub requests: u64,
    pub forwarded: u64,
    pub refused: u64,
    pub upstream_errors: u64,
    pub connections_dropped: u64,
}

/// `GET /v1/sysinfo`: Fly's init's fields and shapes (`memory`, `load_average`, `cpus`,
/// `disks`, `net`, `filefd`), and roost's own beside them under names of their own
/// (`cpu_count`, `filesystems`, `file_descriptors`, the short names inside `memory`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SysInfo {
    pub memory: Memory,
    /// 1, 5 and 15 minutes.
    pub load_average: Vec<f64>,
    /// Per CPU, keyed by its number.
    pub cpus: std::collections::BTreeMap<String, CpuTimes>,
    /// The virtio disks (`vd*`).
    pub disks: Vec<DiskStats>,
    /// Every interface but `lo`.
    pub net: Vec<NetDev>,
    pub filefd: FileFd,
    pub cpu_count: usize,
    pub filesystems: Vec<Filesystem>,
    pub file_descriptors: FileDescriptors,
}

/// `/proc/meminfo` in bytes: Fly's `mem_*` names (0 where the kernel has no such line), and
/// roost's `total`, `free`, `available` (null where it has none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Memory {
    pub mem_total: u64,
    pub mem_free: u64,
    pub mem_available: Option<u64>,
    pub buffers: u64,
    pub cached: u64,
    pub swap_cached: u64,
    pub active: u64,
    pub inactive: u64,
    pub swap_total: u64,
    pub swap_free: u64,
    pub dirty: u64,
    pub writeback: u64,
    pub slab: u64,
    pub shmem: Option<u64>,
    pub vmalloc_total: u64,
    pub vmalloc_used: u64,
    pub vmalloc_chunk: u64,
    pub total: Option<u64>,
    pub free: Option<u64>,
    pub available: Option<u64>,
}

/// One CPU's times in seconds (`/proc/stat`); the later columns are null on kernels without
/// them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CpuTimes {
    pub user: f64,
    pub nice: f64,
    pub system: f64,
    pub idle: f64,
    pub iowait: Option<f64>,
    pub irq: Option<f64>,
    pub softirq: Option<f64>,
    pub steal: Option<f64>,
    pub guest: Option<f64>,
    pub guest_nice: Option<f64>,
}

/// One disk's counters (`/proc/diskstats`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiskStats {
    pub name: String,
    pub reads_completed: u64,
    pub reads_merged: u64,
    pub sectors_read: u64,
    pub time_reading: u64,
    pub writes_completed: u64,
    pub writes_merged: u64,
    pub sectors_written: u64,
    pub time_writing: u64,
    pub io_in_progress: u64,
    pub time_io: u64,
    pub time_io_weighted: u64,
}

/// One interface's counters (`/proc/net/dev`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetDev {
    pub name: String,
    pub recv_bytes: u64,
    pub recv_packets: u64,
    pub recv_errs: u64,
    pub recv_drop: u64,
    pub recv_fifo: u64,
    pub recv_frame: u64,
    pub recv_compressed: u64,
    pub recv_multicast: u64,
    pub sent_bytes: u64,
    pub sent_packets: u64,
    pub sent_errs: u64,
    pub sent_drop: u64,
    pub sent_fifo: u64,
    pub sent_colls: u64,
    pub sent_carrier: u64,
    pub sent_compressed: u64,
}

/// Fly's `filefd`: allocated and maximum file handles.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileFd {
    pub allocated: u64,
    pub maximum: u64,
}

/// roost's `file_descriptors` (null where `/proc/sys/fs/file-nr` has no such column).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDescriptors {
    pub allocated: Option<u64>,
    pub max: Option<u64>,
}

/// One mounted file system with its space and inodes (statvfs).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filesystem {
    pub device: String,
    pub mount: String,
    pub fstype: String,
    pub total: u64,
    pub free: u64,
    pub available: u64,
    pub inodes_total: u64,
    pub inodes_free: u64,
}

/// One service in `GET /v2/services` and `GET /v2/services/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct ServiceStatus {
    pub name: String,
    /// pending, starting, running, stopping, restarting, exited, skipped...
    pub state: String,
    pub ready: bool,
    pub restarts: u32,
    pub last_exit_code: Option<i32>,
    pub pid: Option<i32>,
    /// Milliseconds since roost started, of the current (or last) start.
    pub started_at_ms: Option<u64>,
    /// The commands of `/v2/services/{name}/...` it takes.
    pub accepts: Vec<String>,
    /// Its snapshot hooks that have run, the last run of each (empty: none has).
    #[serde(default)]
    pub snapshot_hooks: Vec<HookRun>,
}

/// The last run of one of a service's snapshot hooks.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct HookRun {
    /// `before` or `after`.
    pub hook: String,
    /// `ok`, or what went wrong.
    pub outcome: String,
    /// The machine's snapshot generation when it ran.
    pub generation: u64,
}

impl ServiceStatus {
    /// Whether it takes the command `action` (`signal`, `stop`, `start`, `restart`).
    pub fn accepts(&self, action: &str) -> bool {
        self.accepts.iter().any(|a| a == action)
    }
}

/// `GET /v2/services`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct ServiceList {
    pub services: Vec<ServiceStatus>,
}

/// `GET /v2/services/{name}/logs`: lines `first` to `next - 1` (numbered from the first the
/// service wrote); `next` is the `after` of the following request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct LogsPage {
    pub first: u64,
    pub next: u64,
    pub lines: Vec<String>,
}

/// A JSON error body: the same text under `error` (pigeon-init's key) and `message` (Fly's).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ErrorBody {
    pub error: String,
    #[serde(default)]
    pub message: String,
}

/// JSON has one kind of number: `15.0` is the integer 15, as JSON Schema (and the OpenAPI
/// document) reads it, so an integer field takes an integral float too. A fraction, or a
/// value outside the field's type, is refused.
mod integral {
    use serde::de::{self, Deserialize, Deserializer, Unexpected, Visitor};
    use std::fmt;

    struct Integer;

    impl Visitor<'_> for Integer {
        type Value = i64;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an integer")
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &self))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
            // 2^63 is exact in f64; every integral f64 in [-2^63, 2^63) converts exactly.
            const LIMIT: f64 = 9_223_372_036_854_775_808.0;
            if v.fract() == 0.0 && (-LIMIT..LIMIT).contains(&v) {
                Ok(v as i64)
            } else {
                Err(E::invalid_value(Unexpected::Float(v), &self))
            }
        }
    }

    pub fn i64<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        d.deserialize_any(Integer)
    }

    struct Wrapped(i64);

    impl<'de> Deserialize<'de> for Wrapped {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            i64(d).map(Wrapped)
        }
    }

    pub fn opt_usize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
        match Option::<Wrapped>::deserialize(d)? {
            None => Ok(None),
            Some(Wrapped(v)) => usize::try_from(v).map(Some).map_err(|_| {
                de::Error::invalid_value(Unexpected::Signed(v), &"a non-negative integer")
            }),
        }
    }
}

#[cfg(test)]
mod integral_tests {
    use super::*;

    #[test]
    fn integer_fields_take_integral_floats_and_refuse_fractions() {
        let signal = |body: &str| serde_json::from_str::<SignalRequest>(body).map(|r| r.signal);
        assert_eq!(signal(r#"{"signal": 15}"#).ok(), Some(15));
        assert_eq!(signal(r#"{"signal": 15.0}"#).ok(), Some(15));
        assert_eq!(signal(r#"{"signal": -3}"#).ok(), Some(-3));
        assert!(signal(r#"{"signal": 15.5}"#).is_err());
        assert!(signal(r#"{"signal": 1e300}"#).is_err());
        assert!(signal(r#"{"signal": 18446744073709551615}"#).is_err());
        assert!(signal(r#"{"signal": "15"}"#).is_err());
        let max = |body: &str| serde_json::from_str::<ExecRequest>(body).map(|r| r.max_output);
        assert_eq!(
            max(r#"{"cmd": ["x"], "max_output": 18727.0}"#).ok(),
            Some(Some(18727))
        );
        assert_eq!(
            max(r#"{"cmd": ["x"], "max_output": null}"#).ok(),
            Some(None)
        );
        assert_eq!(max(r#"{"cmd": ["x"]}"#).ok(), Some(None));
        assert!(max(r#"{"cmd": ["x"], "max_output": -1}"#).is_err());
        assert!(max(r#"{"cmd": ["x"], "max_output": 0.5}"#).is_err());
    }
}
