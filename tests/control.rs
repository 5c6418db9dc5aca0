//! The control API and roostctl, with roost as PID 1 of a fresh PID namespace, through its
//! Unix transport and through a socket that speaks Firecracker's vsock `CONNECT` handshake.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const T: Duration = Duration::from_secs(60);

async fn ws_connect(ctl: &Path) -> tokio_tungstenite::WebSocketStream<tokio::net::UnixStream> {
    let stream = tokio::net::UnixStream::connect(ctl).await.expect("connect");
    let (ws, _) = tokio_tungstenite::client_async("ws://roost/v1/ws/exec", stream)
        .await
        .expect("WebSocket handshake");
    ws
}

#[test]
fn status_exec_signals_sysinfo_and_their_errors() {
    let rig = Rig::start(json!({}), 0);
    let s = rig.status();
    assert_eq!(s["ok"], true);
    assert_eq!(s["mode"], "container");
    assert_eq!(s["pid1"], true);
    let phases: Vec<&str> = s["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        ["signals", "config", "api_proxy", "oidc", "workload_start"]
    );
    assert!(s["workload"]["pid"].as_i64() > Some(1));

    // argv order is kept (Fly's init scrambles it).
    let r = rig.exec(json!({"cmd": ["printf", "%s-%s", "a", "b"]}));
    assert_eq!(r.status, 200);
    let j = r.json();
    assert_eq!(
        (j["stdout"].as_str(), j["exit_code"].as_i64()),
        (Some("a-b"), Some(0))
    );
    // The workload's env (for a workload_user exec: a root exec gets a root environment);
    // stdout and stderr apart; codes and signals.
    let j = rig
        .exec(json!({"cmd": ["sh", "-c", "echo $FROM_CONFIG; echo oops >&2; exit 3"], "workload_user": true}))
        .json();
    assert_eq!(j["stdout"], "yes\n");
    assert_eq!(j["stderr"], "oops\n");
    assert_eq!(j["exit_code"], 3);
    // A signal death in the default (pigeon) dialect: exit_code -1, as pigeon's server says
    // it (a Go client decoding null into an int would read 0, success).
    let j = rig.exec(json!({"cmd": ["sh", "-c", "kill -9 $$"]})).json();
    assert_eq!(
        (j["exit_code"].as_i64(), j["exit_signal"].as_i64()),
        (Some(-1), Some(9))
    );
    // Output caps and Fly's byte arrays.
    let j = rig
        .exec(json!({"cmd": ["sh", "-c", "seq 1 1000"], "max_output": 10}))
        .json();
    assert_eq!(j["stdout"], "1\n2\n3\n4\n5\n");
    assert_eq!(j["stdout_truncated"], true);
    let j = rig
        .exec(json!({"cmd": ["printf", "AB"], "output": "bytes"}))
        .json();
    assert_eq!(j["stdout"], json!([65, 66]));
    // Root by default, the workload's identity on request.
    let root = rig.exec(json!({"cmd": ["id", "-u"]})).json();
    assert_eq!(root["stdout"], "0\n");

    // Errors.
    assert_eq!(rig.exec(json!({"cmd": []})).status, 400);
    assert_eq!(rig.exec(json!({"cmd": ["true"], "timeout": 0})).status, 400);
    assert_eq!(rig.exec(json!({"cmd": ["/no/such/program"]})).status, 400);
    assert_eq!(
        http(&rig.ctl, "POST", "/v1/exec", &[], b"{not json").status,
        400
    );
    let big = vec![b' '; 100 * 1024];
    assert_eq!(http(&rig.ctl, "POST", "/v1/exec", &[], &big).status, 413);
    assert_eq!(http(&rig.ctl, "GET", "/v1/exec", &[], b"").status, 405);
    assert_eq!(http(&rig.ctl, "GET", "/v1/nope", &[], b"").status, 404);
    assert_eq!(
        http(&rig.ctl, "POST", "/v1/signals", &[], br#"{"signal": 0}"#).status,
        400
    );
    assert_eq!(
        http(&rig.ctl, "POST", "/v1/signals", &[], br#"{"signal": 65}"#).status,
        400
    );
    assert_eq!(http(&rig.ctl, "GET", "/v1/ws/exec", &[], b"").status, 400);

    let sys = http(&rig.ctl, "GET", "/v1/sysinfo", &[], b"").json();
    // Fly's fields and shapes, and roost's own figures under names of their own.
    assert!(sys["memory"]["mem_total"].as_u64() > Some(0));
    assert!(sys["memory"]["total"].as_u64() > Some(0));
    assert!(sys["cpus"]["0"]["idle"].is_number(), "{sys}");
    assert!(sys["disks"].is_array() && sys["net"].is_array(), "{sys}");
    assert!(sys["filefd"]["maximum"].as_u64() > Some(0), "{sys}");
    assert!(sys["cpu_count"].as_u64() >= Some(1));
    assert!(
        sys["filesystems"].as_array().is_some_and(|f| !f.is_empty()),
        "{sys}"
    );
    assert!(sys["load_average"].as_array().is_some_and(|a| a.len() == 3));

    // A signal reaches the workload; after its exit, signals are refused with 409.
    let r = http(&rig.ctl, "POST", "/v1/signals", &[], br#"{"signal": 15}"#);
    assert_eq!((r.status, r.json()), (200, json!({"ok": true})));
    let f = rig.finish();
    f.assert_code(143);
    assert!(f.stdout.contains("workload-got-term"));
}

#[test]
fn workload_user_exec_runs_as_the_workload() {
    let rig = Rig::start(
        json!({"UserOverride": "65534:65534", "ImageConfig": {
        "Cmd": ["/bin/sh", "-c", "sleep 30"], "WorkingDir": "/tmp" }}),
        0,
    );
    let j = rig
        .exec(json!({"cmd": ["sh", "-c", "id -u; pwd"], "workload_user": true}))
        .json();
    assert_eq!(j["stdout"], "65534\n/tmp\n");
    let r = http(&rig.ctl, "POST", "/v1/signals", &[], br#"{"signal": 9}"#);
    assert_eq!(r.status, 200);
    rig.finish().assert_code(137);
}

#[test]
fn a_background_grandchild_holding_the_pipe_cannot_hang_exec_or_the_workload() {
    let rig = Rig::start(json!({}), 0);
    let t0 = Instant::now();
    let j = rig
        .exec(json!({"cmd": ["sh", "-c", "sleep 30 & echo started"], "timeout": 1}))
        .json();
    let took = t0.elapsed();
    assert_eq!(j["stdout"], "started\n");
    assert_eq!(j["exit_code"], 0);
    assert_eq!(j["timed_out"], true);
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "{took:?}"
    );
    // One that leaves the process group: answered at most a couple of seconds later.
    let t0 = Instant::now();
    let j = rig
        .exec(json!({"cmd": ["sh", "-c", "setsid sleep 30 & echo away"], "timeout": 1}))
        .json();
    assert_eq!(j["stdout"], "away\n");
    assert!(t0.elapsed() < Duration::from_secs(10));
    // Meanwhile: status, signals and the stop all still work.
    assert_eq!(rig.status()["ok"], true);
    let r = http(&rig.ctl, "POST", "/v1/signals", &[], br#"{"signal": 15}"#);
    assert_eq!(r.status, 200);
    rig.finish().assert_code(143);
}

#[test]
fn fifty_concurrent_execs_while_the_workload_exits_lose_no_exit_code() {
    let rig = Rig::start(json!({"Control": {"LingerSeconds": 1}}), 0);
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(51));
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let ctl = rig.ctl.clone();
            let barrier = barrier.clone();
            std::thread::spawn(move || {
                barrier.wait();
                let body = json!({"cmd": ["sh", "-c", format!("sleep 0.{}; exit 3", i % 5)]});
                http(&ctl, "POST", "/v1/exec", &[], body.to_string().as_bytes())
            })
        })
        .collect();
    barrier.wait();
    std::thread::sleep(Duration::from_millis(150));
    rig.stop_workload();
    let answers: Vec<HttpResponse> = handles
        .into_iter()
        .map(|h| h.join().expect("thread"))
        .collect();
    let f = rig.finish();
    f.assert_code(0);
    let mut completed = 0;
    for a in &answers {
        assert_eq!(a.status, 200, "{}", a.text());
        let j = a.json();
        // Either it finished (3) or the shutdown stopped it (a signal): never nothing.
        let has = j["exit_code"] == 3 || j["exit_signal"].as_i64().is_some();
        assert!(has, "{j}");
        completed += usize::from(j["exit_code"] == 3);
    }
    assert!(completed > 0, "no exec completed at all");
}

/// Reads frames until the accumulated binary output contains `want`.
async fn read_until(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::UnixStream>,
    seen: &mut String,
    want: &str,
) {
    let found = tokio::time::timeout(Duration::from_secs(20), async {
        while !seen.contains(want) {
            match ws.next().await {
                Some(Ok(Message::Binary(b))) => seen.push_str(&String::from_utf8_lossy(&b)),
                Some(Ok(_)) => {}
                other => panic!("socket ended while waiting for {want:?}: {other:?}\n{seen}"),
            }
        }
    })
    .await;
    assert!(found.is_ok(), "no {want:?} in {seen:?}");
}

/// Reads to the end of the session after its Exit frame: the close frame's status code.
async fn close_code(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::UnixStream>,
) -> Option<u16> {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
            Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| u16::from(f.code)),
            Ok(Some(Ok(_))) => {}
            other => panic!("no close frame: {other:?}"),
        }
    }
}

