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
    Unix(tokio::net::UnixListener),
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
                };
            });
        }
    }
}

enum Either {
    Tcp(tokio::net::TcpStream),
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
