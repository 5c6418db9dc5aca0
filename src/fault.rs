//! Fault injection for the tests of the watched task set, compiled in only with the
//! `fault-injection` feature (which only the test build enables): `ROOST_FAULT=<point>` makes
//! the named point panic, as a bug there would. Without the feature every point is empty.

/// Panics here when `ROOST_FAULT` names `point` (feature `fault-injection` only).
#[inline]
pub fn point(point: &str) {
    #[cfg(feature = "fault-injection")]
    {
        #[allow(clippy::panic)]
        if std::env::var("ROOST_FAULT").is_ok_and(|v| v == point) {
            panic!("fault injected at {point}");
        }
    }
    #[cfg(not(feature = "fault-injection"))]
    let _ = point;
}
