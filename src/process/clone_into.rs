//! The workload born in its cgroup: `clone3(CLONE_INTO_CGROUP)` (Linux 5.7) starts the child
//! directly in its cgroup v2 leaf, so no `cgroup.procs` write migrates it. A migration takes
//! the kernel's global cgroup threadgroup lock, whose first writer waits for an RCU grace
//! period (5 to 20 ms on the build machines, on the workload's path to its first
//! instruction); a child created in place takes none of it.
//!
//! The child then does what the std spawn path's `pre_exec` does (see [`super::spawn`]): its
//! stdio, a session of its own, the cgroup v1 leaves (v1 has no clone-into; the child joins
//! each through its `tasks` file, as one thread moving itself, which takes no global lock
//! either: see `Leaf::join_file` in [`super::cgroup`]), the identity,
//! the directory, and exec, with async-signal-safe calls only, on data prepared before the
//! clone (raw syscalls where the C library would assume the parent's threads). Through a
//! close-on-exec pipe it tells the parent which v1 joins failed (one word, a
//! bit per leaf) and, if the exec failed, its errno (a second word). On x86_64 the child
//! shares roost's memory until it execs, as `posix_spawn`'s does ([`clone_child`]). A kernel without
//! clone3 or CLONE_INTO_CGROUP answers ENOSYS, E2BIG or EINVAL before any child exists, and
//! the caller falls back to the std path.

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd};

/// `CLONE_INTO_CGROUP` from linux/sched.h (not in every libc version).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` (linux/sched.h), up to the `cgroup` field (CLONE_ARGS_SIZE_VER2).
#[repr(C)]
#[derive(Debug, Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Everything the child needs, prepared before the clone (the child allocates nothing).
#[derive(Debug)]
pub struct Prepared<'a> {
    /// Programs to try in order (`argv[0]` itself, or each `PATH` entry joined with it), as
    /// execvp does: ENOENT, ENOTDIR and EACCES go on to the next.
    pub candidates: Vec<CString>,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub cwd: CString,
    /// The cgroup v2 leaf directory the child is born in.
    pub cgroup_dir: BorrowedFd<'a>,
    /// cgroup v1 `tasks` files the child writes `0` to, to join each leaf itself (at most 32).
    pub v1_joins: Vec<CString>,
    /// fd 1 and 2 of the child.
    pub output: BorrowedFd<'a>,
    /// None: keep roost's identity.
    pub identity: Option<(libc::uid_t, libc::gid_t, Vec<libc::gid_t>)>,
}

/// What the clone gave.
#[derive(Debug)]
pub enum Cloned {
    /// The child runs the workload. `v1_failed`: a bit per `v1_joins` entry it could not join.
    Started { pid: i32, v1_failed: u32 },
    /// The kernel cannot clone into a cgroup: no child exists; use the std path.
    Unsupported,
}

/// Clones the child into its cgroup and execs it.
pub fn spawn(prepared: &Prepared<'_>) -> std::io::Result<Cloned> {
    let argv: Vec<*const libc::c_char> = prepared
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let envp: Vec<*const libc::c_char> = prepared
        .envp
        .iter()
        .map(|e| e.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let (report_r, report_w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let rc = clone_child(
        prepared.cgroup_dir.as_raw_fd(),
        &ChildArgs {
            prepared,
            argv: &argv,
            envp: &envp,
            report: report_w.as_raw_fd(),
        },
    );
    if rc < 0 {
        let err = std::io::Error::from_raw_os_error(i32::try_from(-rc).unwrap_or(libc::EINVAL));
        return match err.raw_os_error() {
            Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL | libc::EOPNOTSUPP) => {
                Ok(Cloned::Unsupported)
            }
            _ => Err(err),
        };
    }
    let pid = rc as i32;
    drop(report_w);
    let (v1_failed, exec_errno) = read_report(&report_r);
    match exec_errno {
        None => Ok(Cloned::Started { pid, v1_failed }),
        Some(errno) => {
            // The child has exited (it _exits right after the report); reap it here, as the
            // std path does, so its status is not an orphan's.
            let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(pid), None);
            Err(std::io::Error::from_raw_os_error(errno))
        }
    }
}

/// What the child reads: all of it prepared, and alive in the parent for the child's life.
struct ChildArgs<'p, 'a> {
    prepared: &'p Prepared<'a>,
    argv: &'p [*const libc::c_char],
    envp: &'p [*const libc::c_char],
    report: libc::c_int,
}

/// The child's stack where it shares roost's memory: mapped for one start and unmapped after
/// it (as glibc's `posix_spawn` does), with a guard page below it. The child needs little
/// (raw syscalls and a few words) and grows down from the top, touching a page or two. Not
/// the parent's own stack (a frame that large is probed page by page, which made 16 KiB of
/// roost's idle memory for good) and not a static buffer (whose touched page stays roost's).
#[cfg(target_arch = "x86_64")]
struct ChildStack {
    base: *mut libc::c_void,
}

#[cfg(target_arch = "x86_64")]
impl ChildStack {
    const GUARD: usize = 4096;
    const USABLE: usize = 32 * 1024;

