//! One file per verb.

pub mod create;
pub mod delete;
pub mod exec;
pub mod features;
pub mod kill;
pub mod list;
pub mod ps;
pub mod run;
pub mod start;
pub mod state;

use anyhow::{Context, Result};
use libcontainer::container::Container;
use std::path::Path;

/// The container `id` under `root`.
pub fn load(root: &Path, id: &str) -> Result<Container> {
    let dir = root.join(id);
    if !dir.exists() {
        anyhow::bail!("container {id:?} does not exist");
    }
    let mut container =
        Container::load(dir).with_context(|| format!("loading container {id:?}"))?;
    container
        .refresh_status()
        .with_context(|| format!("reading the status of {id:?}"))?;
    Ok(container)
}

/// Waits for `pid` (a child of this process) and returns its exit code (128 + N for a
/// signal).
pub fn wait_exit(pid: nix::unistd::Pid) -> Result<i32> {
    use nix::sys::wait::{waitpid, WaitStatus};
    loop {
        match waitpid(pid, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, sig, _)) => return Ok(128 + sig as i32),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context("waiting for the container's process"),
        }
    }
}
