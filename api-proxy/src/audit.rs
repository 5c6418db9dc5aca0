//! The audit log of refused requests, aggregated: the first refusal of a caller (uid and
//! status) in each window is logged in full, the rest are counted and summed up in one line
//! when the window ends. A caller flooding refused requests costs a few lines, not one per
//! request on a console that may be slow.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// How long one window of aggregation lasts.
pub const WINDOW: Duration = Duration::from_secs(10);

/// Refusals counted in the current window: (uid, status) → refusals after the first.
#[derive(Debug, Default)]
pub struct Refusals {
    counted: Mutex<BTreeMap<(u32, u16), u64>>,
}

impl Refusals {
    /// Records a refusal; true when it is the first of its kind in this window (log it).
    pub fn record(&self, uid: u32, status: u16) -> bool {
        let mut counted = self.counted.lock().unwrap_or_else(PoisonError::into_inner);
        match counted.get_mut(&(uid, status)) {
            Some(n) => {
                *n = n.saturating_add(1);
                false
            }
            None => {
                counted.insert((uid, status), 0);
                true
            }
        }
    }

    /// Ends the window: the summary lines for the refusals that were not logged.
    pub fn end_window(&self) -> Vec<String> {
        let counted =
            std::mem::take(&mut *self.counted.lock().unwrap_or_else(PoisonError::into_inner));
        counted
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
    fn first_is_logged_rest_summed() {
        let r = Refusals::default();
        assert!(r.record(1000, 403));
        for _ in 0..500 {
            assert!(!r.record(1000, 403));
        }
        assert!(r.record(1000, 404));
        assert!(r.record(1001, 403));
        assert_eq!(
            r.end_window(),
            ["api refused 500 more request(s) from uid=1000 status=403 in the last 10 s"]
        );
        assert!(r.end_window().is_empty());
        assert!(r.record(1000, 403), "a new window logs again");
    }
}
