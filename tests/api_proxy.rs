//! /.fly/api against the real devplatform, with roost as PID 1 of a fresh PID namespace.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::json;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

/// roost with the proxy, running a workload that waits for `stop`.
struct ProxyRig {
    scratch: Scratch,
    platform: DevPlatform,
    roost: Option<Running>,
    api: PathBuf,
}

impl ProxyRig {
    fn start(api: serde_json::Value) -> Self {
        Self::start_with(api, "")
    }

    /// `script` runs in the workload before it waits for the stop file.
    fn start_with(api: serde_json::Value, script: &str) -> Self {
        Self::start_full(api, script, None)
    }

    /// `listen`: where the devplatform listens (default: a Unix socket in the scratch dir).
    fn start_full(api: serde_json::Value, script: &str, listen: Option<&str>) -> Self {
        Self::start_platform(api, script, listen, &[])
    }

    fn start_platform(
        mut api: serde_json::Value,
        script: &str,
        listen: Option<&str>,
        platform_args: &[&str],
    ) -> Self {
        let scratch = Scratch::new();
        let socket = scratch.path("fly/api");
        api["SocketPath"] = json!(socket);
        let stop = scratch.path("stop");
        let base = json!({
            "ImageConfig": {
                "Cmd": ["/bin/sh", "-c",
                        format!("{script}\nwhile [ ! -e {} ]; do sleep 0.05; done", stop.display())],
                "WorkingDir": scratch.dir.path(),
            },
            "Api": api,
        });
        let platform = match listen {
            Some(addr) => DevPlatform::start_on(scratch.dir.path(), addr, &base, platform_args),
            None => DevPlatform::start(scratch.dir.path(), &base, platform_args),
        };
        let roost = Running::start(PID_NS, &platform.config);
        wait_for_file(&socket, T);
        ProxyRig {
            scratch,
            platform,
            roost: Some(roost),
            api: socket,
        }
    }

    fn machine_path(&self, rest: &str) -> String {
        format!("/v1/apps/{APP}/machines/{MACHINE}{rest}")
    }

    fn roost_pid(&self) -> i32 {
        self.roost.as_ref().expect("running").roost_pid()
    }

    fn finish(mut self) -> (Finished, DevPlatform, Scratch) {
        std::fs::write(self.scratch.path("stop"), b"").expect("stop file");
        let finished = self.roost.take().expect("running").wait(T);
        finished.assert_code(0);
        (finished, self.platform, self.scratch)
    }
}

#[test]
fn macaroon_is_attached_and_verified_and_caller_credentials_never_reach_upstream() {
    let rig = ProxyRig::start(json!({}));
    let token = rig.platform.token();

    // The socket: root only, in a directory roost created.
    let meta = std::fs::metadata(&rig.api).expect("socket");
    assert_eq!(meta.mode() & 0o777, 0o600);
    assert_eq!((meta.uid(), meta.gid()), (0, 0));

    let metadata = rig.machine_path("/metadata");
    let r = http(
        &rig.api,
        "GET",
        &metadata,
        &[("Authorization", "Bearer caller-secret")],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json(), json!({}));
    let request_id = r.header("x-request-id").expect("request id").to_string();

    let r = http(
        &rig.api,
        "POST",
        &rig.machine_path("/metadata/role"),
        &[("Content-Type", "application/json")],
        br#"{"value": "web"}"#,
    );
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        http(&rig.api, "GET", &metadata, &[], b"").json(),
        json!({"role": "web"})
    );

    // The OIDC token endpoint answers a raw JWT for this machine.
    let r = http(
        &rig.api,
        "POST",
        "/v1/tokens/oidc",
        &[],
        br#"{"aud": "sts.amazonaws.com"}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let jwt = r.text();
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    use base64::Engine;
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .expect("base64 claims"),
    )
    .expect("claims");
    assert_eq!(claims["sub"], format!("{APP}:{MACHINE}"));
    assert_eq!(claims["aud"], "sts.amazonaws.com");

    let received = rig.platform.requests();
    assert_eq!(received.len(), 4, "{received:#?}");
    for req in &received {
        assert_eq!(req["auth_ok"], true, "{req:#}");
        let headers = req["headers"].as_array().expect("headers");
        let auth: Vec<&str> = headers
            .iter()
            .filter(|h| h[0] == "authorization")
            .filter_map(|h| h[1].as_str())
            .collect();
        assert_eq!(
            auth,
            [format!("FlyV1 {token}")],
            "exactly one Authorization"
        );
        assert!(
            !req["headers"].to_string().contains("caller-secret"),
            "the caller's credential reached upstream: {req:#}"
        );
        assert!(headers.iter().any(|h| h[0] == "x-request-id"));
    }
    assert!(received[0]["headers"].to_string().contains(&request_id));

    let (finished, _platform, _scratch) = rig.finish();
    let audit: Vec<&str> = finished
        .stderr
        .lines()
        .filter(|l| l.contains("api pid="))
        .collect();
    assert_eq!(audit.len(), 4, "{}", finished.stderr);
    assert!(audit[0].contains(&format!("method=GET path={metadata} status=200")));
    assert!(audit[0].contains("uid=0"));
    assert!(audit.iter().all(|l| l.contains("outcome=ok")), "{audit:#?}");
    assert!(audit[0].contains(&format!("request_id={request_id}")));
    assert!(!finished.stderr.contains(&token) && !finished.stdout.contains(&token));
}

