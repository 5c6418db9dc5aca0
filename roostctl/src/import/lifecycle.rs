//! A process's probes, availability and shutdown as roost's checks, restart, `on_exit` and
//! `stop`.

use super::values::{number, whole};
use serde_json::{json, Map, Value};

pub(super) fn probe_to_check(
    field: &str,
    probe: &Value,
    kind: &str,
    shell: &[String],
) -> Result<Value, String> {
    let mut check = Map::new();
    check.insert("kind".into(), kind.into());
    // process-compose stops a process whose readiness fails (then its availability decides):
    // keep that with unhealthy: stop on both kinds.
    check.insert("unhealthy".into(), "stop".into());
    for (from, to) in [
        ("initial_delay_seconds", "grace_period"),
        ("period_seconds", "interval"),
        ("timeout_seconds", "timeout"),
    ] {
        if let Some(v) = number(&format!("{field}.{from}"), probe.get(from))? {
            check.insert(to.into(), json!(v));
        }
    }
    for key in ["success_threshold", "failure_threshold"] {
        if let Some(v) = whole(&format!("{field}.{key}"), probe.get(key))? {
            check.insert(key.into(), json!(v));
        }
    }
    match (probe.get("exec"), probe.get("http_get")) {
        (Some(exec), None) => {
            if exec.get("working_dir").is_some() {
                return Err(format!(
                    "{field}.exec.working_dir: checks run in the service's directory"
                ));
            }
            let cmd = super::values::text(&format!("{field}.exec.command"), &exec["command"])?;
            let mut argv = shell.to_vec();
            argv.push(cmd.to_string());
            check.insert("exec".into(), json!({ "command": argv }));
        }
        (None, Some(http)) => {
            match http["host"].as_str() {
                None | Some("127.0.0.1") | Some("localhost") => {}
                Some(other) => {
                    return Err(format!(
                        "{field}.http_get.host: {other:?}: roost checks 127.0.0.1"
                    ))
                }
            }
            let scheme = match http["scheme"].as_str() {
                None | Some("http") => "http",
                // process-compose's Go client verifies the certificate: so does roost's.
                Some("https") => "https",
                Some(other) => {
                    return Err(format!(
                        "{field}.http_get.scheme: {other:?} is not http or https"
                    ))
                }
            };
            let status = whole(
                &format!("{field}.http_get.status_code"),
                http.get("status_code"),
            )?;
            if status.is_some_and(|c| c != 200) {
                return Err(format!(
                    "{field}.http_get.status_code: roost passes any 2xx or 3xx"
                ));
            }
            let port = whole(&format!("{field}.http_get.port"), http.get("port"))?
                .ok_or_else(|| format!("{field}.http_get.port: a number"))?;
            let path = http["path"].as_str().unwrap_or("/");
            let mut h = json!({ "port": port, "path": path });
            // process-compose's `headers` map, as fly-go's list of {name, values}.
            if let Some(headers) = http.get("headers").filter(|h| !h.is_null()) {
                let headers = headers.as_object().ok_or_else(|| {
                    format!("{field}.http_get.headers: a mapping of name to value")
                })?;
                let mut list = Vec::new();
                for (name, value) in headers {
                    let value = match value {
                        Value::String(s) => s.clone(),
                        Value::Number(n) => n.to_string(),
                        _ => return Err(format!("{field}.http_get.headers.{name}: a string")),
                    };
                    list.push(json!({"name": name, "values": [value]}));
                }
                h["headers"] = Value::Array(list);
            }
            if scheme == "https" {
                h["scheme"] = scheme.into();
            }
            check.insert("http".into(), h);
        }
        _ => return Err(format!("{field}: needs exec or http_get")),
    }
    Ok(Value::Object(check))
}

/// `availability` as `restart` and `on_exit`. A process-compose project does not end when
/// one process does, unless it says so.
pub(super) fn availability(
    field: &str,
    v: Option<&Value>,
) -> Result<(Value, &'static str), String> {
    let empty = json!({});
    let a = v.unwrap_or(&empty);
    let flag = |key: &str| a.get(key).and_then(Value::as_bool) == Some(true);
    let mut restart = Map::new();
    let policy = match a.get("restart").and_then(Value::as_str) {
        None | Some("no") | Some("exit_on_failure") => "no",
        Some("always") => "always",
        Some("on_failure") => "on-failure",
        Some(other) => return Err(format!("{field}.restart: {other:?} is unknown")),
    };
    // What ends the project, the widest first: any end, a failure (a skip is one too), a skip.
    let on_exit = if flag("exit_on_end") {
        "stop_machine"
    } else if a.get("restart").and_then(Value::as_str) == Some("exit_on_failure") {
        "stop_machine_on_failure"
    } else if flag("exit_on_skipped") {
        "stop_machine_on_skip"
    } else {
        "ignore"
    };
    restart.insert("policy".into(), policy.into());
    // process-compose: a fixed delay (at least 1 s), max_restarts 0 for no limit.
    let backoff = number(
        &format!("{field}.backoff_seconds"),
        a.get("backoff_seconds"),
    )?
    .unwrap_or(1.0)
    .max(1.0);
    restart.insert("backoff_seconds".into(), json!(backoff));
    restart.insert("max_backoff_seconds".into(), json!(backoff));
    match whole(&format!("{field}.max_restarts"), a.get("max_restarts"))? {
        None | Some(0) => {
            restart.insert("max_retries".into(), json!(10_000));
            restart.insert("window_seconds".into(), json!(86_400));
        }
        Some(n) => {
            restart.insert("max_retries".into(), json!(n));
            restart.insert("window_seconds".into(), json!(86_400));
        }
    }
    Ok((Value::Object(restart), on_exit))
}

/// `shutdown`: `command` (through the project's shell) is roost's `stop.command`, run as
/// the service before its signal; `timeout_seconds` bounds each step; `parent_only` is
/// roost's `stop.parent_only`.
pub(super) fn stop(field: &str, s: &Value, shell: &[String]) -> Result<Value, String> {
    if s.get("send_keys").is_some() {
        return Err(format!(
            "{field}.send_keys: roost's services have no terminal to type into; use command"
        ));
    }
    let mut out = Map::new();
    // The signal to the process itself, not its group: roost's `stop.parent_only`.
    if s.get("parent_only").and_then(Value::as_bool) == Some(true) {
        out.insert("parent_only".into(), true.into());
    }
    if let Some(sig) = s.get("signal") {
        out.insert("signal".into(), sig.clone());
    }
    if let Some(t) = number(
        &format!("{field}.timeout_seconds"),
        s.get("timeout_seconds"),
    )? {
        out.insert("timeout".into(), format!("{t}s").into());
    }
    if let Some(command) = s.get("command") {
        let command = super::values::text(&format!("{field}.command"), command)?;
        let mut argv = shell.to_vec();
        argv.push(command.to_string());
        out.insert("command".into(), json!(argv));
    }
    Ok(Value::Object(out))
}
