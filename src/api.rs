//! Wires the `/.fly/api` proxy (the `api-proxy` crate) from the run config.

use crate::config::Validated;
use api_proxy::server::DEFAULT_SOCKET_PATH;
use api_proxy::{ProxyConfig, ProxyError, ProxyServer, Token, Upstream};
use std::path::PathBuf;
use std::time::Duration;

/// The proxy config for `config`, or None when `Api` is not configured.
pub fn proxy_config(config: &Validated) -> Result<Option<ProxyConfig>, ProxyError> {
    let c = &config.config;
    let Some(api) = &c.api else {
        return Ok(None);
    };
    // Validation made sure both are there; a missing one here is a no-proxy, not a panic.
    let (Some(upstream), Some(token)) = (&api.upstream, &api.token) else {
        return Ok(None);
    };
    let upstream = Upstream::parse(upstream)
        .map_err(|e| ProxyError::Client(api_proxy::ClientError::Build(e.to_string())))?;
    let socket = PathBuf::from(api.socket_path.as_deref().unwrap_or(DEFAULT_SOCKET_PATH));
    let mut proxy = ProxyConfig::new(socket, upstream, Token::new(token.expose()));
    if let Some(scheme) = &api.token_scheme {
        proxy.token_scheme = scheme.clone();
    }
    if let Some(path) = &api.upstream_ca_file {
        let pem = std::fs::read(path).map_err(|source| ProxyError::CaFile {
            path: PathBuf::from(path),
            source,
        })?;
        proxy.upstream_ca_pem = Some(pem);
    }
    proxy.allow_uids = api.allow_uids.clone();
    proxy.allow_gids = api.allow_gids.clone();
    proxy.paths = api.paths.clone();
    proxy.attenuate = api.attenuate;
    proxy.app_name = c.app_name.clone();
    proxy.machine_id = c.machine_id.clone();
    if let Some(max) = api.max_body_bytes {
        proxy.max_body_bytes = max;
    }
    if let Some(secs) = api.request_timeout_seconds {
        proxy.request_timeout = Duration::from_secs(secs);
    }
    if let Some(n) = api.max_concurrent {
        proxy.max_concurrent = n;
    }
    Ok(Some(proxy))
}

/// Binds and starts the proxy on the current runtime. A proxy that cannot start is logged and
/// left out: the workload still runs (it gets connection errors on the socket, not a VM that
/// never boots).
pub fn start(
    config: &Validated,
    critical: &crate::supervise::CriticalTasks,
) -> Option<std::sync::Arc<api_proxy::server::ProxyStats>> {
    let proxy = match proxy_config(config) {
        Ok(Some(proxy)) => proxy,
        Ok(None) => return None,
        Err(err) => {
            tracing::error!("/.fly/api is not available: {err}");
            return None;
        }
    };
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

    #[test]
    fn the_largest_accepted_values_build_a_proxy() {
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
        let proxy = proxy_config(&config).expect("proxy config").expect("api");
        ProxyServer::check(&proxy).expect("builds");
        let _ = api_proxy::deadline::from_now(proxy.request_timeout);
        // A library caller passing what validation refuses still gets no panic.
        let mut wild = proxy.clone();
        wild.max_concurrent = usize::MAX;
        wild.request_timeout = Duration::MAX;
        ProxyServer::check(&wild).expect("clamped");
        let _ = api_proxy::deadline::from_now(wild.request_timeout);
    }
}
