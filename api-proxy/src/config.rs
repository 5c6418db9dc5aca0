//! What the proxy is built from.

use roost_platform::policy::Policy;
use roost_platform::Platform;
use std::path::PathBuf;
use std::time::Duration;

/// Everything the proxy needs; see the `Api` table of docs/api-proxy.md.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub socket_path: PathBuf,
    /// The platform's credentials and its one connection pool (shared with the broker).
    pub platform: Platform,
    /// Callers allowed by uid; empty means root only.
    pub allow_uids: Vec<u32>,
    pub allow_gids: Vec<u32>,
    /// The allow-list, bound to this app and machine.
    pub policy: Policy,
    pub app_name: Option<String>,
    pub machine_id: Option<String>,
    pub max_body_bytes: u64,
    pub request_timeout: Duration,
    pub max_concurrent: usize,
}

impl ProxyConfig {
    /// A config with the documented defaults.
    pub fn new(socket_path: PathBuf, platform: Platform, policy: Policy) -> Self {
        ProxyConfig {
            socket_path,
            platform,
            policy,
            allow_uids: Vec::new(),
            allow_gids: Vec::new(),
            app_name: None,
            machine_id: None,
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(60),
            max_concurrent: 64,
        }
    }
}
