//! The audit log of refused requests, aggregated: the first [`BURST`] refusals of a caller
//! (uid) in each window are logged in full, the rest are counted per status and summed up in
//! one line when the window ends. A caller flooding refused requests costs a few lines, not
//! one per request on a console that may be slow.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// How long one window of aggregation lasts.
pub const WINDOW: Duration = Duration::from_secs(10);
/// Refusals of one uid logged in full per window.
pub const BURST: u64 = 20;

#[derive(Debug, Default)]
struct Window {
    /// uid → refusals logged in full in this window.
    logged: BTreeMap<u32, u64>,
    /// (uid, status) → refusals counted, not logged.
    counted: BTreeMap<(u32, u16), u64>,
}

/// Refusals of the current window.
#[derive(Debug, Default)]
pub struct Refusals {
    window: Mutex<Window>,
}

impl Refusals {
    /// Records a refusal; true when it is to be logged in full.
    pub fn record(&self, uid: u32, status: u16) -> bool {
        let mut w = self.window.lock().unwrap_or_else(PoisonError::into_inner);
        let logged = w.logged.entry(uid).or_insert(0);
        if *logged < BURST {
            *logged += 1;
            return true;
        }
        let n = w.counted.entry((uid, status)).or_insert(0);
        *n = n.saturating_add(1);
        false
    }

    /// Ends the window: the summary lines for the refusals that were not logged.
    pub fn end_window(&self) -> Vec<String> {
        let w = std::mem::take(&mut *self.window.lock().unwrap_or_else(PoisonError::into_inner));
        w.counted
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|((uid, status), n)| {
                format!(
                    "api refused {n} more request(s) from uid={uid} status={status} in the last {} s",
                    WINDOW.as_secs()
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_logged_the_rest_summed() {
        let r = Refusals::default();
        for _ in 0..BURST {
            assert!(r.record(1000, 403));
        }
        for _ in 0..500 {
            assert!(!r.record(1000, 403));
        }
        assert!(!r.record(1000, 404));
        assert!(r.record(1001, 403));
        assert_eq!(
            r.end_window(),
            [
                "api refused 500 more request(s) from uid=1000 status=403 in the last 10 s",
                "api refused 1 more request(s) from uid=1000 status=404 in the last 10 s"
            ]
        );
        assert!(r.end_window().is_empty());
        assert!(r.record(1000, 403), "a new window logs again");
    }
}
