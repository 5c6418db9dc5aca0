//! The OIDC issuer: RS256 JWTs for the machine, discovery document and JWKS.

use crate::http_util::{self, ResBody};
use crate::Platform;
use base64::Engine;
use hyper::Response;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rsa::pkcs1::EncodeRsaPrivateKey;
use rsa::traits::PublicKeyParts;
use std::time::{SystemTime, UNIX_EPOCH};

pub struct Signer {
    key: EncodingKey,
    kid: String,
    n: String,
    e: String,
}

impl Signer {
    /// A fresh 2048-bit RSA key for this run.
    pub fn generate() -> Self {
        let private = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 2048).expect("RSA key");
        let der = private.to_pkcs1_der().expect("DER");
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let n = b64.encode(private.n().to_bytes_be());
        let e = b64.encode(private.e().to_bytes_be());
        let kid = format!("dev-{}", &n[..12]);
        Signer {
            key: EncodingKey::from_rsa_der(der.as_bytes()),
            kid,
            n,
            e,
        }
    }
}

pub fn discovery(p: &Platform) -> Response<ResBody> {
    http_util::json(
        200,
        &serde_json::json!({
            "issuer": p.issuer,
            "jwks_uri": format!("{}/.well-known/jwks.json", p.issuer),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "claims_supported": ["iss", "sub", "aud", "exp", "iat", "nbf", "jti", "app_name", "machine_id"],
        }),
    )
}

pub fn jwks(p: &Platform) -> Response<ResBody> {
    http_util::json(
        200,
        &serde_json::json!({ "keys": [{
            "kty": "RSA", "alg": "RS256", "use": "sig",
            "kid": p.signer.kid, "n": p.signer.n, "e": p.signer.e,
        }]}),
    )
}

/// `POST /v1/tokens/oidc {"aud": ...}`: a raw JWT, as Fly answers.
pub fn issue(p: &Platform, machine: &str, body: &[u8]) -> Response<ResBody> {
    {
        let mut failures = p.oidc_failures.lock().unwrap();
        if *failures > 0 {
            *failures -= 1;
            return http_util::error(503, "injected failure");
        }
    }
    let aud = if body.is_empty() {
        format!("https://fly.io/{}", p.opts.app)
    } else {
        match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(v) => v
                .get("aud")
                .and_then(|a| a.as_str())
                .map(str::to_string)
                .unwrap_or_else(|| format!("https://fly.io/{}", p.opts.app)),
            Err(_) => return http_util::error(400, "body must be JSON"),
        }
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut jti = [0u8; 12];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut jti);
    let claims = serde_json::json!({
        "iss": p.issuer,
        "sub": format!("{}:{}", p.opts.app, machine),
        "aud": aud,
        "iat": now,
        "nbf": now,
        "exp": now + p.opts.token_lifetime,
        "jti": jti.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "machine_id": machine,
        "app_name": p.opts.app,
    });
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(p.signer.kid.clone());
    match jsonwebtoken::encode(&header, &claims, &p.signer.key) {
        Ok(jwt) => http_util::full(200, "text/plain; charset=utf-8", jwt),
        Err(e) => http_util::error(500, &format!("signing failed: {e}")),
    }
}