    fn map() -> std::io::Result<Self> {
        // SAFETY: a new private anonymous mapping, no address asked for; the result is checked.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                Self::GUARD + Self::USABLE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        let stack = ChildStack { base };
        // SAFETY: the lowest page of the mapping just made, which nothing uses yet.
        if unsafe { libc::mprotect(base, Self::GUARD, libc::PROT_NONE) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// The usable part's lowest address (what clone3 takes, with its size).
    fn bottom(&self) -> u64 {
        self.base as u64 + Self::GUARD as u64
    }
}

#[cfg(target_arch = "x86_64")]
impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: the whole mapping made in `map`, no longer used: the child has exec'd or
        // exited before the parent is resumed (CLONE_VFORK).
        unsafe { libc::munmap(self.base, Self::GUARD + Self::USABLE) };
    }
}

/// Clones the child into `cgroup_dir` and runs [`child`] in it; returns its pid, or `-errno`.
///
/// On x86_64 the child shares roost's memory and roost's thread waits until it has exec'd
/// (`CLONE_VM | CLONE_VFORK`, what `posix_spawn` does): no page table is copied, no page is
/// copied on write by either side, and the exec has no copied address space to tear down.
/// The parent waited for the exec before as well (the report pipe), so it waits no longer.
/// Every signal is blocked across the clone; the child resets what its exec would not (the
/// ignored signals) before it unblocks them, and roost's handlers, which the exec resets,
/// give a signal that reaches the child before then its default action
/// ([`super::signals`]).
#[cfg(target_arch = "x86_64")]
fn clone_child(cgroup_dir: libc::c_int, child_args: &ChildArgs<'_, '_>) -> i64 {
    let stack = match ChildStack::map() {
        Ok(stack) => stack,
        Err(err) => return -i64::from(err.raw_os_error().unwrap_or(libc::ENOMEM)),
    };
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP | libc::CLONE_VM as u64 | libc::CLONE_VFORK as u64,
        exit_signal: libc::SIGCHLD as u64,
        stack: stack.bottom(),
        stack_size: ChildStack::USABLE as u64,
        cgroup: cgroup_dir as u64,
        ..CloneArgs::default()
    };
    let all = !0u64;
    let mut old = 0u64;
    let entry: extern "C" fn(*const ChildArgs<'_, '_>) -> ! = child_entry;
    let rc: i64;
    // SAFETY: rt_sigprocmask with pointers to live stack words and the kernel's set size.
    // clone3 with CLONE_VM and a stack: the child starts on `stack` (mapped for it; its top
    // is page-aligned, and the call below needs 16 bytes) and calls `entry(child_args)`,
    // which never returns; the parent gets the pid or -errno in rax and is not resumed before
    // the child's exec or exit (CLONE_VFORK), so `stack`, `args` and everything `child_args`
    // points to outlive the child's use of them. syscall clobbers rcx and r11; r12 and r13
    // carry the entry and its argument across it (the kernel keeps them in both).
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &all as *const u64,
            &mut old as *mut u64,
            8usize,
        );
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "xor ebp, ebp",
            "mov rdi, r13",
            "call r12",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 => rc,
            in("rdi") &args as *const CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") entry,
            in("r13") child_args as *const ChildArgs<'_, '_>,
            lateout("rcx") _,
            lateout("r11") _,
        );
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &old as *const u64,
            std::ptr::null_mut::<u64>(),
            8usize,
        );
    }
    rc
}

/// Elsewhere a plain clone3 (fork's copy of the address space), the child returning from
/// the syscall on its copy of this stack.
#[cfg(not(target_arch = "x86_64"))]
fn clone_child(cgroup_dir: libc::c_int, child_args: &ChildArgs<'_, '_>) -> i64 {
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: libc::SIGCHLD as u64,
        cgroup: cgroup_dir as u64,
        ..CloneArgs::default()
    };
    // SAFETY: clone3 with neither CLONE_VM nor a stack is fork(2): the child gets a copy of
    // this address space and returns here with 0. `args` lives across the call and its size
    // is passed exactly.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if rc == 0 {
        child_entry(child_args as *const ChildArgs<'_, '_>)
    }
    if rc < 0 {
        return -i64::from(
            std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EINVAL),
        );
    }
    rc as i64
}

/// The child's first Rust frame.
extern "C" fn child_entry(args: *const ChildArgs<'_, '_>) -> ! {
    // SAFETY: `args` is the parent's `ChildArgs`, alive until the child execs or exits (see
    // `clone_child`); this is the new child, which is what `child` is for.
    unsafe {
        let args = &*args;
        child(args.prepared, args.argv, args.envp, args.report)
    }
}

