//! The anchors' own clients, as their public source shows them, against roost's `/v1`: the
//! exact requests they send and the shapes they decode, through a socket that speaks
//! Firecracker's vsock `CONNECT` handshake (what a host driver dials) and through the plain
//! Unix socket. Request shapes are quoted from the clients; none of their code is here.
//!
//! - pigeon-init's Nomad driver, `firecracker/guestapi/client.go`: Go's `net/http` with
//!   keep-alives off, `GET http://guest/v1/status` decoded into `struct { OK bool }`, and
//!   `POST http://guest/v1/signals` with `{"signal":%d}`, success on 200.
//! - pigeon-init's server, `internal/api`: `POST /v1/exec` with `{"cmd": [...]}` answered with
//!   `exit_code` and `exit_signal` as Go `int`s and `stdout`/`stderr` as strings; ws exec with
//!   `{"command", "tty"}` and only `Exit`/`Error` text frames, closed with 1000.
//! - Fly's init-snapshot, `src/api/exec.rs`: exec answered with `Option<i32>` codes and
//!   `Vec<u8>` output; ws client frames an untagged `Resize {cols, rows}` or
//!   `Init {command, tty}`, server frames `Exit {code, signal}` or `Error {message}`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// How a host reaches roost's control API.
#[derive(Clone, Copy, Debug)]
enum Dial {
    /// The plain Unix socket (container mode).
    Unix,
    /// Firecracker's host-side vsock socket: `CONNECT 10000\n`, then `OK ...\n`.
    FirecrackerConnect,
}

/// One connection to roost, the way `dial` says.
fn connect(rig: &Rig, uds: &Path, dial: Dial) -> UnixStream {
    match dial {
        Dial::Unix => UnixStream::connect(&rig.ctl).expect("connect"),
        Dial::FirecrackerConnect => {
            let mut s = UnixStream::connect(uds).expect("connect to the vsock socket");
            s.write_all(b"CONNECT 10000\n").expect("CONNECT");
            let mut reader = BufReader::new(s.try_clone().expect("clone"));
            let mut line = String::new();
            reader.read_line(&mut line).expect("OK line");
            assert!(line.starts_with("OK "), "{line:?}");
            s
        }
    }
}

