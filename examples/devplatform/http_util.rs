//! Small HTTP helpers for the devplatform: listeners on TCP or Unix sockets, bodies.

use bytes::Bytes;
use http_body::{Body, Frame};
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pub type Req = Request<Incoming>;
pub type ResBody = BoxBody<Bytes, Infallible>;

pub enum Listener {
    Tcp(tokio::net::TcpListener),
    Tls(tokio::net::TcpListener, tokio_rustls::TlsAcceptor),
    Unix(tokio::net::UnixListener),
}

/// A private CA and a leaf certificate for `localhost` and 127.0.0.1 signed by it. Returns
/// the acceptor and the CA certificate (PEM) a client must trust.
pub fn tls_acceptor() -> (tokio_rustls::TlsAcceptor, String) {
    let ca_key = rcgen::KeyPair::generate().expect("CA key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "devplatform test CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA cert");
    let leaf_key = rcgen::KeyPair::generate().expect("leaf key");
    let leaf =
        rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("leaf params")
            .signed_by(&leaf_key, &ca, &ca_key)
            .expect("leaf cert");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .expect("TLS config");
    (
        tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)),
        ca.pem(),
    )
}

impl Listener {
    /// `unix:/path` or `host:port`.
    pub async fn bind(addr: &str) -> Self {
        match addr.strip_prefix("unix:") {
            Some(path) => {
                let _ = std::fs::remove_file(path);
                Listener::Unix(tokio::net::UnixListener::bind(path).expect("bind unix socket"))
            }
            None => Listener::Tcp(tokio::net::TcpListener::bind(addr).await.expect("bind tcp")),
        }
    }

    /// Serves HTTP/1.1 with `handler` until the process ends.
    pub async fn serve<F, Fut>(self, handler: F)
    where
        F: Fn(Req) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<ResBody>> + Send + 'static,
    {
        loop {
            let io = match &self {
                Listener::Tcp(l) => match l.accept().await {
                    Ok((s, _)) => {
                        let _ = s.set_nodelay(true);
                        Either::Tcp(s)
                    }
                    Err(_) => continue,
                },
                Listener::Tls(l, acceptor) => match l.accept().await {
                    Ok((s, _)) => Either::Tls(s, acceptor.clone()),
                    Err(_) => continue,
                },
                Listener::Unix(l) => match l.accept().await {
                    Ok((s, _)) => Either::Unix(s),
                    Err(_) => continue,
                },
            };
            let handler = handler.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(handler(req).await) }
                });
                let builder = hyper::server::conn::http1::Builder::new();
                let _ = match io {
                    Either::Tcp(s) => builder.serve_connection(TokioIo::new(s), service).await,
                    Either::Unix(s) => builder.serve_connection(TokioIo::new(s), service).await,
                    Either::Tls(s, acceptor) => match acceptor.accept(s).await {
                        Ok(tls) => builder.serve_connection(TokioIo::new(tls), service).await,
                        Err(_) => return,
                    },
                };
            });
        }
    }
}

enum Either {
    Tcp(tokio::net::TcpStream),
    Tls(tokio::net::TcpStream, tokio_rustls::TlsAcceptor),
    Unix(tokio::net::UnixStream),
}

pub fn full(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<ResBody> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()).boxed())
        .expect("response")
}

pub fn json(status: u16, value: &serde_json::Value) -> Response<ResBody> {
    full(status, "application/json", value.to_string())
}

pub fn error(status: u16, message: &str) -> Response<ResBody> {
    json(status, &serde_json::json!({ "error": message }))
}

pub fn empty(status: u16) -> Response<ResBody> {
    Response::builder()
        .status(status)
        .body(Full::new(Bytes::new()).boxed())
        .expect("response")
}

/// Reads a request body of at most `max` bytes.
pub async fn read_body(req: Req, max: usize) -> Option<Bytes> {
    Limited::new(req.into_body(), max)
        .collect()
        .await
        .ok()
        .map(|c| c.to_bytes())
}

/// A body of `remaining` bytes of `x`, produced in 64 KiB frames as the reader asks for them.
pub struct Generated {
    pub remaining: u64,
}

impl Body for Generated {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let n = self.remaining.min(64 * 1024);
        self.remaining -= n;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; n as usize])))))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(self.remaining)
    }
}
