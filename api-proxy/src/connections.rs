//! How many `/.fly/api` connections roost holds: in total, per caller uid, and for callers
//! that are refused anyway. The caps sit below the descriptor limit with room kept for the
//! control API, the broker, the upstream pool and the workload's output, so no caller (least
//! of all one that is not allowed) can make PID 1 run out of descriptors.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

/// Descriptors kept out of the proxy's reach for everything else roost does.
pub const RESERVED_FDS: u64 = 128;
/// The largest total cap, however high the descriptor limit.
pub const MAX_CONNECTIONS: usize = 4096;

/// The three caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub total: usize,
    pub per_uid: usize,
    /// For callers that are not allowed: their connections are answered 403 and closed, so
    /// only a stalled one (no request sent) is held, until the header timeout.
    pub refused: usize,
}

impl Limits {
    /// Half of what the descriptor limit leaves after [`RESERVED_FDS`] (upstream connections
    /// take the other half), at least 16 and at most [`MAX_CONNECTIONS`]; half of that per
    /// uid (so no one caller takes every place), an eighth for refused callers in all.
    pub fn for_nofile(soft_limit: u64) -> Self {
        let total = usize::try_from(soft_limit.saturating_sub(RESERVED_FDS) / 2)
            .unwrap_or(MAX_CONNECTIONS)
            .clamp(16, MAX_CONNECTIONS);
        Limits {
            total,
            per_uid: (total / 2).max(8),
            refused: (total / 8).max(4),
        }
    }

    /// The caps for this process's `RLIMIT_NOFILE`.
    pub fn current() -> Self {
        let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
            .map_or(1024, |(soft, _)| soft);
        Self::for_nofile(soft)
    }
}

#[derive(Debug, Default)]
struct Counts {
    total: usize,
    refused: usize,
    per_uid: HashMap<u32, usize>,
}

/// The connections held now. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Connections {
    limits: Limits,
    counts: Arc<Mutex<Counts>>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Admitted {
    counts: Arc<Mutex<Counts>>,
    uid: u32,
    authorized: bool,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        c.total = c.total.saturating_sub(1);
        if !self.authorized {
            c.refused = c.refused.saturating_sub(1);
        }
        if let Some(n) = c.per_uid.get_mut(&self.uid) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                c.per_uid.remove(&self.uid);
            }
        }
    }
}

/// Which cap a connection hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    Total,
    PerUid,
    Refused,
}

impl Connections {
    pub fn new(limits: Limits) -> Self {
        Connections {
            limits,
            counts: Arc::new(Mutex::new(Counts::default())),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Admits a connection from `uid`, or says which cap is full.
    pub fn admit(&self, uid: u32, authorized: bool) -> Result<Admitted, Full> {
        let mut c = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        if c.total >= self.limits.total {
            return Err(Full::Total);
        }
        if !authorized && c.refused >= self.limits.refused {
            return Err(Full::Refused);
        }
        let mine = c.per_uid.get(&uid).copied().unwrap_or(0);
        if mine >= self.limits.per_uid {
            return Err(Full::PerUid);
        }
        c.total += 1;
        if !authorized {
            c.refused += 1;
        }
        c.per_uid.insert(uid, mine + 1);
        Ok(Admitted {
            counts: self.counts.clone(),
            uid,
            authorized,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_follow_the_descriptor_limit() {
        assert_eq!(
            Limits::for_nofile(1024),
            Limits {
                total: 448,
                per_uid: 224,
                refused: 56
            }
        );
        // A VM's 10240 descriptors: 1,000 keep-alive clients of one uid fit.
        assert_eq!(Limits::for_nofile(10_240).per_uid, 2048);
        assert_eq!(Limits::for_nofile(64).total, 16);
        assert_eq!(Limits::for_nofile(u64::MAX).total, MAX_CONNECTIONS);
    }

    #[test]
    fn each_cap_holds_and_places_come_back() {
        let conns = Connections::new(Limits {
            total: 4,
            per_uid: 2,
            refused: 1,
        });
        let a = conns.admit(1000, true).expect("first");
        let _b = conns.admit(1000, true).expect("second");
        assert_eq!(conns.admit(1000, true).err(), Some(Full::PerUid));
        let _r = conns.admit(2000, false).expect("one refused caller");
        assert_eq!(conns.admit(2001, false).err(), Some(Full::Refused));
        let _c = conns.admit(0, true).expect("root");
        assert_eq!(conns.admit(0, true).err(), Some(Full::Total));
        drop(a);
        assert!(conns.admit(1000, true).is_ok());
    }
}
