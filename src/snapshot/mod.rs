//! Suspend, resume and clones (docs/snapshots.md): what roost does before the host snapshots
//! the VM and after it restores one, decided here and carried out by the control API's
//! snapshot routes. This module holds the decisions and the kernel steps; it imports nothing
//! of the supervisor or the control API.
//!
//! - [`request`]: the host's two calls, checked before anything is done;
//! - [`kernel`]: fresh randomness and the wall clock stepped;
//! - [`Book`]: the generation, what is in progress, and the last restore's answer (a second
//!   call for the same generation gets it again, with nothing redone);
//! - [`hook_order`]: before-hooks in reverse dependency order, after-hooks in order (CRaC's);
//! - [`vmclock`]: the VMClock device's generation counter, read to notice a restore;
//! - [`vsock_reset`]: every vsock connection reset at once, another way to notice one.

pub mod kernel;
pub mod request;
pub mod vmclock;
pub mod vsock_reset;

use roost_control_protocol::{RestoredAnswer, SnapshotStatus};

/// How long a restore waits for the brokers' fresh tokens before it goes on without them
/// (they keep trying on their own schedule).
pub const TOKEN_REFRESH_BOUND: std::time::Duration = std::time::Duration::from_secs(10);

/// Which call is running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Prepare,
    Restored,
}

impl Call {
    pub fn name(self) -> &'static str {
        match self {
            Call::Prepare => "prepare",
            Call::Restored => "restored",
        }
    }
}

/// Why a call cannot run now.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("a {0} call is running already")]
    Busy(&'static str),
    #[error("generation {asked} is behind this machine's {current}")]
    Backwards { asked: u64, current: u64 },
    /// A restore was acted on less than [`SAME_RESTORE`] ago: a second source of the same one.
    #[error("a restore was acted on less than a second ago")]
    SameRestore,
}

/// Two sources that notice one restore (the kernel's log and the vsock reset) do so within
/// milliseconds of each other; a restore noticed within this of the last one began is that
/// one. (No VM is snapshotted and restored twice within a second.)
pub const SAME_RESTORE: std::time::Duration = std::time::Duration::from_secs(1);

/// What a restored call is to do, by its generation.
#[derive(Debug, Clone, PartialEq)]
pub enum Restore {
    /// Apply a restore that makes this generation.
    New(u64),
    /// This generation was applied: answer as then.
    Replay(Box<RestoredAnswer>),
}

/// The machine's place in the snapshot cycle.
#[derive(Debug, Default)]
pub struct Book {
    generation: u64,
    last_restore_at_ms: Option<u64>,
    in_progress: Option<Call>,
    prepared: bool,
    last_answer: Option<RestoredAnswer>,
    /// Restores noticed without the host's call.
    detected: u64,
    /// Whether the last restore stepped the wall clock (None: no restore yet).
    clock_stepped: Option<bool>,
    /// The running call is a noticed restore, not the host's (the host's waits for it).
    noticed_running: bool,
    /// When the last restore, the host's or a noticed one, began.
    last_begun: Option<std::time::Instant>,
}

