//! Signals sent to roost: which ones it listens to, and what each one means.
//!
//! Handlers are installed (through tokio, which uses signal-hook-registry) before the first
//! child is spawned, so no SIGCHLD and no stop request can be lost. A handler also makes a
//! signal deliverable to PID 1 at all: the kernel drops signals to a namespace's init that has
//! no handler for them.

use tokio::signal::unix::{signal, Signal, SignalKind};

/// What roost does with a signal it received (SIGCHLD goes to the reaper task instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalAction {
    /// Stop the workload gracefully: KillSignal, KillTimeout, SIGKILL.
    GracefulStop,
    /// Pass the signal on to the workload's process group unchanged.
    Forward(i32),
}

/// The decision for each signal roost listens to (tini's forwarding, with SIGTERM armed as a
/// stop: a workload that ignores it is killed after KillTimeout instead of hanging the stop).
pub fn action_for(sig: i32) -> SignalAction {
    match sig {
        libc::SIGTERM => SignalAction::GracefulStop,
        other => SignalAction::Forward(other),
    }
}

/// The same in a VM, where SIGINT is Ctrl-Alt-Del (with RB_DISABLE_CAD) and means a stop.
pub fn action_in_vm(sig: i32) -> SignalAction {
    match action_for(sig) {
        SignalAction::Forward(libc::SIGINT) => SignalAction::GracefulStop,
        action => action,
    }
}

/// Every signal roost forwards (catatonit's rule: every catchable signal, SIGTERM and, in a
/// VM, SIGINT being the stop), besides the real-time ones (see [`forwarded`]). Left out, with
/// their reasons: SIGKILL and SIGSTOP (cannot be caught); SIGCHLD (the reaper's); SIGSEGV,
/// SIGBUS, SIGILL, SIGFPE, SIGTRAP and SIGSYS (faults of roost's own thread: a handler that
/// returns would fault again); SIGABRT (roost's own abort must end it); SIGPIPE (roost writing
/// to a closed pipe would otherwise pass the workload a SIGPIPE it never earned).
pub const FORWARDED_STANDARD: [i32; 20] = [
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGTERM,
    libc::SIGCONT,
    libc::SIGTSTP,
    libc::SIGTTIN,
    libc::SIGTTOU,
    libc::SIGURG,
    libc::SIGXCPU,
    libc::SIGXFSZ,
    libc::SIGVTALRM,
    libc::SIGPROF,
    libc::SIGWINCH,
    libc::SIGIO,
    libc::SIGPWR,
    libc::SIGSTKFLT,
];

/// Every signal number roost installs a handler for but SIGCHLD: [`FORWARDED_STANDARD`] and
/// the real-time signals the C library leaves to programs (`SIGRTMIN..=SIGRTMAX`).
pub fn forwarded() -> impl Iterator<Item = i32> {
    FORWARDED_STANDARD
        .into_iter()
        .chain(libc::SIGRTMIN()..=libc::SIGRTMAX())
}

/// The write end of the pipe the forwarded signals' handler writes to (-1: none yet).
static SIGNAL_PIPE: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(-1);
/// roost's own pid, to tell roost from a child of its that has not exec'd yet.
static ROOST_PID: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);
/// The signals whose disposition is a handler of roost's (bit `sig - 1`), once installed.
static HANDLED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The signals whose disposition is a handler of roost's (bit `sig - 1`): the forwarded ones
/// and SIGCHLD once [`Signals::install`] has run, none before. A new child leaves these to
/// its exec, which resets every handled signal by itself (see [`on_signal`] for the time
/// before it).
pub fn handled_by_roost() -> u64 {
    HANDLED.load(std::sync::atomic::Ordering::Relaxed)
}

/// The kernel's `struct sigaction` on x86_64 and aarch64 (not libc's: the raw syscall takes
/// the kernel's layout).
#[repr(C)]
struct KernelSigaction {
    handler: usize,
    flags: libc::c_ulong,
    restorer: usize,
    mask: u64,
}

