//! The host control API (docs/control-api.md), wire-compatible with the Fly and
//! pigeon-init host drivers: status, exit code, signals, exec, WebSocket exec, sysinfo; and the
//! exit report pushed to the host.
//!
//! - [`protocol`]: the JSON types, shared with roostctl;
//! - [`state`]: what the API reports, written by boot and the supervisor;
//! - [`server`]: transports (vsock, Unix), routes, limits, shutdown;
//! - [`exec`], [`ws`]: one-shot and interactive commands through the one reaper;
//! - [`handshake`]: the WebSocket opening handshake, checked before an upgrade;
//! - [`sysinfo`]: /proc and statvfs figures;
//! - [`services`]: `/v2/services`: each service's state, log and commands;
//! - [`report`]: the console line and the pushed exit report;
//! - [`restore_watch`], [`vsock_resets`]: restores the host does not announce, noticed.

pub mod exec;
pub mod handshake;
pub mod report;
pub mod restore_watch;
pub mod server;
pub mod services;
pub mod snapshot;
pub mod state;
pub mod sysinfo;
pub mod vsock_resets;
pub mod ws;

pub use protocol::ExitCode;
pub use roost_control_protocol as protocol;
pub use server::{ControlServer, Listen};
pub use state::{ControlState, WorkloadState};
