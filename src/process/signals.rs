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

/// The installed handlers but SIGCHLD's, as one stream of signal numbers.
#[derive(Debug)]
pub struct Signals {
    streams: Vec<(i32, Signal)>,
}

impl Signals {
    /// Installs every handler ([`forwarded`] and SIGCHLD); returns the SIGCHLD stream (for
    /// the reaper task) apart from the others. Needs a tokio runtime with signals enabled.
    pub fn install() -> std::io::Result<(Signal, Self)> {
        let sigchld = signal(SignalKind::child())?;
        let streams = forwarded()
            .map(|sig| Ok((sig, signal(SignalKind::from_raw(sig))?)))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok((sigchld, Signals { streams }))
    }

    /// Waits for the next signal. Cancel-safe.
    pub async fn recv(&mut self) -> i32 {
        std::future::poll_fn(|cx| {
            for (sig, stream) in &mut self.streams {
                // Ready(None) would mean the signal driver is gone; treat it as silence.
                if let std::task::Poll::Ready(Some(())) = stream.poll_recv(cx) {
                    return std::task::Poll::Ready(*sig);
                }
            }
            std::task::Poll::Pending
        })
        .await
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
