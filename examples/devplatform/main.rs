//! devplatform: a stand-in for the platform around a roost VM, speaking the real protocols, for
//! the demo, the tests and the benchmarks. Not production code; never shipped in the roost
//! binary.
//!
//! - the Machines API subset behind `/.fly/api`, with macaroon verification (root key, the
//!   token's own caveats and roost's attenuation caveats), recording what it received;
//! - an OIDC issuer: `POST /v1/tokens/oidc` returns an RS256 JWT, with discovery and JWKS;
//! - Firecracker's MMDS V2 on a second listener, for the VM test;
//! - `/_dev/...` endpoints for tests: what was received, MMDS data, fault switches.
//!
//! ```text
//! devplatform --listen unix:/path/platform.sock | 127.0.0.1:4280
//!             [--mmds-listen 127.0.0.1:8169] [--mmds-data FILE]
//!             [--app NAME] [--machine ID] [--token-lifetime SECS] [--issuer URL]
//!             [--root-key-file FILE] [--write-config FILE [--base-config FILE] [--upstream URL]]
//!             [--print-token] [--ready-file FILE] [--tls-ca-out FILE]
//!
//! `--tls-ca-out FILE`: serve HTTPS on the TCP listener with a certificate from a fresh
//! private CA, whose certificate goes to FILE (for roost's `Api.UpstreamCaFile`).
//! ```
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    missing_debug_implementations
)]

mod http_util;
mod machines;
mod mmds;
mod oidc;

use http_util::{Listener, ResBody};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Command-line options.
#[derive(Debug, Clone)]
pub struct Options {
    pub listen: String,
    pub mmds_listen: Option<String>,
    pub mmds_data: Option<PathBuf>,
    pub app: String,
    pub machine: String,
    pub token_lifetime: u64,
    pub issuer: Option<String>,
    pub root_key_file: Option<PathBuf>,
    pub write_config: Option<PathBuf>,
    pub base_config: Option<PathBuf>,
    pub upstream: Option<String>,
    pub print_token: bool,
    pub ready_file: Option<PathBuf>,
    pub tls_ca_out: Option<PathBuf>,
}

fn parse_options() -> Options {
    let mut o = Options {
        listen: "127.0.0.1:4280".into(),
        mmds_listen: None,
        mmds_data: None,
        app: "demo-app".into(),
        machine: "e2865d0f9e3d87".into(),
        token_lifetime: 600,
        issuer: None,
        root_key_file: None,
        write_config: None,
        base_config: None,
        upstream: None,
        print_token: false,
        ready_file: None,
        tls_ca_out: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--listen" => o.listen = value(),
            "--mmds-listen" => o.mmds_listen = Some(value()),
            "--mmds-data" => o.mmds_data = Some(value().into()),
            "--app" => o.app = value(),
            "--machine" => o.machine = value(),
            "--token-lifetime" => o.token_lifetime = value().parse().expect("seconds"),
            "--issuer" => o.issuer = Some(value()),
            "--root-key-file" => o.root_key_file = Some(value().into()),
            "--write-config" => o.write_config = Some(value().into()),
            "--base-config" => o.base_config = Some(value().into()),
            "--upstream" => o.upstream = Some(value()),
            "--print-token" => o.print_token = true,
            "--ready-file" => o.ready_file = Some(value().into()),
            "--tls-ca-out" => o.tls_ca_out = Some(value().into()),
            other => {
                panic!("unknown argument {other}; see the header of examples/devplatform/main.rs")
            }
        }
    }
    o
}

/// One request as the platform received it (for tests: `GET /_dev/requests`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body_bytes: usize,
    /// Whether the macaroon verified, and why not.
    pub auth_ok: bool,
    pub auth_error: Option<String>,
    /// The first-party caveats of the token that came with the request.
    pub caveats: Vec<String>,
    pub status: u16,
}

