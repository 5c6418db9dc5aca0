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
    pub(crate) caller_of: Option<crate::config::CallerOf>,
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
            caller_of: config.caller_of.clone(),
        })
    }
}

/// The kernel's word on who is connected (captured at connect(2), so no pid-reuse race),
/// and the service it belongs to, asked of the supervisor right then.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub(crate) pid: Option<i32>,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) service: Option<Arc<str>>,
    pub(crate) authorized: bool,
}

pub(crate) fn peer_of(state: &State, stream: &UnixStream) -> Option<Peer> {
    match stream.peer_cred() {
        Ok(cred) => {
            let caller = match (&state.caller_of, cred.pid()) {
                (Some(caller_of), Some(pid)) => (caller_of.0)(pid),
                _ => None,
            };
            let by_id =
                state.allow_uids.contains(&cred.uid()) || state.allow_gids.contains(&cred.gid());
            Some(Peer {
                pid: cred.pid(),
                uid: cred.uid(),
                gid: cred.gid(),
                authorized: by_id && caller.as_ref().is_none_or(|c| c.allowed),
                service: caller.map(|c| c.service),
            })
        }
        Err(err) => {
            tracing::debug!("/.fly/api: cannot read the peer's credentials: {err}");
            None
        }
    }
}
