//! The one platform client: the VM's [`Credentials`] and one upstream connection pool, built
//! once per boot from the run config and shared by the `/.fly/api` proxy (which forwards
//! callers' requests through it) and the broker (which makes roost's own calls).

use crate::credentials::{CredentialError, Credentials};
use crate::pool::{ClientError, UpstreamClient};
use crate::upstream::Upstream;
use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How long roost's own calls (the broker's) may take in all.
const OWN_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the platform client cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("cannot read the upstream CA file {path}: {source}")]
    CaFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where the platform is and how to reach it.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub upstream: Upstream,
    /// Extra trusted CA certificates (a PEM file) for an `https://` upstream.
    pub ca_file: Option<PathBuf>,
    pub connect_timeout: Duration,
}

/// The platform: credentials and the pool. Cheap to clone (both are shared, and a clone of a
/// VM's new credentials reach every holder through [`Platform::replace_credentials`]).
#[derive(Debug, Clone)]
pub struct Platform {
    credentials: Arc<std::sync::RwLock<Arc<Credentials>>>,
    client: UpstreamClient,
}

/// A response read whole (bounded).
#[derive(Debug, Clone)]
pub struct PlatformResponse {
    pub status: u16,
    pub body: Bytes,
}

impl Platform {
    /// Reads the CA file (once) and builds the pool; no connection is made yet.
    pub fn connect(endpoint: &Endpoint, credentials: Credentials) -> Result<Self, PlatformError> {
        let pem = endpoint.ca_file.as_deref().map(read_ca).transpose()?;
        let client =
            UpstreamClient::new(&endpoint.upstream, endpoint.connect_timeout, pem.as_deref())?;
        Ok(Platform {
            credentials: Arc::new(std::sync::RwLock::new(Arc::new(credentials))),
            client,
        })
    }

    /// The credentials as they are now (a request in flight keeps the ones it started with).
    pub fn credentials(&self) -> Arc<Credentials> {
        self.credentials
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// New credentials for every holder of this platform (a VM restored as a clone has a
    /// macaroon of its own).
    pub fn replace_credentials(&self, credentials: Credentials) {
        *self
            .credentials
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(credentials);
    }

    /// The pool, for the proxy's forwarding.
    pub fn upstream(&self) -> &UpstreamClient {
        &self.client
    }

    /// roost's own `POST path` with a JSON body; reads at most `max_response` bytes of the
    /// answer, within 10 s in all.
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
        max_response: usize,
    ) -> Result<PlatformResponse, ClientError> {
        let auth = self
            .credentials()
            .authorization("POST", path)
            .map_err(|e: CredentialError| ClientError::Build(e.to_string()))?;
        let req = Request::builder()
            .method(Method::POST)
            .uri(self.client.uri(path)?)
            .header(header::HOST, self.client.host())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, auth.header)
            .body(
                Full::new(Bytes::from(body.to_string()))
                    .map_err(|never| match never {})
                    .boxed(),
            )
            .map_err(|e| ClientError::Build(e.to_string()))?;
        let exchange = async {
            let resp = self.client.send(req).await?;
            let status = resp.status().as_u16();
            let body = Limited::new(resp.into_body(), max_response)
                .collect()
                .await
                .map_err(|e| ClientError::Request(format!("reading the answer: {e}")))?
                .to_bytes();
            Ok(PlatformResponse { status, body })
        };
        tokio::time::timeout(OWN_CALL_TIMEOUT, exchange)
            .await
            .map_err(|_| ClientError::Request("the platform did not answer in time".into()))?
    }
}

fn read_ca(path: &Path) -> Result<Vec<u8>, PlatformError> {
    std::fs::read(path).map_err(|source| PlatformError::CaFile {
        path: path.to_path_buf(),
        source,
    })
}
