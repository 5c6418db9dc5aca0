//! The OIDC broker against the devplatform as issuer, with roost as PID 1: a real AWS SDK,
//! rotation under a reader loop, file ownership, issuer outages, GCP and Azure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::json;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(120);

/// The test venv (boto3, moto, PyJWT): `ROOST_TEST_VENV`, else `target/test-venv`, made here
/// on first use (under a lock, for the tests that run in parallel) from
/// `tests/python/requirements.txt`, as the demo does.
fn venv_python() -> PathBuf {
    let venv = std::env::var_os("ROOST_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-venv"));
    let python = venv.join("bin/python3");
    static MADE: std::sync::Mutex<bool> = std::sync::Mutex::new(false);
    let mut made = MADE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if *made {
        return python;
    }
    let ready = || {
        python.exists()
            && Command::new(&python)
                .args(["-c", "import boto3, moto, jwt"])
                .status()
                .is_ok_and(|s| s.success())
    };
    if !ready() {
        let requirements =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/requirements.txt");
        let created = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&venv)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            created,
            "cannot create the test venv {}: python3 with venv is needed (Debian: apt-get install python3-venv)",
            venv.display()
        );
        let installed = Command::new(venv.join("bin/pip"))
            .args(["install", "-q", "--disable-pip-version-check", "-r"])
            .arg(&requirements)
            .status()
            .is_ok_and(|s| s.success());
        assert!(
            installed,
            "cannot install {} into {} (PyPI must be reachable)",
            requirements.display(),
            venv.display()
        );
    }
    *made = true;
    python
}

fn python_script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/python")
        .join(name)
}

/// Kills a helper process when the test ends, however it ends.
struct Helper(Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).expect("read")).expect("json")
}

/// Decodes a JWT's claims (no verification: the tests that need it use the STS stand-in).
fn claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("JWT payload");
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64"),
    )
    .expect("claims")
}

/// Edits the run config the devplatform wrote.
fn edit_config(platform: &DevPlatform, f: impl FnOnce(&mut serde_json::Value)) {
    let mut config = read_json(&platform.config);
    f(&mut config);
    std::fs::write(&platform.config, config.to_string()).expect("write config");
}

fn set_oidc_failures(platform: &DevPlatform, n: u64) {
    let r = http(
        &platform.socket,
        "POST",
        "/_dev/oidc-failures",
        &[],
        n.to_string().as_bytes(),
    );
    assert_eq!(r.status, 204);
}

/// A base run config: `script` as the workload, `env` in the image, token files in `dir/fly`.
fn base(dir: &Path, script: &str, env: &[&str], oidc: serde_json::Value) -> serde_json::Value {
    let mut oidc = oidc;
    oidc["TokenPath"] = json!(dir.join("fly/oidc_token"));
    json!({
        "ImageConfig": { "Cmd": ["/bin/sh", "-c", script], "Env": env, "WorkingDir": dir },
        "Api": { "SocketPath": dir.join("fly/api") },
        "Oidc": oidc,
    })
}