/// Sends `request` as bytes on a fresh connection and reads the answer to EOF
/// (`Connection: close`, as the Go client with keep-alives off asks).
fn exchange(rig: &Rig, uds: &Path, dial: Dial, request: &[u8]) -> (u16, Vec<u8>) {
    let mut s = connect(rig, uds, dial);
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    s.write_all(request).expect("request");
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(&raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let body = raw[split + 4..].to_vec();
    // Bodies here are small and sent with a length; a chunked one would need decoding.
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    (status, body)
}

/// Go's `net/http` request head for `method url` with keep-alives off.
fn go_request(method: &str, path: &str, json_body: Option<&str>) -> Vec<u8> {
    let mut req =
        format!("{method} {path} HTTP/1.1\r\nHost: guest\r\nUser-Agent: Go-http-client/1.1\r\n");
    if let Some(body) = json_body {
        req.push_str(&format!(
            "Content-Length: {}\r\nContent-Type: application/json\r\n",
            body.len()
        ));
    }
    req.push_str("Accept-Encoding: gzip\r\nConnection: close\r\n\r\n");
    let mut bytes = req.into_bytes();
    if let Some(body) = json_body {
        bytes.extend_from_slice(body.as_bytes());
    }
    bytes
}

/// `statusResponse` of the pigeon driver's client.
#[derive(Deserialize)]
struct PigeonStatus {
    ok: bool,
}

/// pigeon's exec answer as a Go client decodes it: `int`s (a `null` would read 0) and
/// strings.
#[derive(Deserialize)]
struct PigeonExec {
    exit_code: i64,
    #[serde(default)]
    exit_signal: Option<i64>,
    stdout: String,
    stderr: String,
}

/// Fly's exec answer: optional codes and byte arrays.
#[derive(Deserialize)]
struct FlyExec {
    exit_code: Option<i32>,
    exit_signal: Option<i32>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// The server frames both anchors' clients decode (any other variant is an error).
#[derive(Debug, Deserialize, PartialEq)]
enum ServerMessage {
    Exit {
        code: Option<i32>,
        signal: Option<i32>,
    },
    Error {
        message: String,
    },
}

fn rig_with_shim(extra: serde_json::Value) -> (Rig, std::path::PathBuf) {
    let rig = Rig::start(extra, 0);
    let uds = rig.scratch.path("v.sock");
    firecracker_vsock_shim(&uds, rig.ctl.clone());
    (rig, uds)
}

#[test]
fn the_pigeon_nomad_drivers_guestapi_client() {
    let (rig, uds) = rig_with_shim(json!({}));
    for dial in [Dial::FirecrackerConnect, Dial::Unix] {
        let (status, body) = exchange(&rig, &uds, dial, &go_request("GET", "/v1/status", None));
        assert_eq!(status, 200, "{dial:?}");
        let decoded: PigeonStatus = serde_json::from_slice(&body).expect("statusResponse");
        assert!(decoded.ok, "{dial:?}");
        // pigeon's own handler test: the body is a map of booleans.
        let map: std::collections::HashMap<String, bool> =
            serde_json::from_slice(&body).expect("map of booleans");
        assert_eq!(map.len(), 1);
    }
    // Signal: `{"signal":%d}`, success on 200 (the workload traps TERM and exits 143).
    let (status, _) = exchange(
        &rig,
        &uds,
        Dial::FirecrackerConnect,
        &go_request("POST", "/v1/signals", Some(r#"{"signal":15}"#)),
    );
    assert_eq!(status, 200);
    rig.finish().assert_code(143);
}

#[test]
fn pigeons_exec_answers_decode_into_its_go_types() {
    let (rig, uds) = rig_with_shim(json!({}));
    for dial in [Dial::FirecrackerConnect, Dial::Unix] {
        let body = r#"{"cmd":["sh","-c","echo out; echo err >&2; exit 3"]}"#;
        let (status, answer) = exchange(
            &rig,
            &uds,
            dial,
            &go_request("POST", "/v1/exec", Some(body)),
        );
        assert_eq!(status, 200, "{dial:?}");
        let e: PigeonExec = serde_json::from_slice(&answer)
            .unwrap_or_else(|err| panic!("{err}: {}", String::from_utf8_lossy(&answer)));
        assert_eq!(
            (e.exit_code, e.stdout.as_str(), e.stderr.as_str()),
            (3, "out\n", "err\n")
        );
        // A signal death: -1 and the signal, as pigeon's server says it.
        let body = r#"{"cmd":["sh","-c","kill -9 $$"]}"#;
        let (_, answer) = exchange(
            &rig,
            &uds,
            dial,
            &go_request("POST", "/v1/exec", Some(body)),
        );
        let e: PigeonExec = serde_json::from_slice(&answer).expect("exec answer");
        assert_eq!((e.exit_code, e.exit_signal), (-1, Some(9)));
    }
    rig.stop_workload();
    rig.finish().assert_code(0);
}

#[test]
fn flys_exec_answers_decode_into_its_rust_types() {
    let (rig, uds) = rig_with_shim(json!({"Control": {"Dialect": "fly"}}));
    for dial in [Dial::FirecrackerConnect, Dial::Unix] {
        let body = r#"{"cmd":["sh","-c","printf out; kill -15 $$"]}"#;
        let (status, answer) = exchange(
            &rig,
            &uds,
            dial,
            &go_request("POST", "/v1/exec", Some(body)),
        );
        assert_eq!(status, 200, "{dial:?}");
        let e: FlyExec = serde_json::from_slice(&answer)
            .unwrap_or_else(|err| panic!("{err}: {}", String::from_utf8_lossy(&answer)));
        assert_eq!((e.exit_code, e.exit_signal), (None, Some(15)));
        assert_eq!(
            (e.stdout.as_slice(), e.stderr.as_slice()),
            (&b"out"[..], &b""[..])
        );
    }
    rig.stop_workload();
    rig.finish().assert_code(0);
}

#[test]
fn ws_exec_frames_both_anchors_clients_decode() {
    let (rig, uds) = rig_with_shim(json!({}));
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    for dial in [Dial::FirecrackerConnect, Dial::Unix] {
        let stream = connect(&rig, &uds, dial);
        stream.set_nonblocking(true).expect("nonblocking");
        rt.block_on(async {
            let stream = tokio::net::UnixStream::from_std(stream).expect("tokio stream");
            let (mut ws, _) = tokio_tungstenite::client_async("ws://guest/v1/ws/exec", stream)
                .await
                .expect("handshake");
            // Fly's untagged Init and Resize frames, pigeon's init: the same bytes.
            let init = json!({"command": ["sh", "-c", "cat; echo done; echo oops >&2; exit 4"], "tty": false});
            ws.send(Message::Text(init.to_string().into())).await.expect("init");
            ws.send(Message::Text(json!({"cols": 100, "rows": 30}).to_string().into()))
                .await
                .expect("resize");
            let mut output = Vec::new();
            let mut exit = None;
            let mut close = None;
            while let Ok(Some(frame)) =
                tokio::time::timeout(Duration::from_secs(20), ws.next()).await
            {
                match frame.expect("frame") {
                    Message::Binary(b) => output.extend_from_slice(&b),
                    Message::Text(t) => {
                        let m: ServerMessage = serde_json::from_str(t.as_str())
                            .unwrap_or_else(|e| panic!("{dial:?}: {e}: {t}"));
                        exit = Some(m);
                    }
                    Message::Close(frame) => {
                        close = frame.map(|f| u16::from(f.code));
                        break;
                    }
                    _ => {}
                }
            }
            assert_eq!(
                exit,
                Some(ServerMessage::Exit {
                    code: Some(4),
                    signal: None
                }),
                "{dial:?}"
            );
            assert_eq!(String::from_utf8_lossy(&output), "done\noops\n", "{dial:?}");
            assert_eq!(close, Some(1000), "{dial:?}");
        });
    }
    rig.stop_workload();
    rig.finish().assert_code(0);
}
