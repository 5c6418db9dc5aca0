//! The host's two calls, as typed requests: every field checked before anything is done, so a
//! bad body is refused with a clear 400 and changes nothing.

use serde::Deserialize;
use std::time::Duration;

/// The least entropy a restore must bring, in bytes (256 bits: the CRNG's own seed size).
pub const MIN_ENTROPY: usize = 32;
/// The most entropy one call may bring, in bytes.
pub const MAX_ENTROPY: usize = 4096;
/// The bound of `prepare` when the host names none.
pub const DEFAULT_PREPARE_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest bound `prepare` may be given.
pub const MAX_PREPARE_TIMEOUT: Duration = Duration::from_secs(600);

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadRequest(pub String);

fn bad(problem: impl Into<String>) -> BadRequest {
    BadRequest(problem.into())
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrepareBody {
    /// A number, as JSON has them (`1500.0` is 1500); null is no bound given.
    timeout_ms: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RestoredBody {
    time_unix_ns: Option<u64>,
    entropy: Option<String>,
    generation: Option<u64>,
    clone: Option<bool>,
}

/// `POST /v2/snapshot/prepare`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepare {
    /// Every before-hook, the sync and the pools' close together.
    pub timeout: Duration,
}

/// `POST /v2/snapshot/restored`.
#[derive(Debug)]
pub struct Restored {
    /// The host's wall clock when it sent the call.
    pub time_unix_ns: u64,
    /// Bytes from the host's own random source. Zeroed when dropped; never logged.
    pub entropy: Entropy,
    /// The generation this restore makes; None: one more than the current one.
    pub generation: Option<u64>,
    /// A clone: a new machine from the snapshot, with an identity of its own.
    pub clone: bool,
}

/// Host entropy: kept only until it is credited, zeroed on drop, and its Debug shows only
/// its length.
pub struct Entropy(Vec<u8>);

impl Entropy {
    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Entropy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Entropy({} bytes)", self.0.len())
    }
}

impl Drop for Entropy {
    fn drop(&mut self) {
        for byte in self.0.iter_mut() {
            // SAFETY: a valid, aligned, exclusive pointer to one byte of our own buffer; the
            // volatile write keeps the compiler from dropping the zeroing as a dead store.
            unsafe { std::ptr::write_volatile(byte, 0) };
        }
    }
}

/// An empty body is `{}`.
fn body_or_empty(body: &[u8]) -> &[u8] {
    if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        body
    }
}

pub fn prepare(body: &[u8]) -> Result<Prepare, BadRequest> {
    let body: PrepareBody = serde_json::from_slice(body_or_empty(body))
        .map_err(|e| bad(format!("not a prepare body: {e}")))?;
    let max = MAX_PREPARE_TIMEOUT.as_millis() as f64;
    let timeout = match body.timeout_ms {
        None => DEFAULT_PREPARE_TIMEOUT,
        Some(ms) if ms.fract() == 0.0 && ms >= 1.0 && ms <= max => Duration::from_millis(ms as u64),
        Some(ms) => {
            return Err(bad(format!(
                "timeout_ms must be a whole number of ms in 1..={max}, not {ms}"
            )))
        }
    };
    Ok(Prepare { timeout })
}

