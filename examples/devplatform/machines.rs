//! The Machines API subset behind macaroon verification, and the request log.

use crate::http_util::{self, Req, ResBody};
use crate::{Platform, Received};
use hyper::Response;
use libmacaroon::{Format, Macaroon, MacaroonKey, Verifier};
use roost_platform::attenuate::{check_caveat, RequestContext};
use std::time::SystemTime;

/// Mints the VM's macaroon: bound to one app and one machine.
pub fn mint_token(key: &MacaroonKey, app: &str, machine: &str) -> String {
    let mut m = Macaroon::create(
        Some("devplatform"),
        key,
        format!("app:{app}/machine:{machine}"),
    )
    .expect("create macaroon");
    m.add_first_party_caveat(format!("app_name = {app}"))
        .expect("caveat");
    m.add_first_party_caveat(format!("machine_id = {machine}"))
        .expect("caveat");
    m.serialize(Format::V2).expect("serialize")
}

/// The machine a token is for: its `machine_id = ...` caveat.
fn machine_of(caveats: &[String]) -> Option<String> {
    caveats
        .iter()
        .find_map(|c| c.strip_prefix("machine_id = ").map(str::to_string))
}

/// Verifies `Authorization: FlyV1 <macaroon>` for a request; returns the token's caveats. The
/// token's machine must be one this platform runs (`--machine`, or a clone minted through
/// `POST /_dev/mint`).
fn verify(
    p: &Platform,
    auth: Option<&str>,
    method: &str,
    path: &str,
) -> Result<Vec<String>, String> {
    let auth = auth.ok_or("no Authorization header")?;
    let token = auth
        .strip_prefix("FlyV1 ")
        .ok_or("the Authorization scheme is not FlyV1")?;
    let m = Macaroon::deserialize(token.trim()).map_err(|e| format!("not a macaroon: {e:?}"))?;
    let caveats: Vec<String> = m
        .first_party_caveats()
        .iter()
        .filter_map(|c| c.as_first_party())
        .map(|c| String::from_utf8_lossy(c.predicate()).into_owned())
        .collect();
    let machine = machine_of(&caveats).unwrap_or_else(|| p.opts.machine.clone());
    if !p.machines.lock().unwrap().contains(&machine) {
        return Err(format!("machine {machine} is not one of this platform's"));
    }
    let mut v = Verifier::default();
    v.satisfy_exact(format!("app_name = {}", p.opts.app));
    let (method, path) = (method.to_string(), path.to_string());
    v.satisfy_general(move |predicate| {
        check_caveat(
            predicate,
            &RequestContext {
                machine_id: &machine,
                method: &method,
                path: &path,
                now: SystemTime::now(),
            },
        )
    });
    v.verify(&m, &p.root_key, &[])
        .map_err(|e| format!("macaroon verification failed: {e:?}"))?;
    Ok(caveats)
}

pub async fn handle(p: &Platform, req: Req) -> Response<ResBody> {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let verified = verify(p, auth.as_deref(), &method, &path);
    let body = http_util::read_body(req, 8 * 1024 * 1024).await;
    let body_bytes = body.as_ref().map_or(0, |b| b.len());

    let echo = p.echo_auth.lock().unwrap().clone();
    let resp = match &verified {
        Err(why) => http_util::error(401, why),
        Ok(_) if !echo.is_empty() => echo_auth(auth.as_deref().unwrap_or(""), &echo),
        Ok(caveats) => match body {
            None => http_util::error(413, "body too large"),
            Some(body) => {
                let machine = machine_of(caveats).unwrap_or_else(|| p.opts.machine.clone());
                answer(p, &machine, &method, &path, query.as_deref(), &body).await
            }
        },
    };
    let mut received = p.received.lock().unwrap();
    // Under load tests keep memory flat: full records for the first 10,000 requests only.
    let headers = if received.len() < 10_000 {
        headers
    } else {
        Vec::new()
    };
    received.push(Received {
        method,
        path,
        query,
        headers,
        body_bytes,
        auth_ok: verified.is_ok(),
        auth_error: verified.as_ref().err().cloned(),
        caveats: verified.unwrap_or_default(),
        status: resp.status().as_u16(),
    });
    drop(received);
    resp
}

