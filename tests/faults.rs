//! Fault injection against the real binary: upstreams that hang, reset, dribble, lie or
//! flood; an MMDS that answers garbage; control API clients that stall, flood or pile up.
//! For each: roost keeps supervising, the other endpoints answer, memory stays bounded, and
//! the log says what happened without a flood.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use roost::vm::mmds::{MmdsClient, MmdsError};
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug)]
enum Fault {
    /// Accepts and never answers.
    Hang,
    /// Closes the connection at once.
    Reset,
    /// Answers a valid response one byte every 50 ms.
    Dribble,
    /// Answers bytes that are not HTTP.
    Garbage,
    /// Answers 200 with a 100 MB body.
    Flood,
    /// Answers 200 with a body that is not a JWT.
    NotAJwt,
    /// Answers 500.
    ServerError,
    /// Answers 200 with a token to a PUT and 401 to everything else (an MMDS that refuses
    /// every token).
    Unauthorized,
}

fn answer(stream: &mut dyn ReadWrite, fault: Fault) {
    let mut buf = [0u8; 4096];
    let _ = stream.read(&mut buf);
    match fault {
        Fault::Hang => std::thread::sleep(Duration::from_secs(120)),
        Fault::Reset => {}
        Fault::Dribble => {
            for b in b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}" {
                if stream.write_all(&[*b]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Fault::Garbage => {
            let _ = stream.write_all(b"\x00\x01garbage that is not HTTP at all\r\n\r\n\xff\xfe");
        }
        Fault::Flood => {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100000000\r\n\r\n");
            let chunk = vec![b'{'; 1 << 20];
            for _ in 0..100 {
                if stream.write_all(&chunk).is_err() {
                    return;
                }
            }
        }
        Fault::NotAJwt => {
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\nnot-a-token");
        }
        Fault::Unauthorized => {
            let answer: &[u8] = if buf.starts_with(b"PUT") {
                b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\ntoken"
            } else {
                b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\n\r\n"
            };
            let _ = stream.write_all(answer);
        }
        Fault::ServerError => {
            let _ = stream
                .write_all(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n");
        }
    }
}

trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

/// A faulty upstream on a Unix socket; it serves until the test ends.
fn faulty_unix(path: &Path, fault: Fault) {
    let listener = UnixListener::bind(path).expect("bind");
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            std::thread::spawn(move || answer(&mut s, fault));
        }
    });
}

/// A faulty server on loopback TCP (an MMDS stand-in); counts the connections it served.
fn faulty_tcp(
    fault: Fault,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let served = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let count = served.clone();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            std::thread::spawn(move || answer(&mut s, fault));
        }
    });
    (addr, served)
}

fn vm_rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// roost with the proxy pointing at `upstream`, a control socket, and a workload that waits.
struct Rig {
    scratch: Scratch,
    api: std::path::PathBuf,
    ctl: std::path::PathBuf,
    roost: Option<Running>,
}

impl Rig {
    fn start(upstream: &Path, extra_api: serde_json::Value, env: &[&str]) -> Self {
        let scratch = Scratch::new();
        let api = scratch.path("fly/api");
        let ctl = scratch.path("ctl.sock");
        let mut api_cfg = json!({
            "Upstream": format!("unix://{}", upstream.display()), "Token": "fm2_faulttoken",
            "SocketPath": api, "RequestTimeoutSeconds": 2,
        });
        if let (Some(a), Some(e)) = (api_cfg.as_object_mut(), extra_api.as_object()) {
            for (k, v) in e {
                a.insert(k.clone(), v.clone());
            }
        }
        let stop = scratch.path("stop");
        let config = scratch.config(&json!({
            "ImageConfig": { "Cmd": ["/bin/sh", "-c", format!("while [ ! -e {} ]; do sleep 0.05; done", stop.display())],
                             "Env": env },
            "AppName": "a", "MachineId": "m",
            "Api": api_cfg,
            "Oidc": { "TokenPath": scratch.path("fly/oidc_token"), "BootWaitSeconds": 1 },
        }));
        let mut cmd = std::process::Command::new("unshare");
        cmd.args(PID_NS)
            .arg(ROOST)
            .args(["container", "--config"])
            .arg(&config)
            .arg("--control")
            .arg(format!("unix:{}", ctl.display()));
        let roost = Running::spawn(cmd);
        wait_for_file(&ctl, T);
        wait_for_file(&api, T);
        Rig {
            scratch,
            api,
            ctl,
            roost: Some(roost),
        }
    }

