//! roost: PID 1 for Firecracker micro-VMs and containers.
//!
//! Layout (one job per module):
//! - [`config`]: the run config schema, parsing and validation;
//! - [`workload`]: what to run (argv, env, user) as pure functions;
//! - [`process`]: the mechanics below every policy: the reaper, spawn, cgroups, signals;
//! - [`containers`]: `kind: container` services: bundles, images, the runtime's verbs;
//! - [`supervisor`]: one supervisor for one service or many: the plan and the loop;
//! - [`credentials`]: the `/.fly/api` proxy and the OIDC brokers, started in one place;
//! - [`control`]: the host control API and the exit report;
//! - [`net`]: the VM's network over rtnetlink;
//! - [`vm`]: PID 1 of a Firecracker VM (MMDS, boot, shutdown);
//! - [`boot`]: the one boot sequence both modes run, from supervision to teardown;
//! - [`exit`]: every way roost ends, the exit report and its console line;
//! - [`container_mode`]: `roost container`, PID 1 of a namespace (or a subreaper).

pub mod boot;
pub mod config;
pub mod container_mode;
pub mod containers;
pub mod control;
pub mod credentials;
pub mod exit;
pub mod fault;
pub mod logging;
pub mod net;
pub mod process;
pub mod snapshot;
pub mod supervisor;
pub mod vm;
pub mod workload;