/// Sets `sig`'s disposition to its default, with the raw syscall (the C library's own
/// `signal()` refuses its reserved real-time signals). Async-signal-safe; the result is not
/// checked (SIGKILL and SIGSTOP are refused, and nothing else fails).
pub fn set_default(sig: libc::c_int) {
    let default = KernelSigaction {
        handler: 0, // SIG_DFL
        flags: 0,
        restorer: 0,
        mask: 0,
    };
    // SAFETY: rt_sigaction with a pointer to a live stack value and the kernel's sigset size
    // (8 bytes); no old action is asked for.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigaction,
            sig,
            &default as *const KernelSigaction,
            std::ptr::null_mut::<KernelSigaction>(),
            8usize,
        );
    }
}

/// The handler of every forwarded signal: its number, one byte, into the pipe. Only
/// async-signal-safe calls; a full pipe drops the byte (signals of one kind coalesce anyway).
///
/// A child of roost's keeps this handler from its clone to its exec, which resets it. A
/// signal sent to the child in between (it is blocked across the clone and unblocked just
/// before the exec) must not reach the pipe, where it would read as a signal to roost: the
/// child gives it its default action instead, as it would have a moment later.
extern "C" fn on_signal(sig: libc::c_int) {
    let errno = errno_location();
    // SAFETY: `errno_location` points at this thread's errno; it is saved and restored so
    // the interrupted code does not see the syscalls' below.
    let saved = unsafe { *errno };
    // SAFETY: getpid(2) is async-signal-safe and takes no arguments.
    let me = unsafe { libc::getpid() };
    if me != ROOST_PID.load(std::sync::atomic::Ordering::Relaxed) {
        set_default(sig);
        // SAFETY: kill(2) is async-signal-safe; the signal is blocked while this handler
        // runs, so it is taken, with its default action, when the handler returns.
        unsafe { libc::kill(me, sig) };
    } else {
        let fd = SIGNAL_PIPE.load(std::sync::atomic::Ordering::Relaxed);
        if fd >= 0 {
            let byte = u8::try_from(sig).unwrap_or(0);
            // SAFETY: write(2) is async-signal-safe; the buffer is one live byte on this
            // stack.
            unsafe { libc::write(fd, std::ptr::from_ref(&byte).cast(), 1) };
        }
    }
    // SAFETY: as above.
    unsafe { *errno = saved };
}

/// `sig`'s bit in a signal set of 64 (`sig - 1`; 0 for a number outside 1..=64).
pub(super) fn bit(sig: libc::c_int) -> u64 {
    u32::try_from(sig - 1)
        .ok()
        .and_then(|shift| 1u64.checked_shl(shift))
        .unwrap_or(0)
}

fn errno_location() -> *mut libc::c_int {
    // SAFETY: __errno_location has no preconditions and returns this thread's errno.
    unsafe { libc::__errno_location() }
}

/// The installed handlers but SIGCHLD's, as one stream of signal numbers. One pipe and one
/// `sigaction` per signal: the ~50 signals forwarded cost no allocation each (tokio's
/// registry, one stream per signal, cost PID 1 about 0.9 ms of start-up for them).
#[derive(Debug)]
pub struct Signals {
    pipe: tokio::net::unix::pipe::Receiver,
}

