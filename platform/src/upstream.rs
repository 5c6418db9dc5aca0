//! Where the platform's API is: `Api.Upstream` of the run config.

use std::path::PathBuf;

/// A parsed `Api.Upstream` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upstream {
    /// `vsock://CID:PORT`: a guest-initiated vsock connection (Firecracker hands it to the
    /// host socket `<uds>_PORT`).
    Vsock { cid: u32, port: u32 },
    /// `http://...` or `https://...`, kept as given.
    Http { url: String, tls: bool },
    /// `unix:///path`: a Unix socket (container mode and tests).
    Unix(PathBuf),
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    #[error("{0:?} must start with vsock://, http://, https:// or unix://")]
    Scheme(String),
    #[error("{0:?} is not vsock://CID:PORT with numeric CID and PORT")]
    Vsock(String),
    #[error("{0:?} must name an absolute socket path (unix:///path)")]
    Unix(String),
    #[error("{0:?} has no host")]
    NoHost(String),
}

impl Upstream {
    pub fn parse(url: &str) -> Result<Self, UpstreamError> {
        if let Some(rest) = url.strip_prefix("vsock://") {
            let bad = || UpstreamError::Vsock(url.to_string());
            let (cid, port) = rest.trim_end_matches('/').split_once(':').ok_or_else(bad)?;
            let cid = cid.parse().map_err(|_| bad())?;
            let port = port.parse().map_err(|_| bad())?;
            return Ok(Upstream::Vsock { cid, port });
        }
        if let Some(path) = url.strip_prefix("unix://") {
            if !path.starts_with('/') || path.len() < 2 {
                return Err(UpstreamError::Unix(url.to_string()));
            }
            return Ok(Upstream::Unix(PathBuf::from(path)));
        }
        for (scheme, tls) in [("http://", false), ("https://", true)] {
            if let Some(rest) = url.strip_prefix(scheme) {
                if rest.is_empty() || rest.starts_with('/') {
                    return Err(UpstreamError::NoHost(url.to_string()));
                }
                return Ok(Upstream::Http {
                    url: url.to_string(),
                    tls,
                });
            }
        }
        Err(UpstreamError::Scheme(url.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_scheme() {
        assert_eq!(
            Upstream::parse("vsock://2:10001"),
            Ok(Upstream::Vsock {
                cid: 2,
                port: 10001
            })
        );
        assert_eq!(
            Upstream::parse("unix:///run/platform.sock"),
            Ok(Upstream::Unix("/run/platform.sock".into()))
        );
        assert_eq!(
            Upstream::parse("https://api.machines.dev"),
            Ok(Upstream::Http {
                url: "https://api.machines.dev".into(),
                tls: true
            })
        );
        assert!(matches!(
            Upstream::parse("http://127.0.0.1:4280"),
            Ok(Upstream::Http { tls: false, .. })
        ));
    }

    #[test]
    fn refuses_malformed_urls() {
        assert!(matches!(
            Upstream::parse("ftp://x"),
            Err(UpstreamError::Scheme(_))
        ));
        assert!(matches!(
            Upstream::parse("vsock://2"),
            Err(UpstreamError::Vsock(_))
        ));
        assert!(matches!(
            Upstream::parse("vsock://x:1"),
            Err(UpstreamError::Vsock(_))
        ));
        assert!(matches!(
            Upstream::parse("unix://rel"),
            Err(UpstreamError::Unix(_))
        ));
        assert!(matches!(
            Upstream::parse("http://"),
            Err(UpstreamError::NoHost(_))
        ));
    }
}
