//! When to refresh and when to retry. Pure.

use std::time::Duration;

/// Longest wait between retries after failures.
pub const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Tokens living longer than this are refreshed no later than [`LATEST_BEFORE_EXPIRY`] before
/// they expire.
const LONG_TOKEN: Duration = Duration::from_secs(10 * 60);
const LATEST_BEFORE_EXPIRY: Duration = Duration::from_secs(5 * 60);

/// How long to wait before refreshing a token with `remaining` validity: half of it, earlier
/// by up to 10% of jitter (`jitter` in 0..1) so that many VMs do not refresh in step, and for
/// long tokens never later than 5 minutes before expiry. Never after expiry, never negative.
pub fn refresh_delay(remaining: Duration, jitter: f64) -> Duration {
    let jitter = jitter.clamp(0.0, 1.0);
    let mut delay = remaining / 2;
    if remaining > LONG_TOKEN {
        delay = delay.min(remaining - LATEST_BEFORE_EXPIRY);
    }
    delay.mul_f64(1.0 - 0.1 * jitter)
}

/// [`refresh_delay`] for a cloud whose SDKs need the file valid for `min_validity` beyond any
/// read: the refresh also comes before the token has less than that left. When a fresh
/// token does not even live that long, the guarantee cannot be kept ([`window_kept`] says
/// so) and the plain schedule applies.
pub fn refresh_delay_for(remaining: Duration, min_validity: Duration, jitter: f64) -> Duration {
    let plain = refresh_delay(remaining, jitter);
    match remaining.checked_sub(min_validity) {
        Some(room) if !room.is_zero() => plain.min(room),
        _ => plain,
    }
}

/// Whether a token issued with `lifetime` can be kept valid `min_validity` beyond every read
/// (with a margin for the refresh itself).
pub fn window_kept(lifetime: Duration, min_validity: Duration) -> bool {
    lifetime > min_validity + Duration::from_secs(30)
}

/// How long to wait before retry number `attempt` (1 for the first retry): 1 s doubling to
/// [`MAX_BACKOFF`], less up to 25% of jitter.
pub fn backoff(attempt: u32, jitter: f64) -> Duration {
    let jitter = jitter.clamp(0.0, 1.0);
    let exp = attempt.saturating_sub(1).min(16);
    let base = Duration::from_secs(1u64 << exp).min(MAX_BACKOFF);
    base.mul_f64(1.0 - 0.25 * jitter)
}

/// A number in 0..1 from the OS's random source (through std's hash seeding).
pub fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u8(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_is_half_the_remaining_lifetime_minus_jitter() {
        let d = |s| Duration::from_secs(s);
        assert_eq!(refresh_delay(d(600), 0.0), d(300));
        assert_eq!(refresh_delay(d(600), 1.0), d(270));
        assert_eq!(refresh_delay(d(20), 0.5), Duration::from_millis(9500));
        assert_eq!(refresh_delay(Duration::ZERO, 0.3), Duration::ZERO);
        // Long tokens: half is already earlier than 5 minutes before expiry.
        assert_eq!(refresh_delay(d(3600), 0.0), d(1800));
    }

    #[test]
    fn refresh_is_never_after_expiry_nor_negative() {
        for secs in [0u64, 1, 7, 59, 600, 601, 3599, 86_400] {
            for j in [0.0, 0.3, 0.999, 1.0, -1.0, 2.0] {
                let remaining = Duration::from_secs(secs);
                let delay = refresh_delay(remaining, j);
                assert!(delay <= remaining, "{secs} {j}");
                if remaining > LONG_TOKEN {
                    assert!(delay <= remaining - LATEST_BEFORE_EXPIRY);
                }
            }
        }
    }

    #[test]
    fn azure_files_stay_valid_eleven_minutes_beyond_any_read() {
        let d = |s| Duration::from_secs(s);
        let azure = d(11 * 60);
        // A one-hour token: refreshed before 11 minutes are left (half would be 30).
        assert_eq!(refresh_delay_for(d(3600), azure, 0.0), d(1800));
        assert_eq!(refresh_delay_for(d(1200), azure, 0.0), d(540));
        for secs in [700u64, 900, 1200, 3600, 86_400] {
            for j in [0.0, 0.5, 1.0] {
                let delay = refresh_delay_for(d(secs), azure, j);
                assert!(d(secs) - delay >= azure, "{secs} {j}");
            }
        }
        assert!(window_kept(d(3600), azure));
        // The platform's 10-minute tokens cannot be kept valid 11 minutes past a read.
        assert!(!window_kept(d(600), azure));
        assert_eq!(refresh_delay_for(d(600), azure, 0.0), d(300));
        assert!(window_kept(d(600), d(60)));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1, 0.0), Duration::from_secs(1));
        assert_eq!(backoff(2, 0.0), Duration::from_secs(2));
        assert_eq!(backoff(4, 0.0), Duration::from_secs(8));
        assert_eq!(backoff(30, 0.0), MAX_BACKOFF);
        assert_eq!(backoff(u32::MAX, 0.0), MAX_BACKOFF);
        assert_eq!(backoff(1, 1.0), Duration::from_millis(750));
        assert_eq!(backoff(0, 0.0), Duration::from_secs(1));
    }

    #[test]
    fn jitter_is_in_range() {
        for _ in 0..1000 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }
}
