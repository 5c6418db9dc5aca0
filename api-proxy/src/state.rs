//! What every connection of the proxy shares (its policy, the platform, limits, counters),
//! built once from its config, and the peer of one connection.

use crate::audit::Refusals;
use crate::config::ProxyConfig;
use crate::error::ProxyError;
use crate::stats::ProxyStats;
use roost_platform::policy::Policy;
use roost_platform::pool::UpstreamClient;
use roost_platform::Platform;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UnixStream;
use tokio::sync::Semaphore;

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) client: UpstreamClient,
    pub(crate) platform: Platform,
    pub(crate) policy: Policy,
    pub(crate) allow_uids: Vec<u32>,
    pub(crate) allow_gids: Vec<u32>,
    pub(crate) max_body: u64,
    pub(crate) request_timeout: Duration,
    pub(crate) permits: Arc<Semaphore>,
    pub(crate) stats: Arc<ProxyStats>,
    pub(crate) refusals: Arc<Refusals>,
}

impl State {
    pub(crate) fn build(config: &ProxyConfig) -> Result<Self, ProxyError> {
        let policy = config.policy.clone();
        let allow_uids = if config.allow_uids.is_empty() {
            vec![0]
        } else {
            config.allow_uids.clone()
        };
        Ok(State {
            client: config.platform.upstream().clone(),
            platform: config.platform.clone(),
            policy,
            allow_uids,
            allow_gids: config.allow_gids.clone(),
            max_body: config.max_body_bytes,
            request_timeout: config.request_timeout,
            // tokio's semaphore panics beyond MAX_PERMITS: clamp whatever a caller passes.
            permits: Arc::new(Semaphore::new(
                config.max_concurrent.clamp(1, Semaphore::MAX_PERMITS),
            )),
            stats: Arc::new(ProxyStats::default()),
            refusals: Arc::new(Refusals::default()),
        })
    }
}

/// The kernel's word on who is connected (captured at connect(2), so no pid-reuse race).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Peer {
    pub(crate) pid: Option<i32>,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) authorized: bool,
}

pub(crate) fn peer_of(state: &State, stream: &UnixStream) -> Option<Peer> {
    match stream.peer_cred() {
        Ok(cred) => Some(Peer {
            pid: cred.pid(),
            uid: cred.uid(),
            gid: cred.gid(),
            authorized: state.allow_uids.contains(&cred.uid())
                || state.allow_gids.contains(&cred.gid()),
        }),
        Err(err) => {
            tracing::debug!("/.fly/api: cannot read the peer's credentials: {err}");
            None
        }
    }
}
