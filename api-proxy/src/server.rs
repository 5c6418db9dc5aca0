//! The `/.fly/api` server: the bound socket, the accept loop with its connection caps, the
//! per-connection SO_PEERCRED authorisation; each request goes to [`crate::forward`].

use crate::connections::{Admitted, Connections, Limits};
use crate::forward::handle;
use crate::socket::{bind_in_place, prepare_dir, socket_access};
use crate::state::{peer_of, Peer, State};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{UnixListener, UnixStream};

pub use crate::config::ProxyConfig;
pub use crate::error::ProxyError;
pub use crate::stats::ProxyStats;

/// The bound proxy; [`ProxyServer::serve`] runs it.
#[derive(Debug)]
pub struct ProxyServer {
    listener: UnixListener,
    path: PathBuf,
    state: Arc<State>,
}

impl ProxyServer {
    /// Everything of a proxy but its socket, built from `config` without I/O: the policy,
    /// the upstream client, the attenuator and the limits. [`ProxyServer::bind`] uses it; the
    /// fuzz targets call it on configs that validation accepted.
    pub fn check(config: &ProxyConfig) -> Result<(), ProxyError> {
        State::build(config).map(drop)
    }

    /// Binds the socket and sets its owner and mode. Needs a tokio runtime.
    pub fn bind(config: ProxyConfig) -> Result<Self, ProxyError> {
        let state = State::build(&config)?;
        let path = config.socket_path.clone();
        let sock_err = |source| ProxyError::Socket {
            path: path.clone(),
            source,
        };
        if let Some(dir) = path.parent() {
            prepare_dir(dir)?;
        }
        let allow_uids = state.allow_uids.clone();
        let (uid, gid, mode) = socket_access(&allow_uids, &config.allow_gids);
        let listener = bind_in_place(&path, uid, gid, mode).map_err(sock_err)?;
        if config.machine_id.is_none() || config.app_name.is_none() {
            tracing::warn!("AppName or MachineId is not set: /.fly/api forwards no machine paths");
        }
        tracing::info!(
            "/.fly/api listening on {} (mode {mode:o}, owner {uid}:{gid}, allowed uids {allow_uids:?}, gids {:?})",
            path.display(),
            config.allow_gids
        );

        Ok(ProxyServer {
            listener,
            path,
            state: Arc::new(state),
        })
    }

    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    pub fn stats(&self) -> Arc<ProxyStats> {
        self.state.stats.clone()
    }

    /// Accepts connections forever. Errors on one connection never stop the others. A
    /// connection beyond a cap ([`crate::connections`]) is closed at once; accept failures
    /// (EMFILE...) are logged once per streak.
    pub async fn serve(self) {
        let conns = Connections::new(Limits::current());
        let limits = conns.limits();
        tracing::info!(
            "/.fly/api holds at most {} connections, {} per uid, {} of refused callers",
            limits.total,
            limits.per_uid,
            limits.refused
        );
        let mut failures: u64 = 0;
        let mut dropped: u64 = 0;
        let mut window = tokio::time::interval(crate::audit::WINDOW);
        window.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _)) => {
                        if failures > 0 {
                            tracing::info!("/.fly/api accepts again after {failures} failed accept(s)");
                            failures = 0;
                        }
                        let Some(peer) = peer_of(&self.state, &stream) else { continue };
                        match conns.admit(peer.uid, peer.authorized) {
                            Ok(admitted) => {
                                let state = self.state.clone();
                                tokio::spawn(serve_connection(state, stream, peer, admitted));
                            }
                            Err(full) => {
                                dropped += 1;
                                self.state.stats.connections_dropped.fetch_add(1, Ordering::Relaxed);
                                // One line per streak of drops (the window's tick sums them up).
                                if dropped == 1 {
                                    tracing::warn!(
                                        "/.fly/api: closing a connection from uid {}: {full:?} connection cap reached",
                                        peer.uid
                                    );
                                }
                            }
                        }
                    }
                    Err(err) => {
                        failures += 1;
                        if failures == 1 {
                            tracing::warn!("/.fly/api accept failed: {err} (logged once until it works again)");
                        }
                        // EMFILE and friends: back off instead of spinning.
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = window.tick() => {
                    for line in self.state.refusals.end_window() {
                        tracing::info!(target: "roost::api_audit", "{line}");
                    }
                    if dropped > 1 {
                        tracing::warn!(
                            "/.fly/api closed {dropped} connection(s) beyond its caps in the last {} s",
                            crate::audit::WINDOW.as_secs()
                        );
                    }
                    dropped = 0;
                }
            }
        }
    }
}

async fn serve_connection(state: Arc<State>, stream: UnixStream, peer: Peer, admitted: Admitted) {
    let keep_alive = peer.authorized;
    let service = hyper::service::service_fn(move |req| {
        let state = state.clone();
        let peer = peer.clone();
        async move { Ok::<_, Infallible>(handle(state, peer, req).await) }
    });
    // A caller that is not allowed gets its 403 and the connection is closed: it cannot
    // hold descriptors with keep-alive.
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10))
        .keep_alive(keep_alive)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(err) = conn.await {
        tracing::debug!("/.fly/api connection ended: {err}");
    }
    drop(admitted);
}
