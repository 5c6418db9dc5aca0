//! The control API server: HTTP/1.1 on vsock (VM) or a Unix socket (container mode), the
//! routes, body caps and timeouts, and a shutdown that lets answers in flight finish.

use super::protocol::{ErrorBody, ExecRequest, SignalRequest};
use super::state::{ControlState, WorkloadState};
use super::{exec, services, snapshot, sysinfo, vsock_resets, ws};
use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{watch, Notify};

pub(super) type Body = BoxBody<Bytes, Infallible>;

/// Largest request body accepted (exec and signal requests are small).
pub const MAX_BODY: usize = 64 * 1024;
/// How long a client may take to send a request's head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The host's CID: the only vsock peer answered unless configured otherwise.
pub const HOST_CID: u32 = 2;

/// Where the API listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    Unix(PathBuf),
    Vsock { port: u32, allow_cids: Vec<u32> },
}

/// Requests being answered, so shutdown can wait for them.
#[derive(Debug, Default)]
struct InFlight {
    count: AtomicUsize,
    idle: Notify,
}

struct InFlightGuard(Arc<InFlight>);

impl InFlightGuard {
    fn new(f: &Arc<InFlight>) -> Self {
        f.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(f.clone())
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

/// A running control API. Dropping it ends its accept loop, so it is kept until the shutdown.
#[derive(Debug)]
#[must_use = "dropping the ControlServer ends its accept loop"]
pub struct ControlServer {
    stop: watch::Sender<bool>,
    in_flight: Arc<InFlight>,
    /// vsock CIDs answered besides the host's; read on every accept, so a listener started
    /// before the config (the default port) learns `Control.AllowCids` too.
    allow_cids: Arc<std::sync::RwLock<Vec<u32>>>,
}

/// Whether a vsock peer is answered: the host (CID 2) always, others only when allowed.
pub fn vsock_peer_allowed(cid: u32, allow: &[u32]) -> bool {
    cid == HOST_CID || allow.contains(&cid)
}

impl ControlServer {
    /// Replaces the vsock CIDs answered besides the host's (`Control.AllowCids`).
    pub fn set_allow_cids(&self, cids: Vec<u32>) {
        *self
            .allow_cids
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = cids;
    }

    /// Stops accepting and waits up to `deadline` for the answers in flight.
    pub async fn shutdown(self, deadline: Duration) {
        let _ = self.stop.send(true);
        let wait = async {
            loop {
                let idle = self.in_flight.idle.notified();
                tokio::pin!(idle);
                idle.as_mut().enable();
                if self.in_flight.count.load(Ordering::SeqCst) == 0 {
                    return;
                }
                idle.await;
            }
        };
        if tokio::time::timeout(deadline, wait).await.is_err() {
            tracing::warn!("control API: answers still in flight at shutdown");
        }
    }
}

/// Binds and serves the API. Needs a tokio runtime.
/// The accept loop is a critical task: one that ends before the shutdown stops roost.
pub fn start(
    state: ControlState,
    listen: Listen,
    critical: &crate::supervisor::critical::CriticalTasks,
) -> std::io::Result<ControlServer> {
    let (stop, stopped) = watch::channel(false);
    let in_flight = Arc::new(InFlight::default());
    let allow_cids = Arc::new(std::sync::RwLock::new(match &listen {
        Listen::Vsock { allow_cids, .. } => allow_cids.clone(),
        Listen::Unix(_) => Vec::new(),
    }));
    match &listen {
        Listen::Unix(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            // roost's own and 0600, never at its path with the umask's mode.
            let listener = api_proxy::socket::bind_in_place(
                path,
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
                0o600,
            )?;
            tracing::info!("control API listening on {}", path.display());
            let in_flight = in_flight.clone();
            critical.spawn("control_api", async move {
                let mut stopped = stopped;
                loop {
                    tokio::select! {
                        accepted = listener.accept() => match accepted {
                            Ok((stream, _)) => {
                                tokio::spawn(serve(state.clone(), in_flight.clone(), stream));
                            }
                            Err(e) => {
                                tracing::warn!("control API accept failed: {e}");
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        },
                        _ = stopped.changed() => return,
                    }
                }
            });
        }
        Listen::Vsock { port, .. } => {
            let addr = tokio_vsock::VsockAddr::new(tokio_vsock::VMADDR_CID_ANY, *port);
            let listener = tokio_vsock::VsockListener::bind(addr)?;
            tracing::info!("control API listening on vsock port {port}");
            let allow = allow_cids.clone();
            let in_flight = in_flight.clone();
            critical.spawn("control_api", async move {
                let mut stopped = stopped;
                let mut refused_logged = std::collections::HashSet::new();
                loop {
                    tokio::select! {
                        accepted = listener.accept() => match accepted {
                            Ok((stream, peer)) => {
                                let cid = peer.cid();
                                let allowed = vsock_peer_allowed(
                                    cid,
                                    &allow.read().unwrap_or_else(std::sync::PoisonError::into_inner),
                                );
                                if !allowed {
                                    // A guest process on vsock loopback is not the host.
                                    if refused_logged.insert(cid) {
                                        tracing::warn!("control API: refusing vsock peer CID {cid}");
                                    }
                                    continue;
                                }
                                // Followed to its end: a reset of every connection at once
                                // is a restore the host may not announce.
                                let watch = vsock_resets::ErrorWatch::new(&stream);
                                let ticket = state.vsock_connections(|c| c.opened());
                                let conn = tokio::spawn(serve(state.clone(), in_flight.clone(), stream));
                                tokio::spawn(vsock_resets::follow(state.clone(), ticket, watch, conn));
                            }
                            Err(e) => {
                                tracing::warn!("control API accept failed: {e}");
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        },
                        _ = stopped.changed() => return,
                    }
                }
            });
        }
    }
    Ok(ControlServer {
        stop,
        in_flight,
        allow_cids,
    })
}

async fn serve<S>(state: ControlState, in_flight: Arc<InFlight>, stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let state = state.clone();
        let guard = InFlightGuard::new(&in_flight);
        async move {
            let resp = route(state, req).await;
            drop(guard);
            Ok::<_, Infallible>(resp)
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!("control API connection ended: {e}");
    }
}

/// The control API's OpenAPI 3.1 document, served at `/v2/openapi.json`.
const OPENAPI: &str = include_str!("../../docs/control-api.openapi.json");

pub(super) fn json(status: StatusCode, value: &impl serde::Serialize) -> Response<Body> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut resp = Response::new(Full::new(Bytes::from(body)).boxed());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

pub(super) fn error(status: StatusCode, message: impl Into<String>) -> Response<Body> {
    let message = message.into();
    json(
        status,
        &ErrorBody {
            error: message.clone(),
            message,
        },
    )
}

/// Reads a body of at most [`MAX_BODY`] bytes.
pub(super) async fn body_bytes(req: Request<Incoming>) -> Result<Bytes, Response<Body>> {
    Ok(Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| {
            error(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("body over {MAX_BODY} bytes"),
            )
        })?
        .to_bytes())
}

/// Reads and parses a JSON body of at most [`MAX_BODY`] bytes.
pub(super) async fn json_body<T: serde::de::DeserializeOwned>(
    req: Request<Incoming>,
) -> Result<T, Response<Body>> {
    let bytes = body_bytes(req).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| error(StatusCode::BAD_REQUEST, format!("bad JSON: {e}")))
}

async fn route(state: ControlState, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().to_string();
    // A bug in one request's handling must cost that request only (tests inject one here).
    #[cfg(feature = "fault-injection")]
    crate::fault::point(&format!("control:{path}"));
    // HEAD is answered as GET is; hyper sends no body for it.
    let method = if req.method() == Method::HEAD {
        Method::GET
    } else {
        req.method().clone()
    };
    match (&method, path.as_str()) {
        // The anchors' contract: exactly `{"ok": true}` (pigeon's own handler test decodes
        // it into a map of booleans).
        (&Method::GET, "/v1/status") => json(StatusCode::OK, &serde_json::json!({ "ok": true })),
        // roost's own, versioned: phases, the workload, broker, proxy.
        (&Method::GET, "/v2/status") => json(StatusCode::OK, &state.status()),
        // The contract itself (docs/control-api.openapi.json, compiled in).
        (&Method::GET, "/v2/openapi.json") => {
            let mut resp = Response::new(Full::new(Bytes::from_static(OPENAPI.as_bytes())).boxed());
            resp.headers_mut().insert(
                header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            resp
        }
        (&Method::GET, "/v1/exit_code") => exit_code(&state).await,
        (&Method::POST, "/v1/signals") => match json_body::<SignalRequest>(req).await {
            Ok(r) => signal(&state, r.signal).await,
            Err(resp) => resp,
        },
        (&Method::POST, "/v1/exec") => match json_body::<ExecRequest>(req).await {
            Ok(r) => match exec::run(&state, r).await {
                Ok(answer) => json(StatusCode::OK, &answer),
                Err(
                    e @ (exec::ExecError::NotReady
                    | exec::ExecError::ContainerNotRunning(_)
                    | exec::ExecError::TooManyExecs
                    | exec::ExecError::OutputBudget),
                ) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
                Err(e) => error(StatusCode::BAD_REQUEST, e.to_string()),
            },
            Err(resp) => resp,
        },
        (&Method::GET, "/v1/ws/exec") if req.method() == Method::GET => upgrade(state, req),
        (&Method::GET, "/v1/sysinfo") => json(StatusCode::OK, &sysinfo::collect()),
        // Suspend, resume and clones (docs/snapshots.md).
        (&Method::POST, "/v2/snapshot/prepare") => match body_bytes(req).await {
            Ok(body) => {
                let state = state.clone();
                snapshot::detached(async move { snapshot::prepare(&state, &body).await }).await
            }
            Err(resp) => resp,
        },
        (&Method::POST, "/v2/snapshot/restored") => match body_bytes(req).await {
            Ok(body) => {
                let state = state.clone();
                snapshot::detached(async move { snapshot::restored(&state, &body).await }).await
            }
            Err(resp) => resp,
        },
        (&Method::GET, "/v2/services") => json(
            StatusCode::OK,
            &roost_control_protocol::ServiceList {
                services: services::list(&state),
            },
        ),
        (_, p)
            if p.starts_with("/v2/services/")
                && allowed_methods(p).is_some_and(|a| a.contains(method.as_str())) =>
        {
            services::route(&state, req, &method, &path["/v2/services/".len()..]).await
        }
        _ => match allowed_methods(&path) {
            // RFC 9110 15.5.6: a 405 lists what the route does take.
            Some(allow) => {
                let mut resp = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
                resp.headers_mut()
                    .insert(header::ALLOW, http::HeaderValue::from_static(allow));
                resp
            }
            None => error(StatusCode::NOT_FOUND, "not found"),
        },
    }
}

/// The methods each route answers (the `Allow` of its 405), `None` for no route.
fn allowed_methods(path: &str) -> Option<&'static str> {
    match path {
        "/v1/status" | "/v2/status" | "/v2/openapi.json" | "/v1/exit_code" | "/v1/sysinfo" => {
            Some("GET, HEAD")
        }
        "/v1/ws/exec" => Some("GET"),
        "/v1/signals" | "/v1/exec" | "/v2/snapshot/prepare" | "/v2/snapshot/restored" => {
            Some("POST")
        }
        "/v2/services" => Some("GET, HEAD"),
        _ => match path
            .strip_prefix("/v2/services/")
            .map(|r| r.split_once('/'))
        {
            Some(None) => Some("GET, HEAD"),
            Some(Some((_, "logs"))) => Some("GET, HEAD"),
            Some(Some((_, "signal" | "stop" | "start" | "restart"))) => Some("POST"),
            _ => None,
        },
    }
}

/// Long-polls until the workload has exited; then answers at once, every time.
async fn exit_code(state: &ControlState) -> Response<Body> {
    let mut rx = state.watch_workload();
    loop {
        if let WorkloadState::Exited(exit) = *rx.borrow_and_update() {
            return json(StatusCode::OK, &exit);
        }
        if rx.changed().await.is_err() {
            return error(StatusCode::SERVICE_UNAVAILABLE, "shutting down");
        }
    }
}

async fn signal(state: &ControlState, sig: i64) -> Response<Body> {
    if !(1..=64).contains(&sig) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("signal {sig} is outside 1..=64"),
        );
    }
    use crate::supervisor::handle::SignalAnswer;
    match state.supervisor().signal_main(sig as i32).await {
        SignalAnswer::Sent | SignalAnswer::EndsBoot => {
            json(StatusCode::OK, &serde_json::json!({ "ok": true }))
        }
        SignalAnswer::NotStarted => error(StatusCode::CONFLICT, "the workload has not started"),
        SignalAnswer::NotRunning => error(StatusCode::CONFLICT, "the workload is not running"),
        SignalAnswer::Busy => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "too many commands are waiting; try again",
        ),
    }
}