#[test]
fn refusals_never_reach_upstream() {
    let rig = ProxyRig::start(json!({}));
    let other_machine = format!("/v1/apps/{APP}/machines/m-other/metadata");
    let other_app = format!("/v1/apps/other-app/machines/{MACHINE}/metadata");
    type Case<'a> = (String, Vec<(&'a str, &'a str)>, u16);
    let cases: Vec<Case> = vec![
        (other_machine, vec![], 403),
        (other_app, vec![], 403),
        (rig.machine_path("%2F..%2Fm-other/metadata"), vec![], 400),
        (
            format!("/v1/apps/{APP}/machines/{MACHINE}/../m-other/metadata"),
            vec![],
            400,
        ),
        (
            rig.machine_path("/metadata"),
            vec![("X-Forwarded-For", "10.1.2.3")],
            400,
        ),
        (
            rig.machine_path("/metadata"),
            vec![("Forwarded", "for=10.1.2.3")],
            400,
        ),
        ("/v1/apps".to_string(), vec![], 404),
        ("/_dev/requests".to_string(), vec![], 404),
    ];
    for (path, headers, want) in &cases {
        let r = http(&rig.api, "GET", path, headers, b"");
        assert_eq!(r.status, *want, "{path} {headers:?}: {}", r.text());
        assert!(r.json()["error"].is_string(), "JSON error for {path}");
    }

    // Bodies over the 1 MiB default cap: declared, and chunked without a length.
    let big = vec![b'a'; 2 * 1024 * 1024];
    let r = http(
        &rig.api,
        "POST",
        &rig.machine_path("/metadata/big"),
        &[],
        &big,
    );
    assert_eq!(r.status, 413, "{}", r.text());
    let mut chunked = format!(
        "POST {} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n",
        rig.machine_path("/metadata/big")
    )
    .into_bytes();
    for _ in 0..32 {
        chunked.extend_from_slice(format!("{:x}\r\n", 65536).as_bytes());
        chunked.extend_from_slice(&[b'a'; 65536]);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = http_raw(&rig.api, &chunked);
    assert_eq!(r.status, 413, "{}", r.text());

    assert!(
        rig.platform
            .requests()
            .iter()
            .all(|r| r["auth_ok"] == true && r["body_bytes"].as_u64() < Some(1024 * 1024)),
        "{:#?}",
        rig.platform.requests()
    );
    let (finished, _, _) = rig.finish();
    assert_eq!(
        finished.stderr.matches("api pid=").count(),
        cases.len() + 2,
        "one audit line per request: {}",
        finished.stderr
    );
}

#[test]
fn a_uid_that_is_not_allowed_gets_403() {
    // Several allowed uids: no single owner expresses them, so the socket is
    // world-connectable and SO_PEERCRED decides.
    let rig = ProxyRig::start(json!({"AllowUids": [0, 1000, 1001]}));
    let meta = std::fs::metadata(&rig.api).expect("socket");
    assert_eq!(meta.permissions().mode() & 0o777, 0o666);
    // The scratch dir is 0755, so nobody can reach the socket inside it.
    let out = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "curl",
            "-s",
        ])
        .arg("--unix-socket")
        .arg(&rig.api)
        .args([
            "-w",
            "\n%{http_code}",
            "-X",
            "POST",
            "http://localhost/v1/tokens/oidc",
        ])
        .output()
        .expect("run curl as nobody");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.ends_with("\n403"),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("uid 65534"), "{text}");
    // Root still gets through.
    let r = http(&rig.api, "POST", "/v1/tokens/oidc", &[], b"{}");
    assert_eq!(r.status, 200, "{}", r.text());
    let (finished, platform, _scratch) = rig.finish();
    assert_eq!(
        platform.requests().len(),
        1,
        "the refused call reached upstream"
    );
    assert!(finished
        .stderr
        .contains("uid=65534 gid=65534 method=POST path=/v1/tokens/oidc status=403"));
}

