//! The control API against its own contract, `docs/control-api.openapi.json` (OpenAPI 3.1):
//! the document is a valid OpenAPI document, roost serves it at `/v2/openapi.json`, every
//! route roost answers is in it, and every answer of a set of real, malformed and refused
//! requests has a status the document lists and a body its schema accepts (checked with the
//! openapi-spec-validator and jsonschema packages of the test venv).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;

fn python() -> PathBuf {
    let venv = std::env::var_os("ROOST_TEST_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/test-venv"));
    let python = venv.join("bin/python3");
    assert!(
        python.exists(),
        "{} is missing: run ./test.sh setup (it makes the test venv)",
        python.display()
    );
    python
}

fn spec_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/control-api.openapi.json")
}

/// Checks every (method, path, status, body) against the document; panics with what breaks.
const CHECK: &str = r#"
import json, sys
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
spec = json.load(open(sys.argv[1]))
validate(spec)
answers = json.load(open(sys.argv[2]))
problems = []
for a in answers:
    op = spec["paths"].get(a["path"], {}).get(a["method"].lower())
    if op is None:
        problems.append(f"{a['method']} {a['path']}: not in the document"); continue
    resp = op["responses"].get(str(a["status"]))
    if resp is None:
        problems.append(f"{a['method']} {a['path']}: status {a['status']} not in the document"); continue
    if "$ref" in resp:
        resp = spec["components"]["responses"][resp["$ref"].rsplit("/", 1)[1]]
    schema = resp.get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        continue
    root = dict(schema); root["components"] = spec["components"]
    errors = sorted(Draft202012Validator(root).iter_errors(a["body"]), key=str)
    for e in errors:
        problems.append(f"{a['method']} {a['path']} {a['status']}: {e.message} at {list(e.absolute_path)}")
if problems:
    print("\n".join(problems)); sys.exit(1)
print(f"{len(answers)} answers match the document")
"#;

