//! One request through the proxy: authorisation, the policy, the headers, the body cap, the
//! concurrency permit, the platform's credentials, the upstream, the redaction of the answer;
//! every refusal a JSON error with the request's id.

use crate::audited_body::{Audit, AuditedBody};
use crate::headers;
use crate::redact::{RedactedBody, Secrets};
use crate::state::{Peer, State};
use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use roost_platform::policy::Decision;
use roost_platform::pool::{BoxError, ClientError, ProxyBody};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::OwnedSemaphorePermit;

fn request_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    format!("{:016x}", h.finish())
}

fn json_error(status: StatusCode, message: &str, request_id: &str) -> Response<ProxyBody> {
    let body = serde_json::json!({ "error": message, "request_id": request_id }).to_string();
    let mut resp = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub(crate) async fn handle(
    state: Arc<State>,
    peer: Peer,
    req: Request<Incoming>,
) -> Response<AuditedBody> {
    state.stats.requests.fetch_add(1, Ordering::Relaxed);
    let started = Instant::now();
    let request_id = request_id();
    let audit = Audit {
        peer: peer.clone(),
        method: req.method().to_string(),
        path: req.uri().path().to_string(),
        request_id: request_id.clone(),
        started,
        status: 0,
        head_latency: Duration::ZERO,
    };
    // The request's one deadline: waiting for a permit, the upstream's answer and the
    // streaming of the body all end at it.
    let deadline = roost_platform::deadline::after(started.into(), state.request_timeout);
    let (resp, permit, outcome) = match forward(&state, &peer, req, &request_id, deadline).await {
        Ok((resp, permit)) => (resp, Some(permit), ""),
        Err((status, message)) => {
            if status == StatusCode::BAD_GATEWAY || status == StatusCode::GATEWAY_TIMEOUT {
                state.stats.upstream_errors.fetch_add(1, Ordering::Relaxed);
            } else {
                state.stats.refused.fetch_add(1, Ordering::Relaxed);
            }
            (json_error(status, &message, &request_id), None, "refused")
        }
    };
    let (mut parts, body) = resp.into_parts();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        parts.headers.insert("x-request-id", value);
    }
    let deadline = permit
        .as_ref()
        .map(|_| Box::pin(tokio::time::sleep_until(deadline)));
    let audited = AuditedBody {
        inner: body,
        deadline,
        bytes: 0,
        outcome,
        audit: Audit {
            status: parts.status.as_u16(),
            head_latency: started.elapsed(),
            ..audit
        },
        refusals: state.refusals.clone(),
        _permit: permit,
    };
    Response::from_parts(parts, audited)
}

type Refusal = (StatusCode, String);

async fn forward(
    state: &State,
    peer: &Peer,
    req: Request<Incoming>,
    request_id: &str,
    deadline: tokio::time::Instant,
) -> Result<(Response<ProxyBody>, OwnedSemaphorePermit), Refusal> {
    if !peer.authorized {
        let who = match &peer.service {
            Some(service) => format!("service {service} (uid {} gid {})", peer.uid, peer.gid),
            None => format!("uid {} gid {}", peer.uid, peer.gid),
        };
        return Err((
            StatusCode::FORBIDDEN,
            format!("{who} may not use /.fly/api"),
        ));
    }
    let method = req.method().as_str().to_string();
    let path = req.uri().path().to_string();
    // The machine the credentials are for: a clone's own after a restore, so its workload
    // reaches its own machine and not the original's.
    let credentials = state.platform.credentials();
    let decision = match credentials.machine_id() {
        Some(machine) => state.policy.decide_as(&method, &path, Some(machine)),
        None => state.policy.decide(&method, &path),
    };
    match decision {
        Decision::Forward => {}
        Decision::BadRequest(why) => return Err((StatusCode::BAD_REQUEST, why.to_string())),
        Decision::Forbidden => {
            return Err((
                StatusCode::FORBIDDEN,
                "the path names another app or machine".to_string(),
            ))
        }
        Decision::MethodNotAllowed => {
            return Err((
                StatusCode::METHOD_NOT_ALLOWED,
                format!("{method} is not allowed on this path"),
            ))
        }
        Decision::NotFound => {
            return Err((
                StatusCode::NOT_FOUND,
                "not available through /.fly/api".to_string(),
            ))
        }
    }
    let (mut parts, body) = req.into_parts();
    headers::sanitize_request(&mut parts.headers)
        .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > state.max_body) {
        return Err((
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is larger than {} bytes", state.max_body),
        ));
    }

    let permit = tokio::time::timeout_at(deadline, state.permits.clone().acquire_owned())
        .await
        .map_err(|_| {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "too many concurrent requests".to_string(),
            )
        })?
        .map_err(|_| (StatusCode::SERVICE_UNAVAILABLE, "shutting down".to_string()))?;

    let auth = state
        .platform
        .credentials()
        .authorization(&method, &path)
        .map_err(|e| (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let path_and_query = parts
        .uri
        .path_and_query()
        .map_or_else(|| path.clone(), |pq| pq.as_str().to_string());
    parts.uri = state
        .client
        .uri(&path_and_query)
        .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()))?;
    parts.headers.insert(header::AUTHORIZATION, auth.header);
    if let Ok(host) = HeaderValue::from_str(state.client.host()) {
        parts.headers.insert(header::HOST, host);
    }
    if let Ok(id) = HeaderValue::from_str(request_id) {
        parts.headers.insert("x-request-id", id);
    }
    let max = usize::try_from(state.max_body).unwrap_or(usize::MAX);
    let body = Limited::new(body, max).boxed();
    let upstream_req = Request::from_parts(parts, body);

    let resp = match tokio::time::timeout_at(deadline, state.client.send(upstream_req)).await {
        Err(_) => {
            return Err((
                StatusCode::GATEWAY_TIMEOUT,
                "the upstream did not answer in time".to_string(),
            ))
        }
        Ok(Err(ClientError::BodyTooLarge)) => {
            return Err((
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the request body is larger than {} bytes", state.max_body),
            ))
        }
        Ok(Err(err)) => {
            tracing::warn!("/.fly/api upstream error ({request_id}): {err}");
            return Err((StatusCode::BAD_GATEWAY, err.to_string()));
        }
        Ok(Ok(resp)) => resp,
    };
    let (mut parts, body) = resp.into_parts();
    // A compressed body could carry the token where the redaction cannot see it; identity
    // was asked for, so anything else is the upstream's fault.
    let encoded = parts
        .headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    if encoded {
        return Err((
            StatusCode::BAD_GATEWAY,
            "the upstream answered with a compressed body (identity was asked for)".to_string(),
        ));
    }
    state.stats.forwarded.fetch_add(1, Ordering::Relaxed);
    let secrets = Secrets::new(&[
        state.platform.credentials().token().expose(),
        &auth.sent_token,
    ]);
    headers::sanitize_response(&mut parts.headers, &secrets);
    let body = RedactedBody::new(body, secrets)
        .map_err(|e| -> BoxError { Box::new(e) })
        .boxed();
    Ok((Response::from_parts(parts, body), permit))
}
