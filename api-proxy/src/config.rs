//! What the proxy is built from.

use roost_platform::policy::Policy;
use roost_platform::Platform;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The service a connection comes from, as the supervisor knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub service: Arc<str>,
    /// Whether that service may use the API at all (a container only with `fly_api`).
    pub allowed: bool,
}

/// Which service the process `pid` belongs to (its cgroup leaf), asked once per connection.
#[derive(Clone)]
pub struct CallerOf(pub Arc<dyn Fn(i32) -> Option<Caller> + Send + Sync>);

impl std::fmt::Debug for CallerOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CallerOf(..)")
    }
}

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
    /// With several services: names each caller's service for the audit line, and refuses
    /// one whose service may not use the API. None: callers are told apart by uid alone.
    pub caller_of: Option<CallerOf>,
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
            caller_of: None,
        }
    }
}
