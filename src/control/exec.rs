//! `POST /v1/exec`: one command, its output collected with a cap, its exit status from the one
//! reaper. It never holds a lock across its run, so a hung exec (or a background grandchild
//! holding its pipes) cannot block reaping, signals or shutdown: at its timeout its whole
//! process group is killed, and it answers with what it has.

use super::protocol::{Dialect, ExecRequest, ExecResponse, Output, OutputEncoding};
use super::state::ControlState;
use crate::containers::ExecTarget;
use crate::supervisor::handle::ChildExit;
use crate::supervisor::handle::{ChildSpec, ExecInto, Placement, ServiceRefusal};
use crate::workload::Identity;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
pub const MAX_TIMEOUT: Duration = Duration::from_secs(3600);
pub const DEFAULT_MAX_OUTPUT: usize = 1024 * 1024;
pub const MAX_OUTPUT: usize = 16 * 1024 * 1024;
/// One-shot execs running at once; beyond it a request gets 503.
pub const MAX_CONCURRENT_EXECS: usize = 256;
/// Output held across every running exec, in bytes. An exec whose output would go beyond it
/// keeps what fits and is marked truncated; a new exec while it is all taken gets 503.
pub const MAX_OUTPUT_HELD: usize = 64 * 1024 * 1024;
static EXEC_SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_CONCURRENT_EXECS);
static OUTPUT_HELD: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Takes up to `want` bytes of the shared output budget; returns how many it got.
fn take_budget(want: usize) -> usize {
    use std::sync::atomic::Ordering;
    let mut got = 0;
    let _ = OUTPUT_HELD.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |held| {
        got = want.min(MAX_OUTPUT_HELD.saturating_sub(held));
        Some(held + got)
    });
    got
}

fn give_back_budget(n: usize) {
    use std::sync::atomic::Ordering;
    let _ = OUTPUT_HELD.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |held| {
        Some(held.saturating_sub(n))
    });
}

/// After the timeout's SIGKILL, how long to wait for the pipes to close (a grandchild that left
/// the process group may hold them forever).
const AFTER_KILL: Duration = Duration::from_secs(2);

/// Why an exec request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error("cmd must be a non-empty list of strings without NUL bytes")]
    BadCommand,
    #[error("timeout must be a number of seconds in (0, 3600]")]
    BadTimeout,
    #[error("the workload is not resolved yet")]
    NotReady,
    #[error("no service named {0:?}")]
    NoSuchService(String),
    #[error("{0} is a container that is not running: there is nothing to exec in")]
    ContainerNotRunning(String),
    #[error("{MAX_CONCURRENT_EXECS} execs are running already; try again later")]
    TooManyExecs,
    #[error("the output of the running execs already takes {MAX_OUTPUT_HELD} bytes; try again later or ask for less (max_output)")]
    OutputBudget,
    #[error("cannot start {argv0:?}: {source}")]
    Spawn {
        argv0: String,
        #[source]
        source: std::io::Error,
    },
}

/// Who a command runs as, with which env and where: the workload's identity, env and
/// directory when asked (`workload_user`); otherwise root, a root environment
/// ([`crate::workload::env::root_env`]: nothing of the workload's that names a path) and `/`.
pub(super) struct Launch {
    pub env: crate::workload::env::Env,
    pub identity: Identity,
    pub cwd: PathBuf,
    /// A service's cgroup leaves, joined before exec.
    pub cgroup_joins: Vec<std::ffi::CString>,
    /// A container service: the command runs inside it, through the runtime's `exec`.
    pub container: Option<ExecTarget>,
}

impl Launch {
    /// Starts `argv` as this launch says, with the given stdio, registered with the one reaper
    /// (its own session and process group; `tty`: fd 0 becomes its controlling terminal).
    pub(super) fn spawn(
        &self,
        state: &ControlState,
        argv: &[String],
        stdio: [Stdio; 3],
        tty: bool,
    ) -> std::io::Result<(i32, tokio::sync::oneshot::Receiver<ChildExit>)> {
        if let Some(target) = &self.container {
            let inside = target.exec(&self.identity, &self.cwd, argv);
            return state.supervisor().exec(inside.command(stdio, tty));
        }
        let [stdin, stdout, stderr] = stdio;
        state.supervisor().exec(ChildSpec {
            argv,
            env: &self.env,
            identity: &self.identity,
            cwd: &self.cwd,
            stdin,
            stdout,
            stderr,
            cgroup_joins: self.cgroup_joins.clone(),
            controlling_tty: tty,
        })
    }
}