/// Shared state of the platform.
pub struct Platform {
    pub opts: Options,
    pub issuer: String,
    pub root_key: libmacaroon::MacaroonKey,
    pub token: String,
    pub signer: oidc::Signer,
    pub received: Mutex<Vec<Received>>,
    pub metadata: Mutex<std::collections::BTreeMap<String, String>>,
    pub mmds: Mutex<mmds::MmdsState>,
    /// The machines whose tokens verify: `--machine`, and every clone minted since.
    pub machines: Mutex<std::collections::BTreeSet<String>>,
    /// Fault switch for tests: answer the next N OIDC requests with 503.
    pub oidc_failures: Mutex<u32>,
    /// Fault switch for tests: answer machine requests like a careless upstream, with a 401
    /// page quoting the Authorization header it got ("echo"), or that and a body marked
    /// gzip-encoded ("gzip"). Empty: off.
    pub echo_auth: Mutex<String>,
}

fn root_key(path: Option<&PathBuf>) -> libmacaroon::MacaroonKey {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD;
    if let Some(path) = path {
        if let Ok(text) = std::fs::read_to_string(path) {
            let bytes = b64.decode(text.trim()).expect("root key file holds base64");
            return libmacaroon::MacaroonKey::generate(&bytes);
        }
    }
    let mut seed = [0u8; 32];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut seed);
    if let Some(path) = path {
        std::fs::write(path, b64.encode(seed)).expect("write root key file");
        std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .expect("chmod root key file");
    }
    libmacaroon::MacaroonKey::generate(&seed)
}

fn main() {
    let opts = parse_options();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run(opts));
}

async fn run(opts: Options) {
    let mut listener = Listener::bind(&opts.listen).await;
    if let (Some(ca_out), Listener::Tcp(_)) = (&opts.tls_ca_out, &listener) {
        let (acceptor, ca_pem) = http_util::tls_acceptor();
        std::fs::write(ca_out, ca_pem).expect("write the CA certificate");
        if let Listener::Tcp(tcp) = listener {
            listener = Listener::Tls(tcp, acceptor);
        }
    }
    // The address as bound (port 0 picks a free port).
    let bound = match &listener {
        Listener::Tcp(l) => format!("http://{}", l.local_addr().expect("addr")),
        Listener::Tls(l, _) => format!("https://{}", l.local_addr().expect("addr")),
        Listener::Unix(_) => format!("unix://{}", opts.listen.trim_start_matches("unix:")),
    };
    let issuer = opts.issuer.clone().unwrap_or_else(|| match &listener {
        Listener::Tcp(_) | Listener::Tls(..) => bound.clone(),
        Listener::Unix(_) => "https://oidc.devplatform.invalid".to_string(),
    });
    let key = root_key(opts.root_key_file.as_ref());
    let token = machines::mint_token(&key, &opts.app, &opts.machine);
    let platform = Arc::new(Platform {
        issuer,
        root_key: key,
        token: token.clone(),
        signer: oidc::Signer::generate(),
        received: Mutex::new(Vec::new()),
        metadata: Mutex::new(Default::default()),
        mmds: Mutex::new(mmds::MmdsState::default()),
        machines: Mutex::new([opts.machine.clone()].into()),
        oidc_failures: Mutex::new(0),
        echo_auth: Mutex::new(String::new()),
        opts: opts.clone(),
    });

    if let Some(path) = &opts.mmds_data {
        let data = std::fs::read_to_string(path).expect("read --mmds-data");
        platform.mmds.lock().unwrap().data = Some(serde_json::from_str(&data).expect("JSON"));
    }
    if let Some(path) = &opts.write_config {
        write_config(&platform, path, &bound);
    }
    if opts.print_token {
        println!("{token}");
    }
    let mut mmds_bound = None;
    if let Some(addr) = &opts.mmds_listen {
        let mmds_listener = Listener::bind(addr).await;
        if let Listener::Tcp(l) = &mmds_listener {
            mmds_bound = l.local_addr().ok().map(|a| a.to_string());
        }
        let p = platform.clone();
        tokio::spawn(mmds_listener.serve(move |req| {
            let p = p.clone();
            async move { mmds::handle(&p, req).await }
        }));
    }
    eprintln!(
        "devplatform: app {} machine {} on {bound} (issuer {})",
        opts.app, opts.machine, platform.issuer
    );
    if let Some(path) = &opts.ready_file {
        // What a harness needs to know: the bound addresses.
        let ready = serde_json::json!({ "api": bound, "mmds": mmds_bound });
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, ready.to_string()).expect("ready file");
        std::fs::rename(&tmp, path).expect("ready file");
    }
    let p = platform.clone();
    listener
        .serve(move |req| {
            let p = p.clone();
            async move { route(&p, req).await }
        })
        .await;
}

