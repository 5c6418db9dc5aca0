//! The `/.fly/api` server: the socket, per-connection SO_PEERCRED authorisation, and the
//! forwarding of each request with its limits and its audit line.

use crate::audit::Refusals;
use crate::connections::{Admitted, Connections, Limits};
use crate::headers;
use crate::redact::{RedactedBody, Secrets};
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use roost_platform::policy::{Decision, PatternError, Policy};
use roost_platform::pool::{BoxError, ClientError, ProxyBody, UpstreamClient};
use roost_platform::Platform;
use std::convert::Infallible;
use std::future::Future;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Sleep;

/// Everything the proxy needs; see the `Api` table of docs/api-proxy.md.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub socket_path: PathBuf,
    /// The platform's credentials and its one connection pool (shared with the broker).
    pub platform: Platform,
    /// Callers allowed by uid; empty means root only.
    pub allow_uids: Vec<u32>,
    pub allow_gids: Vec<u32>,
    /// Allow-list patterns; empty means [`crate::policy::DEFAULT_PATTERNS`].
    pub paths: Vec<String>,
    pub app_name: Option<String>,
    pub machine_id: Option<String>,
    pub max_body_bytes: u64,
    pub request_timeout: Duration,
    pub max_concurrent: usize,
}

/// Default socket path inside the VM.
pub const DEFAULT_SOCKET_PATH: &str = "/.fly/api";

impl ProxyConfig {
    /// A config with the documented defaults.
    pub fn new(socket_path: PathBuf, platform: Platform) -> Self {
        ProxyConfig {
            socket_path,
            platform,
            allow_uids: Vec::new(),
            allow_gids: Vec::new(),
            paths: Vec::new(),
            app_name: None,
            machine_id: None,
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(60),
            max_concurrent: 64,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    Pattern(#[from] PatternError),
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("socket {path}: {source}")]
    Socket {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("refusing socket directory {path}: {why}")]
    UnsafeDir { path: PathBuf, why: &'static str },
}

/// Counters for the control API's status.
#[derive(Debug, Default)]
pub struct ProxyStats {
    pub requests: AtomicU64,
    pub forwarded: AtomicU64,
    pub refused: AtomicU64,
    pub upstream_errors: AtomicU64,
    /// Connections closed at once because a cap was reached.
    pub connections_dropped: AtomicU64,
}

/// Who owns the socket and with which mode: the coarse gate in front of SO_PEERCRED.
/// Returns (uid, gid, mode).
pub fn socket_access(allow_uids: &[u32], allow_gids: &[u32]) -> (u32, u32, u32) {
    let others: Vec<u32> = allow_uids.iter().copied().filter(|&u| u != 0).collect();
    match (others.as_slice(), allow_gids) {
        ([], []) => (0, 0, 0o600),
        ([uid], []) => (*uid, 0, 0o600),
        ([], [gid]) => (0, *gid, 0o660),
        // No single owner or group expresses the list: the peer check alone decides.
        _ => (0, 0, 0o666),
    }
}

#[derive(Debug)]
struct State {
    client: UpstreamClient,
    platform: Platform,
    policy: Policy,
    allow_uids: Vec<u32>,
    allow_gids: Vec<u32>,
    max_body: u64,
    request_timeout: Duration,
    permits: Arc<Semaphore>,
    stats: Arc<ProxyStats>,
    refusals: Arc<Refusals>,
}

impl State {
    fn build(config: &ProxyConfig) -> Result<Self, ProxyError> {
        let policy = Policy::new(
            &config.paths,
            config.app_name.as_deref(),
            config.machine_id.as_deref(),
        )?;
        let allow_uids = if config.allow_uids.is_empty() {
            vec![0]
        } else {
            config.allow_uids.clone()
        };
        Ok(State {
            client: config.platform.upstream().clone(),
            platform: config.platform.clone(),
            policy,
            allow_uids,
            allow_gids: config.allow_gids.clone(),
            max_body: config.max_body_bytes,
            request_timeout: config.request_timeout,
            // tokio's semaphore panics beyond MAX_PERMITS: clamp whatever a caller passes.
            permits: Arc::new(Semaphore::new(
                config.max_concurrent.clamp(1, Semaphore::MAX_PERMITS),
            )),
            stats: Arc::new(ProxyStats::default()),
            refusals: Arc::new(Refusals::default()),
        })
    }
}

/// The bound proxy; [`ProxyServer::serve`] runs it.
#[derive(Debug)]
pub struct ProxyServer {
    listener: UnixListener,
    path: PathBuf,
    state: Arc<State>,
}

/// Creates the socket's directory if needed, and refuses one that others could tamper with.
fn prepare_dir(dir: &Path) -> Result<(), ProxyError> {
    let unsafe_dir = |why| ProxyError::UnsafeDir {
        path: dir.to_path_buf(),
        why,
    };
    match std::fs::symlink_metadata(dir) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|source| ProxyError::Socket {
                    path: dir.to_path_buf(),
                    source,
                })?;
            Ok(())
        }
        Err(source) => Err(ProxyError::Socket {
            path: dir.to_path_buf(),
            source,
        }),
        Ok(meta) if meta.file_type().is_symlink() => Err(unsafe_dir("it is a symlink")),
        Ok(meta) if !meta.is_dir() => Err(unsafe_dir("it is not a directory")),
        Ok(meta) if meta.uid() != nix::unistd::geteuid().as_raw() && meta.uid() != 0 => {
            Err(unsafe_dir("it is owned by another user"))
        }
        Ok(meta) if meta.mode() & 0o002 != 0 && meta.mode() & 0o1000 == 0 => {
            Err(unsafe_dir("it is world-writable without the sticky bit"))
        }
        Ok(_) => Ok(()),
    }
}