#[test]
fn large_responses_stream_through_without_buffering() {
    let blob = "GET /v1/apps/{app}/machines/{machine}/blob";
    let rig = ProxyRig::start(json!({ "Paths": [blob] }));
    let five_mib = 5 * 1024 * 1024;
    let r = http(
        &rig.api,
        "GET",
        &rig.machine_path(&format!("/blob?bytes={five_mib}")),
        &[],
        b"",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), five_mib);
    assert!(r.body.iter().all(|&b| b == b'x'));
    // 128 MiB through a PID 1 whose peak RSS stays far below it: nothing is buffered whole.
    let big = 128 * 1024 * 1024;
    let r = http(
        &rig.api,
        "GET",
        &rig.machine_path(&format!("/blob?bytes={big}")),
        &[],
        b"",
    );
    assert_eq!(r.body.len(), big);
    let status =
        std::fs::read_to_string(format!("/proc/{}/status", rig.roost_pid())).expect("status");
    let hwm_kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .expect("VmHWM");
    assert!(hwm_kib < 48 * 1024, "roost peaked at {hwm_kib} KiB");
    // The default allow-list is replaced, not extended.
    assert_eq!(
        http(&rig.api, "POST", "/v1/tokens/oidc", &[], b"{}").status,
        404
    );
    rig.finish();
}

#[test]
fn upstream_down_gives_502_quickly_and_the_proxy_recovers() {
    let mut rig = ProxyRig::start(json!({}));
    let path = rig.machine_path("/metadata");
    assert_eq!(http(&rig.api, "GET", &path, &[], b"").status, 200);
    rig.platform.stop();
    let t0 = Instant::now();
    let r = http(&rig.api, "GET", &path, &[], b"");
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(
        r.json()["error"].as_str().unwrap_or("").contains("connect"),
        "{}",
        r.text()
    );
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "502 took {:?}",
        t0.elapsed()
    );
    rig.platform.restart();
    let r = http(&rig.api, "GET", &path, &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    rig.finish();
}

