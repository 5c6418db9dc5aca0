//! Several services in one VM (docs/services.md): the decisions, apart from the syscalls.
//!
//! - [`plan`]: the state machine of the services: what starts, what is skipped, what
//!   restarts and when, what ends the machine, in which order things stop. Pure; property
//!   tested on random graphs.
//! - [`health`]: the probes (exec, tcp, http) and the thresholds that turn their results into
//!   ready, not ready, and unhealthy.
//! - [`logs`]: each service's output, prefixed with its name on the console, kept in a bounded
//!   buffer for the control API, watched for its ready line.
//! - [`notify`]: systemd's `NOTIFY_SOCKET` readiness protocol.
//!
//! The supervisor ([`crate::supervise`]) carries the plan's actions out.

pub mod files;
pub mod health;
pub mod logs;
pub mod notify;
pub mod plan;
