//! The snapshot contract in container mode, against the real roost as PID 1 of a fresh PID
//! namespace: hooks run as the services in CRaC's order, a restore credits the host's entropy
//! and answers what it did, a repeat is answered as before, and bad bodies are refused with
//! a 400 that changes nothing (docs/snapshots.md). The wall clock is not stepped in container
//! mode (it is the host's); the step itself is unit-tested with a fake clock.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);
/// 32 bytes of base64.
const ENTROPY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn post(ctl: &std::path::Path, path: &str, body: &serde_json::Value) -> HttpResponse {
    http(ctl, "POST", path, &[], body.to_string().as_bytes())
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos() as u64
}

/// A service that appends `NAME:WHAT` to the shared journal when a hook runs it.
fn hooked(name: &str, journal: &std::path::Path, extra: serde_json::Value) -> serde_json::Value {
    let mark = |what: &str| json!({"exec": ["/bin/sh", "-c", format!("echo {name}:{what}:$(id -u) >> {}", journal.display())]});
    let mut service = json!({
        "name": name,
        "exec": ["/bin/sh", "-c", "sleep 300"],
        "snapshot": {"before": mark("before"), "after": mark("after")},
    });
    if let (Some(s), Some(e)) = (service.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            s.insert(k.clone(), v.clone());
        }
    }
    service
}