#[test]
fn http_upstream_over_loopback() {
    let rig = ProxyRig::start_full(json!({}), "", Some("127.0.0.1:0"));
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&rig.platform.config).expect("config"))
            .expect("json");
    let upstream = config["Api"]["Upstream"].as_str().expect("upstream");
    assert!(upstream.starts_with("http://127.0.0.1:"), "{upstream}");
    // The devplatform answers 401 to an unverified macaroon; 200 means it verified ours.
    let r = http(&rig.api, "GET", &rig.machine_path("/metadata"), &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    let r = http(&rig.api, "POST", "/v1/tokens/oidc", &[], br#"{"aud": "x"}"#);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.text().split('.').count(), 3);
    rig.finish();
}

#[test]
fn https_upstream_is_verified_with_rustls() {
    // The CA file is written by the devplatform before roost starts; the scratch dir is
    // created by the rig, so name the file by a path the test knows in advance.
    let ca_dir = tempfile::tempdir().expect("tempdir");
    let ca = ca_dir.path().join("ca.pem");
    let ca_arg = ca.display().to_string();
    let rig = ProxyRig::start_platform(
        json!({ "UpstreamCaFile": ca }),
        "",
        Some("127.0.0.1:0"),
        &["--tls-ca-out", &ca_arg],
    );
    let r = http(&rig.api, "GET", &rig.machine_path("/metadata"), &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    rig.finish();

    // Without the private CA, the platform's certificate is refused: 502, nothing sent.
    let rig = ProxyRig::start_platform(
        json!({}),
        "",
        Some("127.0.0.1:0"),
        &["--tls-ca-out", &ca_arg],
    );
    let r = http(&rig.api, "GET", &rig.machine_path("/metadata"), &[], b"");
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("certificate"), "{}", r.text());
    rig.finish();
}

#[test]
fn a_slow_upstream_gives_504_within_the_time_limit() {
    let rig = ProxyRig::start(json!({ "RequestTimeoutSeconds": 1 }));
    let t0 = Instant::now();
    let r = http(
        &rig.api,
        "GET",
        &rig.machine_path("/wait?timeout=30"),
        &[],
        b"",
    );
    assert_eq!(r.status, 504, "{}", r.text());
    assert!(r.json()["error"].is_string());
    assert!(
        t0.elapsed() < Duration::from_secs(10),
        "504 took {:?}",
        t0.elapsed()
    );
    // The proxy still answers.
    assert_eq!(
        http(&rig.api, "GET", &rig.machine_path("/wait"), &[], b"").status,
        200
    );
    rig.finish();
}

#[test]
fn attenuated_tokens_are_narrow_and_short_lived() {
    let rig = ProxyRig::start(json!({ "Attenuate": true }));
    let token = rig.platform.token();
    let path = rig.machine_path("/metadata");
    assert_eq!(http(&rig.api, "GET", &path, &[], b"").status, 200);
    let received = rig.platform.requests();
    let req = &received[0];
    assert_eq!(req["auth_ok"], true, "{req:#}");
    let caveats: Vec<String> = serde_json::from_value(req["caveats"].clone()).expect("caveats");
    assert!(caveats.contains(&format!("machine_id = {MACHINE}")));
    assert!(caveats.contains(&"method = GET".to_string()));
    assert!(caveats.contains(&format!("path = {path}")));
    assert!(
        caveats.iter().any(|c| c.starts_with("time < ")),
        "{caveats:?}"
    );
    let sent = req["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .find(|h| h[0] == "authorization")
        .and_then(|h| h[1].as_str())
        .expect("authorization")
        .to_string();
    assert_ne!(
        sent,
        format!("FlyV1 {token}"),
        "the token was not attenuated"
    );
    // Replayed elsewhere, the attenuated token is worthless.
    let r = http(
        &rig.platform.socket,
        "POST",
        "/v1/tokens/oidc",
        &[("Authorization", &sent)],
        b"{}",
    );
    assert_eq!(r.status, 401, "{}", r.text());
    rig.finish();
}

/// Every file below `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            match entry.file_type() {
                Ok(t) if t.is_dir() => stack.push(path),
                Ok(t) if t.is_file() => out.push(path),
                _ => {}
            }
        }
    }
    out
}

#[test]
fn the_macaroon_reaches_no_child_env_no_file_and_no_log() {
    // The workload and a child of it write out what they can see of themselves.
    let rig = ProxyRig::start_with(
        json!({}),
        "env > workload.env; sh -c 'env > child.env; cat /proc/self/cmdline > child.cmdline; sleep 30' & sleep 0.3",
    );
    let token = rig.platform.token();
    wait_for_file(&rig.scratch.path("child.cmdline"), T);
    assert_eq!(
        http(&rig.api, "GET", &rig.machine_path(""), &[], b"").status,
        200
    );
    // Every process on the machine (roost, the workload, its children): environ and cmdline.
    let mut scanned = 0;
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        for file in ["environ", "cmdline"] {
            if let Ok(bytes) = std::fs::read(entry.path().join(file)) {
                scanned += 1;
                assert!(
                    !String::from_utf8_lossy(&bytes).contains(&token),
                    "the token is in {}/{file}",
                    entry.path().display()
                );
            }
        }
    }
    assert!(scanned > 10);
    let (finished, _platform, scratch) = rig.finish();
    // The run config holds the token by necessity (container mode reads it from a file).
    let config = scratch.path("config.json");
    for file in files_under(scratch.dir.path()) {
        if file == config {
            continue;
        }
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&bytes).contains(&token),
            "the token is in {}",
            file.display()
        );
    }
    assert!(!finished.stdout.contains(&token));
    assert!(!finished.stderr.contains(&token));
    assert!(finished.stderr.contains("api pid="));
}