impl Signals {
    /// Installs every handler ([`forwarded`] through the pipe, SIGCHLD through tokio for the
    /// reaper task, returned apart). Needs a tokio runtime with signals and I/O enabled.
    pub fn install() -> std::io::Result<(Signal, Self)> {
        let sigchld = signal(SignalKind::child())?;
        let (read, write) =
            nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC | nix::fcntl::OFlag::O_NONBLOCK)?;
        let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(read)?;
        // The write end lives as long as roost: the handler may run at any time.
        let write = std::os::fd::IntoRawFd::into_raw_fd(write);
        SIGNAL_PIPE.store(write, std::sync::atomic::Ordering::Relaxed);
        ROOST_PID.store(
            std::process::id() as i32,
            std::sync::atomic::Ordering::Relaxed,
        );
        let mut handled = bit(libc::SIGCHLD);
        for sig in forwarded() {
            // SAFETY: sigaction(2) with a zeroed, then filled, struct on this stack; the
            // handler only calls async-signal-safe functions; SA_RESTART keeps roost's own
            // syscalls from failing with EINTR.
            let rc = unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
                action.sa_flags = libc::SA_RESTART;
                libc::sigemptyset(&mut action.sa_mask);
                libc::sigaction(sig, &action, std::ptr::null_mut())
            };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
            handled |= bit(sig);
        }
        HANDLED.store(handled, std::sync::atomic::Ordering::Relaxed);
        Ok((sigchld, Signals { pipe }))
    }

    /// Waits for the next signal. Cancel-safe (a byte is taken only when it is returned).
    pub async fn recv(&mut self) -> i32 {
        loop {
            let mut byte = [0u8; 1];
            match self.pipe.try_read(&mut byte) {
                Ok(1) => return i32::from(byte[0]),
                Ok(_) => std::future::pending::<()>().await,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if self.pipe.readable().await.is_err() {
                        std::future::pending::<()>().await;
                    }
                }
                Err(_) => std::future::pending::<()>().await,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ctrl_alt_del_stops_a_vm() {
        assert_eq!(action_in_vm(libc::SIGINT), SignalAction::GracefulStop);
        assert_eq!(action_in_vm(libc::SIGTERM), SignalAction::GracefulStop);
        assert_eq!(
            action_in_vm(libc::SIGHUP),
            SignalAction::Forward(libc::SIGHUP)
        );
        assert_eq!(
            action_for(libc::SIGINT),
            SignalAction::Forward(libc::SIGINT)
        );
    }

    #[test]
    fn every_catchable_signal_is_handled_but_the_reapers_and_roosts_own_faults() {
        let all: Vec<i32> = forwarded().collect();
        for sig in 1..=libc::SIGRTMAX() {
            let kept_out = [
                libc::SIGKILL,
                libc::SIGSTOP,
                libc::SIGCHLD,
                libc::SIGSEGV,
                libc::SIGBUS,
                libc::SIGILL,
                libc::SIGFPE,
                libc::SIGTRAP,
                libc::SIGSYS,
                libc::SIGABRT,
                libc::SIGPIPE,
            ];
            // 32 and 33 (34 with musl) are the C library's own, below SIGRTMIN.
            let libc_own = (32..libc::SIGRTMIN()).contains(&sig);
            assert_eq!(
                all.contains(&sig),
                !kept_out.contains(&sig) && !libc_own,
                "signal {sig}"
            );
        }
    }

    #[test]
    fn a_child_that_takes_a_forwarded_signal_before_its_exec_gets_the_default_action() {
        // In a child of roost's (any process but roost, whose pid `install` records), the
        // handler does what the signal's default says: SIGUSR1 ends the child.
        // SAFETY: the child makes async-signal-safe calls only (the handler, then _exit).
        match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => {
                on_signal(libc::SIGUSR1);
                // SAFETY: _exit is always safe to call.
                unsafe { libc::_exit(0) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).expect("wait");
                assert_eq!(
                    status,
                    nix::sys::wait::WaitStatus::Signaled(
                        child,
                        nix::sys::signal::Signal::SIGUSR1,
                        false
                    )
                );
            }
        }
    }

    #[test]
    fn signal_bits() {
        assert_eq!(bit(1), 1);
        assert_eq!(bit(64), 1 << 63);
        assert_eq!(bit(0), 0);
        assert_eq!(bit(65), 0);
    }

    #[test]
    fn actions() {
        assert_eq!(action_for(libc::SIGTERM), SignalAction::GracefulStop);
        for sig in [
            libc::SIGINT,
            libc::SIGHUP,
            libc::SIGQUIT,
            libc::SIGUSR1,
            libc::SIGUSR2,
        ] {
            assert_eq!(action_for(sig), SignalAction::Forward(sig));
        }
    }
}
