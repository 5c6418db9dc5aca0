//! An exec: a process started in its own session and process group through the one reaper
//! (registered before it can exit), for the control API's execs, health checks and the OCI
//! runtime's verbs alike.

use super::reaper::{ChildExit, Reaper};
use super::spawn::{spawn_child, ChildSpec};
use crate::workload::Identity;
use std::path::Path;
use std::process::Stdio;
use tokio::sync::oneshot;

/// What to run, as whom, where, with which stdio.
#[derive(Debug)]
pub struct ExecCommand<'a> {
    pub argv: &'a [String],
    pub env: &'a [(String, String)],
    pub identity: &'a Identity,
    pub cwd: &'a Path,
    pub stdio: [Stdio; 3],
    /// fd 0 becomes the exec's controlling terminal.
    pub tty: bool,
    /// `cgroup.procs` files the exec joins before it runs (a service's leaf).
    pub cgroup_procs: Vec<std::ffi::CString>,
}

/// Starts `command` through `reaper`. Returns its pid and where its exit will arrive.
pub fn start(
    reaper: &Reaper,
    command: ExecCommand<'_>,
) -> std::io::Result<(i32, oneshot::Receiver<ChildExit>)> {
    let [stdin, stdout, stderr] = command.stdio;
    reaper.spawn(|| {
        spawn_child(ChildSpec {
            argv: command.argv,
            env: command.env,
            identity: command.identity,
            cwd: command.cwd,
            stdin,
            stdout,
            stderr,
            cgroup_procs: command.cgroup_procs,
            controlling_tty: command.tty,
        })
    })
}

/// Kills an exec's whole process group (its session ended, or its time ran out).
pub fn kill(pid: i32) {
    super::procs::signal_group(pid, libc::SIGKILL);
}
