//! Upstream host names, resolved without tokio's blocking pool. hyper-util's default resolver
//! runs `getaddrinfo` through `spawn_blocking`, which panics when the pool needs a thread and
//! the OS refuses one (a workload holding every pid); the request then gets no answer at
//! all. Here the name is resolved once when the client is built (at boot) and kept; only if
//! that failed is it resolved again, in a thread started with `std::thread::Builder`, whose
//! failure is an error for that one request (502), never a panic.

use hyper_util::client::legacy::connect::dns::Name;
use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

/// A resolver with one answer kept. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct PinnedResolver {
    cache: Arc<Mutex<Option<Vec<SocketAddr>>>>,
}

fn lookup(host: &str) -> std::io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = (host, 0).to_socket_addrs()?.collect();
    if addrs.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{host} has no address"),
        ));
    }
    Ok(addrs)
}

impl PinnedResolver {
    /// Resolves `host` now (an IP literal needs no lookup and is never passed here by hyper).
    /// A failure is logged; the name is tried again on the first request.
    pub fn ahead_of_time(host: &str) -> Self {
        let resolver = PinnedResolver::default();
        match lookup(host) {
            Ok(addrs) => {
                tracing::info!("upstream {host} resolved to {addrs:?} (kept for roost's life)");
                *resolver
                    .cache
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner) = Some(addrs);
            }
            Err(err) => tracing::warn!("cannot resolve the upstream {host} yet: {err}"),
        }
        resolver
    }
}

impl tower_service::Service<Name> for PinnedResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let cache = self.cache.clone();
        Box::pin(async move {
            if let Some(addrs) = cache.lock().unwrap_or_else(PoisonError::into_inner).clone() {
                return Ok(addrs.into_iter());
            }
            let host = name.as_str().to_string();
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::Builder::new()
                .name("roost-resolve".into())
                .spawn(move || {
                    let _ = tx.send(lookup(&host));
                })?;
            let addrs = rx
                .await
                .map_err(|_| std::io::Error::other("the resolver thread died"))??;
            *cache.lock().unwrap_or_else(PoisonError::into_inner) = Some(addrs.clone());
            Ok(addrs.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;
    use tower_service::Service;

    #[tokio::test]
    async fn resolves_ahead_and_answers_from_the_cache() {
        let mut r = PinnedResolver::ahead_of_time("localhost");
        assert!(r.cache.lock().expect("lock").is_some());
        let name = Name::from_str("localhost").expect("name");
        let addrs: Vec<SocketAddr> = r.call(name).await.expect("cached").collect();
        assert!(addrs.iter().any(|a| a.ip().is_loopback()), "{addrs:?}");
        // A name that failed ahead of time is tried again, in a thread of its own.
        let mut late = PinnedResolver::default();
        let name = Name::from_str("localhost").expect("name");
        assert!(late.call(name).await.is_ok());
    }
}
