//! Making sure the exit code reaches the host even when no one is long-polling
//! `/v1/exit_code` (Fly's init and pigeon-init lose it): a push to the host over a
//! guest-initiated connection, acknowledged, with a deadline. (The console line, the other
//! way the host learns it, is [`crate::exit::console_line`].)

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use roost_control_protocol::{ExitReport, PushedExitReport};
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};

/// Where the exit report goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportTarget {
    /// The host over vsock (CID 2); Firecracker hands it to `<uds>_PORT` on the host.
    Vsock { port: u32 },
    /// A Unix socket (container mode, tests).
    Unix(PathBuf),
}

/// Total time spent trying to deliver the report.
pub const REPORT_DEADLINE: Duration = Duration::from_secs(5);

/// Why one delivery attempt failed.
#[derive(Debug, thiserror::Error)]
enum PushError {
    #[error("cannot connect: {0}")]
    Connect(#[source] std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("cannot build the request: {0}")]
    Request(#[from] http::Error),
}

async fn post_over<S>(stream: S, body: String) -> Result<u16, PushError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = http::Request::builder()
        .method("POST")
        .uri("/v1/exit")
        .header("host", "roost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let _ = resp.into_body().collect().await;
    Ok(status)
}

async fn attempt(target: &ReportTarget, body: String) -> Result<u16, PushError> {
    match target {
        ReportTarget::Unix(path) => {
            let stream = tokio::net::UnixStream::connect(path)
                .await
                .map_err(PushError::Connect)?;
            post_over(stream, body).await
        }
        ReportTarget::Vsock { port } => {
            let addr = tokio_vsock::VsockAddr::new(tokio_vsock::VMADDR_CID_HOST, *port);
            let stream = tokio_vsock::VsockStream::connect(addr)
                .await
                .map_err(PushError::Connect)?;
            post_over(stream, body).await
        }
    }
}

/// Pushes `POST /v1/exit {"code","oom_killed","machine_id"}` (with several services also
/// `"decided_by": {"service","reason"}`: which one decided the code, and why: the exit
/// report's one shape) until the host acknowledges it with a 2xx or [`REPORT_DEADLINE`]
/// passes. Returns whether it was acknowledged.
pub async fn push(target: &ReportTarget, exit: &ExitReport, machine_id: Option<&str>) -> bool {
    let pushed = PushedExitReport {
        report: exit.clone(),
        machine_id: machine_id.map(str::to_string),
    };
    let body = serde_json::to_string(&pushed).unwrap_or_default();
    let deadline = roost_platform::deadline::from_now(REPORT_DEADLINE);
    let mut wait = Duration::from_millis(100);
    let mut last_error = String::new();
    loop {
        match tokio::time::timeout_at(deadline, attempt(target, body.clone())).await {
            Ok(Ok(status)) if (200..300).contains(&status) => {
                tracing::info!("exit report acknowledged by the host ({status})");
                return true;
            }
            Ok(Ok(status)) => last_error = format!("the host answered {status}"),
            Ok(Err(e)) => last_error = e.to_string(),
            Err(_) => break,
        }
        if roost_platform::deadline::from_now(wait) >= deadline {
            break;
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(1));
    }
    tracing::warn!("the exit report was not acknowledged within {REPORT_DEADLINE:?}: {last_error}");
    false
}
