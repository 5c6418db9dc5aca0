//! `healthchecks` of a service: exec, tcp and http probes, their periods and thresholds.

use super::checks::*;
use super::containers::*;
use super::decode::parse_go_duration;
use super::limits::*;
use super::typed::*;
use super::ConfigError;
use std::time::Duration;

pub(super) fn period(
    field: &str,
    v: &Option<Seconds>,
    default: Duration,
    min: f64,
) -> Result<Duration, ConfigError> {
    let secs = match v {
        None => return Ok(default),
        Some(Seconds::Number(n)) => *n,
        Some(Seconds::Text(text)) => parse_go_duration(text)
            .map_err(|e| f(field, e))?
            .as_secs_f64(),
    };
    if !secs.is_finite() || secs < min || secs > MAX_PERIOD_SECS {
        return Err(f(
            field,
            format!("{secs} s is outside {min}..={MAX_PERIOD_SECS} s"),
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

pub(super) fn healthcheck(
    field: &str,
    j: usize,
    h: &HealthcheckConfig,
) -> Result<HealthCheck, ConfigError> {
    let at = |rest: &str| format!("{field}.{rest}");
    let name = h.name.clone().unwrap_or_else(|| format!("check-{j}"));
    check_no_nul(&at("name"), &name)?;
    let kind = match h.kind.as_deref() {
        None | Some("readiness") => CheckKind::Readiness,
        Some("liveness") => CheckKind::Liveness,
        Some(other) => {
            return Err(f(
                at("kind"),
                format!("{other:?} is not readiness or liveness"),
            ))
        }
    };
    let stop_when_unhealthy = match h.unhealthy.as_deref() {
        None => kind == CheckKind::Liveness,
        Some("stop") => true,
        Some(other) => return Err(f(at("unhealthy"), format!("{other:?} is not stop"))),
    };
    let threshold = |name: &str, v: Option<u32>, default: u32| match v {
        None => Ok(default),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(n) => Err(f(at(name), format!("{n} is outside 1..=1000"))),
    };
    let probes = [h.http.is_some(), h.tcp.is_some(), h.exec.is_some()];
    if probes.iter().filter(|&&p| p).count() != 1 {
        return Err(f(field, "needs exactly one of http, tcp or exec"));
    }
    let port = |name: &str, port: u16| {
        if port == 0 {
            Err(f(at(name), "is not a port (1..=65535)"))
        } else {
            Ok(port)
        }
    };
    let probe = if let Some(http) = &h.http {
        let https = match http.scheme.as_deref() {
            None | Some("http") => false,
            Some("https") => true,
            Some(other) => {
                return Err(f(
                    at("http.scheme"),
                    format!("{other:?} is not http or https"),
                ))
            }
        };
        let method = http
            .method
            .clone()
            .unwrap_or_else(|| "GET".into())
            .to_ascii_uppercase();
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(f(
                at("http.method"),
                format!("{method:?} is not an HTTP method"),
            ));
        }
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        if !path.starts_with('/') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(f(
                at("http.path"),
                format!("{path:?} is not a request path"),
            ));
        }
        let mut headers = Vec::new();
        for (k, header) in http.headers.iter().enumerate() {
            let ok_name = !header.name.is_empty()
                && header
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
            if !ok_name {
                return Err(f(
                    at(&format!("http.headers[{k}].name")),
                    "is not a header name",
                ));
            }
            for value in &header.values {
                if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                    return Err(f(
                        at(&format!("http.headers[{k}].values")),
                        "has a line break",
                    ));
                }
                headers.push((header.name.clone(), value.clone()));
            }
        }
        Probe::Http {
            port: port("http.port", http.port)?,
            method,
            path,
            headers,
            https,
            tls_skip_verify: http.tls_skip_verify.unwrap_or(false),
            tls_server_name: match &http.tls_server_name {
                Some(name) if rustls::pki_types::ServerName::try_from(name.as_str()).is_err() => {
                    return Err(f(
                        at("http.tls_server_name"),
                        format!("{name:?} is not a server name"),
                    ))
                }
                name => name.clone(),
            },
        }
    } else if let Some(tcp) = &h.tcp {
        Probe::Tcp {
            port: port("tcp.port", tcp.port)?,
        }
    } else {
        let command = h
            .exec
            .as_ref()
            .map(|e| e.command.clone())
            .unwrap_or_default();
        if command.is_empty() {
            return Err(f(at("exec.command"), "is empty"));
        }
        for (k, arg) in command.iter().enumerate() {
            check_no_nul(&at(&format!("exec.command[{k}]")), arg)?;
        }
        Probe::Exec { command }
    };
    Ok(HealthCheck {
        name,
        kind,
        stop_when_unhealthy,
        grace_period: period(&at("grace_period"), &h.grace_period, Duration::ZERO, 0.0)?,
        interval: period(
            &at("interval"),
            &h.interval,
            defaults::CHECK_INTERVAL,
            MIN_PERIOD_SECS,
        )?,
        timeout: period(
            &at("timeout"),
            &h.timeout,
            defaults::CHECK_TIMEOUT,
            MIN_PERIOD_SECS,
        )?,
        success_threshold: threshold(
            "success_threshold",
            h.success_threshold,
            defaults::CHECK_SUCCESS_THRESHOLD,
        )?,
        failure_threshold: threshold(
            "failure_threshold",
            h.failure_threshold,
            defaults::CHECK_FAILURE_THRESHOLD,
        )?,
        probe,
    })
}
