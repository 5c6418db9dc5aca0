//! Deadline arithmetic that cannot overflow. `Instant + Duration` panics when the sum does
//! not fit; every deadline in roost is computed here instead, and a duration too long to add
//! is clamped to [`FAR`] from the start (which is longer than any bound the config allows).

use std::time::Duration;
use tokio::time::Instant;

/// The latest deadline roost ever sets: a year.
pub const FAR: Duration = Duration::from_secs(365 * 86_400);

/// `start + d`, or `start + FAR` when `d` is longer than [`FAR`] or the sum overflows.
pub fn after(start: Instant, d: Duration) -> Instant {
    let d = d.min(FAR);
    start
        .checked_add(d)
        .or_else(|| start.checked_add(Duration::from_secs(1)))
        .unwrap_or(start)
}

/// The same for `std::time::Instant`.
pub fn after_std(start: std::time::Instant, d: Duration) -> std::time::Instant {
    let d = d.min(FAR);
    start
        .checked_add(d)
        .or_else(|| start.checked_add(Duration::from_secs(1)))
        .unwrap_or(start)
}

/// `now + d`, checked.
pub fn from_now(d: Duration) -> Instant {
    after(Instant::now(), d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_overflows() {
        let now = Instant::now();
        assert_eq!(
            after(now, Duration::from_secs(5)),
            now + Duration::from_secs(5)
        );
        assert_eq!(after(now, Duration::MAX), now + FAR);
        assert_eq!(after(now, Duration::from_secs(u64::MAX)), now + FAR);
        let std_now = std::time::Instant::now();
        assert_eq!(after_std(std_now, Duration::MAX), std_now + FAR);
    }
}