/// The child's words: the v1 join failures, then the exec's errno if it failed. EOF after
/// the first word means the exec succeeded.
fn read_report(fd: &std::os::fd::OwnedFd) -> (u32, Option<i32>) {
    let mut buf = [0u8; 8];
    let mut got = 0;
    while got < buf.len() {
        match nix::unistd::read(fd, &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    let word = |i: usize| {
        let mut w = [0u8; 4];
        w.copy_from_slice(&buf[i..i + 4]);
        u32::from_ne_bytes(w)
    };
    let v1_failed = if got >= 4 { word(0) } else { 0 };
    let errno = (got >= 8).then(|| word(4) as i32);
    (v1_failed, errno)
}

/// The child's side. Only syscalls: no allocation, no lock, no return.
///
/// # Safety
/// Must only be called in the child right after the clone, with `argv` and `envp` the
/// NUL-terminated pointer arrays of `prepared`.
unsafe fn child(
    prepared: &Prepared<'_>,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    report: libc::c_int,
) -> ! {
    let fail = |errno: libc::c_int, v1_failed: u32| -> ! {
        let mut words = [0u8; 8];
        words[..4].copy_from_slice(&v1_failed.to_ne_bytes());
        words[4..].copy_from_slice(&errno.to_ne_bytes());
        // SAFETY: write and _exit are async-signal-safe; `words` is on this stack.
        unsafe {
            libc::write(report, words.as_ptr().cast(), words.len());
            libc::_exit(127)
        }
    };
    // SAFETY: errno is thread-local and readable at any time.
    let errno = || unsafe { *libc::__errno_location() };
    // SAFETY: each call is an async-signal-safe syscall on integers, on NUL-terminated
    // strings prepared before the clone, or on stack buffers.
    unsafe {
        super::spawn::reset_signals();
        let out = prepared.output.as_raw_fd();
        if libc::dup2(out, 1) < 0 || libc::dup2(out, 2) < 0 {
            fail(errno(), 0);
        }
        // dup2 onto itself keeps close-on-exec (an output pipe that got fd 1 or 2 because
        // roost started with them closed): clear it on both.
        libc::fcntl(1, libc::F_SETFD, 0);
        libc::fcntl(2, libc::F_SETFD, 0);
        if libc::setsid() < 0 {
            fail(errno(), 0);
        }
        let mut v1_failed = 0u32;
        for (i, join) in prepared.v1_joins.iter().enumerate().take(32) {
            let fd = libc::open(join.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            let joined = fd >= 0 && libc::write(fd, b"0".as_ptr().cast(), 1) == 1;
            if fd >= 0 {
                libc::close(fd);
            }
            if !joined {
                v1_failed |= 1 << i;
            }
        }
        if let Some((uid, gid, groups)) = &prepared.identity {
            // Raw syscalls, not libc's wrappers: after a raw clone the C library still counts
            // the parent's threads, and its setuid family would wait forever for them to
            // follow (glibc's setxid broadcast). The child is one thread; the kernel's
            // per-thread call is exactly right.
            if libc::syscall(libc::SYS_setgroups, groups.len(), groups.as_ptr()) < 0
                || libc::syscall(libc::SYS_setgid, *gid) < 0
                || libc::syscall(libc::SYS_setuid, *uid) < 0
            {
                fail(errno(), v1_failed);
            }
        }
        if libc::chdir(prepared.cwd.as_ptr()) < 0 {
            fail(errno(), v1_failed);
        }
        // The v1 word now; the errno word only if no exec works.
        libc::write(report, v1_failed.to_ne_bytes().as_ptr().cast(), 4);
        let mut last = libc::ENOENT;
        for program in &prepared.candidates {
            libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr());
            let e = errno();
            match e {
                libc::ENOENT | libc::ENOTDIR => {}
                libc::EACCES => last = libc::EACCES,
                other => {
                    last = other;
                    break;
                }
            }
        }
        libc::write(report, last.to_ne_bytes().as_ptr().cast(), 4);
        libc::_exit(127)
    }
}

/// The programs to try for `program` with the child's `PATH` (execvp's order; the default
/// path when the env has none).
pub fn candidates(program: &str, path_env: Option<&str>) -> Vec<String> {
    if program.contains('/') {
        return vec![program.to_string()];
    }
    path_env
        .unwrap_or(crate::workload::env::DEFAULT_PATH)
        .split(':')
        .map(|dir| if dir.is_empty() { "." } else { dir })
        .map(|dir| format!("{}/{program}", dir.trim_end_matches('/')))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_follow_execvp() {
        assert_eq!(candidates("/bin/true", Some("/x")), ["/bin/true"]);
        assert_eq!(candidates("./run", None), ["./run"]);
        assert_eq!(
            candidates("sh", Some("/usr/bin::/bin/")),
            ["/usr/bin/sh", "./sh", "/bin/sh"]
        );
        assert!(candidates("sh", None).contains(&"/usr/bin/sh".to_string()));
    }

    #[test]
    fn the_report_words_decode() {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        let mut words = 5u32.to_ne_bytes().to_vec();
        words.extend_from_slice(&libc::EACCES.to_ne_bytes());
        nix::unistd::write(&w, &words).expect("write");
        drop(w);
        assert_eq!(read_report(&r), (5, Some(libc::EACCES)));
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).expect("pipe");
        nix::unistd::write(&w, &0u32.to_ne_bytes()).expect("write");
        drop(w);
        assert_eq!(read_report(&r), (0, None));
    }
}
