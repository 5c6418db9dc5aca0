//! The server side of the WebSocket opening handshake (RFC 6455 section 4.2.1), checked in
//! full before `/v1/ws/exec` upgrades: a request that is not a version 13 handshake is
//! refused with 400, never upgraded on a guess. A refused version also names the one roost
//! speaks in `Sec-WebSocket-Version`, as the RFC's own example in section 4.4 answers.

use http::{header, HeaderMap};

/// Why a handshake was refused (always a 400).
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub message: &'static str,
    /// The version was the fault: the answer carries `Sec-WebSocket-Version: 13`.
    pub wrong_version: bool,
}

fn refuse(message: &'static str) -> Refusal {
    Refusal {
        message,
        wrong_version: false,
    }
}

/// The version roost speaks; a refusal for another names it in `Sec-WebSocket-Version`.
pub const VERSION: &str = "13";

/// Checks `headers` and answers the `Sec-WebSocket-Accept` value for the 101.
pub fn accept(headers: &HeaderMap) -> Result<String, Refusal> {
    if !has_token(headers, header::UPGRADE, "websocket") {
        return Err(refuse(
            "a WebSocket upgrade is required (Upgrade: websocket)",
        ));
    }
    if !has_token(headers, header::CONNECTION, "upgrade") {
        return Err(refuse(
            "a WebSocket upgrade is required (Connection: Upgrade)",
        ));
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    if !is_nonce(key) {
        return Err(refuse("Sec-WebSocket-Key must be 16 bytes in base64"));
    }
    let version = headers.get(header::SEC_WEBSOCKET_VERSION);
    if version.map(|v| v.as_bytes()) != Some(VERSION.as_bytes()) {
        return Err(Refusal {
            message: "Sec-WebSocket-Version must be 13",
            wrong_version: true,
        });
    }
    Ok(tokio_tungstenite::tungstenite::handshake::derive_accept_key(key))
}

/// Whether a comma-separated header (every instance of it) holds `token`, case-insensitively.
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// A base64 encoding of 16 bytes: 22 characters of the alphabet, then `==`; the 22nd holds
/// only two bits of data, so it is one of `AQgw`.
fn is_nonce(key: &[u8]) -> bool {
    let b64 = |c: &u8| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/';
    key.len() == 24
        && key[..21].iter().all(b64)
        && matches!(key[21], b'A' | b'Q' | b'g' | b'w')
        && &key[22..] == b"=="
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    const GOOD: &[(&str, &str)] = &[
        ("upgrade", "websocket"),
        ("connection", "Upgrade"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "13"),
    ];

    #[test]
    fn the_rfc_example_is_accepted_with_its_accept_value() {
        assert_eq!(
            accept(&headers(GOOD)).as_deref(),
            Ok("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        );
    }

    #[test]
    fn connection_and_upgrade_are_token_lists() {
        let mut h = headers(GOOD);
        h.insert(
            "connection",
            http::HeaderValue::from_static("keep-alive, Upgrade"),
        );
        h.insert("upgrade", http::HeaderValue::from_static("WebSocket"));
        assert!(accept(&h).is_ok());
    }

    #[test]
    fn each_missing_or_wrong_part_is_refused() {
        for (name, value, wrong_version) in [
            ("upgrade", "h2c", false),
            ("connection", "keep-alive", false),
            ("connection", "upgraded", false),
            ("sec-websocket-key", "short", false),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZR==", false),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=!", false),
            ("sec-websocket-version", "8", true),
        ] {
            let mut h = headers(GOOD);
            h.insert(name, http::HeaderValue::from_static(value));
            assert_eq!(
                accept(&h).map_err(|r| r.wrong_version),
                Err(wrong_version),
                "{name}: {value}"
            );
        }
        for name in [
            "upgrade",
            "connection",
            "sec-websocket-key",
            "sec-websocket-version",
        ] {
            let mut h = headers(GOOD);
            h.remove(name);
            assert!(accept(&h).is_err(), "without {name}");
        }
    }
}