impl Book {
    pub fn status(&self) -> SnapshotStatus {
        SnapshotStatus {
            generation: self.generation,
            last_restore_at: self.last_restore_at_ms,
            in_progress: self.in_progress.map(|c| c.name().to_string()),
            prepared: self.prepared,
            detected_restores: self.detected,
            clock_stepped: self.clock_stepped,
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Starts a prepare: refused while another call runs.
    pub fn begin_prepare(&mut self) -> Result<u64, Refusal> {
        if let Some(call) = self.in_progress {
            return Err(Refusal::Busy(call.name()));
        }
        self.in_progress = Some(Call::Prepare);
        Ok(self.generation)
    }

    /// Ends a prepare: the machine is prepared when it succeeded.
    pub fn end_prepare(&mut self, ok: bool) {
        self.in_progress = None;
        self.prepared = ok;
    }

    /// Starts a restored call for `asked` (None: the next generation). Checked before any
    /// step, so a refused call changes nothing.
    pub fn begin_restore(&mut self, asked: Option<u64>) -> Result<Restore, Refusal> {
        if let Some(call) = self.in_progress {
            return Err(Refusal::Busy(call.name()));
        }
        let current = self.generation;
        match asked {
            Some(g) if g < current => Err(Refusal::Backwards { asked: g, current }),
            Some(g) if g == current && current > 0 => match &self.last_answer {
                Some(answer) => Ok(Restore::Replay(Box::new(RestoredAnswer {
                    replayed: true,
                    ..answer.clone()
                }))),
                None => Err(Refusal::Backwards { asked: g, current }),
            },
            Some(0) => Err(Refusal::Backwards {
                asked: 0,
                current: current.saturating_add(1),
            }),
            Some(g) => {
                self.in_progress = Some(Call::Restored);
                self.last_begun = Some(std::time::Instant::now());
                Ok(Restore::New(g))
            }
            None => {
                self.in_progress = Some(Call::Restored);
                self.last_begun = Some(std::time::Instant::now());
                Ok(Restore::New(current.saturating_add(1)))
            }
        }
    }

    /// Ends a restored call: the generation is the new one whatever its hooks did (the
    /// kernel steps are done and must not be done twice for it).
    pub fn end_restore(&mut self, answer: RestoredAnswer, at_ms: u64) {
        self.in_progress = None;
        self.prepared = false;
        self.clock_stepped = Some(answer.clock_step_ms.is_some());
        self.generation = answer.generation;
        self.last_restore_at_ms = Some(at_ms);
        self.last_answer = Some(answer);
    }
}

impl Book {
    /// A call that ended without its end (it panicked): nothing runs any more, and the
    /// machine is not prepared. A no-op after a proper end.
    pub fn abandon(&mut self) {
        if self.in_progress.take().is_some() {
            self.prepared = false;
        }
        self.noticed_running = false;
    }

    /// Starts what roost does for a restore it noticed without the host, `now`: refused
    /// while a call runs (the host is on it), and within [`SAME_RESTORE`] of the last
    /// restore's start (another source noticed this one). The generation stays: it is the
    /// host's to give.
    pub fn begin_detected(&mut self, now: std::time::Instant) -> Result<u64, Refusal> {
        if let Some(call) = self.in_progress {
            return Err(Refusal::Busy(call.name()));
        }
        if self
            .last_begun
            .is_some_and(|t| now.saturating_duration_since(t) < SAME_RESTORE)
        {
            return Err(Refusal::SameRestore);
        }
        self.in_progress = Some(Call::Restored);
        self.noticed_running = true;
        self.last_begun = Some(now);
        Ok(self.generation)
    }

    /// Whether a noticed restore is running (a host's `restored` waits for its end).
    pub fn noticed_running(&self) -> bool {
        self.noticed_running
    }

    pub fn end_detected(&mut self, at_ms: u64) {
        self.noticed_running = false;
        self.in_progress = None;
        self.prepared = false;
        self.detected = self.detected.saturating_add(1);
        self.last_restore_at_ms = Some(at_ms);
        self.clock_stepped = Some(false);
    }
}

/// How a restore the host did not announce was noticed (docs/snapshots.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Noticed {
    /// The kernel's `crng reseeded due to virtual machine fork` line (VMGenID).
    KernelLog,
    /// VMClock's generation counter moved.
    VmClock,
    /// Every vsock connection was reset at once (the transport reset of a restore).
    VsockReset { connections: usize },
}

impl std::fmt::Display for Noticed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Noticed::KernelLog => f.write_str("the kernel's VM-fork line"),
            Noticed::VmClock => f.write_str("VMClock's generation"),
            Noticed::VsockReset { connections } => {
                write!(f, "all {connections} vsock connection(s) reset at once")
            }
        }
    }
}