#[test]
fn no_answer_carries_the_token_in_its_body_or_headers_attenuated_or_not() {
    for attenuate in [false, true] {
        let rig = ProxyRig::start(json!({ "Attenuate": attenuate }));
        let token = rig.platform.token();
        let r = http(
            &rig.platform.socket,
            "POST",
            "/_dev/echo-auth",
            &[],
            b"echo",
        );
        assert_eq!(r.status, 204);
        let r = http(&rig.api, "GET", &rig.machine_path("/metadata"), &[], b"");
        assert_eq!(r.status, 401, "{}", r.text());
        let text = r.text();
        // The body quotes the Authorization the upstream got; every macaroon in it is masked
        // (with attenuation that is a token the config never held).
        assert!(text.contains("token rejected: FlyV1 [redacted]"), "{text}");
        assert!(!text.contains("fm2_"), "a macaroon came back: {text}");
        for part in token.split(',') {
            assert!(!text.contains(part.trim()), "{text}");
        }
        assert_eq!(
            r.header("content-length").and_then(|l| l.parse().ok()),
            Some(r.body.len()),
            "the length stays true"
        );
        assert!(r.header("www-authenticate").is_none(), "{:?}", r.headers);

        // A compressed answer could hide the token: refused.
        http(
            &rig.platform.socket,
            "POST",
            "/_dev/echo-auth",
            &[],
            b"gzip",
        );
        let r = http(&rig.api, "GET", &rig.machine_path("/metadata"), &[], b"");
        assert_eq!(r.status, 502, "{}", r.text());
        assert!(!r.text().contains("fm2_"));
        http(&rig.platform.socket, "POST", "/_dev/echo-auth", &[], b"");
        let (finished, _platform, _scratch) = rig.finish();
        assert!(!finished.stderr.contains("fm2_"), "{}", finished.stderr);
    }
}

#[test]
fn override_and_identity_headers_are_refused_and_unknown_headers_dropped() {
    let rig = ProxyRig::start(json!({}));
    let metadata = rig.machine_path("/metadata");
    for name in [
        "X-HTTP-Method-Override",
        "X-Method-Override",
        "X-HTTP-Method",
        "X-Original-URL",
        "X-Rewrite-URL",
        "X-Real-IP",
        "Fly-Client-IP",
        "True-Client-IP",
        "X-Forwarded-Host",
        "X-Forwarded-Proto",
    ] {
        let r = http(&rig.api, "GET", &metadata, &[(name, "DELETE")], b"");
        assert_eq!(r.status, 400, "{name}: {}", r.text());
        assert!(
            r.text()
                .to_ascii_lowercase()
                .contains(&name.to_ascii_lowercase()),
            "{}",
            r.text()
        );
    }
    assert!(
        rig.platform.requests().is_empty(),
        "a refused request reached the upstream"
    );
    let r = http(
        &rig.api,
        "GET",
        &metadata,
        &[
            ("X-Custom", "1"),
            ("Cookie", "session=abc"),
            ("Accept-Encoding", "gzip"),
            ("Fly-Machine-Lease-Nonce", "nonce-1"),
            ("Accept", "application/json"),
        ],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let received = rig.platform.requests();
    let headers: Vec<(String, String)> = received[0]["headers"]
        .as_array()
        .expect("headers")
        .iter()
        .map(|h| {
            (
                h[0].as_str().unwrap_or("").to_string(),
                h[1].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let names: Vec<&str> = headers.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        !names.contains(&"x-custom") && !names.contains(&"cookie"),
        "{names:?}"
    );
    assert!(
        headers.contains(&("fly-machine-lease-nonce".into(), "nonce-1".into())),
        "{headers:?}"
    );
    assert!(
        headers.contains(&("accept-encoding".into(), "identity".into())),
        "{headers:?}"
    );
    rig.finish();
}