    fn status_ok(&self) {
        let r = http(&self.ctl, "GET", "/v2/status", &[], b"");
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["workload"]["state"], "running");
    }

    fn finish(mut self) -> Finished {
        std::fs::write(self.scratch.path("stop"), b"").expect("stop");
        let f = self.roost.take().expect("running").wait(T);
        f.assert_code(0);
        f
    }
}

#[test]
fn faulty_upstreams_cost_one_request_each_never_the_proxy_or_the_workload() {
    for (fault, want) in [
        (Fault::Hang, 504),
        (Fault::Reset, 502),
        (Fault::Garbage, 502),
        (Fault::Dribble, 200),
        (Fault::ServerError, 500),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let upstream = dir.path().join("up.sock");
        faulty_unix(&upstream, fault);
        let rig = Rig::start(&upstream, json!({}), &[]);
        let t0 = Instant::now();
        let r = http(&rig.api, "GET", "/v1/apps/a/machines/m/metadata", &[], b"");
        assert_eq!(r.status, want, "{fault:?}: {}", r.text());
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{fault:?} took {:?}",
            t0.elapsed()
        );
        // The proxy still answers the next caller, and everything else still works.
        let r = http(
            &rig.api,
            "GET",
            "/v1/apps/a/machines/other/metadata",
            &[],
            b"",
        );
        assert_eq!(r.status, 403);
        rig.status_ok();
        let f = rig.finish();
        assert!(!f.stderr.contains("fm2_faulttoken"));
        if want >= 502 {
            assert!(
                f.stderr.matches("upstream error").count() <= 1,
                "{}",
                f.stderr
            );
        }
    }
}

#[test]
fn a_flooding_upstream_is_cut_at_the_time_limit_with_bounded_memory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = dir.path().join("up.sock");
    faulty_unix(&upstream, Fault::Flood);
    let rig = Rig::start(&upstream, json!({"RequestTimeoutSeconds": 3}), &[]);
    // A client that reads nothing: roost must not buffer the 100 MB for it.
    let mut slow = std::os::unix::net::UnixStream::connect(&rig.api).expect("connect");
    slow.write_all(b"GET /v1/apps/a/machines/m/metadata HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    std::thread::sleep(Duration::from_secs(4));
    let pid = rig.roost.as_ref().expect("running").roost_pid();
    let hwm = vm_rss_kib(pid);
    assert!(hwm < 64 * 1024, "roost peaked at {hwm} KiB");
    rig.status_ok();
    drop(slow);
    rig.finish();
}