/// The order hooks run in, as indices into the services: `deps[i]` are the services `i`
/// depends on. After-hooks run in dependency order (a dependency first), before-hooks in
/// the reverse (a dependent first), as CRaC orders them.
pub fn hook_order(deps: &[Vec<usize>], call: Call) -> Vec<usize> {
    let mut order =
        crate::config::graph::start_order(deps).unwrap_or_else(|| (0..deps.len()).collect());
    if call == Call::Prepare {
        order.reverse();
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(generation: u64) -> RestoredAnswer {
        RestoredAnswer {
            generation,
            clock_step_ms: Some(1.0),
            clock: "stepped".into(),
            reseeded: true,
            identity_changed: false,
            tokens_refreshed: 0,
            hooks: Vec::new(),
            steps: Vec::new(),
            duration_ms: 1.0,
            replayed: false,
        }
    }

    #[test]
    fn generations_go_forward_and_a_repeat_is_answered_as_before() {
        let mut book = Book::default();
        assert_eq!(book.begin_restore(None), Ok(Restore::New(1)));
        assert_eq!(book.begin_restore(None), Err(Refusal::Busy("restored")));
        book.end_restore(answer(1), 5);
        assert_eq!(book.status().generation, 1);
        assert_eq!(book.status().last_restore_at, Some(5));
        match book.begin_restore(Some(1)) {
            Ok(Restore::Replay(a)) => assert!(a.replayed && a.generation == 1),
            other => panic!("not a replay: {other:?}"),
        }
        assert_eq!(
            book.begin_restore(Some(0)),
            Err(Refusal::Backwards {
                asked: 0,
                current: 1
            })
        );
        assert_eq!(book.begin_restore(Some(7)), Ok(Restore::New(7)));
        book.end_restore(answer(7), 6);
        assert_eq!(
            book.begin_restore(Some(3)),
            Err(Refusal::Backwards {
                asked: 3,
                current: 7
            })
        );
    }

    #[test]
    fn an_abandoned_call_frees_the_book_and_a_proper_end_is_kept() {
        let mut book = Book::default();
        assert_eq!(book.begin_prepare(), Ok(0));
        book.end_prepare(true);
        book.abandon();
        assert!(
            book.status().prepared,
            "abandon after a proper end changed it"
        );
        assert_eq!(book.begin_restore(None), Ok(Restore::New(1)));
        book.abandon();
        assert_eq!(book.status().in_progress, None);
        assert_eq!(book.begin_restore(None), Ok(Restore::New(1)));
    }

    #[test]
    fn prepare_and_restore_do_not_overlap() {
        let mut book = Book::default();
        assert_eq!(book.begin_prepare(), Ok(0));
        assert_eq!(book.begin_restore(None), Err(Refusal::Busy("prepare")));
        book.end_prepare(true);
        assert!(book.status().prepared);
        assert_eq!(book.begin_restore(None), Ok(Restore::New(1)));
        book.end_restore(answer(1), 1);
        assert!(!book.status().prepared);
    }

    #[test]
    fn a_noticed_restore_is_one_and_the_hosts_call_knows_it_runs() {
        let mut book = Book::default();
        let t = std::time::Instant::now();
        assert_eq!(book.begin_detected(t), Ok(0));
        assert!(book.noticed_running());
        // The host's call meanwhile is busy (it waits for the end, see control/snapshot.rs).
        assert_eq!(book.begin_restore(None), Err(Refusal::Busy("restored")));
        // A second source of the same restore while it runs, and just after it.
        assert_eq!(book.begin_detected(t), Err(Refusal::Busy("restored")));
        book.end_detected(1);
        assert!(!book.noticed_running());
        assert_eq!(
            book.begin_detected(t + std::time::Duration::from_millis(300)),
            Err(Refusal::SameRestore)
        );
        assert_eq!(book.status().detected_restores, 1);
        // The host's call after it is a restore of its own.
        assert_eq!(book.begin_restore(None), Ok(Restore::New(1)));
        book.end_restore(answer(1), 2);
        // A later restore is noticed again.
        assert_eq!(book.begin_detected(t + SAME_RESTORE * 5), Ok(1));
        book.abandon();
        assert!(!book.noticed_running());
    }

    #[test]
    fn before_hooks_run_dependents_first() {
        // web depends on db, db on nothing, worker on web.
        let deps = vec![vec![1], vec![], vec![0]];
        assert_eq!(hook_order(&deps, Call::Restored), vec![1, 0, 2]);
        assert_eq!(hook_order(&deps, Call::Prepare), vec![2, 0, 1]);
    }
}
