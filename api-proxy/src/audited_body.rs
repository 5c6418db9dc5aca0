//! The audit line of each request, written by the response body that carries the answer:
//! it counts the bytes, enforces the request's deadline while it streams, holds the
//! concurrency permit, and logs exactly once when it is dropped, whatever happens.

use crate::audit::Refusals;
use crate::state::Peer;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use roost_platform::pool::{BoxError, ProxyBody};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Sleep;

/// What the audit line says about a request.
#[derive(Debug)]
pub(crate) struct Audit {
    pub(crate) peer: Peer,
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) request_id: String,
    pub(crate) started: Instant,
    pub(crate) status: u16,
    pub(crate) head_latency: Duration,
}

/// A response body that counts what it carries, enforces the request's deadline while it
/// streams, holds the concurrency permit until it is done, and writes the audit line when it
/// is dropped: exactly one line per request, whatever happens.
pub(crate) struct AuditedBody {
    pub(crate) inner: ProxyBody,
    pub(crate) deadline: Option<Pin<Box<Sleep>>>,
    pub(crate) bytes: u64,
    pub(crate) outcome: &'static str,
    pub(crate) audit: Audit,
    /// Where a refusal is counted instead of logged, after the first of its kind.
    pub(crate) refusals: Arc<Refusals>,
    pub(crate) _permit: Option<OwnedSemaphorePermit>,
}

impl Body for AuditedBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(deadline) = self.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                self.deadline = None;
                self.outcome = "deadline";
                return Poll::Ready(Some(Err("the request's time limit passed".into())));
            }
        }
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        // A refusal stays a refusal however its error body ends.
        if self.outcome == "refused" {
            return polled;
        }
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
                // hyper stops polling a body whose length it knows once all of it is sent.
                if self.inner.is_end_stream() {
                    self.outcome = "ok";
                }
            }
            Poll::Ready(Some(Err(_))) => self.outcome = "upstream-error",
            Poll::Ready(None) => self.outcome = "ok",
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for AuditedBody {
    fn drop(&mut self) {
        if self.outcome.is_empty() && self.inner.is_end_stream() {
            self.outcome = "ok";
        }
        let a = &self.audit;
        if self.outcome == "refused" && !self.refusals.record(a.peer.uid, a.status) {
            return;
        }
        tracing::info!(
            target: "roost::api_audit",
            "api pid={} service={} uid={} gid={} method={} path={} status={} bytes={} latency_ms={:.1} total_ms={:.1} outcome={} request_id={}",
            a.peer.pid.map_or_else(|| "-".to_string(), |p| p.to_string()),
            a.peer.service.as_deref().unwrap_or("-"),
            a.peer.uid,
            a.peer.gid,
            a.method,
            a.path,
            a.status,
            self.bytes,
            a.head_latency.as_secs_f64() * 1e3,
            a.started.elapsed().as_secs_f64() * 1e3,
            // "incomplete" when the caller went away before the end.
            if self.outcome.is_empty() { "incomplete" } else { self.outcome },
            a.request_id,
        );
    }
}
