//! How roostctl reaches roost: a Unix socket (container mode), Firecracker's host-side vsock
//! socket (`CONNECT <port>` handshake) or kernel AF_VSOCK; one HTTP/1.1 request each; and
//! the exit code each failure maps to.

use crate::cli::Cli;
pub use crate::failure::{Failure, EXIT_PROTOCOL, EXIT_REFUSED, EXIT_UNAVAILABLE};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use std::pin::Pin;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub type Stream = Pin<Box<dyn Io>>;
pub trait Io: AsyncRead + AsyncWrite + Send {}
impl<T: AsyncRead + AsyncWrite + Send> Io for T {}

pub async fn connect(cli: &Cli) -> Result<Stream, Failure> {
    let unavailable = |what: String| Failure(EXIT_UNAVAILABLE, what);
    if let Some(path) = &cli.unix {
        let s = tokio::net::UnixStream::connect(path).await.map_err(|e| {
            unavailable(format!(
                "cannot connect to {}: {e} (is roost running with --control unix:{}?)",
                path.display(),
                path.display()
            ))
        })?;
        return Ok(Box::pin(s));
    }
    if let Some(path) = &cli.uds {
        let s = tokio::net::UnixStream::connect(path).await.map_err(|e| {
            unavailable(format!(
                "cannot connect to the VM's vsock socket {}: {e} (is the VM running?)",
                path.display()
            ))
        })?;
        let mut s = tokio::io::BufReader::new(s);
        s.write_all(format!("CONNECT {}\n", cli.port).as_bytes())
            .await
            .map_err(|e| unavailable(format!("vsock handshake: {e}")))?;
        let mut line = String::new();
        let read = tokio::time::timeout(Duration::from_secs(5), async {
            // Bounded: the answer is a short line.
            (&mut s).take(128).read_line(&mut line).await
        })
        .await;
        match read {
            Ok(Ok(_)) if line.starts_with("OK ") => return Ok(Box::pin(s)),
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Err(unavailable(format!(
                    "the guest is not listening on vsock port {} (roost not up yet?)",
                    cli.port
                )))
            }
            Ok(Ok(_)) => {
                return Err(unavailable(format!(
                    "vsock handshake failed: expected \"OK <port>\", got {:?}",
                    line.trim_end()
                )))
            }
            Err(_) => return Err(unavailable("vsock handshake timed out".into())),
        }
    }
    if let Some(cid) = cli.cid {
        let addr = tokio_vsock::VsockAddr::new(cid, cli.port);
        let s = tokio_vsock::VsockStream::connect(addr)
            .await
            .map_err(|e| unavailable(format!("cannot connect to vsock {cid}:{}: {e}", cli.port)))?;
        return Ok(Box::pin(s));
    }
    Err(Failure(
        2,
        "one of --uds, --cid or --unix is required".into(),
    ))
}

/// One HTTP/1.1 request; returns (status, body).
/// Whether a request failed because the connection ended under it (closed, reset, broken pipe)
/// rather than on an answer that could not be read.
pub fn went_away(e: &hyper::Error) -> bool {
    use std::error::Error as _;
    e.is_incomplete_message()
        || e.is_closed()
        || e.is_canceled()
        || e.source().is_some_and(|s| s.is::<std::io::Error>())
}

pub async fn request(
    cli: &Cli,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Result<(u16, Bytes), Failure> {
    let stream = connect(cli).await?;
    let proto = |e: &dyn std::fmt::Display| Failure(EXIT_PROTOCOL, format!("control API: {e}"));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| proto(&e))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "roost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| proto(&e))?;
    // A connection that closes before any answer means roost went away (its control API closes
    // when it stops): unavailable, like a socket that is not there. Only an answer that is there
    // but unreadable is a protocol failure.
    let resp = sender.send_request(req).await.map_err(|e| {
        if went_away(&e) {
            Failure(
                EXIT_UNAVAILABLE,
                format!("control API: {e} (is roost stopping?)"),
            )
        } else {
            proto(&e)
        }
    })?;
    let status = resp.status().as_u16();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| proto(&e))?
        .to_bytes();
    Ok((status, bytes))
}

pub fn refused(status: u16, body: &[u8]) -> Failure {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    Failure(EXIT_REFUSED, format!("roost answered {status}: {message}"))
}

pub fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(body)
        .map_err(|e| Failure(EXIT_PROTOCOL, format!("unreadable answer: {e}")))
}
