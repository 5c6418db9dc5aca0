//! Starting children (the workload, execs): their own session and process group, cgroup,
//! identity, directory.
//!
//! Everything the child does between fork and exec happens in `pre_exec`, where only
//! async-signal-safe calls are allowed: all strings are prepared before the fork, and the
//! closure makes raw syscalls only. The order matters: join the cgroup while still root, drop
//! supplementary groups before the gid, the gid before the uid, and change directory last, as
//! the workload user (as runc does), so a directory it may not enter is an error.

use crate::workload::{Identity, WorkloadSpec};
use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// The exit code roost reports when the workload could not be started.
pub fn spawn_failure_code(err: &std::io::Error) -> i32 {
    match err.raw_os_error() {
        Some(libc::ENOENT) => crate::exit::NOT_FOUND,
        // The machine is short of something for now: another try may work.
        Some(
            libc::EAGAIN
            | libc::ENOMEM
            | libc::EMFILE
            | libc::ENFILE
            | libc::EINTR
            | libc::EBUSY
            | libc::ETXTBSY,
        ) => crate::exit::TEMPORARY,
        _ => crate::exit::CANNOT_EXECUTE,
    }
}

fn cstring(s: &[u8]) -> std::io::Result<CString> {
    CString::new(s).map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "NUL byte"))
}

/// Everything about a child that roost starts (the workload, an exec).
#[derive(Debug)]
pub struct ChildSpec<'a> {
    pub argv: &'a [String],
    pub env: &'a [(String, String)],
    pub identity: &'a Identity,
    pub cwd: &'a Path,
    pub stdin: Stdio,
    pub stdout: Stdio,
    pub stderr: Stdio,
    /// The files a new child writes `0` to, to join its cgroup leaves before exec (v2
    /// `cgroup.procs`, v1 `tasks`).
    pub cgroup_joins: Vec<CString>,
    /// Make the terminal on fd 0 the child's controlling terminal (interactive shells).
    pub controlling_tty: bool,
}

/// In a new child before exec: a fresh process's signal state, every disposition the default
/// and an empty mask, in that order (a child cloned with every signal blocked runs none of
/// roost's handlers while they change). Ignored signals survive an exec (roost's SIGPIPE, or
/// anything roost inherited ignored), so every signal roost has no handler for is reset here;
/// the ones roost handles are left to the exec, which resets them by itself (about 50
/// syscalls fewer on the way to the exec; [`super::signals`]'s handler gives them their
/// default action in the child until then).
///
/// # Safety
/// Only in a child between fork (or clone) and exec: it changes the whole process's signal
/// state. It makes raw, async-signal-safe syscalls only.
pub(super) unsafe fn reset_signals() {
    let handled = super::signals::handled_by_roost();
    for sig in 1..=64 {
        let roosts = handled & super::signals::bit(sig) != 0;
        if sig != libc::SIGKILL && sig != libc::SIGSTOP && !roosts {
            super::signals::set_default(sig);
        }
    }
    let empty: u64 = 0;
    // SAFETY: rt_sigprocmask with a pointer to a live stack value and the kernel's sigset
    // size (8 bytes).
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &empty as *const u64,
            std::ptr::null_mut::<u64>(),
            8usize,
        );
    }
}

/// Whether the child switches to `identity`. Only root can switch identity. An unprivileged
/// roost (a subreaper on a laptop) runs the child as itself; asking it for another identity is
/// an error, not a silent downgrade.
fn switches_identity(identity: &Identity) -> std::io::Result<bool> {
    let (uid, gid) = (identity.uid, identity.gid);
    let root = nix::unistd::geteuid().is_root();
    if !root && (uid != nix::unistd::geteuid().as_raw() || gid != nix::unistd::getegid().as_raw()) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("roost is not root and cannot run a child as {uid}:{gid}"),
        ));
    }
    Ok(root)
}

