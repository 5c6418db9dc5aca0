//! Hostile callers of `/.fly/api` that are not allowed to use it: they must not be able to
//! take PID 1's descriptors, nor stall its event loop through the log on a slow console.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::json;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);
/// A uid the socket lets connect (its mode is 0666 for several allowed uids) but the peer
/// check refuses.
const HOSTILE_UID: &str = "1002";

/// Python as the hostile uid, running `script` with `args`.
fn as_hostile(script: &str, args: &[&str]) -> Child {
    Command::new("setpriv")
        .args([
            "--reuid",
            HOSTILE_UID,
            "--regid",
            HOSTILE_UID,
            "--clear-groups",
        ])
        .args(["/usr/bin/python3", "-c", script])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 as the hostile uid")
}

/// The devplatform, and roost with the proxy open to uids 0, 1000 and 1001 and the control
/// API on a Unix socket, its descriptors limited by `prlimit`; stderr as `stderr` gives it.
struct Rig {
    scratch: Scratch,
    _platform: DevPlatform,
    roost: Child,
    api: PathBuf,
    ctl: PathBuf,
}

impl Rig {
    fn start(nofile: u32, stderr: Stdio) -> Self {
        let scratch = Scratch::new();
        let api = scratch.path("fly/api");
        let stop = scratch.path("stop");
        let base = json!({
            "ImageConfig": { "Cmd": ["/bin/sh", "-c",
                format!("while [ ! -e {} ]; do sleep 0.05; done; exit 3", stop.display())] },
            "Api": { "SocketPath": api, "AllowUids": [0, 1000, 1001] },
        });
        let platform = DevPlatform::start(scratch.dir.path(), &base, &[]);
        let ctl = scratch.path("ctl.sock");
        let roost = Command::new("unshare")
            .args(PID_NS)
            .args(["prlimit", &format!("--nofile={nofile}:{nofile}")])
            .arg(ROOST)
            .args(["container", "--config"])
            .arg(&platform.config)
            .arg("--control")
            .arg(format!("unix:{}", ctl.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("roost");
        wait_for_file(&api, T);
        wait_for_file(&ctl, T);
        Rig {
            scratch,
            _platform: platform,
            roost,
            api,
            ctl,
        }
    }

    fn finish(mut self) -> Option<i32> {
        std::fs::write(self.scratch.path("stop"), b"").expect("stop");
        let deadline = Instant::now() + T;
        loop {
            if let Some(status) = self.roost.try_wait().expect("wait") {
                return status.code();
            }
            assert!(Instant::now() < deadline, "roost did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Rig {
    fn drop(&mut self) {
        for pid in children_of(self.roost.id() as i32) {
            // SAFETY: kill(2) with plain integers.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = self.roost.kill();
        let _ = self.roost.wait();
    }
}

/// A request with a read timeout of its own: `None` when no answer comes in time.
fn answered_within(socket: &Path, path: &str, timeout: Duration) -> Option<u16> {
    use std::io::Write;
    let mut s = std::os::unix::net::UnixStream::connect(socket).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes())
        .ok()?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).ok()?;
    String::from_utf8_lossy(&head[9..12]).parse().ok()
}

const HOLD: &str = r#"
import socket, sys, time
path, n, hold = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
# A refused request on a keep-alive connection: answered, then closed by roost.
s = socket.socket(socket.AF_UNIX); s.settimeout(10); s.connect(path)
s.sendall(b"GET /v1/apps HTTP/1.1\r\nHost: x\r\n\r\n")
data = b""
try:
    while True:
        chunk = s.recv(65536)
        if not chunk: break
        data += chunk
    print("closed-after", data.split(b"\r\n")[0].decode(), flush=True)
except socket.timeout:
    print("kept-open", flush=True)
held = []
for i in range(n):
    c = socket.socket(socket.AF_UNIX); c.settimeout(2)
    try:
        c.connect(path); held.append(c)
    except Exception:
        c.close()
print("held", len(held), flush=True)
time.sleep(hold)
"#;

#[test]
fn a_refused_uid_cannot_exhaust_pid_1s_descriptors() {
    // 512 descriptors for roost; the hostile uid opens 1,000 connections and holds them.
    let rig = Rig::start(512, Stdio::piped());
    let mut hostile = as_hostile(HOLD, &[rig.api.to_str().expect("utf-8"), "1000", "8"]);
    let mut out = BufReader::new(hostile.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("first line");
    assert_eq!(line.trim(), "closed-after HTTP/1.1 403 Forbidden", "{line}");
    line.clear();
    out.read_line(&mut line).expect("held line");
    assert!(line.starts_with("held "), "{line}");
    // While they are held: the control API and an allowed caller are answered.
    assert_eq!(
        answered_within(&rig.ctl, "/v1/status", Duration::from_secs(10)),
        Some(200)
    );
    let machine = format!("/v1/apps/{APP}/machines/{MACHINE}/metadata");
    assert_eq!(
        answered_within(&rig.api, &machine, Duration::from_secs(10)),
        Some(200)
    );
    let _ = hostile.wait();
    let mut rig = rig;
    let mut err = rig.roost.stderr.take().expect("stderr");
    let code = rig.finish();
    let mut text = String::new();
    let _ = err.read_to_string(&mut text);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("connection cap reached"), "{text}");
    assert!(
        text.matches("accept failed").count() <= 1,
        "accept failures are logged once per streak: {text}"
    );
}

const FLOOD: &str = r#"
import socket, sys
path, n = sys.argv[1], int(sys.argv[2])
answered = 0
for i in range(n):
    s = socket.socket(socket.AF_UNIX); s.settimeout(30)
    try:
        s.connect(path)
        s.sendall(b"GET /v1/apps/other/machines HTTP/1.1\r\nHost: x\r\n\r\n")
        if s.recv(12).startswith(b"HTTP/1.1 403"): answered += 1
    except Exception:
        pass
    s.close()
print("answered", answered, flush=True)
"#;

#[test]
fn a_flood_of_refused_requests_on_a_console_nobody_reads_stalls_nothing() {
    // roost's stderr is a pipe nobody reads yet: once its 64 KiB are full, a synchronous
    // log write would block the event loop.
    let mut rig = Rig::start(4096, Stdio::piped());
    let err = rig.roost.stderr.take().expect("stderr");
    let mut hostile = as_hostile(FLOOD, &[rig.api.to_str().expect("utf-8"), "3000"]);
    let mut line = String::new();
    BufReader::new(hostile.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("flood result");
    let _ = hostile.wait();
    assert_eq!(
        line.trim(),
        "answered 3000",
        "the flood was not answered: {line}"
    );
    // The event loop is not stuck behind the console: the control API answers.
    assert_eq!(
        answered_within(&rig.ctl, "/v1/status", Duration::from_secs(10)),
        Some(200)
    );
    // Now the console drains: refusals are one line, then a sum at the window's end.
    let collected = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = collected.clone();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let mut s = sink.lock().unwrap();
            s.push_str(&l);
            s.push('\n');
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while !collected
        .lock()
        .unwrap()
        .contains("more request(s) from uid=1002")
    {
        assert!(
            Instant::now() < deadline,
            "no summary line: {}",
            collected.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let code = rig.finish();
    std::thread::sleep(Duration::from_millis(200));
    let text = collected.lock().unwrap().clone();
    assert_eq!(code, Some(3), "{text}");
    // A burst of 20 per caller and window in full, the rest summed up.
    let refused_lines = text
        .lines()
        .filter(|l| l.contains("status=403 bytes="))
        .count();
    assert!(
        refused_lines <= 60,
        "{refused_lines} audit lines for refusals:\n{text}"
    );
}
