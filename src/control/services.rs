//! `/v2/services` (docs/services.md): each service's state, its log, and the commands for one
//! named service (signal, stop, start, restart), which go to the supervisor's services loop
//! through the handle.

use super::server::{error, json, json_body, Body};
use super::state::ControlState;
use crate::supervisor::handle::{ServiceOp, ServiceRefusal};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use roost_control_protocol::{LogsPage, ServiceStatus};
use std::time::Duration;

/// The longest a log follower waits for a line in one request.
pub const MAX_LOG_WAIT: Duration = Duration::from_secs(25);

/// Every service with the commands it accepts (`accepts`, decided by the supervisor: the
/// single workload is the machine and takes only a signal and a stop). Empty until the
/// supervisor has published the services.
pub fn list(state: &ControlState) -> Vec<ServiceStatus> {
    state.service_statuses().unwrap_or_default()
}

/// `/v2/services/{name}` and `/v2/services/{name}/{action}`.
pub async fn route(
    state: &ControlState,
    req: Request<Incoming>,
    method: &Method,
    rest: &str,
) -> Response<Body> {
    let (name, action) = match rest.split_once('/') {
        Some((name, action)) => (name, Some(action)),
        None => (rest, None),
    };
    let known = list(state).into_iter().find(|s| s.name == name);
    let Some(view) = known else {
        return error(StatusCode::NOT_FOUND, format!("no service named {name:?}"));
    };
    match (method, action) {
        (&Method::GET, None) => json(StatusCode::OK, &view),
        (&Method::GET, Some("logs")) => logs(state, &req, name).await,
        (&Method::POST, Some(action)) => {
            let op = match action {
                "signal" => match json_body::<roost_control_protocol::SignalRequest>(req).await {
                    Ok(r) if (1..=64).contains(&r.signal) => ServiceOp::Signal(r.signal as i32),
                    Ok(r) => {
                        return error(
                            StatusCode::BAD_REQUEST,
                            format!("signal {} is outside 1..=64", r.signal),
                        )
                    }
                    Err(resp) => return resp,
                },
                "stop" => ServiceOp::Stop,
                "start" => ServiceOp::Start,
                "restart" => ServiceOp::Restart,
                _ => return error(StatusCode::NOT_FOUND, "not found"),
            };
            if !view.accepts(action) {
                return error(
                    StatusCode::CONFLICT,
                    format!(
                        "{name} accepts {}, not {action:?}: the single workload is the machine and does not start again",
                        view.accepts.join(", ")
                    ),
                );
            }
            match state.supervisor().service(name, op).await {
                Ok(()) => json(StatusCode::OK, &serde_json::json!({ "ok": true })),
                Err(e @ ServiceRefusal::NoSuchService(_)) => {
                    error(StatusCode::NOT_FOUND, e.to_string())
                }
                Err(e @ ServiceRefusal::Busy) => {
                    error(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
                }
                Err(e) => error(StatusCode::CONFLICT, e.to_string()),
            }
        }
        _ => error(StatusCode::NOT_FOUND, "not found"),
    }
}

/// `GET /v2/services/{name}/logs[?after=N[&wait=S]]`: the kept lines, or those from number
/// `after` on, waiting up to `wait` seconds (at most 25) for one when there is none yet.
async fn logs(state: &ControlState, req: &Request<Incoming>, name: &str) -> Response<Body> {
    let Some(buffer) = state.supervisor().logs(name) else {
        return error(
            StatusCode::NOT_FOUND,
            format!("{name} has no log buffer (its output goes to the console)"),
        );
    };
    let mut after = None;
    let mut wait = Duration::ZERO;
    for pair in req
        .uri()
        .query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
    {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "after" => match value.parse::<u64>() {
                Ok(n) => after = Some(n),
                Err(_) => return error(StatusCode::BAD_REQUEST, "after must be a line number"),
            },
            "wait" => match value.parse::<f64>() {
                // The document's bound: more is refused, not cut (a client that asked for
                // 60 s would otherwise read an empty answer as "no line for a minute").
                Ok(s) if s.is_finite() && (0.0..=MAX_LOG_WAIT.as_secs_f64()).contains(&s) => {
                    wait = Duration::from_secs_f64(s)
                }
                _ => return error(StatusCode::BAD_REQUEST, "wait must be seconds (0 to 25)"),
            },
            _ => {}
        }
    }
    let (first, next, lines) = buffer.since(after, wait).await;
    json(StatusCode::OK, &LogsPage { first, next, lines })
}
