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

/// The exit answer both anchors' servers define (pigeon's `process.Result`, Fly's
/// `ExitCode`): `code` is the exit status or 128 + the signal.
#[derive(Debug, Deserialize, PartialEq)]
struct AnchorExitCode {
    code: i32,
    oom_killed: bool,
}

/// Fly's `/v1/sysinfo` (init-snapshot `src/api/sys.rs`), as a client decodes it; roost's own
/// fields beside these are ignored, as serde and Go both do by default.
#[derive(Deserialize)]
#[allow(dead_code)]
struct FlySysInfo {
    memory: FlyMemory,
    load_average: [f32; 3],
    cpus: std::collections::HashMap<usize, FlyCpu>,
    disks: Vec<FlyDiskStat>,
    net: Vec<FlyNetworkDevice>,
    filefd: FlyFileFd,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct FlyMemory {
    mem_total: u64,
    mem_free: u64,
    mem_available: Option<u64>,
    buffers: u64,
    cached: u64,
    swap_cached: u64,
    active: u64,
    inactive: u64,
    swap_total: u64,
    swap_free: u64,
    dirty: u64,
    writeback: u64,
    slab: u64,
    shmem: Option<u64>,
    vmalloc_total: u64,
    vmalloc_used: u64,
    vmalloc_chunk: u64,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct FlyCpu {
    user: f32,
    nice: f32,
    system: f32,
    idle: f32,
    iowait: Option<f32>,
    irq: Option<f32>,
    softirq: Option<f32>,
    steal: Option<f32>,
    guest: Option<f32>,
    guest_nice: Option<f32>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct FlyDiskStat {
    name: String,
    reads_completed: u64,
    reads_merged: u64,
    sectors_read: u64,
    time_reading: u64,
    writes_completed: u64,
    writes_merged: u64,
    sectors_written: u64,
    time_writing: u64,
    io_in_progress: u64,
    time_io: u64,
    time_io_weighted: u64,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct FlyNetworkDevice {
    name: String,
    recv_bytes: u64,
    recv_packets: u64,
    recv_errs: u64,
    recv_drop: u64,
    recv_fifo: u64,
    recv_frame: u64,
    recv_compressed: u64,
    recv_multicast: u64,
    sent_bytes: u64,
    sent_packets: u64,
    sent_errs: u64,
    sent_drop: u64,
    sent_fifo: u64,
    sent_colls: u64,
    sent_carrier: u64,
    sent_compressed: u64,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct FlyFileFd {
    allocated: usize,
    maximum: usize,
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

/// `GET /v1/exit_code` as both anchors serve it: a long-poll that answers when the workload
/// exits, then at once on every later request; a signal death is 128 + N.
#[test]
fn the_exit_code_long_poll_both_anchors_clients_decode() {
    let (rig, uds) = rig_with_shim(json!({"Control": {"LingerSeconds": 30}}));
    let rig = std::sync::Arc::new(rig);
    // Asked before the exit, through each dial: both wait.
    let waiting: Vec<_> = [Dial::FirecrackerConnect, Dial::Unix]
        .into_iter()
        .map(|dial| {
            let (rig, uds) = (rig.clone(), uds.clone());
            std::thread::spawn(move || {
                exchange(&rig, &uds, dial, &go_request("GET", "/v1/exit_code", None))
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        waiting.iter().all(|t| !t.is_finished()),
        "answered before the exit"
    );
    // The workload traps TERM and exits 143.
    let (status, _) = exchange(
        &rig,
        &uds,
        Dial::FirecrackerConnect,
        &go_request("POST", "/v1/signals", Some(r#"{"signal":15}"#)),
    );
    assert_eq!(status, 200);
    for t in waiting {
        let (status, body) = t.join().expect("long-poll");
        assert_eq!(status, 200);
        let exit: AnchorExitCode = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
        assert_eq!(
            exit,
            AnchorExitCode {
                code: 143,
                oom_killed: false
            }
        );
    }
    // Later requests answer at once, with the same exit.
    for dial in [Dial::FirecrackerConnect, Dial::Unix] {
        let (status, body) = exchange(&rig, &uds, dial, &go_request("GET", "/v1/exit_code", None));
        assert_eq!(status, 200, "{dial:?}");
        let exit: AnchorExitCode = serde_json::from_slice(&body).expect("exit answer");
        assert_eq!(exit.code, 143, "{dial:?}");
    }
    let rig = std::sync::Arc::into_inner(rig).expect("threads joined");
    rig.signal_roost(15);
    rig.finish().assert_code(143);
}

/// A real-time signal death is 128 + N in the anchors' `code` too (not lost, not -1).
#[test]
fn the_exit_code_of_a_real_time_signal_death_is_128_plus_n() {
    let (rig, uds) = rig_with_shim(json!({"Control": {"LingerSeconds": 30}}));
    let (status, _) = exchange(
        &rig,
        &uds,
        Dial::Unix,
        &go_request("POST", "/v1/signals", Some(r#"{"signal":40}"#)),
    );
    assert_eq!(status, 200);
    let (status, body) = exchange(
        &rig,
        &uds,
        Dial::FirecrackerConnect,
        &go_request("GET", "/v1/exit_code", None),
    );
    assert_eq!(status, 200);
    let exit: AnchorExitCode = serde_json::from_slice(&body).expect("exit answer");
    assert_eq!(
        exit,
        AnchorExitCode {
            code: 168,
            oom_killed: false
        }
    );
    rig.signal_roost(15);
    rig.finish().assert_code(168);
}

/// `/v1/sysinfo` decodes into Fly's own types, through each dial, in either dialect.
#[test]
fn sysinfo_decodes_into_flys_types() {
    for dialect in ["pigeon", "fly"] {
        let (rig, uds) = rig_with_shim(json!({"Control": {"Dialect": dialect}}));
        for dial in [Dial::FirecrackerConnect, Dial::Unix] {
            let (status, body) =
                exchange(&rig, &uds, dial, &go_request("GET", "/v1/sysinfo", None));
            assert_eq!(status, 200, "{dialect} {dial:?}");
            let info: FlySysInfo = serde_json::from_slice(&body)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&body)));
            assert!(info.memory.mem_total > 0, "{dialect} {dial:?}");
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            assert!(info.cpus.len() >= cpus.min(1), "{dialect} {dial:?}");
            assert!(info.cpus.contains_key(&0), "{dialect} {dial:?}");
            assert!(info.filefd.maximum > 0, "{dialect} {dial:?}");
            // Fly's filters: only virtio disks, no loopback.
            assert!(info.disks.iter().all(|d| d.name.starts_with("vd")));
            assert!(info.net.iter().all(|n| n.name != "lo"));
        }
        rig.stop_workload();
        rig.finish().assert_code(0);
    }
}
