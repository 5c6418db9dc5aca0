//! `Api`: the `/.fly/api` proxy's upstream, token and limits, and its path policy.

use super::super::checks::*;
use super::super::limits::*;
use super::super::schema::RunConfig;
use super::super::typed::{self, defaults};
use super::super::ConfigError;
use std::path::PathBuf;
use std::time::Duration;

pub(super) fn api(config: &RunConfig) -> Result<Option<typed::Api>, ConfigError> {
    let mut typed_api = None;
    if let Some(api) = &config.api {
        if api.upstream.is_none() {
            return Err(f("Api.Upstream", "is required when Api is set"));
        }
        if api.token.is_none() {
            return Err(f("Api.Token", "is required when Api is set"));
        }
        check_range(
            "Api.RequestTimeoutSeconds",
            api.request_timeout_seconds,
            1,
            MAX_REQUEST_TIMEOUT_SECS,
        )?;
        check_range(
            "Api.MaxConcurrent",
            api.max_concurrent.map(|n| n as u64),
            1,
            MAX_CONCURRENT_REQUESTS,
        )?;
        check_range("Api.MaxBodyBytes", api.max_body_bytes, 1, MAX_BODY_BYTES)?;
        check_list("Api.AllowUids", &api.allow_uids)?;
        check_list("Api.AllowGids", &api.allow_gids)?;
        if api.paths.len() > MAX_LIST {
            return Err(f("Api.Paths", format!("has more than {MAX_LIST} entries")));
        }
        let mut upstream_parsed = None;
        if let Some(upstream) = &api.upstream {
            // Parsed by hand below and used in a URI and a Host header: nothing that could
            // cut or split it.
            if upstream
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
            {
                return Err(f(
                    "Api.Upstream",
                    "contains a control character or white space",
                ));
            }
            upstream_parsed = Some(
                roost_platform::Upstream::parse(upstream)
                    .map_err(|err| f("Api.Upstream", err.to_string()))?,
            );
        }
        if let Some(scheme) = &api.token_scheme {
            if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(f("Api.TokenScheme", "must be a non-empty ASCII word"));
            }
        }
        if let Some(token) = &api.token {
            // The token goes into an HTTP header: visible ASCII only (anything else is refused
            // by the header type on every request, a 500 per call instead of a clear boot error).
            let t = token.expose();
            if t.is_empty() || t.len() > MAX_TOKEN_BYTES || !t.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(f(
                    "Api.Token",
                    format!("must be 1 to {MAX_TOKEN_BYTES} visible ASCII characters (no spaces, control characters or non-ASCII)"),
                ));
            }
        }
        if let Some(path) = &api.socket_path {
            check_absolute("Api.SocketPath", path)?;
        }
        if let Some(path) = &api.upstream_ca_file {
            check_absolute("Api.UpstreamCaFile", path)?;
        }
        let policy = roost_platform::policy::Policy::new(
            &api.paths,
            config.app_name.as_deref(),
            config.machine_id.as_deref(),
        )
        .map_err(|e| f("Api.Paths", e.to_string()))?;
        // Both are required above; this is where they become the typed values.
        if let (Some(upstream), Some(token)) = (upstream_parsed, api.token.clone()) {
            typed_api = Some(typed::Api {
                upstream,
                token,
                scheme: api
                    .token_scheme
                    .clone()
                    .unwrap_or_else(|| defaults::TOKEN_SCHEME.to_string()),
                ca_file: api.upstream_ca_file.as_ref().map(PathBuf::from),
                socket_path: PathBuf::from(
                    api.socket_path.as_deref().unwrap_or(defaults::API_SOCKET),
                ),
                allow_uids: api.allow_uids.clone(),
                allow_gids: api.allow_gids.clone(),
                policy,
                attenuate: api.attenuate,
                max_body_bytes: api.max_body_bytes.unwrap_or(defaults::MAX_BODY_BYTES),
                request_timeout: api
                    .request_timeout_seconds
                    .map_or(defaults::REQUEST_TIMEOUT, Duration::from_secs),
                max_concurrent: api.max_concurrent.unwrap_or(defaults::MAX_CONCURRENT),
            });
        }
    }
    Ok(typed_api)
}
