//! The control API's vsock connections followed to their end, so that a restore the host
//! does not announce is noticed by its transport reset: every connection reset at once
//! (the decision is [`crate::snapshot::vsock_reset`]; the kernel facts are there too).
//!
//! hyper alone would not see a reset. A reset virtio-vsock socket reports `EPOLLERR` and
//! `EPOLLOUT` but not `EPOLLIN`, and tokio wakes a reader only for `EPOLLIN` or a hang-up:
//! a connection waiting for its next request, or holding a long-poll of `/v1/exit_code`,
//! would sit there until its answer is written. So each connection's descriptor is also
//! watched for its error (a duplicate, registered for `Interest::ERROR` only), and
//! `SO_ERROR` tells a reset (`ECONNRESET`) from anything else. A reset connection's task is
//! ended at once: nothing can be read from or written to it any more.

use super::snapshot::restore_without_the_host;
use super::state::ControlState;
use crate::snapshot::vsock_reset::{Ending, Ticket, Verdict};
use crate::snapshot::Noticed;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Instant;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::task::JoinHandle;

/// A connection's descriptor, watched for its error beside hyper's own I/O on it.
#[derive(Debug)]
pub struct ErrorWatch(AsyncFd<OwnedFd>);

impl ErrorWatch {
    /// None when the descriptor cannot be duplicated or registered: that connection is
    /// then not followed (logged; it is served as any other).
    pub fn new(stream: &impl AsFd) -> Option<Self> {
        let watched = stream.as_fd().try_clone_to_owned().and_then(|fd| {
            // SAFETY: `fd` is a duplicate of our own, owned by the AsyncFd until it drops
            // it; nothing else closes or reuses it.
            unsafe { AsyncFd::register_with_interest(fd, Interest::ERROR) }
                .map_err(|e| e.into_parts().1)
        });
        match watched {
            Ok(fd) => Some(ErrorWatch(fd)),
            Err(e) => {
                tracing::warn!(
                    "control API: a vsock connection cannot be watched for a reset: {e}"
                );
                None
            }
        }
    }

    /// Whether the socket's pending error is `ECONNRESET` (reading it clears it; hyper's
    /// own I/O on a reset socket fails with `ENOTCONN` either way).
    fn was_reset(&self) -> bool {
        use nix::sys::socket::{getsockopt, sockopt::SocketError};
        getsockopt(self.0.get_ref(), SocketError).is_ok_and(|e| e == libc::ECONNRESET)
    }
}

/// Follows one accepted connection (`conn` serves it) to its end, and acts when its end
/// completes a reset of every connection.
pub async fn follow(
    state: ControlState,
    ticket: Ticket,
    watch: Option<ErrorWatch>,
    conn: JoinHandle<()>,
) {
    let how = match &watch {
        Some(watch) => until_end_or_reset(watch, conn).await,
        None => {
            let _ = conn.await;
            Ending::Other
        }
    };
    match state.vsock_connections(|c| c.ended(ticket, how, Instant::now())) {
        Verdict::Nothing => {}
        Verdict::NotAll { reset, open } => tracing::info!(
            "control API: {reset} of {open} vsock connections were reset: not a restore (a restore resets them all at once)"
        ),
        Verdict::EveryConnectionReset { connections } => {
            let noticed = Noticed::VsockReset { connections };
            if state.snapshot(|b| b.status().prepared) {
                // The host that prepared the machine calls `restored` itself (and a test
                // rig that unplugs the device before its save resets them the same way).
                tracing::info!("{noticed}: the machine is prepared, so this is left to the host's restored call");
                return;
            }
            restore_without_the_host(&state, noticed).await;
        }
    }
}

async fn until_end_or_reset(watch: &ErrorWatch, mut conn: JoinHandle<()>) -> Ending {
    loop {
        tokio::select! {
            _ = &mut conn => {
                // A reset while an answer was being written ends hyper's task itself.
                return if watch.was_reset() { Ending::Reset } else { Ending::Other };
            }
            ready = watch.0.ready(Interest::ERROR) => match ready {
                Ok(mut guard) => {
                    guard.clear_ready();
                    if watch.was_reset() {
                        conn.abort();
                        return Ending::Reset;
                    }
                    // Another error: hyper's I/O meets it and ends the connection.
                }
                Err(_) => {
                    let _ = conn.await;
                    return Ending::Other;
                }
            },
        }
    }
}
