//! Property tests for the broker's pure parts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use broker::schedule::{backoff, refresh_delay, MAX_BACKOFF};
use broker::session_name;
use proptest::prelude::*;
use std::time::Duration;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(5000))]

    #[test]
    fn session_names_always_match_the_sts_pattern(source in ".{0,200}") {
        let name = session_name(&source);
        prop_assert!((2..=64).contains(&name.len()), "{name:?}");
        prop_assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || "_+=,.@-".contains(c)), "{name:?}");
    }

    #[test]
    fn refresh_is_never_after_expiry_nor_in_the_past(secs in 0u64..10_000_000, nanos in 0u32..1_000_000_000, jitter in any::<f64>()) {
        let remaining = Duration::new(secs, nanos);
        let delay = refresh_delay(remaining, jitter);
        prop_assert!(delay <= remaining);
        if remaining > Duration::from_secs(600) {
            prop_assert!(delay <= remaining - Duration::from_secs(300));
        }
    }

    #[test]
    fn backoff_is_bounded(attempt in any::<u32>(), jitter in any::<f64>()) {
        let b = backoff(attempt, jitter);
        prop_assert!(b <= MAX_BACKOFF);
        prop_assert!(b >= Duration::from_millis(750));
    }

    #[test]
    fn claims_reader_never_panics(token in ".{0,300}") {
        let _ = broker::jwt::read_claims(&token);
        let _ = broker::jwt::token_from_answer(token.as_bytes());
    }
}