#[test]
fn every_answer_matches_the_openapi_document() {
    let rig = Rig::start(json!({}), 0);
    // Served as it is in the repository.
    let served = http(&rig.ctl, "GET", "/v2/openapi.json", &[], b"");
    assert_eq!(served.status, 200);
    let on_disk: serde_json::Value =
        serde_json::from_slice(&std::fs::read(spec_path()).expect("spec")).expect("spec json");
    assert_eq!(served.json(), on_disk);

    let cases: Vec<(&str, &str, &[u8])> = vec![
        ("GET", "/v1/status", b""),
        ("GET", "/v2/status", b""),
        ("GET", "/v1/sysinfo", b""),
        ("GET", "/v1/ws/exec", b""),
        (
            "POST",
            "/v1/exec",
            br#"{"cmd": ["sh", "-c", "echo out; echo err >&2; exit 3"]}"#,
        ),
        (
            "POST",
            "/v1/exec",
            br#"{"cmd": ["sh", "-c", "kill -9 $$"]}"#,
        ),
        (
            "POST",
            "/v1/exec",
            br#"{"cmd": ["printf", "x"], "output": "bytes"}"#,
        ),
        ("POST", "/v1/exec", br#"{"cmd": []}"#),
        ("POST", "/v1/exec", br#"{"cmd": ["/nonexistent"]}"#),
        ("POST", "/v1/exec", br#"{"cmd": ["true"], "timeout": -1}"#),
        ("POST", "/v1/exec", b"not json"),
        ("POST", "/v1/signals", br#"{"signal": 99}"#),
        ("POST", "/v1/signals", br#"{"signal": "TERM"}"#),
        ("POST", "/v1/signals", br#"{}"#),
    ];
    let mut answers = Vec::new();
    for (method, path, body) in cases {
        let r = http(&rig.ctl, method, path, &[], body);
        assert!(
            r.status < 500 || r.status == 503,
            "{method} {path}: {}",
            r.status
        );
        answers.push(json!({"method": method, "path": path, "status": r.status, "body": r.json()}));
    }
    // The signal and the exit last: the workload traps TERM and exits 143.
    let r = http(&rig.ctl, "POST", "/v1/signals", &[], br#"{"signal": 15}"#);
    answers.push(
        json!({"method": "POST", "path": "/v1/signals", "status": r.status, "body": r.json()}),
    );
    let r = http(&rig.ctl, "GET", "/v1/exit_code", &[], b"");
    answers.push(
        json!({"method": "GET", "path": "/v1/exit_code", "status": r.status, "body": r.json()}),
    );
    let r = http(&rig.ctl, "POST", "/v1/signals", &[], br#"{"signal": 15}"#);
    answers.push(
        json!({"method": "POST", "path": "/v1/signals", "status": r.status, "body": r.json()}),
    );

    let file = rig.scratch.path("answers.json");
    std::fs::write(&file, serde_json::to_vec(&answers).expect("json")).expect("write");
    let out = Command::new(python())
        .arg("-c")
        .arg(CHECK)
        .arg(spec_path())
        .arg(&file)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    rig.finish().assert_code(143);
}

#[test]
fn every_route_roost_answers_is_in_the_document() {
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(spec_path()).expect("spec")).expect("spec json");
    let server = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/control/server.rs"),
    )
    .expect("server.rs");
    // Every `(&Method::X, "/vN/...")` arm of the router.
    let mut routes = 0;
    for part in server.split("(&Method::").skip(1) {
        let Some((method, rest)) = part.split_once(", \"") else {
            continue;
        };
        let Some((path, _)) = rest.split_once('"') else {
            continue;
        };
        if !path.starts_with("/v") {
            continue;
        }
        routes += 1;
        assert!(
            spec["paths"][path][method.to_ascii_lowercase()].is_object(),
            "{method} {path} is answered but not documented"
        );
    }
    assert!(routes >= 8, "found only {routes} routes in server.rs");
}

/// A loopback TCP port spliced to the control API's Unix socket, for HTTP clients that only
/// speak TCP (schemathesis). Every connection gets its own pair of copy threads.
fn tcp_bridge(socket: PathBuf) -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let Ok(upstream) = std::os::unix::net::UnixStream::connect(&socket) else {
                continue;
            };
            let (mut from_client, mut to_client) = (conn.try_clone().expect("clone"), conn);
            let (mut from_roost, mut to_roost) = (upstream.try_clone().expect("clone"), upstream);
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_client, &mut to_roost);
                let _ = to_roost.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut from_roost, &mut to_client);
                let _ = to_client.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    port
}

/// Runs schemathesis over `spec` against `port` with every check, and fails with its report
/// when a check fails. The seed is fixed so a failure reproduces (`ROOST_SCHEMATHESIS_SEED`
/// picks another); each request is bounded so a hang is a failure, not a stuck test.
fn schemathesis(spec: &std::path::Path, port: u16, mode: &str, filter: &[&str], report: PathBuf) {
    let seed = std::env::var("ROOST_SCHEMATHESIS_SEED").unwrap_or_else(|_| "20261202".into());
    let bin = python().with_file_name("schemathesis");
    let out = Command::new(&bin)
        .arg("run")
        .arg(spec)
        .args(["--url", &format!("http://127.0.0.1:{port}")])
        .args(["--checks", "all", "--mode", mode, "--seed", &seed])
        .args([
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "60",
        ])
        .args([
            "--workers",
            "1",
            "--request-timeout",
            "20",
            "--max-response-time",
            "20",
        ])
        .args(["--no-color", "--report", "ndjson", "--report-dir"])
        .arg(&report)
        .args(filter)
        // Its own configuration file and telemetry stay out of the test.
        .env("SCHEMATHESIS_HOOKS", "")
        .env("SCHEMATHESIS_TELEMETRY", "false")
        .current_dir(report.parent().expect("report dir"))
        .output()
        .unwrap_or_else(|e| panic!("{}: {e} (run ./test.sh setup)", bin.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "schemathesis {mode} {filter:?}:\n{text}"
    );
    eprintln!("schemathesis {mode} {filter:?}:\n{text}");
}

/// The document's requests, generated: every documented route with valid, random and
/// malformed inputs (schemathesis's examples, coverage and fuzzing phases), checked for no
/// 5xx, no status or body outside the document, no wrong content type, no hang, valid data
/// accepted and invalid data refused. Execs and signals run from a copy of the document
/// narrowed to harmless commands and to a signal the workload ignores (random commands as
/// root on the build machine, or a signal that ends the workload midway, are not what a
/// test may send); their malformed bodies are the hand-written cases above.
#[test]
fn schemathesis_finds_nothing_outside_the_document() {
    // The workload writes a line every half second, so a log follower's wait (up to 25 s by
    // the document) ends within the request timeout; once it exits, its log is closed and a
    // wait answers at once.
    let scratch_stop = Scratch::new();
    let stop = scratch_stop.path("stop");
    let rig = Rig::start(
        json!({"Control": {"LingerSeconds": 120}, "ImageConfig": {"Cmd": ["/bin/sh", "-c", format!(
            "while [ ! -e {} ]; do echo tick; sleep 0.5; done", stop.display())]}}),
        0,
    );
    let port = tcp_bridge(rig.ctl.clone());

    // Everything that is safe to send at random while the workload runs (the exit code
    // long-polls until the exit: that comes last; a signal or a stop to `main`, the single
    // workload, is as real as `/v1/signals`). A restore's time must be after the boot and
    // its entropy at least 32 bytes, which no schema says: tests/snapshot.rs drives it.
    schemathesis(
        &spec_path(),
        port,
        "all",
        &[
            "--exclude-path",
            "/v1/exec",
            "--exclude-path",
            "/v1/signals",
            "--exclude-path",
            "/v1/exit_code",
            "--exclude-path",
            "/v1/ws/exec",
            "--exclude-path",
            "/v2/services/{name}/signal",
            "--exclude-path",
            "/v2/services/{name}/stop",
            "--exclude-path",
            "/v2/snapshot/restored",
        ],
        rig.scratch.path("report-all"),
    );
    // WebSocket handshakes, malformed only: each is refused and never upgraded. (A valid one
    // switches the connection to WebSocket, which an HTTP client cannot follow; the ws
    // tests drive those.)
    schemathesis(
        &spec_path(),
        port,
        "negative",
        &["--include-path", "/v1/ws/exec"],
        rig.scratch.path("report-ws"),
    );

    // Execs and signals, valid inputs only, from the narrowed copy.
    let mut narrowed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(spec_path()).expect("spec")).expect("spec json");
    let schemas = &mut narrowed["components"]["schemas"];
    assert!(schemas["ExecRequest"]["properties"]["cmd"].is_object());
    // (A command that cannot start is a 400 by design, not a schema refusal: the hand cases
    // above send one.)
    schemas["ExecRequest"]["properties"]["cmd"] = json!({"enum": [
        ["true"], ["false"], ["echo", "out"], ["sh", "-c", "echo err >&2; exit 3"],
        ["sh", "-c", "kill -9 $$"], ["printf", "\\377"], ["sleep", "0.2"]
    ]});
    // No services in this rig: a container name is a 400 by design.
    if let Some(props) = schemas["ExecRequest"]["properties"].as_object_mut() {
        props.remove("container");
    }
    assert!(schemas["SignalRequest"]["properties"]["signal"].is_object());
    // SIGWINCH: delivered to the workload's group, which ignores it by default.
    schemas["SignalRequest"]["properties"]["signal"] = json!({"const": 28});
    let narrowed_path = rig.scratch.path("narrowed.json");
    std::fs::write(&narrowed_path, narrowed.to_string()).expect("write narrowed");
    schemathesis(
        &narrowed_path,
        port,
        "positive",
        &[
            "--include-path",
            "/v1/exec",
            "--include-path",
            "/v1/signals",
        ],
        rig.scratch.path("report-exec"),
    );
    assert_eq!(rig.status()["workload"]["state"], "running");

    // After the exit: the exit code answers at once, a signal of any kind is refused (valid
    // ones with 409: nothing is left to signal, so random ones are safe now), the rest holds.
    std::fs::write(&stop, b"").expect("stop");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while rig.status()["workload"]["state"] == "running" {
        assert!(
            std::time::Instant::now() < deadline,
            "the workload did not stop"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    schemathesis(
        &spec_path(),
        port,
        "all",
        &[
            "--exclude-path",
            "/v1/exec",
            "--exclude-path",
            "/v1/ws/exec",
            "--exclude-path",
            "/v2/snapshot/restored",
        ],
        rig.scratch.path("report-after"),
    );
    // The linger ends on SIGTERM; the exit is still the workload's.
    rig.signal_roost(15);
    rig.finish().assert_code(0);
}