use std::os::unix::fs::DirBuilderExt;

impl ProxyServer {
    /// Everything of a proxy but its socket, built from `config` without I/O: the policy,
    /// the upstream client, the attenuator and the limits. [`ProxyServer::bind`] uses it; the
    /// fuzz targets call it on configs that validation accepted.
    pub fn check(config: &ProxyConfig) -> Result<(), ProxyError> {
        State::build(config).map(drop)
    }

    /// Binds the socket and sets its owner and mode. Needs a tokio runtime.
    pub fn bind(config: ProxyConfig) -> Result<Self, ProxyError> {
        let state = State::build(&config)?;
        let path = config.socket_path.clone();
        let sock_err = |source| ProxyError::Socket {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            prepare_dir(dir)?;
        }
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) => {
                std::fs::remove_file(&path).map_err(sock_err)?
            }
            Ok(_) => {
                return Err(sock_err(std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    "a file that is not a socket is in the way",
                )))
            }
            Err(_) => {}
        }
        // Bound under a temporary name and renamed into place once its owner and mode are
        // set: the socket never exists at its path with the umask's mode.
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "api".into());
        let staging = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
        let _ = std::fs::remove_file(&staging);
        let listener = UnixListener::bind(&staging).map_err(sock_err)?;
        let allow_uids = state.allow_uids.clone();
        let (uid, gid, mode) = socket_access(&allow_uids, &config.allow_gids);
        let placed = std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(mode))
            .and_then(|()| {
                nix::unistd::chown(
                    &staging,
                    Some(nix::unistd::Uid::from_raw(uid)),
                    Some(nix::unistd::Gid::from_raw(gid)),
                )
                .map_err(std::io::Error::from)
            })
            .and_then(|()| std::fs::rename(&staging, &path));
        if let Err(err) = placed {
            let _ = std::fs::remove_file(&staging);
            return Err(sock_err(err));
        }
        if config.machine_id.is_none() || config.app_name.is_none() {
            tracing::warn!("AppName or MachineId is not set: /.fly/api forwards no machine paths");
        }
        tracing::info!(
            "/.fly/api listening on {} (mode {mode:o}, owner {uid}:{gid}, allowed uids {allow_uids:?}, gids {:?})",
            path.display(),
            config.allow_gids
        );

        Ok(ProxyServer {
            listener,
            path,
            state: Arc::new(state),
        })
    }

    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    pub fn stats(&self) -> Arc<ProxyStats> {
        self.state.stats.clone()
    }

    /// Accepts connections forever. Errors on one connection never stop the others. A
    /// connection beyond a cap ([`crate::connections`]) is closed at once; accept failures
    /// (EMFILE...) are logged once per streak.
    pub async fn serve(self) {
        let conns = Connections::new(Limits::current());
        let limits = conns.limits();
        tracing::info!(
            "/.fly/api holds at most {} connections, {} per uid, {} of refused callers",
            limits.total,
            limits.per_uid,
            limits.refused
        );
        let mut failures: u64 = 0;
        let mut dropped: u64 = 0;
        let mut window = tokio::time::interval(crate::audit::WINDOW);
        window.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        if failures > 0 {
                            tracing::info!("/.fly/api accepts again after {failures} failed accept(s)");
                            failures = 0;
                        }
                        let Some(peer) = peer_of(&self.state, &stream) else { continue };
                        match conns.admit(peer.uid, peer.authorized) {
                            Ok(admitted) => {
                                let state = self.state.clone();
                                tokio::spawn(serve_connection(state, stream, peer, admitted));
                            }
                            Err(full) => {
                                dropped += 1;
                                self.state.stats.connections_dropped.fetch_add(1, Ordering::Relaxed);
                                // One line per streak of drops (the window's tick sums them up).
                                if dropped == 1 {
                                    tracing::warn!(
                                        "/.fly/api: closing a connection from uid {}: {full:?} connection cap reached",
                                        peer.uid
                                    );
                                }
                            }
                        }
                    }
                    Err(err) => {
                        failures += 1;
                        if failures == 1 {
                            tracing::warn!("/.fly/api accept failed: {err} (logged once until it works again)");
                        }
                        // EMFILE and friends: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = window.tick() => {
                    for line in self.state.refusals.end_window() {
                        tracing::info!(target: "roost::api_audit", "{line}");
                    }
                    if dropped > 1 {
                        tracing::warn!(
                            "/.fly/api closed {dropped} connection(s) beyond its caps in the last {} s",
                            crate::audit::WINDOW.as_secs()
                        );
                    }
                    dropped = 0;
                }
            }
        }
    }
}

