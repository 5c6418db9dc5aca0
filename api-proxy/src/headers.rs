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

/// Prepares a caller's request headers for the upstream: refuses forwarding headers (the
/// upstream could take them for the caller's identity), and removes hop-by-hop headers, the
/// caller's own credentials, and Host (roost sets its own).
pub fn sanitize_request(headers: &mut HeaderMap) -> Result<(), HeaderError> {
    if headers.contains_key("x-forwarded-for") {
        return Err(HeaderError::Forwarding("X-Forwarded-For"));
    }
    if headers.contains_key(header::FORWARDED) {
        return Err(HeaderError::Forwarding("Forwarded"));
    }
    strip_hop_by_hop(headers);
    headers.remove(header::AUTHORIZATION);
    headers.remove(header::HOST);
    headers.remove("x-request-id");
    Ok(())
}

/// Prepares the upstream's response headers for the caller: hop-by-hop headers go, and so
/// does any header that would carry the token back (an upstream echoing credentials).
pub fn sanitize_response(headers: &mut HeaderMap, token: &str) {
    strip_hop_by_hop(headers);
    let leaking: Vec<HeaderName> = headers
        .iter()
        .filter(|(_, v)| {
            let bytes = v.as_bytes();
            !token.is_empty() && bytes.windows(token.len()).any(|w| w == token.as_bytes())
        })
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
        assert_eq!(names, ["content-type"]);
    }

    #[test]
    fn refuses_forwarding_headers() {
        let mut h = map(&[("x-forwarded-for", "10.0.0.1")]);
        assert_eq!(
            sanitize_request(&mut h),
            Err(HeaderError::Forwarding("X-Forwarded-For"))
        );
        let mut h = map(&[("forwarded", "for=10.0.0.1")]);
        assert_eq!(
            sanitize_request(&mut h),
            Err(HeaderError::Forwarding("Forwarded"))
        );
    }

    #[test]
    fn response_never_carries_the_token_back() {
        let mut h = map(&[
            ("x-echo", "FlyV1 fm2_secret"),
            ("transfer-encoding", "chunked"),
            ("content-type", "text/plain"),
        ]);
        sanitize_response(&mut h, "fm2_secret");
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-type"]);
    }
}