pub(super) async fn launch_for(
    state: &ControlState,
    workload_user: bool,
    container: Option<&str>,
) -> Result<Launch, ExecError> {
    // Inside a service: as its current start runs, which the supervisor resolves; the
    // workload's user is the first service's, inside it when that one is a container (its
    // uid on the VM's root would be another identity altogether).
    let into = match container {
        Some(name) => Some(ExecInto::Service(name.to_string())),
        None if workload_user && state.first_is_container() => Some(ExecInto::WorkloadUser),
        None => None,
    };
    if let Some(into) = into {
        return placed(state, into).await;
    }
    let spec = state.spec().ok_or(ExecError::NotReady)?;
    Ok(if workload_user {
        Launch {
            env: spec.env,
            identity: spec.identity,
            cwd: spec.working_dir,
            cgroup_joins: Vec::new(),
            container: None,
        }
    } else {
        Launch {
            env: crate::workload::env::root_env(&spec.env).into(),
            identity: Identity::root(),
            cwd: PathBuf::from("/"),
            cgroup_joins: Vec::new(),
            container: None,
        }
    })
}

/// An exec inside a service, placed by the supervisor. While it runs no services (the boot,
/// after the machine's end) a process service's exec runs as the boot resolved it, without
/// its leaves; a container has nothing to exec in.
async fn placed(state: &ControlState, into: ExecInto) -> Result<Launch, ExecError> {
    let launch = |p: Placement| Launch {
        env: p.spec.env,
        identity: p.spec.identity,
        cwd: p.spec.working_dir,
        cgroup_joins: p.cgroup_joins,
        container: p.container,
    };
    let name = match &into {
        ExecInto::Service(name) => name.clone(),
        ExecInto::WorkloadUser => state.first_service_name().ok_or(ExecError::NotReady)?,
    };
    let boot = state
        .service_spec(&name)
        .ok_or_else(|| ExecError::NoSuchService(name.clone()))?;
    match state.supervisor().placement(into).await {
        Ok(Some(placement)) => Ok(launch(placement)),
        Ok(None) => Err(ExecError::NotReady),
        Err(ServiceRefusal::NoSuchService(n)) => Err(ExecError::NoSuchService(n)),
        Err(ServiceRefusal::NotRunning(n)) => Err(ExecError::ContainerNotRunning(n)),
        Err(_) if boot.container => Err(ExecError::ContainerNotRunning(name)),
        Err(_) => Ok(Launch {
            env: boot.spec.env,
            identity: boot.spec.identity,
            cwd: boot.spec.working_dir,
            cgroup_joins: Vec::new(),
            container: None,
        }),
    }
}

pub(super) fn check_command(cmd: &[String]) -> Result<(), ExecError> {
    if cmd.first().is_none_or(|c| c.is_empty()) || cmd.iter().any(|a| a.contains('\0')) {
        return Err(ExecError::BadCommand);
    }
    Ok(())
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    Ok(nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?)
}

/// Output kept up to a cap and within the shared budget; what is beyond either is read and
/// dropped, so the writer never blocks. Gives its bytes back to the budget when dropped.
struct Capped {
    data: Vec<u8>,
    cap: usize,
    truncated: bool,
}

impl Capped {
    fn new(cap: usize) -> Self {
        Capped {
            data: Vec::new(),
            cap,
            truncated: false,
        }
    }

    fn push(&mut self, chunk: &[u8]) {
        let room = self.cap.saturating_sub(self.data.len());
        let want = chunk.len().min(room);
        let got = take_budget(want);
        if chunk.len() > got {
            self.truncated = true;
        }
        self.data.extend_from_slice(&chunk[..got]);
    }

    /// The bytes, their budget given back.
    fn take(mut self) -> Vec<u8> {
        let data = std::mem::take(&mut self.data);
        give_back_budget(data.len());
        data
    }
}

impl Drop for Capped {
    fn drop(&mut self) {
        give_back_budget(self.data.len());
    }
}

