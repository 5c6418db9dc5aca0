//! The upstream client, shared by the proxy and the broker: one connection pool to
//! `Api.Upstream` over TCP (plain or rustls TLS with the webpki roots, no OpenSSL and no
//! dependence on the guest image's CA bundle), a Unix socket, or guest-initiated vsock.

use crate::resolve::PinnedResolver;
use crate::upstream::Upstream;
use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Errors a body can fail with on its way through.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// The request body type the client sends.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// How a request to the upstream failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to the upstream: {0}")]
    Connect(String),
    #[error("the upstream request failed: {0}")]
    Request(String),
    #[error("bad upstream request: {0}")]
    Build(String),
    #[error("the request body is larger than the limit")]
    BodyTooLarge,
}

/// A stream to a local upstream: a Unix socket or vsock.
#[derive(Debug)]
pub enum LocalStream {
    Unix(tokio::net::UnixStream),
    Vsock(tokio_vsock::VsockStream),
}

impl AsyncRead for LocalStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            LocalStream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            LocalStream::Vsock(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for LocalStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            LocalStream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            LocalStream::Vsock(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            LocalStream::Unix(s) => Pin::new(s).poll_flush(cx),
            LocalStream::Vsock(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            LocalStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            LocalStream::Vsock(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

impl Connection for LocalStream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

/// Where a [`LocalConnector`] connects, whatever the request URI says.
#[derive(Debug, Clone)]
enum LocalTarget {
    Unix(PathBuf),
    Vsock { cid: u32, port: u32 },
}

/// A hyper connector for Unix-socket and vsock upstreams.
#[derive(Debug, Clone)]
pub struct LocalConnector {
    target: LocalTarget,
    timeout: Duration,
}

impl tower_service::Service<Uri> for LocalConnector {
    type Response = TokioIo<LocalStream>;
    type Error = std::io::Error;
    type Future =
        Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send + 'static>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let target = self.target.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            let connect = async {
                match target {
                    LocalTarget::Unix(path) => tokio::net::UnixStream::connect(path)
                        .await
                        .map(LocalStream::Unix),
                    LocalTarget::Vsock { cid, port } => {
                        tokio_vsock::VsockStream::connect(tokio_vsock::VsockAddr::new(cid, port))
                            .await
                            .map(LocalStream::Vsock)
                    }
                }
            };
            match tokio::time::timeout(timeout, connect).await {
                Ok(stream) => stream.map(TokioIo::new),
                Err(_) => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "connect timed out",
                )),
            }
        })
    }
}

type TcpClient = Client<hyper_rustls::HttpsConnector<HttpConnector<PinnedResolver>>, ProxyBody>;
type LocalClient = Client<LocalConnector, ProxyBody>;

#[derive(Debug, Clone)]
enum Pool {
    Tcp(TcpClient),
    Local(LocalClient),
}

type TcpConnector = hyper_rustls::HttpsConnector<HttpConnector<PinnedResolver>>;

/// What a pool is built from, kept so [`UpstreamClient::drop_connections`] can build a new one.
#[derive(Debug, Clone)]
enum Connector {
    Tcp(TcpConnector),
    Local(LocalConnector),
}

impl Connector {
    fn pool(&self, idle: Duration) -> Pool {
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(idle)
            .pool_timer(hyper_util::rt::TokioTimer::new());
        match self {
            Connector::Tcp(c) => Pool::Tcp(builder.build(c.clone())),
            Connector::Local(c) => Pool::Local(builder.build(c.clone())),
        }
    }
}

/// A pooled HTTP/1.1 client for one upstream. Cheap to clone; the clones share one pool.
#[derive(Debug, Clone)]
pub struct UpstreamClient {
    /// Replaced whole by [`UpstreamClient::drop_connections`]; a request in flight keeps the
    /// pool it started on until it ends.
    pool: std::sync::Arc<std::sync::RwLock<Pool>>,
    connector: std::sync::Arc<Connector>,
    idle: Duration,
    /// `scheme://authority` the request URIs are built on.
    base: String,
    /// A path prefix from the upstream URL (`https://host/prefix`), without a trailing `/`.
    prefix: String,
    /// The Host header value to send.
    host: String,
}