async fn exit_frame(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio::net::UnixStream>,
) -> (serde_json::Value, Vec<serde_json::Value>) {
    let mut texts = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: serde_json::Value = serde_json::from_str(t.as_str()).expect("json");
                if v.get("Exit").is_some() {
                    return (v, texts);
                }
                texts.push(v);
            }
            Ok(Some(Ok(Message::Binary(b)))) => {
                texts.push(json!({"binary": String::from_utf8_lossy(&b)}))
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("no Exit frame: {other:?} after {texts:?}"),
        }
    }
}

#[test]
fn websocket_exec_with_a_tty_echoes_and_resizes() {
    let rig = Rig::start(json!({}), 0);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut ws = ws_connect(&rig.ctl).await;
        let init = json!({"command": ["/bin/sh"], "tty": true, "cols": 80, "rows": 24});
        ws.send(Message::Text(init.to_string().into()))
            .await
            .expect("init");
        let mut seen = String::new();
        ws.send(Message::Binary(b"stty size; tty\n".to_vec().into()))
            .await
            .expect("send");
        read_until(&mut ws, &mut seen, "24 80").await;
        read_until(&mut ws, &mut seen, "/dev/pts/").await;
        ws.send(Message::Text(
            json!({"cols": 132, "rows": 43}).to_string().into(),
        ))
        .await
        .expect("resize");
        ws.send(Message::Binary(b"stty size\n".to_vec().into()))
            .await
            .expect("send");
        read_until(&mut ws, &mut seen, "43 132").await;
        // The terminal echoes what is typed, and the shell answers.
        ws.send(Message::Binary(b"echo typed-$((40+2))\n".to_vec().into()))
            .await
            .expect("send");
        read_until(&mut ws, &mut seen, "typed-$((40+2))").await;
        read_until(&mut ws, &mut seen, "typed-42").await;
        ws.send(Message::Binary(b"exit 5\n".to_vec().into()))
            .await
            .expect("send");
        let (exit, _) = exit_frame(&mut ws).await;
        assert_eq!(exit, json!({"Exit": {"code": 5, "signal": null}}));
    });
    rig.stop_workload();
    rig.finish().assert_code(0);
}