/// The kernel's word on who is connected (captured at connect(2), so no pid-reuse race).
#[derive(Debug, Clone, Copy)]
struct Peer {
    pid: Option<i32>,
    uid: u32,
    gid: u32,
    authorized: bool,
}

fn peer_of(state: &State, stream: &UnixStream) -> Option<Peer> {
    match stream.peer_cred() {
        Ok(cred) => Some(Peer {
            pid: cred.pid(),
            uid: cred.uid(),
            gid: cred.gid(),
            authorized: state.allow_uids.contains(&cred.uid())
                || state.allow_gids.contains(&cred.gid()),
        }),
        Err(err) => {
            tracing::debug!("/.fly/api: cannot read the peer's credentials: {err}");
            None
        }
    }
}

async fn serve_connection(state: Arc<State>, stream: UnixStream, peer: Peer, admitted: Admitted) {
    let service = hyper::service::service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(handle(state, peer, req).await) }
    });
    // A caller that is not allowed gets its 403 and the connection is closed: it cannot
    // hold descriptors with keep-alive.
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .keep_alive(peer.authorized)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(err) = conn.await {
        tracing::debug!("/.fly/api connection ended: {err}");
    }
    drop(admitted);
}

fn request_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("{:016x}", h.finish())
}

/// What the audit line says about a request.
#[derive(Debug)]
struct Audit {
    peer: Peer,
    method: String,
    path: String,
    request_id: String,
    started: Instant,
    status: u16,
    head_latency: Duration,
}