fn upgrade(state: ControlState, mut req: Request<Incoming>) -> Response<Body> {
    let accept = match super::handshake::accept(req.headers()) {
        Ok(accept) => accept,
        Err(refusal) => {
            let mut resp = error(StatusCode::BAD_REQUEST, refusal.message);
            if refusal.wrong_version {
                resp.headers_mut().insert(
                    header::SEC_WEBSOCKET_VERSION,
                    http::HeaderValue::from_static(super::handshake::VERSION),
                );
            }
            return resp;
        }
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let socket = tokio_tungstenite::WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    tokio_tungstenite::tungstenite::protocol::Role::Server,
                    None,
                )
                .await;
                ws::session(state, socket).await;
            }
            Err(e) => tracing::debug!("control API: WebSocket upgrade failed: {e}"),
        }
    });
    let mut resp = Response::new(Full::new(Bytes::new()).boxed());
    *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = resp.headers_mut();
    h.insert(header::UPGRADE, http::HeaderValue::from_static("websocket"));
    h.insert(
        header::CONNECTION,
        http::HeaderValue::from_static("Upgrade"),
    );
    if let Ok(v) = http::HeaderValue::from_str(&accept) {
        h.insert("sec-websocket-accept", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vsock_peers_are_the_host_and_the_allowed_cids() {
        assert!(vsock_peer_allowed(HOST_CID, &[]));
        assert!(!vsock_peer_allowed(3, &[]));
        assert!(vsock_peer_allowed(3, &[3, 7]));
        assert!(!vsock_peer_allowed(4, &[3, 7]));
    }
}
