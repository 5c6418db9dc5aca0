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
