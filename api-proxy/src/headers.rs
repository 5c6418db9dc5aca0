//! Header rules for forwarded requests and their responses. Pure.

use http::header::{self, HeaderMap, HeaderName};

/// Hop-by-hop headers (RFC 9110 section 7.6.1), never forwarded in either direction.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Request headers forwarded to the upstream; every other header is dropped. The Machines
/// API needs content negotiation, conditional requests and its lease nonce; nothing else a
/// caller sends may reach it (an override or identity header could turn an allowed `GET`
/// into a `DELETE`, or pass the caller off as someone else, on a framework that honours it).
pub const FORWARDED_REQUEST_HEADERS: &[&str] = &[
    "accept",
    "accept-language",
    "cache-control",
    "content-type",
    "content-length",
    "fly-machine-lease-nonce",
    "if-match",
    "if-none-match",
    "if-modified-since",
    "if-unmodified-since",
    "user-agent",
];

/// Headers that are refused with 400 rather than dropped: a caller sending one is trying to
/// change the method, the URL or who it is, and should hear that it cannot.
pub const REFUSED_REQUEST_HEADERS: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "fly-client-ip",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "x-original-method",
    "x-original-url",
    "x-rewrite-url",
];

/// Why a request's headers were refused (400).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("requests through /.fly/api may not carry {0}")]
    Forwarding(&'static str),
}

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // Headers the sender named in Connection are hop-by-hop too.
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(*name);
    }
}

/// Prepares a caller's request headers for the upstream: refuses override and identity
/// headers ([`REFUSED_REQUEST_HEADERS`]), keeps only [`FORWARDED_REQUEST_HEADERS`] (so the
/// caller's own credentials, Host, hop-by-hop headers and anything unknown are dropped), and
/// asks for an uncompressed answer, which the proxy can check for the token.
pub fn sanitize_request(headers: &mut HeaderMap) -> Result<(), HeaderError> {
    if let Some(name) = REFUSED_REQUEST_HEADERS
        .iter()
        .find(|name| headers.contains_key(**name))
    {
        return Err(HeaderError::Forwarding(name));
    }
    let kept: Vec<HeaderName> = headers
        .keys()
        .filter(|k| FORWARDED_REQUEST_HEADERS.contains(&k.as_str()))
        .cloned()
        .collect();
    let mut forwarded = HeaderMap::new();
    for name in kept {
        for value in headers.get_all(&name) {
            forwarded.append(name.clone(), value.clone());
        }
    }
    forwarded.insert(
        header::ACCEPT_ENCODING,
        http::HeaderValue::from_static("identity"),
    );
    *headers = forwarded;
    Ok(())
}

/// Prepares the upstream's response headers for the caller: hop-by-hop headers go, and so
/// does any header that would carry a secret back (an upstream echoing credentials).
pub fn sanitize_response(headers: &mut HeaderMap, secrets: &crate::redact::Secrets) {
    strip_hop_by_hop(headers);
    let leaking: Vec<HeaderName> = headers
        .iter()
        .filter(|(_, v)| secrets.occurs_in(v.as_bytes()))
        .map(|(k, _)| k.clone())
        .collect();
    for name in leaking {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn only_the_allow_list_is_forwarded() {
        let mut h = map(&[
            ("accept", "application/json"),
            ("fly-machine-lease-nonce", "n1"),
            ("if-match", "\"e1\""),
            ("cookie", "a=b"),
            ("x-anything", "1"),
            ("accept-encoding", "gzip"),
        ]);
        sanitize_request(&mut h).expect("allowed");
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(
            names,
            [
                "accept",
                "fly-machine-lease-nonce",
                "if-match",
                "accept-encoding"
            ]
        );
        assert_eq!(h["accept-encoding"], "identity");
    }

    #[test]
    fn strips_credentials_and_hop_by_hop() {
        let mut h = map(&[
            ("authorization", "Bearer stolen"),
            ("Authorization", "FlyV1 other"),
            ("proxy-authorization", "x"),
            ("connection", "keep-alive, x-secret-hop"),
            ("x-secret-hop", "1"),
            ("te", "trailers"),
            ("host", "evil.example"),
            ("x-request-id", "forged"),
            ("content-type", "application/json"),
        ]);
        sanitize_request(&mut h).expect("allowed");
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-type", "accept-encoding"]);
        assert_eq!(h["accept-encoding"], "identity");
    }

    #[test]
    fn refuses_forwarding_headers() {
        let mut h = map(&[("x-forwarded-for", "10.0.0.1")]);
        assert_eq!(
            sanitize_request(&mut h),
            Err(HeaderError::Forwarding("x-forwarded-for"))
        );
        for name in REFUSED_REQUEST_HEADERS {
            let mut h = map(&[(name, "x"), ("content-type", "application/json")]);
            assert_eq!(sanitize_request(&mut h), Err(HeaderError::Forwarding(name)));
        }
    }

    #[test]
    fn response_never_carries_the_token_back() {
        let mut h = map(&[
            ("x-echo", "FlyV1 fm2_secret"),
            ("transfer-encoding", "chunked"),
            ("content-type", "text/plain"),
        ]);
        sanitize_response(&mut h, &crate::redact::Secrets::new(&["fm2_secret"]));
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-type"]);
    }
}