impl UpstreamClient {
    /// Builds a client; no connection is made until the first request. `extra_roots_pem`
    /// adds trusted CA certificates (PEM) to the webpki roots, for a platform with a
    /// private CA.
    pub fn new(
        upstream: &Upstream,
        connect_timeout: Duration,
        extra_roots_pem: Option<&[u8]>,
    ) -> Result<Self, ClientError> {
        // Idle upstream connections close after 15 s (hyper-util checks once per period, so
        // within 30 s): a burst does not hold file descriptors for long.
        let idle = Duration::from_secs(15);
        match upstream {
            Upstream::Http { url, .. } => {
                let uri: Uri = url
                    .parse()
                    .map_err(|e| ClientError::Build(format!("{url}: {e}")))?;
                let (Some(scheme), Some(authority)) = (uri.scheme_str(), uri.authority()) else {
                    return Err(ClientError::Build(format!("{url}: no scheme or host")));
                };
                // Resolved once, here, without tokio's blocking pool (see crate::resolve).
                let host = uri
                    .host()
                    .unwrap_or("")
                    .trim_matches(|c| c == '[' || c == ']');
                let resolver = if host.parse::<std::net::IpAddr>().is_ok() {
                    PinnedResolver::default()
                } else {
                    PinnedResolver::ahead_of_time(host)
                };
                let mut http = HttpConnector::new_with_resolver(resolver);
                http.enforce_http(false);
                http.set_connect_timeout(Some(connect_timeout));
                http.set_nodelay(true);
                let mut roots = rustls::RootCertStore {
                    roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
                };
                if let Some(pem) = extra_roots_pem {
                    use rustls::pki_types::{pem::PemObject, CertificateDer};
                    let mut added = 0;
                    for cert in CertificateDer::pem_slice_iter(pem) {
                        let cert = cert.map_err(|e| ClientError::Build(format!("CA file: {e}")))?;
                        roots
                            .add(cert)
                            .map_err(|e| ClientError::Build(format!("CA file: {e}")))?;
                        added += 1;
                    }
                    if added == 0 {
                        return Err(ClientError::Build("CA file holds no certificate".into()));
                    }
                }
                let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_safe_default_protocol_versions()
                .map_err(|e| ClientError::Build(format!("TLS set-up: {e}")))?
                .with_root_certificates(roots)
                .with_no_client_auth();
                let https = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(tls)
                    .https_or_http()
                    .enable_http1()
                    .wrap_connector(http);
                let connector = Connector::Tcp(https);
                Ok(UpstreamClient {
                    pool: std::sync::Arc::new(std::sync::RwLock::new(connector.pool(idle))),
                    connector: std::sync::Arc::new(connector),
                    idle,
                    base: format!("{scheme}://{authority}"),
                    prefix: uri.path().trim_end_matches('/').to_string(),
                    host: authority.to_string(),
                })
            }
            Upstream::Unix(path) => Ok(Self::local(
                LocalTarget::Unix(path.clone()),
                connect_timeout,
                idle,
            )),
            Upstream::Vsock { cid, port } => Ok(Self::local(
                LocalTarget::Vsock {
                    cid: *cid,
                    port: *port,
                },
                connect_timeout,
                idle,
            )),
        }
    }

    fn local(target: LocalTarget, timeout: Duration, idle: Duration) -> Self {
        let connector = Connector::Local(LocalConnector { target, timeout });
        UpstreamClient {
            pool: std::sync::Arc::new(std::sync::RwLock::new(connector.pool(idle))),
            connector: std::sync::Arc::new(connector),
            idle,
            base: "http://localhost".to_string(),
            prefix: String::new(),
            host: "localhost".to_string(),
        }
    }

    /// The URI for `path_and_query` (which starts with `/`) on the upstream.
    pub fn uri(&self, path_and_query: &str) -> Result<Uri, ClientError> {
        format!("{}{}{}", self.base, self.prefix, path_and_query)
            .parse()
            .map_err(|e| ClientError::Build(format!("{path_and_query}: {e}")))
    }

    /// Drops every idle pooled connection (a new pool takes the old one's place; requests in
    /// flight end on theirs). After a VM restore they are dead, and before a snapshot they
    /// would be saved half-open.
    pub fn drop_connections(&self) {
        let fresh = self.connector.pool(self.idle);
        *self
            .pool
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = fresh;
    }

    /// The Host header for upstream requests.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Sends a request (its URI from [`UpstreamClient::uri`]) and returns the response head;
    /// the body streams.
    pub async fn send(&self, req: Request<ProxyBody>) -> Result<Response<Incoming>, ClientError> {
        let pool = self
            .pool
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let result = match &pool {
            Pool::Tcp(c) => c.request(req).await,
            Pool::Local(c) => c.request(req).await,
        };
        result.map_err(|e| {
            if has_source::<http_body_util::LengthLimitError>(&e) {
                ClientError::BodyTooLarge
            } else if e.is_connect() {
                ClientError::Connect(error_chain(&e))
            } else {
                ClientError::Request(error_chain(&e))
            }
        })
    }
}

/// Whether `err` or one of its sources is an `E`.
fn has_source<E: std::error::Error + 'static>(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(err);
    while let Some(e) = current {
        if e.downcast_ref::<E>().is_some() {
            return true;
        }
        current = e.source();
    }
    false
}

/// An error and its sources on one line.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Empty};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

    /// A keep-alive HTTP/1.1 server on a Unix socket that answers every request 200 and
    /// counts the connections it accepted.
    async fn counting_server(path: PathBuf) -> Arc<AtomicUsize> {
        let listener = tokio::net::UnixListener::bind(&path).expect("bind");
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let (read, mut write) = stream.into_split();
                    let mut lines = BufReader::new(read).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if line.is_empty() {
                            let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                            if write.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        accepted
    }

    async fn get(client: &UpstreamClient) {
        let req = Request::get(client.uri("/").expect("uri"))
            .header("host", client.host())
            .body(Empty::<Bytes>::new().map_err(|e| match e {}).boxed())
            .expect("request");
        let resp = client.send(req).await.expect("answer");
        assert_eq!(resp.status(), 200);
        let _ = resp.into_body().collect().await;
    }

    #[tokio::test(flavor = "current_thread")]
    async fn dropped_connections_are_not_used_again() {
        let dir = std::env::temp_dir().join(format!("roost-pool-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("upstream.sock");
        let _ = std::fs::remove_file(&path);
        let accepted = counting_server(path.clone()).await;
        let client =
            UpstreamClient::new(&Upstream::Unix(path.clone()), Duration::from_secs(5), None)
                .expect("client");
        get(&client).await;
        get(&client).await;
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "the pool keeps one connection"
        );
        // A clone shares the pool: dropping through it drops for every holder.
        client.clone().drop_connections();
        get(&client).await;
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            2,
            "a new connection after the drop"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
