//! `MmdsClient`: the run config from Firecracker's MMDS, version 2.
//!
//! PUT `/latest/api/token` with `X-metadata-token-ttl-seconds`, then GET `/` with
//! `X-metadata-token` and exactly `Accept: application/json` (anything else gets the IMDS text
//! format). 404 means "not populated yet" and connect errors mean "not reachable yet": both
//! are retried with backoff until a deadline (pigeon gives up after one try in 3 s). 401 means
//! the token is gone (a snapshot restore): take a new one. Headers stay small (MMDS resets
//! requests over 2,500 bytes), answers are capped at 1 MiB.

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::time::Instant;

/// Where MMDS answers inside a Firecracker guest.
pub const MMDS_ADDR: &str = "169.254.169.254:80";
/// Token lifetime asked for (the maximum).
const TOKEN_TTL: u32 = 21_600;
const MAX_DOCUMENT: usize = 1024 * 1024;
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum MmdsError {
    #[error("MMDS gave no config before the deadline (last: {0})")]
    Deadline(String),
    #[error("the MMDS document is not JSON: {0}")]
    NotJson(String),
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
) -> Result<(u16, Bytes), String> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let body = Limited::new(resp.into_body(), MAX_DOCUMENT)
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
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

    async fn put_token(&mut self) -> Result<(), String> {
        let req = http::Request::builder()
            .method("PUT")
            .uri("/latest/api/token")
            .header("host", self.host())
            .header("x-metadata-token-ttl-seconds", TOKEN_TTL.to_string())
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let (status, body) = tokio::time::timeout(ATTEMPT_TIMEOUT, exchange(self.addr, req))
            .await
            .map_err(|_| "token request timed out".to_string())??;
        if status != 200 {
            return Err(format!("token request answered {status}"));
        }
        let token = String::from_utf8_lossy(&body).trim().to_string();
        if token.is_empty() || token.len() > 512 {
            return Err("unusable MMDS token".into());
        }
        self.token = Some(token);
        Ok(())
    }

    async fn get_root(&self, token: &str) -> Result<(u16, Bytes), String> {
        let req = http::Request::builder()
            .method("GET")
            .uri("/")
            .header("host", self.host())
            .header("x-metadata-token", token)
            .header("accept", "application/json")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        tokio::time::timeout(ATTEMPT_TIMEOUT, exchange(self.addr, req))
            .await
            .map_err(|_| "config request timed out".to_string())?
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
                    Next::Done => {
                        return serde_json::from_slice(&body)
                            .map_err(|e| MmdsError::NotJson(e.to_string()))
                    }
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
                        "401 even with a fresh token".to_string()
                    }
                    Next::Retry if status == 404 => "404: not populated yet".to_string(),
                    Next::Retry => format!("status {status}"),
                },
                Err(e) => e,
            };
            just_reauthenticated = false;
            // One line per kind of failure, not one per retry.
            let kind: String = last.chars().take(24).collect();
            if logged.insert(kind) {
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
