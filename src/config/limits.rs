//! The documented maximum of every numeric field of the run config. A value beyond one is
//! refused at load (exit 78, naming the field), so nothing downstream can overflow a
//! deadline, a semaphore or an allocation with a value that validation let through.

/// `MTU`: the IPv4 minimum to the largest a link takes.
pub const MIN_MTU: u64 = 68;
pub const MAX_MTU: u64 = 65_535;
/// `Oidc.BootWaitSeconds` and `Control.LingerSeconds`: ten minutes.
pub const MAX_BOOT_WAIT_SECS: u64 = 600;
pub const MAX_LINGER_SECS: u64 = 600;
/// `MemoryLimitMiB`: 16 TiB.
pub const MAX_MEMORY_LIMIT_MIB: u64 = 16 * 1024 * 1024;
/// `PidsMax`: at least enough for a shell and a few children; at most the kernel's
/// `PID_MAX_LIMIT`.
pub const MIN_PIDS_MAX: u64 = 16;
pub const MAX_PIDS_MAX: u64 = 4 * 1024 * 1024;
/// `Api.RequestTimeoutSeconds`: one hour.
pub const MAX_REQUEST_TIMEOUT_SECS: u64 = 3600;
/// `Api.MaxConcurrent`: concurrent upstream requests (tokio's semaphore takes far more; each
/// request holds descriptors, so the connection caps are the real bound).
pub const MAX_CONCURRENT_REQUESTS: u64 = 4096;
/// `Api.MaxBodyBytes`: 64 MiB.
pub const MAX_BODY_BYTES: u64 = 64 * 1024 * 1024;
/// `Api.Token`: 64 KiB (a macaroon with many caveats is a few KiB).
pub const MAX_TOKEN_BYTES: usize = 64 * 1024;
/// `Api.AllowUids`, `Api.AllowGids`, `Api.Paths`, `Control.AllowCids`: entries.
pub const MAX_LIST: usize = 256;

// Containers and Volumes.

/// Most services one VM runs.
pub const MAX_SERVICES: usize = 256;
/// Most entries of each list inside a service (files, checks, dependencies, mounts, secrets).
pub const MAX_PER_SERVICE: usize = 64;
/// Longest health check period, timeout or grace, and the longest restart backoff.
pub const MAX_PERIOD_SECS: f64 = 3600.0;
/// Shortest check period or timeout: 10 ms.
pub const MIN_PERIOD_SECS: f64 = 0.01;
/// Most restarts `max_retries` allows, and longest retry window.
pub const MAX_RETRIES: u64 = 10_000;
pub const MAX_WINDOW_SECS: u64 = 86_400;
/// Longest `ready_log_line`.
pub const MAX_READY_LINE: usize = 4096;

/// A snapshot hook's bound when it names none (docs/snapshots.md).
pub const DEFAULT_HOOK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// The longest bound a snapshot hook may have.
pub const MAX_HOOK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);