#[test]
fn websocket_exec_without_a_tty_keeps_stderr_apart_and_drains_before_exit() {
    let rig = Rig::start(json!({}), 0);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut ws = ws_connect(&rig.ctl).await;
        // roost's extensions, asked for as roostctl asks: stdin and stderr apart.
        let init = json!({"command": ["sh", "-c", "cat; echo to-stderr >&2; seq 1 20000; exit 2"],
                          "tty": false, "stdin": true, "separate_stderr": true});
        ws.send(Message::Text(init.to_string().into()))
            .await
            .expect("init");
        ws.send(Message::Binary(b"hello stdin\n".to_vec().into()))
            .await
            .expect("send");
        ws.send(Message::Binary(Vec::new().into()))
            .await
            .expect("eof");
        let (exit, frames) = exit_frame(&mut ws).await;
        assert_eq!(exit, json!({"Exit": {"code": 2, "signal": null}}));
        let stdout: String = frames.iter().filter_map(|f| f["binary"].as_str()).collect();
        let stderr: String = frames.iter().filter_map(|f| f["Stderr"].as_str()).collect();
        assert!(
            stdout.starts_with("hello stdin\n1\n2\n"),
            "{}",
            &stdout[..40.min(stdout.len())]
        );
        assert!(stdout.ends_with("19999\n20000\n"), "all output before Exit");
        assert_eq!(stderr, "to-stderr\n");

        // Bad first frames get an Error frame.
        for bad in [json!("not an object"), json!({"command": [], "tty": false})] {
            let mut ws = ws_connect(&rig.ctl).await;
            ws.send(Message::Text(bad.to_string().into()))
                .await
                .expect("init");
            let msg = ws.next().await.expect("frame").expect("frame");
            let v: serde_json::Value =
                serde_json::from_str(msg.to_text().expect("text")).expect("json");
            assert!(v["Error"]["message"].is_string(), "{v}");
        }
    });
    rig.stop_workload();
    rig.finish().assert_code(0);
}