pub async fn run(state: &ControlState, req: ExecRequest) -> Result<ExecResponse, ExecError> {
    check_command(&req.cmd)?;
    let timeout = match req.timeout {
        None => DEFAULT_TIMEOUT,
        Some(t) if t > 0.0 && t <= MAX_TIMEOUT.as_secs_f64() => Duration::from_secs_f64(t),
        Some(_) => return Err(ExecError::BadTimeout),
    };
    let cap = req.max_output.unwrap_or(DEFAULT_MAX_OUTPUT).min(MAX_OUTPUT);
    let launch = launch_for(state, req.workload_user, req.container.as_deref()).await?;
    // Held until the answer is built: bounded in number and in the output they hold.
    let _slot = EXEC_SLOTS
        .try_acquire()
        .map_err(|_| ExecError::TooManyExecs)?;
    if OUTPUT_HELD.load(std::sync::atomic::Ordering::SeqCst) >= MAX_OUTPUT_HELD {
        return Err(ExecError::OutputBudget);
    }
    let spawn_err = |source| ExecError::Spawn {
        argv0: req.cmd[0].clone(),
        source,
    };
    let (out_r, out_w) = pipe().map_err(spawn_err)?;
    let (err_r, err_w) = pipe().map_err(spawn_err)?;
    let stdio = [Stdio::null(), Stdio::from(out_w), Stdio::from(err_w)];
    let (pid, mut exit_rx) = launch
        .spawn(state, &req.cmd, stdio, false)
        .map_err(spawn_err)?;
    let mut out = tokio::net::unix::pipe::Receiver::from_owned_fd(out_r).map_err(spawn_err)?;
    let mut err = tokio::net::unix::pipe::Receiver::from_owned_fd(err_r).map_err(spawn_err)?;

    let mut stdout = Capped::new(cap);
    let mut stderr = Capped::new(cap);
    let (mut out_open, mut err_open) = (true, true);
    let mut exit = None;
    let mut timed_out = false;
    let deadline = roost_platform::deadline::from_now(timeout);
    let mut buf_out = vec![0u8; 16 * 1024];
    let mut buf_err = vec![0u8; 16 * 1024];
    while out_open || err_open || exit.is_none() {
        let stop_at = if timed_out {
            roost_platform::deadline::after(deadline, AFTER_KILL)
        } else {
            deadline
        };
        tokio::select! {
            n = out.read(&mut buf_out), if out_open => match n {
                Ok(0) | Err(_) => out_open = false,
                Ok(n) => stdout.push(&buf_out[..n]),
            },
            n = err.read(&mut buf_err), if err_open => match n {
                Ok(0) | Err(_) => err_open = false,
                Ok(n) => stderr.push(&buf_err[..n]),
            },
            e = &mut exit_rx, if exit.is_none() => {
                // A dropped sender would mean a lost status; report it as unknown.
                exit = Some(e.ok());
            }
            _ = tokio::time::sleep_until(stop_at) => {
                if timed_out {
                    // Something outside the group still holds the pipes: answer anyway.
                    break;
                }
                timed_out = true;
                state.supervisor().kill_exec(pid);
            }
        }
    }
    let exit = exit.flatten();
    let (stdout_truncated, stderr_truncated) = (stdout.truncated, stderr.truncated);
    // Where the anchors disagree, the host's dialect decides.
    let dialect = state.dialect();
    let encoding = req.output.unwrap_or(match dialect {
        Dialect::Pigeon => OutputEncoding::String,
        Dialect::Fly => OutputEncoding::Bytes,
    });
    let exit_code = match (exit.and_then(|e| e.code), exit.and_then(|e| e.signal)) {
        (Some(code), _) => Some(code),
        (None, Some(_)) if dialect == Dialect::Pigeon => Some(-1),
        _ => None,
    };
    Ok(ExecResponse {
        exit_code,
        exit_signal: exit.and_then(|e| e.signal),
        stdout: Output::encode(stdout.take(), encoding),
        stderr: Output::encode(stderr.take(), encoding),
        stdout_truncated,
        stderr_truncated,
        timed_out,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_checked() {
        assert!(check_command(&["ls".into()]).is_ok());
        assert!(check_command(&[]).is_err());
        assert!(check_command(&["".into()]).is_err());
        assert!(check_command(&["ls".into(), "a\0b".into()]).is_err());
    }

    #[test]
    fn output_is_capped_but_counted_as_truncated() {
        let mut c = Capped::new(5);
        c.push(b"abc");
        assert!(!c.truncated);
        c.push(b"defg");
        assert_eq!(c.data, b"abcde");
        assert!(c.truncated);
        assert_eq!(c.take(), b"abcde");
    }
}
