//! Wires the platform client and the `/.fly/api` proxy (the `roost-platform` and `api-proxy`
//! crates) from the run config. One [`Platform`] per boot (the credentials, the CA file read
//! once, one connection pool) serves both the proxy and the broker.

use crate::config::Validated;
use api_proxy::{ProxyConfig, ProxyServer, ProxyStats};
use roost_platform::{Credentials, Endpoint, Platform, PlatformError};
use std::sync::Arc;
use std::time::Duration;

/// How long a connection to the platform may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The platform for `config`, or None when `Api` is not configured.
pub fn platform(config: &Validated) -> Result<Option<Platform>, PlatformError> {
    let Some(api) = &config.api else {
        return Ok(None);
    };
    let endpoint = Endpoint {
        upstream: api.upstream.clone(),
        ca_file: api.ca_file.clone(),
        connect_timeout: CONNECT_TIMEOUT,
    };
    let credentials = Credentials::new(
        api.token.clone(),
        &api.scheme,
        api.attenuate,
        config.machine.id.as_deref(),
    );
    Platform::connect(&endpoint, credentials).map(Some)
}

/// The proxy config for `config` over `platform`, or None when `Api` is not configured.
pub fn proxy_config(config: &Validated, platform: &Platform) -> Option<ProxyConfig> {
    let api = config.api.as_ref()?;
    let mut proxy = ProxyConfig::new(
        api.socket_path.clone(),
        platform.clone(),
        api.policy.clone(),
    );
    proxy.allow_uids = api.allow_uids.clone();
    proxy.allow_gids = api.allow_gids.clone();
    proxy.app_name = config.machine.app_name.clone();
    proxy.machine_id = config.machine.id.clone();
    proxy.max_body_bytes = api.max_body_bytes;
    proxy.request_timeout = api.request_timeout;
    proxy.max_concurrent = api.max_concurrent;
    // Each caller's service from its cgroup leaf: named in the audit line, and a
    // container refused unless its service says `fly_api: true`.
    let names: Vec<String> = config.services.iter().map(|s| s.name.clone()).collect();
    let allowed: Vec<bool> = config
        .services
        .iter()
        .map(|s| s.container.as_ref().is_none_or(|c| c.fly_api))
        .collect();
    proxy.caller_of = Some(api_proxy::config::CallerOf(std::sync::Arc::new(
        move |pid: i32| {
            let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
            let i = crate::process::cgroup::service_of_cgroup(&text, &names)?;
            Some(api_proxy::config::Caller {
                service: std::sync::Arc::from(names.get(i)?.as_str()),
                allowed: allowed.get(i).copied().unwrap_or(false),
            })
        },
    )));
    Some(proxy)
}

/// The platform, logged when it cannot be built (the proxy and the broker then run without
/// it: the workload still runs).
pub fn platform_or_log(config: &Validated) -> Option<Platform> {
    match platform(config) {
        Ok(platform) => platform,
        Err(err) => {
            tracing::error!(
                "the platform is not reachable: {err}; /.fly/api and the broker are off"
            );
            None
        }
    }
}

/// Binds and starts the proxy on the current runtime. A proxy that cannot start is logged and
/// left out: the workload still runs (it gets connection errors on the socket, not a VM that
/// never boots).
pub fn start(
    config: &Validated,
    platform: Option<&Platform>,
    critical: &crate::supervisor::CriticalTasks,
) -> Option<Arc<ProxyStats>> {
    let proxy = proxy_config(config, platform?)?;
    match ProxyServer::bind(proxy) {
        Ok(server) => {
            let stats = server.stats();
            critical.spawn("api_proxy", async move {
                crate::fault::point("api_proxy");
                server.serve().await
            });
            Some(stats)
        }
        Err(err) => {
            tracing::error!("/.fly/api is not available: {err}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_largest_accepted_values_build_a_proxy() {
        // MaxConcurrent above tokio's semaphore limit and a timeout near u64::MAX used to pass
        // validation and panic at boot or on every request; now the largest accepted values
        // build a proxy and compute their deadline.
        let doc = serde_json::json!({
            "Api": {"Upstream": "unix:///run/up.sock", "Token": "t",
                    "MaxConcurrent": crate::config::limits::MAX_CONCURRENT_REQUESTS,
                    "RequestTimeoutSeconds": crate::config::limits::MAX_REQUEST_TIMEOUT_SECS,
                    "MaxBodyBytes": crate::config::limits::MAX_BODY_BYTES}
        });
        let config = crate::config::parse(doc.to_string().as_bytes()).expect("valid");
        let platform = platform(&config).expect("platform").expect("api");
        let proxy = proxy_config(&config, &platform).expect("api");
        ProxyServer::check(&proxy).expect("builds");
        let _ = roost_platform::deadline::from_now(proxy.request_timeout);
        // A library caller passing what validation refuses still gets no panic.
        let mut wild = proxy.clone();
        wild.max_concurrent = usize::MAX;
        wild.request_timeout = Duration::MAX;
        ProxyServer::check(&wild).expect("clamped");
        let _ = roost_platform::deadline::from_now(wild.request_timeout);
    }
}
