//! The proxy's counters, for the control API's status.

use std::sync::atomic::AtomicU64;

/// Counters for the control API's status.
#[derive(Debug, Default)]
pub struct ProxyStats {
    pub requests: AtomicU64,
    pub forwarded: AtomicU64,
    pub refused: AtomicU64,
    pub upstream_errors: AtomicU64,
    /// Connections closed at once because a cap was reached.
    pub connections_dropped: AtomicU64,
}
