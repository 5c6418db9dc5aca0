//! A client for roost's own calls to the platform (the OIDC broker's token requests): the
//! same upstream, token and attenuation as the proxy, without a socket in between.

use crate::attenuate::Attenuator;
use crate::client::{ClientError, UpstreamClient};
use crate::server::{ProxyConfig, Token};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full, Limited};
use std::time::{Duration, SystemTime};

/// Builds the attenuator for a config, or None (with one warning) when the token cannot be
/// attenuated.
pub fn attenuator_for(config: &ProxyConfig) -> Option<Attenuator> {
    if !config.attenuate {
        return None;
    }
    match Attenuator::new(
        config.token.expose(),
        config.machine_id.as_deref().unwrap_or(""),
    ) {
        Ok(a) => Some(a),
        Err(err) => {
            // The error never contains the token.
            tracing::warn!(
                "Api.Attenuate is set but the token cannot be attenuated ({err}); it is forwarded unchanged"
            );
            None
        }
    }
}

/// roost's own platform client.
#[derive(Debug, Clone)]
pub struct PlatformClient {
    client: UpstreamClient,
    token: Token,
    scheme: String,
    attenuator: Option<Attenuator>,
    timeout: Duration,
}

/// A response read whole (bounded).
#[derive(Debug, Clone)]
pub struct PlatformResponse {
    pub status: u16,
    pub body: Bytes,
}

impl PlatformClient {
    pub fn new(config: &ProxyConfig) -> Result<Self, ClientError> {
        Ok(PlatformClient {
            client: UpstreamClient::new(
                &config.upstream,
                config.connect_timeout,
                config.upstream_ca_pem.as_deref(),
            )?,
            token: config.token.clone(),
            scheme: config.token_scheme.clone(),
            attenuator: attenuator_for(config),
            timeout: Duration::from_secs(10),
        })
    }

    /// `POST path` with a JSON body; reads at most `max_response` bytes of the answer.
    pub async fn post_json(
        &self,
        path: &str,
        body: &serde_json::Value,
        max_response: usize,
    ) -> Result<PlatformResponse, ClientError> {
        let token = match &self.attenuator {
            Some(a) => a
                .token_for("POST", path, SystemTime::now())
                .map_err(|e| ClientError::Build(e.to_string()))?,
            None => self.token.expose().to_string(),
        };
        let mut auth = HeaderValue::from_str(&format!("{} {token}", self.scheme))
            .map_err(|_| ClientError::Build("unusable token".into()))?;
        auth.set_sensitive(true);
        let req = Request::builder()
            .method(Method::POST)
            .uri(self.client.uri(path)?)
            .header(header::HOST, self.client.host())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::AUTHORIZATION, auth)
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
        tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| ClientError::Request("the platform did not answer in time".into()))?
    }
}