#[test]
fn an_unmodified_aws_sdk_assumes_the_role_and_reads_s3_with_no_keys() {
    let python = venv_python();
    let scratch = Scratch::new();
    let dir = scratch.dir.path();
    // The issuer on loopback, so the STS stand-in can fetch its JWKS over HTTP.
    let platform =
        DevPlatform::start_on(dir, "127.0.0.1:0", &json!({}), &["--token-lifetime", "900"]);
    let config = read_json(&platform.config);
    let issuer = config["Api"]["Upstream"]
        .as_str()
        .expect("upstream")
        .to_string();
    let ready = dir.join("aws.ready");
    let log = dir.join("sts.log");
    let _aws = Helper(
        Command::new(&python)
            .arg(python_script("aws_standin.py"))
            .args(["--jwks-url", &format!("{issuer}/.well-known/jwks.json")])
            .args(["--issuer", &issuer])
            .arg("--ready")
            .arg(&ready)
            .arg("--log")
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the AWS stand-in"),
    );
    wait_for_file(&ready, Duration::from_secs(60));
    let endpoints = read_json(&ready);
    let workload = format!(
        "exec {} {}",
        python.display(),
        python_script("workload.py").display()
    );
    edit_config(&platform, |c| {
        let b = base(
            dir,
            &workload,
            &[
                "AWS_ROLE_ARN=arn:aws:iam::123456789012:role/roost-app",
                "AWS_REGION=us-east-1",
                &format!(
                    "AWS_ENDPOINT_URL_STS={}",
                    endpoints["sts"].as_str().unwrap()
                ),
                &format!("AWS_ENDPOINT_URL_S3={}", endpoints["s3"].as_str().unwrap()),
                "AWS_EC2_METADATA_DISABLED=true",
            ],
            json!({}),
        );
        c["ImageConfig"] = b["ImageConfig"].clone();
        c["Api"]["SocketPath"] = b["Api"]["SocketPath"].clone();
        c["Oidc"] = b["Oidc"].clone();
    });
    let r = Running::start(PID_NS, &platform.config).wait(T);
    r.assert_code(0);
    assert!(
        r.stdout
            .contains("CREDENTIALS assume-role-with-web-identity"),
        "{}\n{}",
        r.stdout,
        r.stderr
    );
    assert!(
        r.stdout
            .contains("ARN arn:aws:sts::123456789012:assumed-role/roost-app/m-0123456789"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout.contains("S3 hello from S3 via web identity"),
        "{}",
        r.stdout
    );
    // STS verified a token from the devplatform, for this machine, with a valid session name.
    let verified: Vec<serde_json::Value> = std::fs::read_to_string(&log)
        .expect("sts log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .filter(|e: &serde_json::Value| e["action"] == "AssumeRoleWithWebIdentity")
        .collect();
    assert!(!verified.is_empty());
    for entry in &verified {
        assert_eq!(entry["ok"], true, "{entry}");
        assert_eq!(entry["sub"], format!("{APP}:{MACHINE}"));
        assert_eq!(entry["aud"], "sts.amazonaws.com");
        assert_eq!(entry["session"], MACHINE);
    }
}

#[test]
fn the_token_rotates_and_a_reader_never_sees_a_bad_one() {
    let scratch = Scratch::new();
    let dir = scratch.dir.path();
    let token = dir.join("fly/oidc_token");
    // 8 s tokens, read every 2 ms for 20 s: about five rotations.
    let script = format!(
        "exec {} {} {} 20",
        venv_python().display(),
        python_script("token_reader.py").display(),
        token.display()
    );
    let platform = DevPlatform::start(
        dir,
        &base(
            dir,
            &script,
            &["AWS_ROLE_ARN=arn:aws:iam::1:role/r"],
            json!({}),
        ),
        &["--token-lifetime", "8"],
    );
    let r = Running::start(PID_NS, &platform.config).wait(T);
    r.assert_code(0);
    let report: serde_json::Value = serde_json::from_str(r.stdout.trim()).expect("report");
    assert_eq!(report["bad"], 0, "{report}");
    assert_eq!(report["expired"], 0, "{report}");
    assert!(report["reads"].as_u64() > Some(2000), "{report}");
    assert!(report["distinct"].as_u64() >= Some(4), "{report}");
    let refreshes = r.stderr.matches("aws OIDC token written").count();
    assert!(refreshes >= 4, "{}", r.stderr);
}

#[test]
fn the_file_belongs_to_the_workload_user_and_no_one_else() {
    for (group_readable, mode) in [(false, 0o400), (true, 0o440)] {
        let scratch = Scratch::new();
        let dir = scratch.dir.path();
        let token = dir.join("fly/oidc_token");
        // A directory the workload (65534) may write its marker into.
        let marks = dir.join("marks");
        std::fs::create_dir(&marks).expect("mkdir");
        std::fs::set_permissions(&marks, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .expect("chmod");
        let script = format!(
            "id -u; head -c 20 {t}; echo; touch {ready}; while [ ! -e {stop} ]; do sleep 0.05; done",
            t = token.display(),
            ready = marks.join("ready").display(),
            stop = marks.join("stop").display()
        );
        let mut config = base(
            dir,
            &script,
            &["AWS_ROLE_ARN=arn:aws:iam::1:role/r"],
            json!({ "GroupReadable": group_readable }),
        );
        config["UserOverride"] = json!("65534:65534");
        let platform = DevPlatform::start(dir, &config, &[]);
        let running = Running::start(PID_NS, &platform.config);
        wait_for_file(&marks.join("ready"), T);
        let meta = std::fs::metadata(&token).expect("token file");
        assert_eq!(meta.mode() & 0o777, mode);
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
        // Another uid cannot read it.
        let other = Command::new("setpriv")
            .args(["--reuid=1000", "--regid=1000", "--clear-groups", "cat"])
            .arg(&token)
            .output()
            .expect("setpriv");
        assert!(!other.status.success());
        assert!(
            String::from_utf8_lossy(&other.stderr).contains("Permission denied"),
            "{}",
            String::from_utf8_lossy(&other.stderr)
        );
        std::fs::write(marks.join("stop"), b"").expect("stop");
        let r = running.wait(T);
        r.assert_code(0);
        // The workload, as 65534, read it.
        assert!(r.stdout.starts_with("65534\neyJ"), "{}", r.stdout);
    }
}

#[test]
fn issuer_down_at_boot_then_back() {
    let scratch = Scratch::new();
    let dir = scratch.dir.path();
    let token = dir.join("fly/oidc_token");
    let started = dir.join("started");
    let script = format!(
        "touch {s}; while [ ! -e {t} ]; do sleep 0.05; done; echo token-arrived",
        s = started.display(),
        t = token.display()
    );
    let platform = DevPlatform::start(
        dir,
        &base(
            dir,
            &script,
            &["AWS_ROLE_ARN=arn:aws:iam::1:role/r"],
            json!({ "BootWaitSeconds": 2 }),
        ),
        &[],
    );
    set_oidc_failures(&platform, 1_000_000);
    let t0 = Instant::now();
    let running = Running::start(PID_NS, &platform.config);
    wait_for_file(&started, T);
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_secs(2), "started after {waited:?}");
    assert!(!token.exists());
    std::thread::sleep(Duration::from_secs(1));
    set_oidc_failures(&platform, 0);
    let r = running.wait(T);
    r.assert_code(0);
    assert!(r.stdout.contains("token-arrived"));
    assert!(
        r.stderr.contains("STARTING THE WORKLOAD WITHOUT IT"),
        "{}",
        r.stderr
    );
    // Failures are logged once per streak, then the recovery.
    assert_eq!(
        r.stderr.matches("refresh failed").count(),
        1,
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("refreshed after"), "{}", r.stderr);
}

#[test]
fn issuer_down_mid_life_keeps_the_last_token_then_recovers() {
    let scratch = Scratch::new();
    let dir = scratch.dir.path();
    let token = dir.join("fly/oidc_token");
    let stop = dir.join("stop");
    let script = format!("while [ ! -e {} ]; do sleep 0.05; done", stop.display());
    let platform = DevPlatform::start(
        dir,
        &base(
            dir,
            &script,
            &["AWS_ROLE_ARN=arn:aws:iam::1:role/r"],
            json!({}),
        ),
        &["--token-lifetime", "12"],
    );
    let running = Running::start(PID_NS, &platform.config);
    wait_for_file(&token, T);
    let first = std::fs::read_to_string(&token).expect("token");
    set_oidc_failures(&platform, 1_000_000);
    // The refresh is due after about 6 s and fails: the file keeps the first token.
    std::thread::sleep(Duration::from_secs(8));
    assert_eq!(std::fs::read_to_string(&token).expect("token"), first);
    set_oidc_failures(&platform, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = std::fs::read_to_string(&token).expect("token");
        if now != first {
            assert!(claims(&now)["exp"].as_u64() > claims(&first)["exp"].as_u64());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no new token after the issuer came back"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::fs::write(&stop, b"").expect("stop");
    let r = running.wait(T);
    r.assert_code(0);
    assert_eq!(
        r.stderr.matches("refresh failed").count(),
        1,
        "{}",
        r.stderr
    );
}

#[test]
fn gcp_and_azure_files_and_env_appear_exactly_when_their_variables_are_set() {
    let resource = "projects/42/locations/global/workloadIdentityPools/fly/providers/roost";
    let script = "env | grep -E '^(AWS|GOOGLE|AZURE)_' | sort; ls fly";
    // AWS only.
    let scratch = Scratch::new();
    let dir = scratch.dir.path();
    let platform = DevPlatform::start(
        dir,
        &base(
            dir,
            script,
            &["AWS_ROLE_ARN=arn:aws:iam::1:role/r"],
            json!({}),
        ),
        &[],
    );
    let r = Running::start(PID_NS, &platform.config).wait(T);
    r.assert_code(0);
    assert!(r.stdout.contains("AWS_WEB_IDENTITY_TOKEN_FILE="));
    assert!(!r.stdout.contains("GOOGLE_APPLICATION_CREDENTIALS"));
    assert!(!r.stdout.contains("AZURE_FEDERATED_TOKEN_FILE"));
    let files: Vec<&str> = r.stdout.lines().filter(|l| !l.contains('=')).collect();
    assert_eq!(files, ["api", "oidc_token"], "{}", r.stdout);

    // GCP and Azure, no AWS.
    let scratch = Scratch::new();
    let dir = scratch.dir.path();
    let gcp_provider = format!("GOOGLE_WORKLOAD_IDENTITY_PROVIDER={resource}");
    let platform = DevPlatform::start(
        dir,
        &base(
            dir,
            script,
            &[
                &gcp_provider,
                "AZURE_CLIENT_ID=00000000-0000-0000-0000-000000000001",
                "AZURE_TENANT_ID=00000000-0000-0000-0000-000000000002",
                "AZURE_AUTHORITY_HOST=https://login.microsoftonline.com/",
            ],
            json!({}),
        ),
        &[],
    );
    let r = Running::start(PID_NS, &platform.config).wait(T);
    r.assert_code(0);
    let fly = dir.join("fly");
    assert!(r.stdout.contains(&format!(
        "GOOGLE_APPLICATION_CREDENTIALS={}",
        fly.join("gcp_credentials.json").display()
    )));
    assert!(r.stdout.contains(&format!(
        "AZURE_FEDERATED_TOKEN_FILE={}",
        fly.join("azure_oidc_token").display()
    )));
    assert!(r
        .stdout
        .contains("AZURE_AUTHORITY_HOST=https://login.microsoftonline.com/"));
    assert!(!r.stdout.contains("AWS_WEB_IDENTITY_TOKEN_FILE"));
    let files: Vec<&str> = r.stdout.lines().filter(|l| !l.contains('=')).collect();
    assert_eq!(
        files,
        [
            "api",
            "azure_oidc_token",
            "gcp_credentials.json",
            "gcp_oidc_token"
        ],
        "{}",
        r.stdout
    );
    let gcp = std::fs::read_to_string(fly.join("gcp_oidc_token")).expect("gcp token");
    assert_eq!(
        claims(&gcp)["aud"],
        format!("https://iam.googleapis.com/{resource}")
    );
    let azure = std::fs::read_to_string(fly.join("azure_oidc_token")).expect("azure token");
    assert_eq!(claims(&azure)["aud"], "api://AzureADTokenExchange");
    let creds = read_json(&fly.join("gcp_credentials.json"));
    assert_eq!(
        creds["credential_source"]["file"],
        json!(fly.join("gcp_oidc_token"))
    );
}

#[test]
fn without_api_no_variables_are_exported() {
    let scratch = Scratch::new();
    let dir = scratch.dir.path();
    let mut config = base(
        dir,
        "env",
        &["AWS_ROLE_ARN=arn:aws:iam::1:role/r"],
        json!({}),
    );
    config.as_object_mut().expect("object").remove("Api");
    let r = run_pid1(&config, T);
    r.assert_code(0);
    assert!(
        !r.stdout.contains("AWS_WEB_IDENTITY_TOKEN_FILE"),
        "{}",
        r.stdout
    );
    assert!(r.stderr.contains("Api is not configured"), "{}", r.stderr);
}

/// With several services, each one whose env asks for a cloud role gets its own broker and
/// token files as its own user: the first at `TokenPath`, the next in a directory of its own
/// beside it. Neither can read the other's.
#[test]
fn each_service_that_asks_gets_its_own_token_file_as_its_user() {
    let scratch = Scratch::new();
    let dir = scratch.dir.path();
    let marks = dir.join("marks");
    std::fs::create_dir(&marks).expect("mkdir");
    std::fs::set_permissions(&marks, std::os::unix::fs::PermissionsExt::from_mode(0o777))
        .expect("chmod");
    let first = dir.join("fly/oidc_token");
    let second = dir.join("fly/reporter/oidc_token");
    let script = |me: &str, other: &Path| {
        format!(
            "echo {me} file=$AWS_WEB_IDENTITY_TOKEN_FILE; head -c 3 $AWS_WEB_IDENTITY_TOKEN_FILE; echo; \
             cat {o} >/dev/null 2>&1 && echo {me} read the other; touch {m}/{me}; \
             while [ ! -e {m}/stop ]; do sleep 0.05; done",
            o = other.display(),
            m = marks.display()
        )
    };
    let config = json!({
        "Api": { "SocketPath": dir.join("fly/api") },
        "Oidc": { "TokenPath": first },
        "Containers": [
            {"name": "app", "user": "65534:65534", "exec": ["/bin/sh", "-c", script("app", &second)],
             "env": {"AWS_ROLE_ARN": "arn:aws:iam::1:role/app"}},
            {"name": "reporter", "user": "1000:1000", "exec": ["/bin/sh", "-c", script("reporter", &first)],
             "env": {"AWS_ROLE_ARN": "arn:aws:iam::1:role/reporter"}, "on_exit": "ignore"},
            {"name": "plain", "exec": ["/bin/sh", "-c", "echo plain file=${AWS_WEB_IDENTITY_TOKEN_FILE:-none}"],
             "restart": {"policy": "no"}, "on_exit": "ignore"},
        ],
    });
    let platform = DevPlatform::start(dir, &config, &[]);
    let running = Running::start(PID_NS, &platform.config);
    wait_for_file(&marks.join("app"), T);
    wait_for_file(&marks.join("reporter"), T);
    for (path, uid) in [(&first, 65534), (&second, 1000)] {
        let meta = std::fs::metadata(path).expect("token file");
        assert_eq!(
            (meta.uid(), meta.gid(), meta.mode() & 0o777),
            (uid, uid, 0o400),
            "{}",
            path.display()
        );
    }
    std::fs::write(marks.join("stop"), b"").expect("stop");
    running.signal(libc::SIGTERM);
    let r = running.wait(T);
    let out = &r.stdout;
    assert!(
        out.contains(&format!("[app] app file={}", first.display())),
        "{out}"
    );
    assert!(
        out.contains(&format!("[reporter] reporter file={}", second.display())),
        "{out}"
    );
    assert!(
        out.contains("[app] eyJ") && out.contains("[reporter] eyJ"),
        "{out}"
    );
    assert!(!out.contains("read the other"), "{out}");
    assert!(out.contains("[plain] plain file=none"), "{out}");
}

/// Two process services of one non-root uid, one of them asking for a cloud role: the other
/// could read its token (by the file's mode, or through `/proc/PID/root` even if the token
/// were in a mount of its own), so the machine is refused before anything starts: a config
/// error (78) naming both, no token asked of the platform, no service run.
#[test]
fn a_process_service_sharing_an_asking_services_uid_is_refused() {
    let scratch = Scratch::new();
    let dir = scratch.dir.path();
    let token = dir.join("fly/oidc_token");
    let config = json!({
        "Api": { "SocketPath": dir.join("fly/api") },
        "Oidc": { "TokenPath": token },
        "Containers": [
            {"name": "app", "user": "1000:1000", "exec": ["/bin/sh", "-c", "echo app ran"],
             "env": {"AWS_ROLE_ARN": "arn:aws:iam::1:role/app"}},
            {"name": "sidecar", "user": "1000:1000", "exec": ["/bin/sh", "-c", "echo sidecar ran"]},
        ],
    });
    let platform = DevPlatform::start(dir, &config, &[]);
    let r = Running::start(PID_NS, &platform.config).wait(T);
    r.assert_code(78);
    assert!(
        r.stderr.contains("both run as uid 1000")
            && r.stderr.contains("app")
            && r.stderr.contains("sidecar"),
        "{}",
        r.stderr
    );
    assert!(!r.stdout.contains(" ran"), "{}", r.stdout);
    assert!(!token.exists());
    let asked: Vec<_> = platform
        .requests()
        .into_iter()
        .filter(|q| q.to_string().contains("oidc"))
        .collect();
    assert!(asked.is_empty(), "{asked:?}");
}