/// A response body that counts what it carries, enforces the request's deadline while it
/// streams, holds the concurrency permit until it is done, and writes the audit line when it
/// is dropped: exactly one line per request, whatever happens.
struct AuditedBody {
    inner: ProxyBody,
    deadline: Option<Pin<Box<Sleep>>>,
    bytes: u64,
    outcome: &'static str,
    audit: Audit,
    /// Where a refusal is counted instead of logged, after the first of its kind.
    refusals: Arc<Refusals>,
    _permit: Option<OwnedSemaphorePermit>,
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
            "api pid={} uid={} gid={} method={} path={} status={} bytes={} latency_ms={:.1} total_ms={:.1} outcome={} request_id={}",
            a.peer.pid.map_or_else(|| "-".to_string(), |p| p.to_string()),
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

fn json_error(status: StatusCode, message: &str, request_id: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({ "error": message, "request_id": request_id }).to_string();
    let mut resp = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

async fn handle(state: Arc<State>, peer: Peer, req: Request<Incoming>) -> Response<AuditedBody> {
    state.stats.requests.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let request_id = request_id();
    let audit = Audit {
        peer,
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        request_id: request_id.clone(),
        started,
        status: 0,
        head_latency: Duration::ZERO,
    };
    let (resp, permit, outcome) = match forward(&state, peer, req, &request_id, started).await {
        Ok((resp, permit)) => (resp, Some(permit), ""),
        Err((status, message)) => {
            if status == StatusCode::BAD_GATEWAY || status == StatusCode::GATEWAY_TIMEOUT {
                state.stats.upstream_errors.fetch_add(1, Ordering::Relaxed);
            } else {
                state.stats.refused.fetch_add(1, Ordering::Relaxed);
            }
            (json_error(status, &message, &request_id), None, "refused")
        }
    };
    let (mut parts, body) = resp.into_parts();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        parts.headers.insert("x-request-id", value);
    }
    let deadline = permit.as_ref().map(|_| {
        Box::pin(tokio::time::sleep_until(roost_platform::deadline::after(
            started.into(),
            state.request_timeout,
        )))
    });
    let audited = AuditedBody {
        inner: body,
        deadline,
        bytes: 0,
        outcome,
        audit: Audit {
            status: parts.status.as_u16(),
            head_latency: started.elapsed(),
            ..audit
        },
        refusals: state.refusals.clone(),
        _permit: permit,
    };
    Response::from_parts(parts, audited)
}

type Refusal = (StatusCode, String);

async fn forward(
    state: &State,
    peer: Peer,
    req: Request<Incoming>,
    request_id: &str,
    started: Instant,
) -> Result<(Response<ProxyBody>, OwnedSemaphorePermit), Refusal> {
    if !peer.authorized {
        return Err((
            StatusCode::FORBIDDEN,
            format!("uid {} gid {} may not use /.fly/api", peer.uid, peer.gid),
        ));
    }
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    match state.policy.decide(&method, &path) {
        Decision::Forward => {}
        Decision::BadRequest(why) => return Err((StatusCode::BAD_REQUEST, why.to_string())),
        Decision::Forbidden => {
            return Err((
                StatusCode::FORBIDDEN,
                "the path names another app or machine".to_string(),
            ))
        }
        Decision::MethodNotAllowed => {
            return Err((
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} is not allowed on this path"),
            ))
        }
        Decision::NotFound => {
            return Err((
                StatusCode::NOT_FOUND,
                "not available through /.fly/api".to_string(),
            ))
        }
    }
    let (mut parts, body) = req.into_parts();
    headers::sanitize_request(&mut parts.headers)
        .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > state.max_body) {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {} bytes", state.max_body),
        ));
    }

    let deadline = roost_platform::deadline::after(started.into(), state.request_timeout);
    let permit = tokio::time::timeout_at(deadline, state.permits.clone().acquire_owned())
        .await
        .map_err(|_| {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "too many concurrent requests".to_string(),
            )
        })?
        .map_err(|_| (StatusCode::SERVICE_UNAVAILABLE, "shutting down".to_string()))?;

    let auth = state
        .platform
        .credentials()
        .authorization(&method, &path)
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| path.clone(), |pq| pq.as_str().to_string());
    parts.uri = state
        .client
        .uri(&path_and_query)
        .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
    parts.headers.insert(header::AUTHORIZATION, auth.header);
    if let Ok(host) = HeaderValue::from_str(state.client.host()) {
        parts.headers.insert(header::HOST, host);
    }
    if let Ok(id) = HeaderValue::from_str(request_id) {
        parts.headers.insert("x-request-id", id);
    }
    let max = usize::try_from(state.max_body).unwrap_or(usize::MAX);
    let body = Limited::new(body, max).boxed();
    let upstream_req = Request::from_parts(parts, body);

    let resp = match tokio::time::timeout_at(deadline, state.client.send(upstream_req)).await {
        Err(_) => {
            return Err((
                StatusCode::GATEWAY_TIMEOUT,
                "the upstream did not answer in time".to_string(),
            ))
        }
        Ok(Err(ClientError::BodyTooLarge)) => {
            return Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than {} bytes", state.max_body),
            ))
        }
        Ok(Err(err)) => {
            tracing::warn!("/.fly/api upstream error ({request_id}): {err}");
            return Err((StatusCode::BAD_GATEWAY, err.to_string()));
        }
        Ok(Ok(resp)) => resp,
    };
    let (mut parts, body) = resp.into_parts();
    // A compressed body could carry the token where the redaction cannot see it; identity
    // was asked for, so anything else is the upstream's fault.
    let encoded = parts
        .headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    if encoded {
        return Err((
            StatusCode::BAD_GATEWAY,
            "the upstream answered with a compressed body (identity was asked for)".to_string(),
        ));
    }
    state.stats.forwarded.fetch_add(1, Ordering::Relaxed);
    let secrets = Secrets::new(&[
        state.platform.credentials().token().expose(),
        &auth.sent_token,
    ]);
    headers::sanitize_response(&mut parts.headers, &secrets);
    let body = RedactedBody::new(body, secrets)
        .map_err(|e| -> BoxError { Box::new(e) })
        .boxed();
    Ok((Response::from_parts(parts, body), permit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_modes_follow_the_allow_lists() {
        assert_eq!(socket_access(&[0], &[]), (0, 0, 0o600));
        assert_eq!(socket_access(&[0, 1000], &[]), (1000, 0, 0o600));
        assert_eq!(socket_access(&[0], &[50]), (0, 50, 0o660));
        assert_eq!(socket_access(&[0, 1000, 1001], &[]), (0, 0, 0o666));
        assert_eq!(socket_access(&[1000], &[50]), (0, 0, 0o666));
    }
}
