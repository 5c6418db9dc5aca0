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
//! - [`vmclock`]: the VMClock device's generation counter, read to notice a restore.

pub mod kernel;
pub mod request;
pub mod vmclock;

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
}

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
                Ok(Restore::New(g))
            }
            None => {
                self.in_progress = Some(Call::Restored);
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
    }

    /// Starts what roost does for a restore it noticed without the host: refused while a
    /// call runs (the host is on it). The generation stays: it is the host's to give.
    pub fn begin_detected(&mut self) -> Result<u64, Refusal> {
        if let Some(call) = self.in_progress {
            return Err(Refusal::Busy(call.name()));
        }
        self.in_progress = Some(Call::Restored);
        Ok(self.generation)
    }

    pub fn end_detected(&mut self, at_ms: u64) {
        self.in_progress = None;
        self.prepared = false;
        self.detected = self.detected.saturating_add(1);
        self.last_restore_at_ms = Some(at_ms);
        self.clock_stepped = Some(false);
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
    fn before_hooks_run_dependents_first() {
        // web depends on db, db on nothing, worker on web.
        let deps = vec![vec![1], vec![], vec![0]];
        assert_eq!(hook_order(&deps, Call::Restored), vec![1, 0, 2]);
        assert_eq!(hook_order(&deps, Call::Prepare), vec![2, 0, 1]);
    }
}