#[test]
fn a_platform_answering_non_jwts_never_gets_a_file_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = dir.path().join("up.sock");
    faulty_unix(&upstream, Fault::NotAJwt);
    let rig = Rig::start(
        &upstream,
        json!({}),
        &["AWS_ROLE_ARN=arn:aws:iam::1:role/r"],
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(!rig.scratch.path("fly/oidc_token").exists());
    rig.status_ok();
    let status = http(&rig.ctl, "GET", "/v2/status", &[], b"").json();
    let err = status["broker"][0]["last_error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(err.contains("not a JWT"), "{status}");
    let f = rig.finish();
    assert_eq!(
        f.stderr.matches("refresh failed").count(),
        1,
        "one line per streak: {}",
        f.stderr
    );
    assert!(f.stderr.contains("STARTING THE WORKLOAD WITHOUT IT"));
}

#[test]
fn control_api_survives_stalled_clients_huge_bodies_and_a_thousand_connections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let upstream = dir.path().join("up.sock");
    faulty_unix(&upstream, Fault::Reset);
    let rig = Rig::start(&upstream, json!({}), &[]);
    // Slowloris: connections that send nothing, and one that sends half a head.
    let idle: Vec<_> = (0..50)
        .map(|_| std::os::unix::net::UnixStream::connect(&rig.ctl).expect("connect"))
        .collect();
    let mut half = std::os::unix::net::UnixStream::connect(&rig.ctl).expect("connect");
    half.write_all(b"GET /v1/status HTTP/1.1\r\nHost:")
        .expect("write");
    rig.status_ok();
    // A 100 MB body is refused without being read whole.
    let mut big = std::os::unix::net::UnixStream::connect(&rig.ctl).expect("connect");
    big.write_all(b"POST /v1/exec HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
        .expect("head");
    let chunk = vec![b'a'; 1 << 20];
    let mut sent = 0;
    for _ in 0..100 {
        if big.write_all(&chunk).is_err() {
            break;
        }
        sent += 1;
    }
    let mut answer = String::new();
    let _ = big.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 413"),
        "{answer:.80} after {sent} MiB"
    );
    // A thousand connections at once.
    let many: Vec<_> = (0..1000)
        .filter_map(|_| std::os::unix::net::UnixStream::connect(&rig.ctl).ok())
        .collect();
    assert!(many.len() > 900, "only {} connections", many.len());
    rig.status_ok();
    let pid = rig.roost.as_ref().expect("running").roost_pid();
    assert!(vm_rss_kib(pid) < 64 * 1024);
    drop((idle, half, many));
    rig.finish();
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn a_faulty_mmds_fails_the_fetch_at_its_deadline_never_hangs() {
    for fault in [
        Fault::Garbage,
        Fault::ServerError,
        Fault::Hang,
        Fault::Reset,
        Fault::Flood,
        Fault::Unauthorized,
    ] {
        let (addr, served) = faulty_tcp(fault);
        let t0 = Instant::now();
        let err = rt()
            .block_on(async {
                MmdsClient::new(addr)
                    .fetch(tokio::time::Instant::now() + Duration::from_secs(3))
                    .await
            })
            .expect_err("no config from a faulty MMDS");
        assert!(matches!(err, MmdsError::Deadline(_)), "{fault:?}: {err}");
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "{fault:?} took {:?}",
            t0.elapsed()
        );
        // Backoff, not a busy loop: a few dozen connections in 3 s at most.
        let n = served.load(std::sync::atomic::Ordering::SeqCst);
        assert!(n < 40, "{fault:?}: {n} connections in 3 s");
    }
}

fn socket_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    std::fs::read_link(e.path())
                        .map(|l| l.to_string_lossy().starts_with("socket:"))
                        .unwrap_or(false)
                })
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn idle_upstream_connections_are_closed_after_a_burst() {
    // Found by the load benchmark: without a timer the pool never closed idle connections.
    let scratch = Scratch::new();
    let platform = DevPlatform::start(
        scratch.dir.path(),
        &json!({
            "ImageConfig": { "Cmd": ["/bin/sleep", "120"] },
            "Api": { "SocketPath": scratch.path("fly/api") },
        }),
        &[],
    );
    let roost = Running::start(PID_NS, &platform.config);
    let api = scratch.path("fly/api");
    wait_for_file(&api, T);
    let pid = roost.roost_pid();
    let baseline = socket_fds(pid);
    let threads: Vec<_> = (0..32)
        .map(|_| {
            let api = api.clone();
            std::thread::spawn(move || {
                http(
                    &api,
                    "GET",
                    &format!("/v1/apps/{APP}/machines/{MACHINE}/wait?timeout=1"),
                    &[],
                    b"",
                )
                .status
            })
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().expect("thread"), 200);
    }
    let busy = socket_fds(pid);
    assert!(
        busy >= baseline + 16,
        "the burst should have pooled connections: {baseline} -> {busy}"
    );
    let deadline = Instant::now() + Duration::from_secs(45);
    while socket_fds(pid) > baseline {
        assert!(
            Instant::now() < deadline,
            "still {} sockets, baseline {baseline}",
            socket_fds(pid)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    drop(roost);
}