/// A careless upstream's 401: the credential it got, in a header and in a body streamed in
/// 3-byte chunks (so a secret is split across chunk boundaries).
fn echo_auth(auth: &str, mode: &str) -> Response<ResBody> {
    use http_body_util::BodyExt;
    let page = format!("{{\"error\": \"token rejected: {auth}\", \"hint\": \"check {auth}\"}}");
    let chunks: Vec<Result<hyper::body::Frame<bytes::Bytes>, std::convert::Infallible>> = page
        .as_bytes()
        .chunks(3)
        .map(|c| Ok(hyper::body::Frame::data(bytes::Bytes::copy_from_slice(c))))
        .collect();
    let mut builder = Response::builder()
        .status(401)
        .header("content-type", "application/json")
        .header("content-length", page.len())
        .header("www-authenticate", format!("FlyV1 realm=\"{auth}\""));
    if mode == "gzip" {
        builder = builder.header("content-encoding", "gzip");
    }
    builder
        .body(http_body_util::StreamBody::new(futures_util::stream::iter(chunks)).boxed())
        .expect("response")
}

async fn answer(
    p: &Platform,
    token_machine: &str,
    method: &str,
    path: &str,
    query: Option<&str>,
    body: &[u8],
) -> Response<ResBody> {
    if (method, path) == ("POST", "/v1/tokens/oidc") {
        return crate::oidc::issue(p, token_machine, body);
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let ["v1", "apps", app, "machines", machine, rest @ ..] = segments.as_slice() else {
        return http_util::error(404, "not found");
    };
    if *app != p.opts.app || *machine != token_machine {
        return http_util::error(403, "the token is not for this app or machine");
    }
    match (method, rest) {
        ("GET", []) => http_util::json(
            200,
            &serde_json::json!({
                "id": p.opts.machine, "name": p.opts.machine, "state": "started",
                "region": "dev", "instance_id": "01DEVPLATFORM",
            }),
        ),
        ("GET", ["metadata"]) => {
            let md = p.metadata.lock().unwrap().clone();
            http_util::json(200, &serde_json::to_value(md).expect("json"))
        }
        ("POST", ["metadata", key]) => {
            let value = serde_json::from_slice::<serde_json::Value>(body)
                .ok()
                .and_then(|v| v.get("value").and_then(|v| v.as_str()).map(str::to_string));
            match value {
                Some(v) => {
                    p.metadata.lock().unwrap().insert(key.to_string(), v);
                    http_util::empty(204)
                }
                None => http_util::error(400, "body must be {\"value\": \"...\"}"),
            }
        }
        ("DELETE", ["metadata", key]) => {
            p.metadata.lock().unwrap().remove(*key);
            http_util::empty(204)
        }
        ("POST" | "GET", ["lease"]) => http_util::json(
            200,
            &serde_json::json!({"status": "success", "data": {"nonce": "dev-lease", "owner": "roost"}}),
        ),
        ("DELETE", ["lease"]) | ("POST", ["lease", "refresh"]) => {
            http_util::json(200, &serde_json::json!({"ok": true}))
        }
        ("POST", ["suspend"]) => http_util::json(200, &serde_json::json!({"ok": true})),
        ("GET", ["wait"]) => {
            // Like Fly's, wait blocks (here: for `timeout` seconds, at most 60).
            let secs = query
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("timeout=")))
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0)
                .min(60);
            tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
            http_util::json(200, &serde_json::json!({"ok": true}))
        }
        ("GET", ["blob"]) => {
            // Test and benchmark helper: N bytes, streamed.
            let bytes = query
                .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("bytes=")))
                .and_then(|n| n.parse().ok())
                .unwrap_or(1024u64);
            use http_body_util::BodyExt;
            Response::builder()
                .status(200)
                .header("content-type", "application/octet-stream")
                .header("content-length", bytes)
                .body(http_util::Generated { remaining: bytes }.boxed())
                .expect("response")
        }
        _ => http_util::error(404, "not found"),
    }
}
