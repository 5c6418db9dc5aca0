//! Firecracker's MMDS, version 2, as the guest sees it at 169.254.169.254 (the VM test forwards
//! that address here): session tokens, exact `Accept: application/json`, 404 until the host
//! has put data, 401 without a valid token, and a "snapshot restore" that forgets both.

use crate::http_util::{self, Req, ResBody};
use crate::Platform;
use hyper::Response;
use std::collections::HashMap;
use std::time::{Duration, Instant};

#[derive(Debug, Default)]
pub struct MmdsState {
    pub data: Option<serde_json::Value>,
    tokens: HashMap<String, Instant>,
}

fn header<'a>(req: &'a Req, names: &[&str]) -> Option<&'a str> {
    names
        .iter()
        .find_map(|n| req.headers().get(*n))
        .and_then(|v| v.to_str().ok())
}

pub async fn handle(p: &Platform, req: Req) -> Response<ResBody> {
    if req.headers().contains_key("x-forwarded-for") {
        return http_util::full(400, "text/plain", "X-Forwarded-For is not allowed");
    }
    match req.method().as_str() {
        "PUT" if req.uri().path() == "/latest/api/token" => {
            let ttl = header(
                &req,
                &[
                    "x-metadata-token-ttl-seconds",
                    "x-aws-ec2-metadata-token-ttl-seconds",
                ],
            )
            .and_then(|v| v.trim().parse::<u64>().ok());
            let Some(ttl) = ttl.filter(|t| (1..=21600).contains(t)) else {
                return http_util::full(400, "text/plain", "invalid or missing token TTL");
            };
            let mut raw = [0u8; 24];
            rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut raw);
            let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
            p.mmds
                .lock()
                .unwrap()
                .tokens
                .insert(token.clone(), Instant::now() + Duration::from_secs(ttl));
            http_util::full(200, "text/plain", token)
        }
        "GET" => {
            let token = header(&req, &["x-metadata-token", "x-aws-ec2-metadata-token"]);
            let state = p.mmds.lock().unwrap();
            let valid = token
                .and_then(|t| state.tokens.get(t))
                .is_some_and(|exp| *exp > Instant::now());
            if !valid {
                return http_util::full(401, "text/plain", "missing or invalid MMDS token");
            }
            let Some(data) = &state.data else {
                return http_util::full(404, "text/plain", "MMDS data store is empty");
            };
            let pointer = req.uri().path().trim_end_matches('/');
            let Some(value) = data.pointer(pointer) else {
                return http_util::full(404, "text/plain", "resource not found");
            };
            // Firecracker answers JSON only for exactly this Accept value.
            if header(&req, &["accept"]) == Some("application/json") {
                return http_util::json(200, value);
            }
            http_util::full(200, "text/plain", imds_text(value))
        }
        _ => http_util::full(405, "text/plain", "method not allowed"),
    }
}

/// The IMDS text format: an object lists its keys (objects with a trailing `/`).
fn imds_text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Object(map) => map
            .iter()
            .map(|(k, v)| {
                if v.is_object() {
                    format!("{k}/")
                } else {
                    k.clone()
                }
            })
            .collect::<Vec<_>>()
            .join("\n"),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub async fn put_data(p: &Platform, req: Req) -> Response<ResBody> {
    let Some(body) = http_util::read_body(req, 1024 * 1024).await else {
        return http_util::error(413, "too large");
    };
    match serde_json::from_slice(&body) {
        Ok(v) => {
            p.mmds.lock().unwrap().data = Some(v);
            http_util::empty(204)
        }
        Err(e) => http_util::error(400, &e.to_string()),
    }
}

/// What a snapshot restore does to MMDS: every token is invalid and the store is empty.
pub fn restore(p: &Platform) -> Response<ResBody> {
    let mut state = p.mmds.lock().unwrap();
    state.tokens.clear();
    state.data = None;
    http_util::empty(204)
}
