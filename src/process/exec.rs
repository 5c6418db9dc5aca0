//! An exec: a process started in its own session and process group through the one reaper
//! (registered before it can exit), for the control API's execs, health checks and the OCI
//! runtime's verbs alike.

use super::reaper::{ChildExit, Reaper};
use super::spawn::spawn_child;
pub use super::spawn::ChildSpec;
use tokio::sync::oneshot;

/// Starts `spec` through `reaper`. Returns its pid and where its exit will arrive.
pub fn start(
    reaper: &Reaper,
    spec: ChildSpec<'_>,
) -> std::io::Result<(i32, oneshot::Receiver<ChildExit>)> {
    reaper.spawn(|| spawn_child(spec))
}

/// Kills an exec's whole process group (its session ended, or its time ran out).
pub fn kill(pid: i32) {
    super::procs::signal_group(pid, libc::SIGKILL);
}
