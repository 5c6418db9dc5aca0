//! Reading a JWT's claims without the issuer's key: roost needs `exp` (and `iat`) to schedule
//! refreshes and to refuse stale or malformed tokens; the SDK's STS call verifies the
//! signature. Pure.

use serde::Deserialize;

/// The claims roost looks at.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Claims {
    pub exp: u64,
    #[serde(default)]
    pub iat: Option<u64>,
    #[serde(default)]
    pub sub: Option<String>,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    #[error("the answer is not a JWT ({0})")]
    NotAJwt(String),
    #[error("the token expired at {exp} (now {now})")]
    Expired { exp: u64, now: u64 },
}

/// A token must still be valid for at least this long to be written.
pub const MIN_VALIDITY_SECS: u64 = 5;

/// The part of a JOSE header a compact JWS must have.
#[derive(Deserialize)]
struct Header {
    #[allow(dead_code)]
    alg: String,
}

/// One base64url part of a compact JWS, as JSON (padding, which RFC 7515 leaves out, is
/// tolerated).
fn json_part<T: serde::de::DeserializeOwned>(part: &str, what: &str) -> Result<T, JwtError> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|e| JwtError::NotAJwt(format!("its {what} is not base64url: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| JwtError::NotAJwt(format!("its {what}: {e}")))
}

/// Reads the claims of a compact JWS (`header.payload.signature`): the header must be a
/// JOSE header (with `alg`), the payload the claims; the signature is not checked.
pub fn read_claims(token: &str) -> Result<Claims, JwtError> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, _signature] = parts.as_slice() else {
        return Err(JwtError::NotAJwt("not three dot-separated parts".into()));
    };
    if token.bytes().any(|b| b.is_ascii_whitespace()) {
        return Err(JwtError::NotAJwt("whitespace inside".into()));
    }
    json_part::<Header>(header, "header")?;
    json_part(payload, "payload")
}

/// Claims of a token that is worth writing: a JWT valid for at least [`MIN_VALIDITY_SECS`].
pub fn usable_claims(token: &str, now: u64) -> Result<Claims, JwtError> {
    let claims = read_claims(token)?;
    if claims.exp < now.saturating_add(MIN_VALIDITY_SECS) {
        return Err(JwtError::Expired {
            exp: claims.exp,
            now,
        });
    }
    Ok(claims)
}

/// The token in a platform answer: a raw JWT, or JSON `{"token": "..."}`; whitespace trimmed.
pub fn token_from_answer(body: &[u8]) -> Result<String, JwtError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| JwtError::NotAJwt("the answer is not UTF-8".into()))?
        .trim();
    if text.starts_with('{') {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| JwtError::NotAJwt(format!("bad JSON answer: {e}")))?;
        return value
            .get("token")
            .and_then(|t| t.as_str())
            .map(|t| t.trim().to_string())
            .ok_or_else(|| JwtError::NotAJwt("JSON answer without a \"token\" string".into()));
    }
    Ok(text.to_string())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An unsigned-but-well-formed RS256 token with the given claims (signature not checked).
    pub fn fake_jwt(claims: &serde_json::Value) -> String {
        format!(
            "{}.{}.c2ln",
            base64_url(br#"{"alg":"RS256","typ":"JWT"}"#),
            base64_url(claims.to_string().as_bytes())
        )
    }

    fn base64_url(bytes: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().fold(0u32, |acc, &b| (acc << 8) | u32::from(b))
                << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[test]
    fn reads_exp_and_iat() {
        let t = fake_jwt(&serde_json::json!({"exp": 2000, "iat": 1000, "sub": "a:m"}));
        assert_eq!(
            read_claims(&t),
            Ok(Claims {
                exp: 2000,
                iat: Some(1000),
                sub: Some("a:m".into())
            })
        );
        assert!(usable_claims(&t, 1000).is_ok());
        assert_eq!(
            usable_claims(&t, 1996),
            Err(JwtError::Expired {
                exp: 2000,
                now: 1996
            })
        );
    }

    #[test]
    fn refuses_what_is_not_a_jwt() {
        for bad in [
            "",
            "not a token",
            "a.b",
            "a.b.c.d",
            "e30.e30.sig",
            &fake_jwt(&serde_json::json!({"iat": 1})),
            &fake_jwt(&serde_json::json!({"exp": "soon"})),
        ] {
            assert!(
                matches!(read_claims(bad), Err(JwtError::NotAJwt(_))),
                "{bad:?}"
            );
        }
        let t = fake_jwt(&serde_json::json!({"exp": 2000}));
        assert!(read_claims(&format!("{t}\n")).is_err(), "whitespace inside");
    }

    #[test]
    fn answers_raw_or_json() {
        assert_eq!(token_from_answer(b"  a.b.c\n"), Ok("a.b.c".into()));
        assert_eq!(
            token_from_answer(br#"{"token": " a.b.c "}"#),
            Ok("a.b.c".into())
        );
        assert!(token_from_answer(br#"{"tok": "x"}"#).is_err());
        assert!(token_from_answer(&[0xff]).is_err());
    }
}