fn processes_with(marker: &str) -> usize {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .flatten()
        .filter(|e| {
            std::fs::read(e.path().join("cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(marker))
                .unwrap_or(false)
        })
        .count()
}

#[test]
fn closing_the_websocket_kills_the_sessions_process_group() {
    let rig = Rig::start(json!({}), 0);
    let marker = "1001.25";
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut ws = ws_connect(&rig.ctl).await;
        let init = json!({"command": ["sh", "-c", format!("sleep {marker} & sleep {marker}")], "tty": false});
        ws.send(Message::Text(init.to_string().into())).await.expect("init");
        let deadline = Instant::now() + T;
        while processes_with(marker) < 2 {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        drop(ws);
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_with(marker) > 0 {
        assert!(
            Instant::now() < deadline,
            "the session's processes outlived the socket"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    rig.stop_workload();
    rig.finish().assert_code(0);
}

#[test]
fn roostctl_through_the_firecracker_handshake_and_its_exit_codes() {
    let rig = Rig::start(json!({}), 6);
    let uds = rig.scratch.path("v.sock");
    firecracker_vsock_shim(&uds, rig.ctl.clone());
    let uds_s = uds.display().to_string();
    let ctl_s = rig.ctl.display().to_string();

    let (code, out, err) = roostctl(&["--uds", &uds_s, "status"]);
    assert_eq!(code, 0, "{err}");
    let status: serde_json::Value = serde_json::from_str(&out).expect("status JSON");
    assert_eq!(status["ok"], true);
    // exec: output through, argv in order, the command's code.
    let (code, out, _) = roostctl(&["--uds", &uds_s, "exec", "--", "printf", "%s|%s", "x y", "z"]);
    assert_eq!((code, out.as_str()), (0, "x y|z"));
    let (code, _, err) = roostctl(&[
        "--unix",
        &ctl_s,
        "exec",
        "--",
        "sh",
        "-c",
        "echo e >&2; exit 9",
    ]);
    assert_eq!((code, err.as_str()), (9, "e\n"));
    // shell without a terminal: stdin piped in, the shell's code out.
    let shell = Command::new(common::roostctl_bin())
        .args(["--unix", &ctl_s, "shell"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("shell");
    let mut shell = shell;
    shell
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"echo from-shell; echo to-err >&2; exit 4\n")
        .expect("write");
    let out = shell.wait_with_output().expect("shell output");
    assert_eq!(out.status.code(), Some(4));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "from-shell\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "to-err\n");
    // shell on a real terminal (script gives roostctl a PTY).
    let out = Command::new("script")
        .args(["-qec"])
        .arg(format!(
            "{} --unix {ctl_s} shell -- sh -c 'tty; exit 3'",
            common::roostctl_bin()
        ))
        .arg("/dev/null")
        .stdin(Stdio::null())
        .output()
        .expect("script");
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("/dev/pts/"));

    // Errors: a port nobody listens on, a socket that is not there, a bad signal.
    let (code, _, err) = roostctl(&["--uds", &uds_s, "--port", "10001", "status"]);
    assert_eq!(code, 69, "{err}");
    assert!(err.contains("not listening"), "{err}");
    let (code, _, err) = roostctl(&["--unix", "/nonexistent/ctl.sock", "status"]);
    assert_eq!(code, 69, "{err}");
    let (code, _, _) = roostctl(&["--unix", &ctl_s, "signal", "NOPE"]);
    assert_eq!(code, 2);
    let (code, _, _) = roostctl(&["status"]);
    assert_eq!(code, 2);

    // wait: blocks until the exit, exits with the workload's code.
    let waiter = Command::new(common::roostctl_bin())
        .args(["--uds", &uds_s, "wait"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("wait");
    std::thread::sleep(Duration::from_millis(300));
    rig.stop_workload();
    let out = waiter.wait_with_output().expect("wait output");
    assert_eq!(out.status.code(), Some(6));
    // After the exit a signal is refused: 1.
    let (code, _, err) = roostctl(&["--unix", &ctl_s, "signal", "TERM"]);
    assert!(code == 1 || code == 69, "{code} {err}");
    rig.finish().assert_code(6);
}

#[test]
fn real_time_signal_deaths_of_execs_and_the_workload_are_reported() {
    // The API lingers after the exit so the exit code can be asked for.
    let rig = Rig::start(json!({"Control": {"LingerSeconds": 3}}), 0);
    // A one-shot exec killed by SIGRTMIN+6.
    let j = rig.exec(json!({"cmd": ["sh", "-c", "kill -40 $$"]})).json();
    assert_eq!(
        (j["exit_code"].as_i64(), j["exit_signal"].as_i64()),
        (Some(-1), Some(40)),
        "{j}"
    );
    // A ws exec killed by SIGRTMAX.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut ws = ws_connect(&rig.ctl).await;
        let init = json!({"command": ["sh", "-c", "kill -64 $$"], "tty": false});
        ws.send(Message::Text(init.to_string().into()))
            .await
            .expect("init");
        let (exit, _) = exit_frame(&mut ws).await;
        assert_eq!(exit, json!({"Exit": {"code": null, "signal": 64}}));
    });
    // The host's real-time signal kills the workload (no handler for it), and the exit code
    // is answered.
    let r = http(&rig.ctl, "POST", "/v1/signals", &[], br#"{"signal": 40}"#);
    assert_eq!(r.status, 200);
    let code = http(&rig.ctl, "GET", "/v1/exit_code", &[], b"").json();
    assert_eq!(code["code"], 128 + 40);
    rig.finish().assert_code(128 + 40);
}

#[test]
fn root_execs_get_a_root_environment_never_the_workloads() {
    // A non-root workload that plants an `ls` in a directory on its PATH, a .profile and
    // .bashrc in its HOME, and names files of its own in ENV / BASH_ENV / LD_PRELOAD.
    let scratch = Scratch::new();
    let home = scratch.path("home");
    std::fs::create_dir(&home).expect("home");
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).expect("chown");
    let planted = scratch.path("planted-as-root");
    let evil = format!("#!/bin/sh\nid -u > {}\n", planted.display());
    let rig = Rig::start(
        json!({
            "UserOverride": "65534:65534",
            "ImageConfig": {
                "Cmd": ["/bin/sh", "-c", format!(
                    "printf '{evil}' > {home}/ls; chmod 755 {home}/ls; cp {home}/ls {home}/.rc; sleep 600",
                    evil = evil.replace('\n', "\\n"),
                    home = home.display()
                )],
                "Env": [
                    format!("PATH={}:/usr/bin:/bin", home.display()),
                    format!("HOME={}", home.display()),
                    format!("ENV={}/.rc", home.display()),
                    format!("BASH_ENV={}/.rc", home.display()),
                    format!("LD_LIBRARY_PATH={}", home.display()),
                ]
            }
        }),
        0,
    );
    wait_for_file(&home.join(".rc"), T);
    // The host runs `ls` as root (roostctl exec's default).
    let j = rig.exec(json!({"cmd": ["ls", "/"]})).json();
    assert_eq!(j["exit_code"], 0, "{j}");
    let j = rig.exec(json!({"cmd": ["sh", "-c", "env"]})).json();
    let env = j["stdout"].as_str().expect("env").to_string();
    assert!(!planted.exists(), "the workload's ls ran as root");
    for line in env.lines() {
        assert!(
            !line.contains(home.to_str().expect("utf-8")),
            "root exec env carries the workload's {line}"
        );
    }
    assert!(env.contains("HOME=/root"), "{env}");
    assert!(
        env.lines()
            .any(|l| l == "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"),
        "{env}"
    );
    // With workload_user the workload's env is what it gets (and it runs as the workload).
    let j = rig
        .exec(json!({"cmd": ["sh", "-c", "echo $HOME; id -u"], "workload_user": true}))
        .json();
    assert_eq!(j["stdout"], format!("{}\n65534\n", home.display()));
    let r = http(&rig.ctl, "POST", "/v1/signals", &[], br#"{"signal": 9}"#);
    assert_eq!(r.status, 200);
    rig.finish().assert_code(137);
}

#[test]
fn a_panic_while_answering_one_request_costs_that_request_only() {
    // The fault point panics inside the handler of GET /v1/sysinfo (a bug there would).
    let scratch = Scratch::new();
    let stop = scratch.path("stop");
    let config = scratch.config(&json!({
        "ImageConfig": { "Cmd": ["/bin/sh", "-c", format!(
            "while [ ! -e {} ]; do sleep 0.05; done; exit 7", stop.display())] },
    }));
    let ctl = scratch.path("ctl.sock");
    let roost = roost_with_control(&config, &ctl, &[("ROOST_FAULT", "control:/v1/sysinfo")]);
    let mut stream = UnixStream::connect(&ctl).expect("connect");
    stream
        .write_all(b"GET /v1/sysinfo HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stream, &mut answer);
    assert!(answer.is_empty(), "the panicking request got {answer:?}");
    // Everything else goes on: the API, the workload, its exit code.
    let r = http(&ctl, "GET", "/v1/status", &[], b"");
    assert_eq!(r.status, 200);
    std::fs::write(&stop, b"").expect("stop");
    let f = roost.wait(T);
    f.assert_code(7);
    assert!(f.stderr.contains("panic: "), "{}", f.stderr);
    assert!(
        f.stderr.contains("fault injected at control:/v1/sysinfo"),
        "{}",
        f.stderr
    );
}

#[test]
fn execs_are_bounded_in_number_and_in_the_output_they_hold() {
    let rig = Rig::start(json!({}), 0);
    let spawn_exec = |body: serde_json::Value| {
        let ctl = rig.ctl.clone();
        std::thread::spawn(move || http(&ctl, "POST", "/v1/exec", &[], body.to_string().as_bytes()))
    };
    let busy = |want: usize| {
        let deadline = Instant::now() + T;
        while processes_with("exec-slot-marker") < want {
            assert!(Instant::now() < deadline, "execs did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // 256 execs at once are the most: the 257th is told to come back.
    let held: Vec<_> = (0..256)
        .map(|_| spawn_exec(json!({"cmd": ["sh", "-c", "sleep 3; true", "exec-slot-marker"]})))
        .collect();
    busy(256);
    let r = rig.exec(json!({"cmd": ["true"]}));
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("256 execs are running"), "{}", r.text());
    for h in held {
        assert_eq!(h.join().expect("join").status, 200);
    }
    assert_eq!(rig.exec(json!({"cmd": ["true"]})).status, 200);

    // Two execs holding 32 MiB each (16 MiB of stdout, 16 of stderr) take the 64 MiB budget.
    let big = json!({"cmd": ["sh", "-c",
        "head -c 16777216 /dev/zero; head -c 16777216 /dev/zero >&2; sleep 3; true", "exec-slot-marker"],
        "max_output": 16777216});
    let held: Vec<_> = (0..2).map(|_| spawn_exec(big.clone())).collect();
    busy(2);
    // Their output is all read once the sleeps run.
    std::thread::sleep(Duration::from_millis(500));
    let r = rig.exec(json!({"cmd": ["echo", "x"]}));
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(
        r.text().contains("output of the running execs"),
        "{}",
        r.text()
    );
    for h in held {
        let a = h.join().expect("join");
        assert_eq!(a.status, 200);
        let j = a.json();
        assert_eq!(j["stdout"].as_str().map(str::len), Some(16 * 1024 * 1024));
    }
    // The budget is back once they answered.
    assert_eq!(
        rig.exec(json!({"cmd": ["echo", "x"]})).json()["stdout"],
        "x\n"
    );
    rig.stop_workload();
    rig.finish().assert_code(0);
}

#[test]
fn a_ws_client_that_fills_stdin_and_leaves_takes_its_command_with_it() {
    let rig = Rig::start(json!({}), 0);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut ws = ws_connect(&rig.ctl).await;
        // A command that never reads its stdin.
        let init =
            json!({"command": ["sh", "-c", "sleep 600; true", "stdin-fill-marker"], "tty": false, "stdin": true});
        ws.send(Message::Text(init.to_string().into()))
            .await
            .expect("init");
        let deadline = Instant::now() + T;
        while processes_with("stdin-fill-marker") == 0 {
            assert!(Instant::now() < deadline, "the command did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // 512 KiB: far more than the pipe takes.
        for _ in 0..64 {
            ws.send(Message::Binary(vec![b'x'; 8192].into()))
                .await
                .expect("send");
        }
        // The client goes away without a close frame.
        drop(ws);
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while processes_with("stdin-fill-marker") > 0 {
        assert!(
            Instant::now() < deadline,
            "the command outlived its client (stdin was full)"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Stdin that is read still arrives whole, and in order.
    rt.block_on(async {
        let mut ws = ws_connect(&rig.ctl).await;
        let init =
            json!({"command": ["sh", "-c", "sleep 0.5; wc -c"], "tty": false, "stdin": true});
        ws.send(Message::Text(init.to_string().into()))
            .await
            .expect("init");
        for _ in 0..64 {
            ws.send(Message::Binary(vec![b'y'; 8192].into()))
                .await
                .expect("send");
        }
        ws.send(Message::Binary(Vec::new().into()))
            .await
            .expect("eof");
        let (exit, frames) = exit_frame(&mut ws).await;
        assert_eq!(exit, json!({"Exit": {"code": 0, "signal": null}}));
        let stdout: String = frames.iter().filter_map(|f| f["binary"].as_str()).collect();
        assert_eq!(stdout.trim(), "524288");
    });
    rig.stop_workload();
    rig.finish().assert_code(0);
}

#[test]
fn websocket_exec_answers_the_fly_and_pigeon_clients_as_their_servers_do() {
    // Their clients send only {"command", "tty"}, decode only Exit and Error text frames,
    // expect a non-tty command to get /dev/null as stdin and a 1000 close.
    let rig = Rig::start(json!({}), 0);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut ws = ws_connect(&rig.ctl).await;
        // `cat` would wait forever on a stdin pipe nobody closes; /dev/null ends it.
        let init = json!({"command": ["sh", "-c", "cat; echo one; echo two >&2; echo three"], "tty": false});
        ws.send(Message::Text(init.to_string().into())).await.expect("init");
        let (exit, frames) = exit_frame(&mut ws).await;
        assert_eq!(exit, json!({"Exit": {"code": 0, "signal": null}}));
        // Only binary frames before Exit: stderr is in them, in the order written.
        assert!(frames.iter().all(|f| f.get("binary").is_some()), "{frames:?}");
        let output: String = frames.iter().filter_map(|f| f["binary"].as_str()).collect();
        assert_eq!(output, "one\ntwo\nthree\n");
        assert_eq!(close_code(&mut ws).await, Some(1000));

        // A terminal session gets TERM when the command's env has none.
        let mut ws = ws_connect(&rig.ctl).await;
        let init = json!({"command": ["sh", "-c", "echo term=$TERM"], "tty": true});
        ws.send(Message::Text(init.to_string().into())).await.expect("init");
        let (exit, frames) = exit_frame(&mut ws).await;
        assert_eq!(exit["Exit"]["code"], 0);
        let output: String = frames.iter().filter_map(|f| f["binary"].as_str()).collect();
        assert!(output.contains("term=xterm-256color"), "{output:?}");
        assert_eq!(close_code(&mut ws).await, Some(1000));

        // An error is an Error frame, then a close with 1011.
        let mut ws = ws_connect(&rig.ctl).await;
        let init = json!({"command": ["/nonexistent/program"], "tty": false});
        ws.send(Message::Text(init.to_string().into())).await.expect("init");
        let msg = ws.next().await.expect("frame").expect("frame");
        let v: serde_json::Value = serde_json::from_str(msg.to_text().expect("text")).expect("json");
        assert!(v["Error"]["message"].is_string(), "{v}");
        assert_eq!(close_code(&mut ws).await, Some(1011));
    });
    rig.stop_workload();
    rig.finish().assert_code(0);
}

#[test]
fn v1_is_the_anchors_contract_and_v2_is_roosts_own() {
    let rig = Rig::start(json!({}), 0);
    // pigeon's handler test decodes /v1/status into a map of booleans: exactly {"ok": true}.
    let r = http(&rig.ctl, "GET", "/v1/status", &[], b"");
    assert_eq!(r.status, 200);
    let body: std::collections::HashMap<String, bool> =
        serde_json::from_slice(&r.body).expect("a map of booleans");
    assert_eq!(
        body,
        std::collections::HashMap::from([("ok".to_string(), true)])
    );
    // roost's richer answer is versioned.
    let v2 = rig.status();
    assert_eq!(v2["ok"], true);
    assert!(
        v2["phases"].as_array().is_some_and(|p| !p.is_empty()),
        "{v2}"
    );
    assert_eq!(v2["workload"]["state"], "running");
    // HEAD on every GET route answers like the GET, without a body.
    for path in ["/v1/status", "/v2/status", "/v1/sysinfo"] {
        let get = http(&rig.ctl, "GET", path, &[], b"");
        let head = http(&rig.ctl, "HEAD", path, &[], b"");
        assert_eq!(head.status, get.status, "{path}");
        assert!(head.body.is_empty(), "{path}: {:?}", head.body);
        let ctype = |r: &HttpResponse| {
            r.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                .map(|(_, v)| v.clone())
        };
        assert_eq!(ctype(&head), ctype(&get), "{path}");
    }
    // Error bodies carry both anchors' keys: pigeon's `error` and Fly's `message`.
    for (method, path, status) in [
        ("POST", "/v1/status", 405),
        ("GET", "/v1/nothing", 404),
        ("POST", "/v1/signals", 400),
    ] {
        let r = http(&rig.ctl, method, path, &[], b"");
        assert_eq!(r.status, status, "{method} {path}");
        let v = r.json();
        assert!(v["error"].is_string(), "{v}");
        assert_eq!(v["error"], v["message"], "{v}");
    }
    rig.stop_workload();
    rig.finish().assert_code(0);
}

#[test]
fn a_fly_host_gets_flys_exec_answers() {
    // Control.Dialect "fly": output as arrays of bytes and a null exit_code for a signal
    // death, as Fly's init answers; a request may still ask for strings.
    let rig = Rig::start(json!({"Control": {"Dialect": "fly"}}), 0);
    let j = rig
        .exec(json!({"cmd": ["sh", "-c", "printf hi; kill -9 $$"]}))
        .json();
    assert_eq!(j["stdout"], json!([104, 105]), "{j}");
    assert_eq!(
        (j["exit_code"].is_null(), j["exit_signal"].as_i64()),
        (true, Some(9)),
        "{j}"
    );
    let j = rig
        .exec(json!({"cmd": ["sh", "-c", "printf hi"], "output": "string"}))
        .json();
    assert_eq!(
        (j["stdout"].as_str(), j["exit_code"].as_i64()),
        (Some("hi"), Some(0))
    );
    // roostctl reads either dialect: a signal death is 128 + N.
    let (code, out, _) = roostctl(&[
        "--unix",
        rig.ctl.to_str().expect("utf-8"),
        "exec",
        "--",
        "sh",
        "-c",
        "printf x; kill -15 $$",
    ]);
    assert_eq!((code, out.as_str()), (143, "x"));
    rig.stop_workload();
    rig.finish().assert_code(0);
}
