//! A service's life in the config: how it stops (`stop`), when it restarts (`restart`), and
//! what it waits for before it starts (`depends_on`).

use super::checks::*;
use super::containers::*;
use super::decode::parse_go_duration;
use super::limits::*;
use super::services::Context;
use super::typed::*;
use super::ConfigError;
use std::collections::BTreeMap;
use std::time::Duration;

pub(super) fn stop(i: usize, c: &ContainerConfig, cx: &Context<'_>) -> Result<Stop, ConfigError> {
    let at = |rest: &str| format!("Containers[{i}].{rest}");
    let config = c.stop.clone().unwrap_or_default();
    let signal = match &config.signal {
        Some(spec) => super::parse_signal(spec).map_err(|e| f(at("stop.signal"), e))?,
        None => cx.kill_signal,
    };
    let timeout = match &config.timeout {
        None => defaults::SERVICE_STOP_TIMEOUT.min(cx.kill_timeout.max(Duration::from_secs(1))),
        Some(GoDuration::Nanos(n)) => Duration::from_nanos(*n),
        Some(GoDuration::Text(text)) => {
            parse_go_duration(text).map_err(|e| f(at("stop.timeout"), e))?
        }
    };
    if timeout > Duration::from_secs(super::MAX_KILL_TIMEOUT_SECS) {
        return Err(f(
            at("stop.timeout"),
            format!("is longer than {} s", super::MAX_KILL_TIMEOUT_SECS),
        ));
    }
    if config.parent_only && (c.daemon || c.kind.as_deref() == Some("container")) {
        return Err(f(
            at("stop.parent_only"),
            "is for a process service: a daemon's command is gone and a container's init is signalled alone already",
        ));
    }
    Ok(Stop {
        signal,
        timeout,
        parent_only: config.parent_only,
    })
}

pub(super) fn dependency(
    field: &str,
    d: &DependsOn,
    index: &BTreeMap<&str, usize>,
    me: usize,
) -> Result<Dependency, ConfigError> {
    let Some(&on) = index.get(d.name.as_str()) else {
        return Err(f(
            format!("{field}.name"),
            format!("no service named {:?} in Containers", d.name),
        ));
    };
    if on == me {
        return Err(f(
            format!("{field}.name"),
            "a service cannot depend on itself",
        ));
    }
    let condition = match d.condition.as_deref() {
        None | Some("started") => Condition::Started,
        Some("healthy") => Condition::Healthy,
        Some("exited_successfully") => Condition::ExitedSuccessfully,
        Some("completed") => Condition::Completed,
        Some("log_ready") => Condition::LogReady,
        Some(other) => {
            return Err(f(
                format!("{field}.condition"),
                format!(
                    "{other:?} is not started, healthy, exited_successfully, completed or log_ready"
                ),
            ))
        }
    };
    Ok(Dependency { on, condition })
}

pub(super) fn restart(i: usize, c: &ContainerConfig) -> Result<Restart, ConfigError> {
    let at = |rest: &str| format!("Containers[{i}].restart.{rest}");
    let r = c.restart.clone().unwrap_or_default();
    let policy = match r.policy.as_deref() {
        // Fly's machine default.
        None | Some("on-failure") | Some("on_failure") => RestartPolicy::OnFailure,
        Some("always") => RestartPolicy::Always,
        Some("no") | Some("never") => RestartPolicy::No,
        Some(other) => {
            return Err(f(
                at("policy"),
                format!("{other:?} is not no, always or on-failure"),
            ))
        }
    };
    let max_retries = match r.max_retries {
        Some(n) if n > MAX_RETRIES => {
            return Err(f(
                at("max_retries"),
                format!("{n} is outside 0..={MAX_RETRIES}"),
            ))
        }
        Some(n) => n as u32,
        None => defaults::RESTART_MAX_RETRIES,
    };
    let seconds = |field: &str, v: Option<f64>, default: Duration| match v {
        None => Ok(default),
        Some(s) if s.is_finite() && (0.0..=MAX_PERIOD_SECS).contains(&s) => {
            Ok(Duration::from_secs_f64(s))
        }
        Some(s) => Err(f(
            at(field),
            format!("{s} is outside 0..={MAX_PERIOD_SECS}"),
        )),
    };
    let backoff = seconds(
        "backoff_seconds",
        r.backoff_seconds,
        defaults::RESTART_BACKOFF,
    )?;
    let max_backoff = seconds(
        "max_backoff_seconds",
        r.max_backoff_seconds,
        defaults::RESTART_MAX_BACKOFF.max(backoff),
    )?;
    if max_backoff < backoff {
        return Err(f(
            at("max_backoff_seconds"),
            "is shorter than backoff_seconds",
        ));
    }
    let window = match r.window_seconds {
        None => defaults::RESTART_WINDOW,
        Some(s) if (1..=MAX_WINDOW_SECS).contains(&s) => Duration::from_secs(s),
        Some(s) => {
            return Err(f(
                at("window_seconds"),
                format!("{s} is outside 1..={MAX_WINDOW_SECS}"),
            ))
        }
    };
    Ok(Restart {
        policy,
        max_retries,
        backoff,
        max_backoff,
        window,
        limited: r.max_retries.is_some_and(|n| n < MAX_RETRIES),
    })
}