/// Forks and execs a child in a new session and process group of its own (pgid == pid).
/// Returns its pid.
pub fn spawn_child(spec: ChildSpec<'_>) -> std::io::Result<i32> {
    let Some((program, args)) = spec.argv.split_first() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "empty argv",
        ));
    };
    let uid = spec.identity.uid;
    let gid = spec.identity.gid;
    let groups: Vec<libc::gid_t> = spec.identity.groups.clone();
    let cwd = cstring(spec.cwd.as_os_str().as_bytes())?;
    let switch_identity = switches_identity(spec.identity)?;
    let cgroup_joins = spec.cgroup_joins;
    let controlling_tty = spec.controlling_tty;

    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(spec.stdin)
        .stdout(spec.stdout)
        .stderr(spec.stderr);

    let child_setup = move || -> std::io::Result<()> {
        // SAFETY: in the forked child before exec, which is what reset_signals is for.
        unsafe { reset_signals() };
        // SAFETY: setsid(2) takes no arguments; the forked child is not a group leader, so it
        // becomes the leader of a new session and process group (pgid == pid).
        if unsafe { libc::setsid() } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if controlling_tty {
            // SAFETY: fd 0 is the PTY slave std installed; TIOCSCTTY takes an int argument.
            if unsafe { libc::ioctl(0, libc::TIOCSCTTY, 0) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        for join in &cgroup_joins {
            // Best effort: the parent moves the pid again after spawn and warns if that fails.
            // SAFETY: `join` is a NUL-terminated path built before the fork; open/write/close
            // are async-signal-safe and the buffer is a static byte string.
            unsafe {
                let fd = libc::open(join.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd >= 0 {
                    libc::write(fd, b"0".as_ptr().cast(), 1);
                    libc::close(fd);
                }
            }
        }
        if switch_identity {
            // SAFETY: `groups` is a live Vec of gid_t prepared before the fork; setgroups(2)
            // reads exactly `len` entries from it.
            if unsafe { libc::setgroups(groups.len(), groups.as_ptr()) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
            // SAFETY: setgid(2) and setuid(2) take plain integers.
            if unsafe { libc::setgid(gid) } < 0 || unsafe { libc::setuid(uid) } < 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
        // SAFETY: `cwd` is a NUL-terminated path built before the fork.
        if unsafe { libc::chdir(cwd.as_ptr()) } < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: the closure only makes async-signal-safe syscalls on data prepared before the
    // fork, and allocates nothing.
    unsafe { cmd.pre_exec(child_setup) };

    let child = cmd.spawn()?;
    // The returned Child is dropped without waiting: the reaper owns the exit status.
    Ok(child.id() as i32)
}

/// Where the workload is born: the cgroup v2 leaf it is cloned into (when there is one) and
/// the join files of every leaf (v2 `cgroup.procs`, v1 `tasks`), for the v1 joins and the
/// fallback.
#[derive(Debug)]
pub struct Placement {
    pub v2_dir: Option<OwnedFd>,
    pub v1_joins: Vec<CString>,
    pub all_joins: Vec<CString>,
}

/// Forks and execs the workload. Its stdout and stderr both go to `output`; stdin is
/// inherited. Born in its cgroup v2 leaf by `clone3(CLONE_INTO_CGROUP)` where the kernel has
/// it ([`super::clone_into`]), else started by the std path that joins every leaf before exec.
/// How the workload got into its cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Born {
    /// Cloned into its v2 leaf; `v1_joined`: every v1 leaf joined before exec too.
    InCgroup { v1_joined: bool },
    /// Forked, then joined its leaves before exec (best effort: the parent joins it again).
    Forked,
}

impl Born {
    /// Whether the parent must (re)join the child to its leaves: only when a join may have
    /// failed.
    pub fn parent_must_join(self) -> bool {
        !matches!(self, Born::InCgroup { v1_joined: true })
    }
}

/// Returns the pid and how it got into its cgroup.
pub fn spawn_workload(
    spec: &WorkloadSpec,
    output: OwnedFd,
    placement: &Placement,
) -> std::io::Result<(i32, Born)> {
    if let Some(dir) = &placement.v2_dir {
        let prepared = prepare_clone(spec, dir, &output, &placement.v1_joins)?;
        match super::clone_into::spawn(&prepared)? {
            super::clone_into::Cloned::Started { pid, v1_failed } => {
                return Ok((
                    pid,
                    Born::InCgroup {
                        v1_joined: v1_failed == 0,
                    },
                ))
            }
            super::clone_into::Cloned::Unsupported => {
                tracing::debug!("clone3(CLONE_INTO_CGROUP) is not available: the workload joins its cgroup after fork");
            }
        }
    }
    let pid = spawn_child(ChildSpec {
        argv: &spec.argv,
        env: &spec.env,
        identity: &spec.identity,
        cwd: &spec.working_dir,
        stdin: Stdio::inherit(),
        stdout: Stdio::from(output.try_clone()?),
        stderr: Stdio::from(output),
        cgroup_joins: placement.all_joins.clone(),
        controlling_tty: false,
    })?;
    Ok((pid, Born::Forked))
}

/// The strings and descriptors the cloned child uses, built before the clone.
fn prepare_clone<'a>(
    spec: &WorkloadSpec,
    cgroup_dir: &'a OwnedFd,
    output: &'a OwnedFd,
    v1_joins: &[CString],
) -> std::io::Result<super::clone_into::Prepared<'a>> {
    use std::os::fd::AsFd;
    let Some(program) = spec.argv.first() else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "empty argv",
        ));
    };
    let path_env = spec
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str());
    let strings = |items: Vec<String>| -> std::io::Result<Vec<CString>> {
        items.into_iter().map(|s| cstring(s.as_bytes())).collect()
    };
    let identity = switches_identity(&spec.identity)?.then(|| {
        (
            spec.identity.uid,
            spec.identity.gid,
            spec.identity.groups.clone(),
        )
    });
    Ok(super::clone_into::Prepared {
        candidates: strings(super::clone_into::candidates(program, path_env))?,
        argv: strings(spec.argv.clone())?,
        envp: strings(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect())?,
        cwd: cstring(spec.working_dir.as_os_str().as_bytes())?,
        cgroup_dir: cgroup_dir.as_fd(),
        v1_joins: v1_joins.to_vec(),
        output: output.as_fd(),
        identity,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_codes() {
        let enoent = std::io::Error::from_raw_os_error(libc::ENOENT);
        let eacces = std::io::Error::from_raw_os_error(libc::EACCES);
        assert_eq!(spawn_failure_code(&enoent), 127);
        assert_eq!(spawn_failure_code(&eacces), 126);
        // A pids limit or memory pressure passes: not final.
        for errno in [libc::EAGAIN, libc::ENOMEM, libc::EMFILE] {
            let err = std::io::Error::from_raw_os_error(errno);
            assert_eq!(spawn_failure_code(&err), crate::exit::TEMPORARY, "{err}");
        }
    }
}