/// Writes a ready run config: the base config (if any) with identity and Api filled in.
fn write_config(platform: &Platform, path: &PathBuf, bound: &str) {
    let opts = &platform.opts;
    let mut config: serde_json::Value = match &opts.base_config {
        Some(base) => serde_json::from_str(&std::fs::read_to_string(base).expect("base config"))
            .expect("base config is JSON"),
        None => serde_json::json!({}),
    };
    let upstream = opts.upstream.clone().unwrap_or_else(|| bound.to_string());
    config["AppName"] = opts.app.clone().into();
    config["MachineId"] = opts.machine.clone().into();
    let api = config
        .as_object_mut()
        .expect("config is an object")
        .entry("Api")
        .or_insert_with(|| serde_json::json!({}));
    api["Upstream"] = upstream.into();
    api["Token"] = platform.token.clone().into();
    std::fs::write(path, serde_json::to_string_pretty(&config).expect("json")).expect("write");
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .expect("chmod config");
}

async fn route(p: &Platform, req: http_util::Req) -> hyper::Response<ResBody> {
    let path = req.uri().path().to_string();
    match (req.method().as_str(), path.as_str()) {
        ("GET", "/.well-known/openid-configuration") => oidc::discovery(p),
        ("GET", "/.well-known/jwks.json") => oidc::jwks(p),
        ("GET", "/_dev/requests") => {
            let list = p.received.lock().unwrap().clone();
            http_util::json(200, &serde_json::to_value(list).expect("json"))
        }
        ("GET", "/_dev/stats") => {
            let list = p.received.lock().unwrap();
            let ok = list.iter().filter(|r| r.auth_ok).count();
            http_util::json(
                200,
                &serde_json::json!({ "total": list.len(), "auth_ok": ok, "auth_failed": list.len() - ok }),
            )
        }
        ("DELETE", "/_dev/requests") => {
            p.received.lock().unwrap().clear();
            http_util::empty(204)
        }
        ("PUT", "/_dev/mmds") => mmds::put_data(p, req).await,
        ("POST", "/_dev/mmds/restore") => mmds::restore(p),
        // A clone of the machine: a macaroon of its own (the body is its machine id), which
        // verifies from now on.
        ("POST", "/_dev/mint") => match http_util::read_body(req, 256).await {
            Some(body) => {
                let machine = String::from_utf8_lossy(&body).trim().to_string();
                if machine.is_empty() || machine.contains(char::is_whitespace) {
                    return http_util::error(400, "the body is the clone's machine id");
                }
                p.machines.lock().unwrap().insert(machine.clone());
                http_util::full(
                    200,
                    "text/plain",
                    machines::mint_token(&p.root_key, &p.opts.app, &machine),
                )
            }
            None => http_util::error(413, "too large"),
        },
        ("POST", "/_dev/oidc-failures") => {
            let body = http_util::read_body(req, 1024).await.unwrap_or_default();
            *p.oidc_failures.lock().unwrap() =
                String::from_utf8_lossy(&body).trim().parse().unwrap_or(0);
            http_util::empty(204)
        }
        ("POST", "/_dev/echo-auth") => {
            let body = http_util::read_body(req, 1024).await.unwrap_or_default();
            *p.echo_auth.lock().unwrap() = String::from_utf8_lossy(&body).trim().to_string();
            http_util::empty(204)
        }
        _ => machines::handle(p, req).await,
    }
}
