//! Macaroon attenuation (beyond Fly): when the token is a libmacaroons-format macaroon and
//! `Api.Attenuate` is on, each forwarded request carries a copy narrowed by first-party
//! caveats to this machine, this method, this path and about a minute of validity. A token
//! seen (or logged) upstream is then worth little to anyone else.
//!
//! The caveat language is shared with the verifier (the devplatform uses [`check_caveat`]):
//! `time < RFC3339`, `machine_id = ID`, `method = METHOD`, `path = /PATH`.

use libmacaroon::{Format, Macaroon};
use std::time::{Duration, SystemTime};

/// How long an attenuated token is valid.
pub const ATTENUATED_TTL: Duration = Duration::from_secs(60);

/// A macaroon that per-request copies are derived from.
#[derive(Debug, Clone)]
pub struct Attenuator {
    base: Macaroon,
    machine_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum AttenuateError {
    #[error("the token is not a libmacaroons macaroon: {0:?}")]
    NotAMacaroon(libmacaroon::MacaroonError),
    #[error("cannot add a caveat: {0:?}")]
    Caveat(libmacaroon::MacaroonError),
}

/// The caveats a request is narrowed by.
pub fn request_caveats(
    machine_id: &str,
    method: &str,
    path: &str,
    expires: SystemTime,
) -> [String; 4] {
    [
        format!("time < {}", humantime::format_rfc3339_seconds(expires)),
        format!("machine_id = {machine_id}"),
        format!("method = {method}"),
        format!("path = {path}"),
    ]
}

/// What a verifier knows about the request it is checking.
#[derive(Debug, Clone)]
pub struct RequestContext<'a> {
    pub machine_id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub now: SystemTime,
}

/// Whether a first-party caveat of the attenuation language holds for `ctx`. Unknown
/// caveats do not hold (a verifier must never accept what it does not understand).
pub fn check_caveat(predicate: &[u8], ctx: &RequestContext<'_>) -> bool {
    let Ok(text) = std::str::from_utf8(predicate) else {
        return false;
    };
    if let Some(when) = text.strip_prefix("time < ") {
        return humantime::parse_rfc3339(when)
            .map(|deadline| ctx.now < deadline)
            .unwrap_or(false);
    }
    if let Some(id) = text.strip_prefix("machine_id = ") {
        return id == ctx.machine_id;
    }
    if let Some(method) = text.strip_prefix("method = ") {
        return method == ctx.method;
    }
    if let Some(path) = text.strip_prefix("path = ") {
        return path == ctx.path;
    }
    false
}

impl Attenuator {
    /// Parses the configured token; fails for tokens of other formats (Fly's `fm2_`).
    pub fn new(token: &str, machine_id: &str) -> Result<Self, AttenuateError> {
        let base = Macaroon::deserialize(token.trim()).map_err(AttenuateError::NotAMacaroon)?;
        Ok(Attenuator {
            base,
            machine_id: machine_id.to_string(),
        })
    }

    /// A copy of the token valid only for this request, until `now + ATTENUATED_TTL`.
    pub fn token_for(
        &self,
        method: &str,
        path: &str,
        now: SystemTime,
    ) -> Result<String, AttenuateError> {
        let mut m = self.base.clone();
        for caveat in request_caveats(&self.machine_id, method, path, now + ATTENUATED_TTL) {
            m.add_first_party_caveat(caveat)
                .map_err(AttenuateError::Caveat)?;
        }
        m.serialize(Format::V2).map_err(AttenuateError::Caveat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use libmacaroon::{MacaroonKey, Verifier};

    fn mint(key: &MacaroonKey) -> String {
        let mut m = Macaroon::create(Some("devplatform"), key, "machine m1").expect("create");
        m.add_first_party_caveat("app = a1").expect("caveat");
        m.serialize(Format::V2).expect("serialize")
    }

    fn verify(token: &str, key: &MacaroonKey, ctx: RequestContext<'static>) -> bool {
        let m = Macaroon::deserialize(token).expect("deserialize");
        let mut v = Verifier::default();
        v.satisfy_exact("app = a1");
        v.satisfy_general(move |p| check_caveat(p, &ctx));
        v.verify(&m, key, &[]).is_ok()
    }

    #[test]
    fn attenuated_token_verifies_only_for_its_request_and_time() {
        let key = MacaroonKey::generate(b"root key");
        let att = Attenuator::new(&mint(&key), "m1").expect("macaroon");
        let now = SystemTime::now();
        let token = att
            .token_for("GET", "/v1/apps/a1/machines/m1/metadata", now)
            .expect("attenuate");
        let ctx = RequestContext {
            machine_id: "m1",
            method: "GET",
            path: "/v1/apps/a1/machines/m1/metadata",
            now,
        };
        assert!(verify(&token, &key, ctx.clone()));
        assert!(!verify(
            &token,
            &key,
            RequestContext {
                method: "POST",
                ..ctx.clone()
            }
        ));
        assert!(!verify(
            &token,
            &key,
            RequestContext {
                path: "/v1/tokens/oidc",
                ..ctx.clone()
            }
        ));
        assert!(!verify(
            &token,
            &key,
            RequestContext {
                machine_id: "m2",
                ..ctx.clone()
            }
        ));
        let later = now + ATTENUATED_TTL + Duration::from_secs(2);
        assert!(!verify(&token, &key, RequestContext { now: later, ..ctx }));
    }

    #[test]
    fn opaque_tokens_are_not_macaroons() {
        assert!(Attenuator::new("fm2_lJPECAAAAAAAAMQQ", "m1").is_err());
    }

    #[test]
    fn unknown_caveats_never_hold() {
        let ctx = RequestContext {
            machine_id: "m1",
            method: "GET",
            path: "/",
            now: SystemTime::now(),
        };
        assert!(!check_caveat(b"admin = true", &ctx));
        assert!(!check_caveat(b"time < not-a-time", &ctx));
        assert!(!check_caveat(&[0xff, 0xfe], &ctx));
    }
}
