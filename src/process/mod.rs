//! Process mechanics, below every policy: the one reaper, spawning (with
//! `clone3(CLONE_INTO_CGROUP)` where the kernel has it), process listing and group signals,
//! cgroup leaves, and PID 1's signal handlers. Nothing here imports the supervisor, the
//! containers or the control API (`tests/architecture.rs` checks it); they build on it.

pub mod cgroup;
pub mod clone_into;
pub mod exec;
pub mod procs;
pub mod reaper;
pub mod signals;
pub mod spawn;
