//! One verb of the OCI runtime ([`crate::containers::runtime`]) run to its end: started through the
//! one reaper as root in `/` with a plain PATH, and waited for within a bound, so a runtime
//! that hangs cannot hold PID 1 (it is killed, group and all, at the bound).

use crate::containers::runtime::{runtime_env, RuntimeError};
use crate::process::exec::{self, ChildSpec};
use crate::process::reaper::Reaper;
use crate::workload::Identity;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// How much of a failed verb's stderr goes into roost's log.
const STDERR_KEPT: usize = 2048;

/// Runs `argv` (a verb) to its end within `timeout`, stdout and stderr to `output` when
/// given (`create`: the container's init inherits them), else stderr kept for the error.
pub async fn run_verb(
    reaper: &Reaper,
    argv: &[String],
    output: Option<std::os::fd::OwnedFd>,
    timeout: Duration,
) -> Result<(), RuntimeError> {
    let verb = argv.get(3).cloned().unwrap_or_default();
    let program = argv.first().cloned().unwrap_or_default();
    let spawn_err = |source| RuntimeError::Spawn {
        program: program.clone(),
        source,
    };
    let (stdout, stderr, captured) = match output {
        Some(fd) => {
            let out = fd.try_clone().map_err(spawn_err)?;
            (Stdio::from(out), Stdio::from(fd), None)
        }
        None => {
            let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
                .map_err(|e| spawn_err(e.into()))?;
            (Stdio::null(), Stdio::from(w), Some(r))
        }
    };
    let env = runtime_env();
    let identity = Identity::root();
    let (pid, exit) = exec::start(
        reaper,
        ChildSpec {
            argv,
            env: &env,
            identity: &identity,
            cwd: Path::new("/"),
            stdin: Stdio::null(),
            stdout,
            stderr,
            cgroup_joins: Vec::new(),
            controlling_tty: false,
        },
    )
    .map_err(spawn_err)?;
    let read_stderr = async {
        let Some(fd) = captured else {
            return String::new();
        };
        read_capped(fd).await
    };
    let waited = tokio::time::timeout(timeout, async { tokio::join!(exit, read_stderr) }).await;
    match waited {
        Ok((Ok(exit), _)) if exit.exit_code() == 0 => Ok(()),
        Ok((exit, stderr)) => Err(RuntimeError::Failed {
            verb,
            code: exit.map_or(crate::exit::INTERNAL, |e| e.exit_code()),
            stderr,
        }),
        Err(_) => {
            exec::kill(pid);
            Err(RuntimeError::Timeout { verb, timeout })
        }
    }
}

/// Up to [`STDERR_KEPT`] bytes of a pipe, the rest read and dropped, to its end.
async fn read_capped(fd: std::os::fd::OwnedFd) -> String {
    use tokio::io::AsyncReadExt;
    let Ok(mut rx) = tokio::net::unix::pipe::Receiver::from_owned_fd(fd) else {
        return String::new();
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match rx.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = STDERR_KEPT.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
            }
        }
    }
    String::from_utf8_lossy(&kept).trim().replace('\n', "; ")
}
