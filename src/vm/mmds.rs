//! `MmdsClient`: the run config from Firecracker's MMDS, version 2.
//!
//! PUT `/latest/api/token` with `X-metadata-token-ttl-seconds`, then GET `/` with
//! `X-metadata-token` and exactly `Accept: application/json` (anything else gets the IMDS text
//! format). 404 means "not populated yet" and connect errors mean "not reachable yet": both
//! are retried with backoff until a deadline (pigeon gives up after one try in 3 s). 401 means
//! the token is gone (a snapshot restore): take a new one. Headers stay small (MMDS resets
//! requests over 2,500 bytes), answers are capped at 1 MiB.

use crate::net::Netlink;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;
use tokio::time::Instant;

/// Where MMDS answers inside a Firecracker guest.
pub const MMDS_ADDR: &str = "169.254.169.254:80";
/// MMDS's address (Firecracker's default).
pub const MMDS_IP: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 254);
/// The temporary address used to reach MMDS (QEMU's user network gives the guest this one;
/// under Firecracker any link-local address works).
const MMDS_CLIENT_IP: Ipv4Addr = Ipv4Addr::new(169, 254, 0, 15);
/// Token lifetime asked for (the maximum).
const TOKEN_TTL: u32 = 21_600;
const MAX_DOCUMENT: usize = 1024 * 1024;
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// Why the fetch over the temporary route failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("network: {0}")]
    Network(#[from] crate::net::NetError),
    #[error(transparent)]
    Mmds(#[from] MmdsError),
}

#[derive(Debug, thiserror::Error)]
pub enum MmdsError {
    #[error("MMDS gave no config before the deadline (last: {0})")]
    Deadline(Attempt),
    #[error("the MMDS document is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
}

/// Why one attempt gave no document; retried until the deadline.
#[derive(Debug, thiserror::Error)]
pub enum Attempt {
    #[error("connect: {0}")]
    Connect(#[source] std::io::Error),
    #[error("HTTP: {0}")]
    Http(#[from] hyper::Error),
    #[error("cannot build the request: {0}")]
    Request(#[from] http::Error),
    #[error("reading the answer: {0}")]
    Read(String),
    #[error("the {0} request timed out")]
    Timeout(&'static str),
    #[error("token request answered {0}")]
    TokenStatus(u16),
    #[error("unusable MMDS token")]
    UnusableToken,
    #[error("404: not populated yet")]
    NotPopulated,
    #[error("401 even with a fresh token")]
    Unauthorized,
    #[error("status {0}")]
    Status(u16),
}

/// What to do after an answer to the config GET.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    Done,
    /// Not populated yet, or a transient error: wait and retry.
    Retry,
    /// The token is no longer valid: take a new one, then retry at once.
    Reauthenticate,
}

pub fn next_after(status: u16) -> Next {
    match status {
        200 => Next::Done,
        401 => Next::Reauthenticate,
        _ => Next::Retry,
    }
}

#[derive(Debug, Clone)]
pub struct MmdsClient {
    addr: SocketAddr,
    token: Option<String>,
}

async fn exchange(
    addr: SocketAddr,
    req: http::Request<Empty<Bytes>>,
) -> Result<(u16, Bytes), Attempt> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(Attempt::Connect)?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await?;
    let status = resp.status().as_u16();
    let body = Limited::new(resp.into_body(), MAX_DOCUMENT)
        .collect()
        .await
        .map_err(|e| Attempt::Read(e.to_string()))?
        .to_bytes();
    Ok((status, body))
}

impl MmdsClient {
    pub fn new(addr: SocketAddr) -> Self {
        MmdsClient { addr, token: None }
    }

    fn host(&self) -> String {
        self.addr.ip().to_string()
    }

    async fn put_token(&mut self) -> Result<(), Attempt> {
        let req = http::Request::builder()
            .method("PUT")
            .uri("/latest/api/token")
            .header("host", self.host())
            .header("x-metadata-token-ttl-seconds", TOKEN_TTL.to_string())
            .body(Empty::new())?;
        let (status, body) = tokio::time::timeout(ATTEMPT_TIMEOUT, exchange(self.addr, req))
            .await
            .map_err(|_| Attempt::Timeout("token"))??;
        if status != 200 {
            return Err(Attempt::TokenStatus(status));
        }
        let token = String::from_utf8_lossy(&body).trim().to_string();
        if token.is_empty() || token.len() > 512 {
            return Err(Attempt::UnusableToken);
        }
        self.token = Some(token);
        Ok(())
    }

    async fn get_root(&self, token: &str) -> Result<(u16, Bytes), Attempt> {
        let req = http::Request::builder()
            .method("GET")
            .uri("/")
            .header("host", self.host())
            .header("x-metadata-token", token)
            .header("accept", "application/json")
            .body(Empty::new())?;
        tokio::time::timeout(ATTEMPT_TIMEOUT, exchange(self.addr, req))
            .await
            .map_err(|_| Attempt::Timeout("config"))?
    }

    /// Fetches the whole MMDS document, retrying until `deadline`.
    pub async fn fetch(&mut self, deadline: Instant) -> Result<serde_json::Value, MmdsError> {
        let mut wait = Duration::from_millis(50);
        let mut logged = std::collections::HashSet::new();
        // A fresh token that is refused at once is not a restore: back off, do not spin.
        let mut just_reauthenticated = false;
        loop {
            let attempt = async {
                if self.token.is_none() {
                    self.put_token().await?;
                }
                let token = self.token.clone().unwrap_or_default();
                self.get_root(&token).await
            };
            let last = match attempt.await {
                Ok((status, body)) => match next_after(status) {
                    Next::Done => return serde_json::from_slice(&body).map_err(MmdsError::NotJson),
                    Next::Reauthenticate if !just_reauthenticated => {
                        self.token = None;
                        just_reauthenticated = true;
                        tracing::info!(
                            "MMDS: token rejected (snapshot restore?); taking a new one"
                        );
                        continue;
                    }
                    Next::Reauthenticate => {
                        self.token = None;
                        Attempt::Unauthorized
                    }
                    Next::Retry if status == 404 => Attempt::NotPopulated,
                    Next::Retry => Attempt::Status(status),
                },
                Err(e) => e,
            };
            just_reauthenticated = false;
            // One line per kind of failure, not one per retry.
            if logged.insert(std::mem::discriminant(&last)) {
                tracing::info!("MMDS: {last}; retrying until the deadline");
            }
            if roost_platform::deadline::after(Instant::now(), wait) >= deadline {
                return Err(MmdsError::Deadline(last));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_secs(1));
        }
    }
}

/// A temporary link-local address and route to MMDS on the first interface, the fetch, and
/// the temporary address and route removed again.
pub async fn fetch_over_link_local(
    iface: Option<&str>,
    wait: Duration,
) -> Result<serde_json::Value, FetchError> {
    let nl = Netlink::connect()?;
    let iface = match iface {
        Some(i) => i.to_string(),
        None => nl.first_ethernet().await?,
    };
    let index = nl.index(&iface).await?;
    nl.up(index, None).await?;
    let tmp = IpAddr::V4(MMDS_CLIENT_IP);
    nl.add_address(index, tmp, 16).await?;
    nl.add_route(index, IpAddr::V4(MMDS_IP), 32, None, false)
        .await?;
    let addr = std::net::SocketAddr::new(IpAddr::V4(MMDS_IP), 80);
    let fetched = MmdsClient::new(addr)
        .fetch(roost_platform::deadline::from_now(wait))
        .await;
    if let Err(e) = nl.del_route_v4(index, MMDS_IP, 32).await {
        tracing::warn!("removing the MMDS route: {e}");
    }
    if let Err(e) = nl.del_address(index, tmp, 16).await {
        tracing::warn!("removing the temporary MMDS address: {e}");
    }
    Ok(fetched?)
}

/// After bootstrap nothing in the guest may read MMDS (it holds the macaroon): a prohibit
/// route makes 169.254.169.254 unreachable. The control API reports `bootstrapped`, so the
/// host can also PATCH the secret out of MMDS.
pub async fn block_after_boot() {
    match Netlink::connect() {
        Ok(nl) => match nl.prohibit_v4(MMDS_IP).await {
            Ok(()) => tracing::info!(
                "MMDS is blocked for every process after bootstrap (prohibit route verified)"
            ),
            Err(e) => tracing::error!("cannot block MMDS: {e}"),
        },
        Err(e) => tracing::error!("cannot block MMDS: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions() {
        assert_eq!(next_after(200), Next::Done);
        assert_eq!(next_after(401), Next::Reauthenticate);
        assert_eq!(next_after(404), Next::Retry);
        assert_eq!(next_after(500), Next::Retry);
        assert!(MMDS_ADDR.parse::<SocketAddr>().is_ok());
    }
}
