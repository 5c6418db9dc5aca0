//! roost: PID 1 for Firecracker micro-VMs and containers.
//!
//! Layout (one job per module):
//! - [`config`]: the run config schema, parsing and validation;
//! - [`workload`]: what to run (argv, env, user) as pure functions;
//! - [`supervise`]: spawning, the reaper, signals, cgroups, output, graceful stop;
//! - [`api`]: wiring of the `/.fly/api` proxy;
//! - [`oidc`]: wiring of the OIDC broker (identity tokens for cloud SDKs);
//! - [`control`]: the host control API and the exit report;
//! - [`net`]: the VM's network over rtnetlink;
//! - [`vm`]: PID 1 of a Firecracker VM (MMDS, boot, shutdown);
//! - [`lifecycle`]: what container and VM mode share (prepare, run, report);
//! - [`container`]: `roost container`, PID 1 of a namespace (or a subreaper).

pub mod api;
pub mod config;
pub mod container;
pub mod control;
pub mod fault;
pub mod lifecycle;
pub mod logging;
pub mod net;
pub mod oidc;
pub mod supervise;
pub mod vm;
pub mod workload;
