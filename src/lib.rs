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
//! - [`boot`]: the one boot sequence both modes run, from supervision to teardown;
//! - [`exit`]: every way roost ends, the exit report and its console line;
//! - [`container`]: `roost container`, PID 1 of a namespace (or a subreaper).

pub mod api;
pub mod boot;
pub mod config;
pub mod container_mode;
pub mod containers;
pub mod control;
pub mod exit;
pub mod fault;
pub mod logging;
pub mod net;
pub mod oidc;
pub mod process;
pub mod supervisor;
pub mod vm;
pub mod workload;
