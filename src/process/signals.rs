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

/// Signals roost installs handlers for.
pub const HANDLED: [i32; 7] = [
    libc::SIGCHLD,
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// The installed handlers but SIGCHLD's, as one stream of signal numbers.
#[derive(Debug)]
pub struct Signals {
    streams: Vec<(i32, Signal)>,
}

impl Signals {
    /// Installs every handler in [`HANDLED`]; returns the SIGCHLD stream (for the reaper
    /// task) apart from the others. Needs a tokio runtime with signals enabled.
    pub fn install() -> std::io::Result<(Signal, Self)> {
        let sigchld = signal(SignalKind::child())?;
        let streams = HANDLED
            .iter()
            .filter(|&&sig| sig != libc::SIGCHLD)
            .map(|&sig| Ok((sig, signal(SignalKind::from_raw(sig))?)))
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