/// `boot_unix_ns`: the wall clock's value when this machine booted, as this machine counts
/// it; a host time before it cannot be now.
pub fn restored(body: &[u8], boot_unix_ns: u64) -> Result<Restored, BadRequest> {
    let body: RestoredBody =
        serde_json::from_slice(body).map_err(|e| bad(format!("not a restored body: {e}")))?;
    let time_unix_ns = body
        .time_unix_ns
        .ok_or_else(|| bad("time_unix_ns is missing: the host's wall clock, in ns since 1970"))?;
    if time_unix_ns < boot_unix_ns {
        return Err(bad(format!(
            "time_unix_ns {time_unix_ns} is before this machine booted ({boot_unix_ns})"
        )));
    }
    let text = body.entropy.ok_or_else(|| {
        bad(format!(
            "entropy is missing: base64 of at least {MIN_ENTROPY} random bytes from the host"
        ))
    })?;
    let bytes = Entropy(
        crate::config::decode::decode_base64(&text)
            .map_err(|e| bad(format!("entropy is not base64: {e}")))?,
    );
    if bytes.0.len() < MIN_ENTROPY || bytes.0.len() > MAX_ENTROPY {
        return Err(bad(format!(
            "entropy must be {MIN_ENTROPY} to {MAX_ENTROPY} bytes, not {}",
            bytes.0.len()
        )));
    }
    let clone = body.clone.ok_or_else(|| {
        bad("clone is missing: true for a new machine from the snapshot, false for a resume")
    })?;
    Ok(Restored {
        time_unix_ns,
        entropy: bytes,
        generation: body.generation,
        clone,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOT: u64 = 1_700_000_000_000_000_000;
    /// 32 bytes of base64.
    const ENTROPY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn restored_body(fields: &str) -> String {
        format!("{{{fields}}}")
    }

    #[test]
    fn a_full_restored_body_is_typed() {
        let body = restored_body(&format!(
            r#""time_unix_ns": {}, "entropy": "{ENTROPY}", "generation": 3, "clone": true"#,
            BOOT + 5
        ));
        let r = restored(body.as_bytes(), BOOT).expect("valid");
        assert_eq!(r.time_unix_ns, BOOT + 5);
        assert_eq!(r.entropy.bytes().len(), 32);
        assert_eq!(r.generation, Some(3));
        assert!(r.clone);
        assert_eq!(format!("{:?}", r.entropy), "Entropy(32 bytes)");
    }

    #[test]
    fn bad_restored_bodies_are_refused_with_the_reason() {
        let t = BOOT + 1;
        let cases = [
            (String::from("not json"), "not a restored body"),
            (
                restored_body(&format!(r#""entropy": "{ENTROPY}", "clone": false"#)),
                "time_unix_ns is missing",
            ),
            (
                restored_body(&format!(r#""time_unix_ns": {t}, "clone": false"#)),
                "entropy is missing",
            ),
            (
                restored_body(&format!(
                    r#""time_unix_ns": {t}, "entropy": "AAEC", "clone": false"#
                )),
                "entropy must be 32 to 4096 bytes, not 3",
            ),
            (
                restored_body(&format!(
                    r#""time_unix_ns": {t}, "entropy": "!!", "clone": false"#
                )),
                "entropy is not base64",
            ),
            (
                restored_body(&format!(r#""time_unix_ns": {t}, "entropy": "{ENTROPY}""#)),
                "clone is missing",
            ),
            (
                restored_body(&format!(
                    r#""time_unix_ns": 5, "entropy": "{ENTROPY}", "clone": false"#
                )),
                "is before this machine booted",
            ),
            (
                restored_body(&format!(
                    r#""time_unix_ns": {t}, "entropy": "{ENTROPY}", "clone": false, "extra": 1"#
                )),
                "unknown field",
            ),
        ];
        for (body, want) in cases {
            let err = restored(body.as_bytes(), BOOT)
                .err()
                .map(|e| e.0)
                .unwrap_or_default();
            assert!(err.contains(want), "{body}: {err:?} does not say {want:?}");
        }
    }

    #[test]
    fn prepare_bodies_are_bounded() {
        assert_eq!(prepare(b"").map(|p| p.timeout), Ok(DEFAULT_PREPARE_TIMEOUT));
        assert_eq!(
            prepare(br#"{"timeout_ms": 1500}"#).map(|p| p.timeout),
            Ok(Duration::from_millis(1500))
        );
        assert!(prepare(br#"{"timeout_ms": 0}"#).is_err());
        assert!(prepare(br#"{"timeout_ms": 600001}"#).is_err());
        assert!(prepare(br#"{"timeout": 5}"#).is_err());
    }
}
