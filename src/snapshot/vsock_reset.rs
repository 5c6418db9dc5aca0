//! Noticing a restore by its vsock reset: the decision, without the sockets.
//!
//! On each restore Firecracker sends the guest's virtio-vsock driver a
//! `VIRTIO_VSOCK_EVENT_TRANSPORT_RESET` event, and the driver resets every connected socket
//! at once (`virtio_vsock_reset_sock`: the socket is closed with `sk_err = ECONNRESET`;
//! listeners survive). That is the only way a connected virtio-vsock socket gets
//! `ECONNRESET` besides the device going away (a hot unplug, or the guest's own
//! suspend-to-disk): a host that closes its end, or a host driver that dies, sends
//! `OP_SHUTDOWN` or `OP_RST`, which the guest reads as an end of input, never as an error.
//! So a connection's end is known as a reset or not exactly, and a restore is noticed when
//! every vsock connection open at the first reset ends in one within [`BURST`] of it.
//!
//! One reset with others staying up, or one of them ending normally in the burst, is not a
//! restore (nothing in the guest's kernel resets a single connection, so that is a host or
//! kernel this was not written for, and acting on it would run after-hooks on a machine
//! that was never saved).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// How long after the first reset the other connections' resets may come. The driver resets
/// them all in one pass; this only covers the tasks that notice them being scheduled apart.
pub const BURST: Duration = Duration::from_millis(500);

/// One open vsock connection, as [`Connections::opened`] gave it out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

/// How one connection ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// `ECONNRESET`: the guest's driver reset it.
    Reset,
    /// Anything else: an answer sent, the host's close, a timeout.
    Other,
}

/// What an ending says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not a restore, or not yet decided.
    Nothing,
    /// Every connection open at the first reset was reset: the transport was.
    EveryConnectionReset { connections: usize },
    /// A burst that was not every connection (logged, not acted on).
    NotAll { reset: usize, open: usize },
}

#[derive(Debug)]
struct Burst {
    first: Instant,
    /// Open at the first reset and not reset yet.
    waiting: BTreeSet<Ticket>,
    reset: usize,
}

/// The open vsock connections of the control API, and the burst of resets in progress.
#[derive(Debug, Default)]
pub struct Connections {
    next: u64,
    open: BTreeSet<Ticket>,
    burst: Option<Burst>,
}

impl Connections {
    /// A connection was accepted.
    pub fn opened(&mut self) -> Ticket {
        let ticket = Ticket(self.next);
        self.next = self.next.wrapping_add(1);
        self.open.insert(ticket);
        ticket
    }

    /// How many are open.
    pub fn open(&self) -> usize {
        self.open.len()
    }

    /// A connection ended, `now`.
    pub fn ended(&mut self, ticket: Ticket, how: Ending, now: Instant) -> Verdict {
        if !self.open.remove(&ticket) {
            return Verdict::Nothing;
        }
        // A burst past its bound that did not complete: not every connection was reset.
        let mut expired = Verdict::Nothing;
        if let Some(burst) = self.burst.take() {
            if now.saturating_duration_since(burst.first) > BURST {
                expired = burst.not_all();
            } else {
                self.burst = Some(burst);
            }
        }
        let verdict = match (self.burst.take(), how) {
            (None, Ending::Other) => Verdict::Nothing,
            (None, Ending::Reset) => self.finish_if_whole(Burst {
                first: now,
                waiting: self.open.clone(),
                reset: 1,
            }),
            (Some(mut burst), Ending::Reset) => {
                // One opened after the first reset is not part of it.
                if burst.waiting.remove(&ticket) {
                    burst.reset = burst.reset.saturating_add(1);
                }
                self.finish_if_whole(burst)
            }
            // One of them ended by itself: the resets were not all at once.
            (Some(burst), Ending::Other) if burst.waiting.contains(&ticket) => burst.not_all(),
            (Some(burst), Ending::Other) => {
                self.burst = Some(burst);
                Verdict::Nothing
            }
        };
        match verdict {
            Verdict::Nothing => expired,
            decided => decided,
        }
    }

    fn finish_if_whole(&mut self, burst: Burst) -> Verdict {
        if burst.waiting.is_empty() {
            Verdict::EveryConnectionReset {
                connections: burst.reset,
            }
        } else {
            self.burst = Some(burst);
            Verdict::Nothing
        }
    }
}

impl Burst {
    fn not_all(&self) -> Verdict {
        Verdict::NotAll {
            reset: self.reset,
            open: self.reset.saturating_add(self.waiting.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_connection_reset_is_every_connection() {
        let mut c = Connections::default();
        let t = Instant::now();
        let a = c.opened();
        assert_eq!(
            c.ended(a, Ending::Reset, t),
            Verdict::EveryConnectionReset { connections: 1 }
        );
        assert_eq!(c.open(), 0);
    }

    #[test]
    fn a_burst_is_every_connection_open_at_its_start_and_no_other() {
        let mut c = Connections::default();
        let t = Instant::now();
        let (a, b, d) = (c.opened(), c.opened(), c.opened());
        assert_eq!(c.ended(a, Ending::Reset, t), Verdict::Nothing);
        // Opened after the first reset (the host's new connection): not waited for.
        let late = c.opened();
        assert_eq!(c.ended(late, Ending::Other, t), Verdict::Nothing);
        assert_eq!(
            c.ended(b, Ending::Reset, t + Duration::from_millis(10)),
            Verdict::Nothing
        );
        assert_eq!(
            c.ended(d, Ending::Reset, t + Duration::from_millis(20)),
            Verdict::EveryConnectionReset { connections: 3 }
        );
    }

    #[test]
    fn closes_and_partial_resets_are_not_restores() {
        let mut c = Connections::default();
        let t = Instant::now();
        // The host closing every connection (a driver that restarted): no resets.
        let (a, b) = (c.opened(), c.opened());
        assert_eq!(c.ended(a, Ending::Other, t), Verdict::Nothing);
        assert_eq!(c.ended(b, Ending::Other, t), Verdict::Nothing);
        // A reset while another connection of its time ends normally.
        let (a, b) = (c.opened(), c.opened());
        assert_eq!(c.ended(a, Ending::Reset, t), Verdict::Nothing);
        assert_eq!(
            c.ended(b, Ending::Other, t + Duration::from_millis(5)),
            Verdict::NotAll { reset: 1, open: 2 }
        );
        // A reset whose companions are still up after the burst's bound.
        let (a, b, d) = (c.opened(), c.opened(), c.opened());
        assert_eq!(c.ended(a, Ending::Reset, t), Verdict::Nothing);
        assert_eq!(
            c.ended(b, Ending::Reset, t + BURST + Duration::from_millis(1)),
            Verdict::NotAll { reset: 1, open: 3 }
        );
        // ... and that late reset started a burst of its own, which `d` completes.
        assert_eq!(
            c.ended(d, Ending::Reset, t + BURST + Duration::from_millis(2)),
            Verdict::EveryConnectionReset { connections: 2 }
        );
        assert_eq!(c.open(), 0);
    }

    #[test]
    fn an_unknown_or_repeated_ticket_changes_nothing() {
        let mut c = Connections::default();
        let t = Instant::now();
        let a = c.opened();
        let b = c.opened();
        assert_eq!(c.ended(a, Ending::Other, t), Verdict::Nothing);
        assert_eq!(c.ended(a, Ending::Reset, t), Verdict::Nothing);
        assert_eq!(
            c.ended(b, Ending::Reset, t),
            Verdict::EveryConnectionReset { connections: 1 }
        );
    }
}
