//! Health checks: the thresholds that turn probe results into passing or failing (pure), and
//! the network probes (tcp, http, https) on 127.0.0.1. Exec probes are children of the one reaper,
//! run by the supervisor.

use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One check's run of results.
#[derive(Debug, Clone)]
pub struct Tracker {
    success_threshold: u32,
    failure_threshold: u32,
    ok_in_a_row: u32,
    failed_in_a_row: u32,
    passing: bool,
}

/// What one result changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    None,
    /// `success_threshold` passes in a row.
    NowPassing,
    /// `failure_threshold` failures in a row: the check is unhealthy.
    NowFailing,
}

impl Tracker {
    pub fn new(success_threshold: u32, failure_threshold: u32) -> Self {
        Tracker {
            success_threshold: success_threshold.max(1),
            failure_threshold: failure_threshold.max(1),
            ok_in_a_row: 0,
            failed_in_a_row: 0,
            passing: false,
        }
    }

    pub fn passing(&self) -> bool {
        self.passing
    }

    pub fn record(&mut self, ok: bool) -> Change {
        if ok {
            self.failed_in_a_row = 0;
            self.ok_in_a_row = self.ok_in_a_row.saturating_add(1);
            if !self.passing && self.ok_in_a_row >= self.success_threshold {
                self.passing = true;
                return Change::NowPassing;
            }
        } else {
            self.ok_in_a_row = 0;
            self.failed_in_a_row = self.failed_in_a_row.saturating_add(1);
            if self.failed_in_a_row == self.failure_threshold {
                self.passing = false;
                return Change::NowFailing;
            }
        }
        Change::None
    }
}

/// A TCP connect to 127.0.0.1:`port` within `timeout`.
pub async fn tcp(port: u16, timeout: Duration) -> bool {
    matches!(
        tokio::time::timeout(timeout, tokio::net::TcpStream::connect(("127.0.0.1", port))).await,
        Ok(Ok(_))
    )
}

/// How an http check reaches its port: plain, or TLS (verified against the webpki roots
/// with `server_name`, or not verified at all with `skip_verify`, as fly-go's
/// `tls_skip_verify` asks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Plain,
    Tls {
        server_name: String,
        skip_verify: bool,
    },
}

/// An HTTP/1.1 request to 127.0.0.1:`port` within `timeout`; 2xx and 3xx pass (as
/// Kubernetes' httpGet does). Only the status line is read.
pub async fn http(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    timeout: Duration,
    transport: &Transport,
) -> bool {
    let request = request(port, method, path, headers);
    let attempt = async {
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()?;
        match transport {
            Transport::Plain => exchange(stream, &request).await,
            Transport::Tls {
                server_name,
                skip_verify,
            } => {
                let name = rustls::pki_types::ServerName::try_from(server_name.clone()).ok()?;
                let connector = tokio_rustls::TlsConnector::from(tls_config(*skip_verify)?);
                let tls = connector.connect(name, stream).await.ok()?;
                exchange(tls, &request).await
            }
        }
    };
    matches!(
        tokio::time::timeout(timeout, attempt).await,
        Ok(Some(200..=399))
    )
}

/// Sends `request` and reads the status line.
async fn exchange(
    mut stream: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    request: &str,
) -> Option<u16> {
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 256];
    while !head.contains(&b'\n') && head.len() < 4096 {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    status_code(&head)
}

/// The TLS client of https checks: the webpki roots, or no verification at all.
fn tls_config(skip_verify: bool) -> Option<std::sync::Arc<rustls::ClientConfig>> {
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .ok()?;
    let config = if skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(std::sync::Arc::new(NoVerification(provider)))
            .with_no_client_auth()
    } else {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Some(std::sync::Arc::new(config))
}

/// `tls_skip_verify`: any certificate is taken (the handshake's signatures are still
/// checked, so the peer holds the key of the certificate it shows).
#[derive(Debug)]
struct NoVerification(std::sync::Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn request(port: u16, method: &str, path: &str, headers: &[(String, String)]) -> String {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: roost-healthcheck\r\nConnection: close\r\n"
    );
    for (name, value) in headers {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    req.push_str("\r\n");
    req
}

/// The code of an `HTTP/1.x NNN ...` status line.
pub fn status_code(head: &[u8]) -> Option<u16> {
    let line = head.split(|&b| b == b'\n').next()?;
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split(' ');
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_turn_results_into_passing_and_failing() {
        let mut t = Tracker::new(2, 3);
        assert_eq!(t.record(true), Change::None);
        assert_eq!(
            t.record(false),
            Change::None,
            "a failure breaks the run of passes"
        );
        assert_eq!(t.record(true), Change::None);
        assert_eq!(t.record(true), Change::NowPassing);
        assert!(t.passing());
        assert_eq!(t.record(false), Change::None);
        assert_eq!(t.record(false), Change::None);
        assert!(t.passing(), "two failures of three do not fail it");
        assert_eq!(t.record(false), Change::NowFailing);
        assert!(!t.passing());
        assert_eq!(t.record(false), Change::None, "unhealthy is told once");
        assert_eq!(t.record(true), Change::None);
        assert_eq!(t.record(true), Change::NowPassing);
    }

    #[test]
    fn status_lines() {
        assert_eq!(status_code(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(status_code(b"HTTP/1.0 302 Found\r\n"), Some(302));
        assert_eq!(status_code(b"SSH-2.0-OpenSSH\r\n"), None);
        assert_eq!(status_code(b""), None);
    }

    #[tokio::test]
    async fn probes_against_real_sockets() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = tokio::spawn(async move {
            for code in ["200 OK", "503 Service Unavailable"] {
                let (mut s, _) = listener.accept().await.expect("accept");
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(format!("HTTP/1.1 {code}\r\nContent-Length: 0\r\n\r\n").as_bytes())
                    .await;
            }
            listener
        });
        let t = Duration::from_secs(5);
        assert!(http(port, "GET", "/health", &[], t, &Transport::Plain).await);
        assert!(!http(port, "GET", "/health", &[], t, &Transport::Plain).await);
        let listener = server.await.expect("server");
        assert!(tcp(port, t).await);
        drop(listener);
        assert!(!tcp(port, t).await);
        assert!(!http(port, "GET", "/", &[], t, &Transport::Plain).await);
    }
}
