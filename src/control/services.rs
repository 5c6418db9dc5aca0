//! `/v2/services` (docs/services.md): each service's state, its log, and the commands for one
//! named service (signal, stop, start, restart), which go to the supervisor's services loop
//! through the handle.

use super::server::{error, json, json_body, Body};
use super::state::{ControlState, WorkloadState};
use crate::supervise::handle::{ServiceOp, ServiceRefusal};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use std::time::Duration;

/// The longest a log follower waits for a line in one request.
pub const MAX_LOG_WAIT: Duration = Duration::from_secs(25);

/// The commands every service of `Containers` accepts.
pub const SERVICE_COMMANDS: [&str; 4] = ["signal", "stop", "start", "restart"];
/// What the single workload's `main` accepts: it is the machine, so a stop stops the machine
/// (as a SIGTERM to roost would) and nothing starts it again.
pub const MAIN_COMMANDS: [&str; 2] = ["signal", "stop"];

/// Every service, each with the commands it accepts (`accepts`); with the single workload,
/// one entry `main` made from its state.
pub fn list(state: &ControlState) -> serde_json::Value {
    if let Some(views) = state.services() {
        let mut all = serde_json::to_value(&*views).unwrap_or_default();
        for view in all.as_array_mut().into_iter().flatten() {
            if let Some(obj) = view.as_object_mut() {
                obj.insert("accepts".into(), serde_json::json!(SERVICE_COMMANDS));
            }
        }
        return all;
    }
    let (st, pid, code) = match state.workload() {
        WorkloadState::Starting => ("pending", None, None),
        WorkloadState::Running { pid } => ("running", Some(pid), None),
        WorkloadState::Exited(exit) => ("exited", None, Some(exit.code)),
    };
    serde_json::json!([{
        "name": crate::config::typed::MAIN_SERVICE,
        "state": st,
        "ready": st == "running",
        "restarts": 0,
        "last_exit_code": code,
        "pid": pid,
        "accepts": MAIN_COMMANDS,
    }])
}

/// A command to the single workload's `main`: a signal to its process group, or the
/// machine's stop; what it does not accept is refused with 409 and why.
fn main_command(state: &ControlState, action: &str, op: &ServiceOp) -> Response<Body> {
    use crate::supervise::handle::SignalAnswer;
    let ok = || json(StatusCode::OK, &serde_json::json!({ "ok": true }));
    match op {
        ServiceOp::Signal(signal) => match state.supervisor().signal_main(*signal) {
            SignalAnswer::Sent | SignalAnswer::EndsBoot => ok(),
            _ => error(StatusCode::CONFLICT, "main is not running"),
        },
        ServiceOp::Stop => {
            state.supervisor().request_stop(libc::SIGTERM);
            ok()
        }
        _ => error(
            StatusCode::CONFLICT,
            format!("main accepts {MAIN_COMMANDS:?}, not {action:?}: the single workload is the machine and does not start again"),
        ),
    }
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
    let known = list(state)
        .as_array()
        .and_then(|all| all.iter().find(|s| s["name"] == name).cloned());
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
                _ => ServiceOp::Restart,
            };
            if state.services().is_none() {
                return main_command(state, action, &op);
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
    let Some(buffer) = state.service_log(name) else {
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
                Ok(s) if s.is_finite() && s >= 0.0 => {
                    wait = Duration::from_secs_f64(s.min(MAX_LOG_WAIT.as_secs_f64()))
                }
                _ => return error(StatusCode::BAD_REQUEST, "wait must be seconds (0 to 25)"),
            },
            _ => {}
        }
    }
    let (first, next, lines) = buffer.since(after, wait).await;
    json(
        StatusCode::OK,
        &serde_json::json!({ "first": first, "next": next, "lines": lines }),
    )
}
