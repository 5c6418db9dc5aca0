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
    if err.raw_os_error() == Some(libc::ENOENT) {
        crate::exit::NOT_FOUND
    } else {
        crate::exit::CANNOT_EXECUTE
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
    /// `cgroup.procs` files to join before exec.
    pub cgroup_procs: Vec<CString>,
    /// Make the terminal on fd 0 the child's controlling terminal (interactive shells).
    pub controlling_tty: bool,
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
    // Only root can switch identity. An unprivileged roost (a subreaper on a laptop) runs the
    // child as itself; asking it for another identity is an error, not a silent downgrade.
    let switch_identity = nix::unistd::geteuid().is_root();
    if !switch_identity
        && (uid != nix::unistd::geteuid().as_raw() || gid != nix::unistd::getegid().as_raw())
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!("roost is not root and cannot run a child as {uid}:{gid}"),
        ));
    }
    let cgroup_procs = spec.cgroup_procs;
    let controlling_tty = spec.controlling_tty;

    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(spec.stdin)
        .stdout(spec.stdout)
        .stderr(spec.stderr);

    let child_setup = move || -> std::io::Result<()> {
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
        for procs in &cgroup_procs {
            // Best effort: the parent moves the pid again after spawn and warns if that fails.
            // SAFETY: `procs` is a NUL-terminated path built before the fork; open/write/close
            // are async-signal-safe and the buffer is a static byte string.
            unsafe {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
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

/// Forks and execs the workload. Its stdout and stderr both go to `output`; stdin is
/// inherited.
pub fn spawn_workload(
    spec: &WorkloadSpec,
    output: OwnedFd,
    cgroup_procs: Vec<CString>,
) -> std::io::Result<i32> {
    spawn_child(ChildSpec {
        argv: &spec.argv,
        env: &spec.env,
        identity: &spec.identity,
        cwd: &spec.working_dir,
        stdin: Stdio::inherit(),
        stdout: Stdio::from(output.try_clone()?),
        stderr: Stdio::from(output),
        cgroup_procs,
        controlling_tty: false,
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
    }
}