fn wait_running(ctl: &std::path::Path, n: usize) {
    let deadline = Instant::now() + T;
    loop {
        let v = http(ctl, "GET", "/v2/status", &[], b"").json();
        let running = v["services"]
            .as_array()
            .map_or(0, |s| s.iter().filter(|s| s["state"] == "running").count());
        if running == n {
            return;
        }
        assert!(Instant::now() < deadline, "not running: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn hooks_run_in_dependency_order_and_a_restore_answers_what_it_did() {
    let scratch = Scratch::new();
    let journal = scratch.path("journal");
    std::fs::write(&journal, b"").expect("journal");
    std::fs::set_permissions(
        &journal,
        std::os::unix::fs::PermissionsExt::from_mode(0o666),
    )
    .expect("mode");
    // web depends on db; worker on web. db runs as nobody: its hooks must too.
    let doc = json!({"KillTimeout": 2, "Containers": [
        hooked("worker", &journal, json!({"depends_on": [{"name": "web", "condition": "started"}]})),
        hooked("web", &journal, json!({"depends_on": [{"name": "db", "condition": "started"}]})),
        hooked("db", &journal, json!({"user": "nobody"})),
    ]});
    let config = scratch.config(&doc);
    let ctl = scratch.path("ctl.sock");
    let roost = roost_with_control(&config, &ctl, &[]);
    wait_running(&ctl, 3);

    let r = post(&ctl, "/v2/snapshot/prepare", &json!({"timeout_ms": 20000}));
    assert_eq!(r.status, 200, "{}", r.text());
    let prepared = r.json();
    assert_eq!(prepared["generation"], 0);
    let order: Vec<&str> = prepared["hooks"]
        .as_array()
        .expect("hooks")
        .iter()
        .map(|h| {
            assert_eq!(h["outcome"], "ok", "{h}");
            h["service"].as_str().expect("name")
        })
        .collect();
    assert_eq!(
        order,
        ["worker", "web", "db"],
        "before-hooks: dependents first"
    );
    let steps: Vec<&str> = prepared["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["step"].as_str().expect("step"))
        .collect();
    assert_eq!(steps, ["hooks", "upstream_pools", "sync"], "{prepared}");
    let status = http(&ctl, "GET", "/v2/status", &[], b"").json();
    assert_eq!(status["snapshot"]["prepared"], true, "{status}");

    let body = json!({"time_unix_ns": now_ns(), "entropy": ENTROPY, "clone": false});
    let r = post(&ctl, "/v2/snapshot/restored", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let restored = r.json();
    assert_eq!(restored["generation"], 1, "{restored}");
    assert_eq!(restored["reseeded"], true, "{restored}");
    assert!(restored["clock_step_ms"].is_null(), "{restored}");
    assert!(
        restored["clock"]
            .as_str()
            .unwrap_or("")
            .starts_with("not stepped"),
        "{restored}"
    );
    let steps: Vec<&str> = restored["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["step"].as_str().expect("step"))
        .collect();
    assert_eq!(
        steps,
        ["entropy", "clock", "upstream_pools", "tokens", "hooks"],
        "{restored}"
    );
    assert_eq!(
        restored["tokens_refreshed"], 0,
        "no broker here: {restored}"
    );
    let after: Vec<&str> = restored["hooks"]
        .as_array()
        .expect("hooks")
        .iter()
        .map(|h| h["service"].as_str().expect("name"))
        .collect();
    assert_eq!(
        after,
        ["db", "web", "worker"],
        "after-hooks: dependencies first"
    );
    // Each service's view says which of its hooks ran, and how.
    let db = http(&ctl, "GET", "/v2/services/db", &[], b"").json();
    assert_eq!(
        db["snapshot_hooks"],
        json!([
            {"hook": "before", "outcome": "ok", "generation": 0},
            {"hook": "after", "outcome": "ok", "generation": 1},
        ]),
        "{db}"
    );
    // The entropy is in no answer and no log line.
    assert!(!r.text().contains(ENTROPY));

    // The journal: each hook ran once, in that order, as its service's user.
    let nobody = nix::unistd::User::from_name("nobody")
        .expect("passwd")
        .expect("nobody")
        .uid
        .as_raw();
    let lines = std::fs::read_to_string(&journal).expect("journal");
    assert_eq!(
        lines.lines().collect::<Vec<_>>(),
        [
            "worker:before:0".to_string(),
            "web:before:0".to_string(),
            format!("db:before:{nobody}"),
            format!("db:after:{nobody}"),
            "web:after:0".to_string(),
            "worker:after:0".to_string(),
        ]
    );

    // The same generation again: the same answer, marked, and nothing run again.
    let r = post(
        &ctl,
        "/v2/snapshot/restored",
        &json!({"time_unix_ns": now_ns(), "entropy": ENTROPY, "clone": false, "generation": 1}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["replayed"], true);
    assert_eq!(
        std::fs::read_to_string(&journal)
            .expect("journal")
            .lines()
            .count(),
        6
    );

    // Bad bodies: a clear 400 each, and the generation stays where it was.
    let bad = [
        json!({"entropy": ENTROPY, "clone": false}),
        json!({"time_unix_ns": now_ns(), "entropy": "AAEC", "clone": false}),
        json!({"time_unix_ns": now_ns(), "clone": false}),
        json!({"time_unix_ns": 5, "entropy": ENTROPY, "clone": false}),
        json!({"time_unix_ns": now_ns(), "entropy": ENTROPY, "clone": false, "generation": 0}),
        json!({"time_unix_ns": now_ns(), "entropy": ENTROPY}),
    ];
    for body in bad {
        let r = post(&ctl, "/v2/snapshot/restored", &body);
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert!(!r.json()["error"].as_str().unwrap_or("").is_empty());
    }
    let status = http(&ctl, "GET", "/v2/status", &[], b"").json();
    assert_eq!(status["snapshot"]["generation"], 1, "{status}");
    assert_eq!(status["snapshot"]["in_progress"], serde_json::Value::Null);
    assert_eq!(
        std::fs::read_to_string(&journal)
            .expect("journal")
            .lines()
            .count(),
        6
    );

    roost.signal(libc::SIGTERM);
    let done = roost.wait(T);
    assert!(!done.stderr.contains(ENTROPY));
}

#[test]
fn a_failing_before_hook_refuses_the_prepare() {
    let scratch = Scratch::new();
    let doc = json!({"KillTimeout": 2, "Containers": [
        {"name": "app", "exec": ["/bin/sh", "-c", "sleep 300"],
         "snapshot": {"before": {"exec": ["/bin/sh", "-c", "exit 3"]}}},
    ]});
    let config = scratch.config(&doc);
    let ctl = scratch.path("ctl.sock");
    let roost = roost_with_control(&config, &ctl, &[]);
    wait_running(&ctl, 1);
    let r = post(&ctl, "/v2/snapshot/prepare", &json!({}));
    assert_eq!(r.status, 409, "{}", r.text());
    let v = r.json();
    assert_eq!(v["hooks"][0]["outcome"], "exited 3", "{v}");
    assert!(
        v["error"].as_str().unwrap_or("").contains("not prepared"),
        "{v}"
    );
    let status = http(&ctl, "GET", "/v2/status", &[], b"").json();
    assert_eq!(status["snapshot"]["prepared"], false, "{status}");
    roost.signal(libc::SIGTERM);
    roost.wait(T);
}

#[test]
fn a_restore_fetches_every_token_anew_before_it_answers() {
    let scratch = Scratch::new();
    let dir = scratch.dir.path();
    let token = dir.join("fly/oidc_token");
    let base = json!({
        "ImageConfig": {"Cmd": ["/bin/sh", "-c", "sleep 300"], "Env": ["AWS_ROLE_ARN=arn:aws:iam::1:role/r"], "WorkingDir": dir},
        "Api": {"SocketPath": dir.join("fly/api")},
        "Oidc": {"TokenPath": token},
        "KillTimeout": 2,
    });
    // Hour-long tokens: nothing but the restore refreshes them during the test.
    let platform = DevPlatform::start(dir, &base, &["--token-lifetime", "3600"]);
    let ctl = scratch.path("ctl.sock");
    let roost = roost_with_control(&platform.config, &ctl, &[]);
    wait_for_file(&token, T);
    let before = std::fs::read_to_string(&token).expect("token");
    // A token's times are in seconds: the next one must differ.
    std::thread::sleep(Duration::from_millis(1100));
    let r = post(
        &ctl,
        "/v2/snapshot/restored",
        &json!({"time_unix_ns": now_ns(), "entropy": ENTROPY, "clone": false}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let answer = r.json();
    assert_eq!(answer["tokens_refreshed"], 1, "{answer}");
    // Answered after the new token is in place, not before.
    let after = std::fs::read_to_string(&token).expect("token");
    assert_ne!(before, after, "the token file was not written anew");
    let status = http(&ctl, "GET", "/v2/status", &[], b"").json();
    assert_eq!(status["broker"][0]["refreshes"], 2, "{status}");
    roost.signal(libc::SIGTERM);
    roost.wait(T);
}

#[test]
fn roostctl_drives_both_calls_with_this_hosts_clock_and_entropy() {
    let scratch = Scratch::new();
    let doc = json!({"KillTimeout": 2, "Containers": [
        {"name": "app", "exec": ["/bin/sh", "-c", "sleep 300"]},
    ]});
    let config = scratch.config(&doc);
    let ctl = scratch.path("ctl.sock");
    let roost = roost_with_control(&config, &ctl, &[]);
    wait_running(&ctl, 1);
    let (code, out, err) = roostctl_on(&ctl, &["snapshot", "prepare", "--timeout-ms", "5000"]);
    assert_eq!(code, 0, "{err}");
    let prepared: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(prepared["generation"], 0, "{prepared}");
    let (code, out, err) = roostctl_on(&ctl, &["snapshot", "restored", "--clone"]);
    assert_eq!(code, 0, "{err}");
    let restored: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(restored["generation"], 1, "{restored}");
    assert_eq!(restored["reseeded"], true, "{restored}");
    // A generation behind the machine's: roost's 400 becomes roostctl's failure.
    let (code, _, err) = roostctl_on(&ctl, &["snapshot", "restored", "--generation", "0"]);
    assert_ne!(code, 0);
    assert!(err.contains("behind"), "{err}");
    roost.signal(libc::SIGTERM);
    roost.wait(T);
}

/// One service with journalling hooks under roost, with a restore source of the test's own
/// (`env`: the variable and the path standing in for the kernel's): its journal, control
/// socket and roost, once the service runs.
fn one_hooked_app(
    scratch: &Scratch,
    env: (&str, &std::path::Path),
) -> (std::path::PathBuf, std::path::PathBuf, Running) {
    let journal = scratch.path("journal");
    std::fs::write(&journal, b"").expect("journal");
    let doc = json!({"KillTimeout": 2, "Containers": [hooked("app", &journal, json!({}))]});
    let config = scratch.config(&doc);
    let ctl = scratch.path("ctl.sock");
    let roost = roost_with_control(&config, &ctl, &[(env.0, env.1.to_str().expect("utf-8"))]);
    wait_running(&ctl, 1);
    (journal, ctl, roost)
}

#[test]
fn a_restore_the_host_does_not_announce_still_gets_tokens_and_after_hooks() {
    let scratch = Scratch::new();
    // The kernel log, as a FIFO the test writes: in a VM it is /dev/kmsg.
    let kmsg = scratch.path("kmsg");
    nix::unistd::mkfifo(&kmsg, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("fifo");
    let (journal, ctl, roost) = one_hooked_app(&scratch, ("ROOST_TEST_KMSG", &kmsg));
    // Opened after roost's reader (a blocking open waits for it), and kept open to the end.
    let mut writer = std::fs::OpenOptions::new()
        .write(true)
        .open(&kmsg)
        .expect("fifo writer");
    use std::io::Write;
    writer
        .write_all(b"6,1001,123456789,-;random: crng init done\n")
        .expect("write");
    writer
        .write_all(b"6,1002,123456799,-;random: crng reseeded due to virtual machine fork\n")
        .expect("write");
    let deadline = Instant::now() + T;
    let status = loop {
        let v = http(&ctl, "GET", "/v2/status", &[], b"").json();
        if v["snapshot"]["detected_restores"] == 1 && v["snapshot"]["in_progress"].is_null() {
            break v;
        }
        assert!(
            Instant::now() < deadline,
            "the restore was not noticed: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status["snapshot"]["clock_stepped"], false, "{status}");
    // The generation is the host's to give: unchanged.
    assert_eq!(status["snapshot"]["generation"], 0, "{status}");
    assert_eq!(
        std::fs::read_to_string(&journal)
            .expect("journal")
            .lines()
            .collect::<Vec<_>>(),
        ["app:after:0"]
    );
    // The host's call later still does what only it can (entropy, clock): a new generation.
    let r = post(
        &ctl,
        "/v2/snapshot/restored",
        &json!({"time_unix_ns": now_ns(), "entropy": ENTROPY, "clone": false}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["generation"], 1);
    roost.signal(libc::SIGTERM);
    let done = roost.wait(T);
    drop(writer);
    assert!(
        done.stderr
            .contains("a restore was noticed without the host's call"),
        "{}",
        done.stderr
    );
}

/// The host's `restored` that comes while roost is acting on a restore it noticed by itself
/// (on Firecracker with VMGenID the kernel's line comes first, within milliseconds) waits for
/// it and then does all of its own, instead of being refused as busy.
#[test]
fn the_hosts_restored_call_waits_for_a_noticed_restore_running() {
    let scratch = Scratch::new();
    let kmsg = scratch.path("kmsg");
    nix::unistd::mkfifo(&kmsg, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("fifo");
    let journal = scratch.path("journal");
    std::fs::write(&journal, b"").expect("journal");
    // An after-hook that takes a second: the noticed restore is running that long.
    let slow =
        json!({"exec": ["/bin/sh", "-c", format!("sleep 1; echo after >> {}", journal.display())]});
    let doc = json!({"KillTimeout": 2, "Containers": [
        {"name": "app", "exec": ["/bin/sh", "-c", "sleep 300"], "snapshot": {"after": slow}}
    ]});
    let config = scratch.config(&doc);
    let ctl = scratch.path("ctl.sock");
    let roost = roost_with_control(
        &config,
        &ctl,
        &[("ROOST_TEST_KMSG", kmsg.to_str().expect("utf-8"))],
    );
    wait_running(&ctl, 1);
    let mut writer = std::fs::OpenOptions::new()
        .write(true)
        .open(&kmsg)
        .expect("fifo writer");
    use std::io::Write;
    writer
        .write_all(b"6,1002,123456799,-;random: crng reseeded due to virtual machine fork\n")
        .expect("write");
    let deadline = Instant::now() + T;
    while http(&ctl, "GET", "/v2/status", &[], b"").json()["snapshot"]["in_progress"] != "restored"
    {
        assert!(Instant::now() < deadline, "the restore was not noticed");
        std::thread::sleep(Duration::from_millis(20));
    }
    let r = post(
        &ctl,
        "/v2/snapshot/restored",
        &json!({"time_unix_ns": now_ns(), "entropy": ENTROPY, "clone": false}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["generation"], 1);
    let status = http(&ctl, "GET", "/v2/status", &[], b"").json();
    assert_eq!(status["snapshot"]["detected_restores"], 1, "{status}");
    // The noticed restore's after-hook, then the host call's.
    assert_eq!(
        std::fs::read_to_string(&journal).expect("journal"),
        "after\nafter\n"
    );
    roost.signal(libc::SIGTERM);
    roost.wait(T);
    drop(writer);
}

/// A Unix-socket relay in front of roost's control socket whose connections the test can
/// cut at once, as a VM's restore resets every vsock connection.
struct Relay {
    path: std::path::PathBuf,
    live: std::sync::Arc<std::sync::Mutex<Vec<std::os::unix::net::UnixStream>>>,
}

impl Relay {
    fn start(path: std::path::PathBuf, to: std::path::PathBuf) -> Relay {
        let listener = std::os::unix::net::UnixListener::bind(&path).expect("bind relay");
        let live = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let held = live.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                let Ok(server) = std::os::unix::net::UnixStream::connect(&to) else {
                    continue;
                };
                let pipe = |mut from: std::os::unix::net::UnixStream,
                            mut to: std::os::unix::net::UnixStream| {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                };
                let mut kept = held.lock().unwrap();
                kept.push(client.try_clone().expect("clone"));
                kept.push(server.try_clone().expect("clone"));
                pipe(
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                pipe(server, client);
            }
        });
        Relay { path, live }
    }

    /// Cuts every connection through the relay.
    fn cut(&self) {
        for s in self.live.lock().unwrap().drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[test]
fn roostctl_wait_connects_again_when_its_connection_is_cut() {
    let scratch = Scratch::new();
    let stop = scratch.path("stop");
    let doc = json!({"KillTimeout": 2, "Control": {"LingerSeconds": 5}, "ImageConfig": {"Cmd": [
        "/bin/sh", "-c", format!("while [ ! -e {} ]; do sleep 0.05; done; exit 7", stop.display())
    ]}});
    let config = scratch.config(&doc);
    let ctl = scratch.path("ctl.sock");
    let roost = roost_with_control(&config, &ctl, &[]);
    let relay = Relay::start(scratch.path("relay.sock"), ctl.clone());
    let waiter = std::process::Command::new(roostctl_bin())
        .arg("--unix")
        .arg(&relay.path)
        .arg("wait")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("roostctl wait");
    // The long-poll is in place; a restore cuts it.
    std::thread::sleep(Duration::from_millis(1500));
    relay.cut();
    std::thread::sleep(Duration::from_millis(1500));
    std::fs::write(&stop, b"").expect("stop");
    let out = waiter.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    assert!(
        stderr.contains("connecting again"),
        "the cut went unnoticed: {stderr}"
    );
    roost.signal(libc::SIGTERM);
    roost.wait(T);
}

#[test]
fn the_pushed_exit_report_survives_a_cut_connection() {
    use std::io::Write;
    let scratch = Scratch::new();
    let report = scratch.path("report.sock");
    let listener = std::os::unix::net::UnixListener::bind(&report).expect("bind");
    // The host: the first connection is cut after the request came (a restore in between),
    // the second is acknowledged.
    let host = std::thread::spawn(move || {
        let mut bodies = Vec::new();
        for n in 0..2 {
            let (mut s, _) = listener.accept().expect("accept");
            bodies.push(read_request(&s).1);
            if n == 0 {
                let _ = s.shutdown(std::net::Shutdown::Both);
            } else {
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .expect("ack");
            }
        }
        bodies
    });
    let doc = json!({"KillTimeout": 2, "Control": {"ExitReportSocket": report},
                     "ImageConfig": {"Cmd": ["/bin/sh", "-c", "exit 9"]}});
    let done = Running::start(PID_NS, &scratch.config(&doc)).wait(T);
    done.assert_code(9);
    let bodies = host.join().expect("host");
    assert_eq!(bodies.len(), 2);
    let second: serde_json::Value = serde_json::from_str(&bodies[1]).expect("json");
    assert_eq!(second["code"], 9, "{second}");
    assert!(
        done.stderr.contains("exit report acknowledged"),
        "{}",
        done.stderr
    );
}

#[test]
fn a_host_that_hangs_up_does_not_cancel_a_call_half_done() {
    use std::io::Write;
    let scratch = Scratch::new();
    let done = scratch.path("hook-done");
    let doc = json!({"KillTimeout": 2, "Containers": [
        {"name": "app", "exec": ["/bin/sh", "-c", "sleep 300"],
         "snapshot": {"before": {"exec": ["/bin/sh", "-c", format!("sleep 1; touch {}", done.display())]}}},
    ]});
    let config = scratch.config(&doc);
    let ctl = scratch.path("ctl.sock");
    let roost = roost_with_control(&config, &ctl, &[]);
    wait_running(&ctl, 1);
    // The host sends prepare and hangs up while the hook runs.
    let mut s = std::os::unix::net::UnixStream::connect(&ctl).expect("connect");
    s.write_all(b"POST /v2/snapshot/prepare HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        .expect("request");
    std::thread::sleep(Duration::from_millis(300));
    drop(s);
    // The call goes on to its end: the hook ran, the machine is prepared, nothing is stuck.
    let deadline = Instant::now() + T;
    loop {
        let v = http(&ctl, "GET", "/v2/status", &[], b"").json();
        if v["snapshot"]["prepared"] == true && v["snapshot"]["in_progress"].is_null() {
            break;
        }
        assert!(Instant::now() < deadline, "the call did not end: {v}");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(done.exists(), "the hook was cut short");
    let r = post(&ctl, "/v2/snapshot/prepare", &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    roost.signal(libc::SIGTERM);
    roost.wait(T);
}

/// The `NOTIFY_SOCKET` way: a daemon that speaks systemd's `Type=notify-reload` exchange
/// (on its signal: `RELOADING=1`, its work, `READY=1`) takes a `notify` hook as it is; the
/// hook ends when its `READY=1` comes, and one that never comes is reported at the bound.
#[test]
fn a_notify_hook_waits_for_the_services_ready_after_its_signal() {
    let scratch = Scratch::new();
    let daemon = "import os, signal, socket, time\n\
                  a = os.environ['NOTIFY_SOCKET']\n\
                  addr = '\\0' + a[1:]\n\
                  s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
                  def reload(sig, frame):\n    \
                      s.sendto(b'RELOADING=1\\nMONOTONIC_USEC=%d' % (time.monotonic_ns() // 1000), addr)\n    \
                      print('reloading on', sig, flush=True)\n    \
                      time.sleep(0.5)\n    \
                      print('reloaded', flush=True)\n    \
                      s.sendto(b'READY=1', addr)\n\
                  signal.signal(signal.SIGHUP, reload)\n\
                  signal.signal(signal.SIGUSR2, reload)\n\
                  s.sendto(b'READY=1', addr)\n\
                  while True:\n    time.sleep(600)\n";
    let doc = json!({"KillTimeout": 2, "Containers": [
        {"name": "db", "exec": ["python3", "-c", daemon], "notify": true,
         "snapshot": {"before": {"notify": {"signal": "SIGUSR2"}}, "after": {"notify": {}}}},
        // Has a NOTIFY_SOCKET, ignores the signal, never says READY=1 again.
        {"name": "mute", "exec": ["/bin/sh", "-c", "trap '' HUP; sleep 300 & wait"], "notify": true,
         "snapshot": {"after": {"notify": {}, "timeout": 1}}},
    ]});
    let config = scratch.config(&doc);
    let ctl = scratch.path("ctl.sock");
    let roost = roost_with_control(&config, &ctl, &[]);
    wait_running(&ctl, 2);
    let deadline = Instant::now() + T;
    while http(&ctl, "GET", "/v2/services/db", &[], b"").json()["ready"] != true {
        assert!(Instant::now() < deadline, "db never sent its first READY=1");
        std::thread::sleep(Duration::from_millis(50));
    }
    let logs = |service: &str| -> Vec<String> {
        let page = http(
            &ctl,
            "GET",
            &format!("/v2/services/{service}/logs"),
            &[],
            b"",
        )
        .json();
        serde_json::from_value(page["lines"].clone()).expect("lines")
    };

    let r = post(&ctl, "/v2/snapshot/prepare", &json!({}));
    assert_eq!(r.status, 200, "{}", r.text());
    let hook = &r.json()["hooks"][0];
    assert_eq!(
        (&hook["service"], &hook["hook"], &hook["outcome"]),
        (&json!("db"), &json!("notify"), &json!("ok")),
        "{hook}"
    );
    // The answer came after the daemon's work, not at the signal.
    assert!(
        hook["duration_ms"].as_f64().is_some_and(|ms| ms >= 450.0),
        "{hook}"
    );
    assert_eq!(logs("db"), ["reloading on 12", "reloaded"]);

    let body = json!({"time_unix_ns": now_ns(), "entropy": ENTROPY, "clone": false});
    let r = post(&ctl, "/v2/snapshot/restored", &body);
    assert_eq!(r.status, 200, "{}", r.text());
    let hooks = r.json()["hooks"].clone();
    let outcome = |name: &str| {
        hooks
            .as_array()
            .and_then(|h| h.iter().find(|h| h["service"] == name))
            .map(|h| h["outcome"].as_str().unwrap_or("").to_string())
            .unwrap_or_default()
    };
    assert_eq!(outcome("db"), "ok", "{hooks}");
    assert_eq!(
        logs("db"),
        ["reloading on 12", "reloaded", "reloading on 1", "reloaded"]
    );
    assert_eq!(
        outcome("mute"),
        "no READY=1 within 1 s of signal 1",
        "{hooks}"
    );
    roost.signal(libc::SIGTERM);
    roost.wait(T);
}

/// A restore noticed through VMClock's generation counter (a file stands in for
/// `/dev/vmclock0`, read every second as a device that does not notify is): an update that
/// keeps the generation is no restore, one read mid-update waits for the next reading, and
/// each new generation is one restore with its after-hook.
#[test]
fn a_new_vmclock_generation_is_a_restore_and_other_updates_are_not() {
    use std::os::unix::fs::FileExt;
    let scratch = Scratch::new();
    let page = scratch.path("vmclock");
    std::fs::write(&page, roost::snapshot::vmclock::encode(2, (true, false), 5)).expect("page");
    let (journal, ctl, roost) = one_hooked_app(&scratch, ("ROOST_TEST_VMCLOCK", &page));
    std::thread::sleep(Duration::from_millis(500));
    // The hypervisor updates the page in place (roost holds it open).
    let device = std::fs::OpenOptions::new()
        .write(true)
        .open(&page)
        .expect("page");
    let set = |seq: u32, generation: u64| {
        let bytes = roost::snapshot::vmclock::encode(seq, (true, false), generation);
        device.write_all_at(&bytes, 0).expect("write page");
    };
    let detected = || {
        http(&ctl, "GET", "/v2/status", &[], b"").json()["snapshot"]["detected_restores"]
            .as_u64()
            .unwrap_or(99)
    };
    let wait_detected = |n: u64| {
        let deadline = Instant::now() + T;
        while detected() != n {
            assert!(Instant::now() < deadline, "restore {n} was not noticed");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    // A clock update, same generation (a live migration looks like this): nothing.
    set(4, 5);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(detected(), 0);
    set(6, 6);
    wait_detected(1);
    // Mid-update (odd seq_count) with a new generation: not acted on until it is whole.
    set(7, 7);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(detected(), 1);
    set(8, 7);
    wait_detected(2);
    let status = http(&ctl, "GET", "/v2/status", &[], b"").json();
    assert_eq!(status["snapshot"]["clock_stepped"], false, "{status}");
    // The after-hook once per restore (waited for: the count moves at the end of the run).
    assert_eq!(
        std::fs::read_to_string(&journal)
            .expect("journal")
            .lines()
            .collect::<Vec<_>>(),
        ["app:after:0", "app:after:0"]
    );
    roost.signal(libc::SIGTERM);
    let done = roost.wait(T);
    assert!(
        done.stderr
            .contains("VMClock's generation went from 6 to 7"),
        "{}",
        done.stderr
    );
}
