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

/// The handler of every forwarded signal: its number, one byte, into the pipe. Only
/// async-signal-safe calls; a full pipe drops the byte (signals of one kind coalesce anyway).
extern "C" fn on_signal(sig: libc::c_int) {
    let fd = SIGNAL_PIPE.load(std::sync::atomic::Ordering::Relaxed);
    if fd >= 0 {
        let byte = u8::try_from(sig).unwrap_or(0);
        let errno = errno_location();
        // SAFETY: `errno_location` points at this thread's errno; it is saved and restored so
        // the interrupted code does not see the write's.
        let saved = unsafe { *errno };
        // SAFETY: write(2) is async-signal-safe; the buffer is one live byte on this stack.
        unsafe { libc::write(fd, std::ptr::from_ref(&byte).cast(), 1) };
        // SAFETY: as above.
        unsafe { *errno = saved };
    }
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
        }
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
