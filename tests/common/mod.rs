//! Running the real roost binary as PID 1 of fresh namespaces (`unshare`), with a timeout and
//! a guard that kills everything the test started, even when an assertion fails.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const ROOST: &str = env!("CARGO_BIN_EXE_roost");

/// roostctl, the host tool of its own crate: built beside roost by `cargo test --workspace`
/// (its crate's own tests make cargo build the binary).
pub fn roostctl_bin() -> String {
    let path = Path::new(ROOST).with_file_name("roostctl");
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (or `cargo build -p roostctl` first)",
        path.display()
    );
    path.display().to_string()
}

/// What a finished run left behind.
#[derive(Debug)]
pub struct Finished {
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
}

impl Finished {
    pub fn assert_code(&self, want: i32) {
        assert_eq!(
            self.code,
            Some(want),
            "exit {:?} signal {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.code,
            self.signal,
            self.stdout,
            self.stderr
        );
    }
}

/// A test's scratch directory with the run config in it.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("roost-test-")
            .tempdir()
            .expect("tempdir");
        // Workloads running as nobody must be able to reach files in here.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        Scratch { dir }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).expect("write");
        path
    }

    pub fn config(&self, doc: &serde_json::Value) -> PathBuf {
        self.write("config.json", &doc.to_string())
    }
}

/// A running roost under `unshare`; dropping it kills roost (and so its whole namespace).
pub struct Running {
    child: Child,
    started: Instant,
    out: Option<JoinHandle<String>>,
    err: Option<JoinHandle<String>>,
    finished: bool,
}

fn drain(mut r: impl Read + Send + 'static) -> JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = r.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Namespaces for a run: always a PID namespace with its own /proc.
pub const PID_NS: &[&str] = &["--pid", "--fork", "--mount-proc"];

impl Running {
    /// Starts `unshare <ns_args> <roost> container --config <config>`.
    pub fn start(ns_args: &[&str], config: &Path) -> Self {
        Self::spawn(roost_command(ns_args, config))
    }

    /// Starts an arbitrary command (a wrapper that ends by exec'ing roost).
    pub fn spawn(mut cmd: Command) -> Self {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A canary: nothing of roost's own environment may reach the workload.
            .env("ROOST_TEST_CANARY", "leaked");
        let mut child = cmd.spawn().expect("spawn unshare");
        let out = child.stdout.take().map(drain);
        let err = child.stderr.take().map(drain);
        Running {
            child,
            started: Instant::now(),
            out,
            err,
            finished: false,
        }
    }

    /// The host pid of roost: the child of the unshare process.
    pub fn roost_pid(&self) -> i32 {
        let parent = self.child.id() as i32;
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(pid) = children_of(parent).first() {
                return *pid;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("roost did not start under unshare");
    }

    /// Sends `sig` to roost.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with plain integers.
        let rc = unsafe { libc::kill(self.roost_pid(), sig) };
        assert_eq!(rc, 0, "kill roost");
    }

    /// Waits for roost to exit (at most `timeout`) and collects its output.
    pub fn wait(mut self, timeout: Duration) -> Finished {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() > deadline {
                panic!("roost did not exit within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        self.finished = true;
        let elapsed = self.started.elapsed();
        use std::os::unix::process::ExitStatusExt;
        Finished {
            code: status.code(),
            signal: status.signal(),
            stdout: self
                .out
                .take()
                .map(|h| h.join().expect("join"))
                .unwrap_or_default(),
            stderr: self
                .err
                .take()
                .map(|h| h.join().expect("join"))
                .unwrap_or_default(),
            elapsed,
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        // First the stop a host would send: roost's graceful stop ends the workload and
        // removes its cgroup leaves, which a SIGKILL to PID 1 leaves behind on the machine.
        let inits = children_of(self.child.id() as i32);
        for &pid in &inits {
            // SAFETY: kill(2) with plain integers.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while !inits.is_empty() && Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Killing PID 1 of the namespace kills every process in it.
        for pid in children_of(self.child.id() as i32) {
            // SAFETY: kill(2) with plain integers.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Pids whose parent is `parent`, from /proc.
pub fn children_of(parent: i32) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let Some(close) = stat.rfind(')') else {
            continue;
        };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        if fields.get(1).and_then(|p| p.parse::<i32>().ok()) == Some(parent) {
            if let Some(pid) = stat.split_whitespace().next().and_then(|p| p.parse().ok()) {
                pids.push(pid);
            }
        }
    }
    pids
}

/// Runs a config as PID 1 of a fresh PID namespace and waits for the end.
pub fn run_pid1(doc: &serde_json::Value, timeout: Duration) -> Finished {
    let scratch = Scratch::new();
    let config = scratch.config(doc);
    Running::start(PID_NS, &config).wait(timeout)
}

/// A config whose workload is `sh -c SCRIPT`.
pub fn sh_config(script: &str) -> serde_json::Value {
    serde_json::json!({ "ImageConfig": { "Cmd": ["/bin/sh", "-c", script] } })
}

/// `unshare NS_ARGS roost container --config CONFIG`, for a test that sets more of the
/// command (a `pre_exec`) before [`Running::spawn`].
pub fn roost_command(ns_args: &[&str], config: &Path) -> Command {
    let mut cmd = Command::new("unshare");
    cmd.args(ns_args)
        .arg(ROOST)
        .arg("container")
        .arg("--config")
        .arg(config);
    cmd
}

/// Polls until `path` exists.
pub fn wait_for_file(path: &Path, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An HTTP/1.1 response read off a socket.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

/// Sends raw bytes (a whole request, `Connection: close`) to a Unix socket and parses the
/// answer. Raw, so that tests can send paths and headers no client library would.
pub fn http_raw(socket: &Path, request: &[u8]) -> HttpResponse {
    use std::io::Write;
    let mut stream = std::os::unix::net::UnixStream::connect(socket)
        .unwrap_or_else(|e| panic!("connect {}: {e}", socket.display()));
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("timeout");
    // The server may answer (413) and close before reading all of a large body: a failed
    // write is not an error, the answer is what counts.
    let _ = stream.write_all(request);
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse_response(&raw)
}

/// A request with the usual framing.
pub fn http(
    socket: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpResponse {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    http_raw(socket, &bytes)
}

fn parse_response(raw: &[u8]) -> HttpResponse {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        let mut out = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest
                .windows(2)
                .position(|w| w == b"\r\n")
                .expect("chunk size");
            let size = usize::from_str_radix(
                String::from_utf8_lossy(&rest[..line_end])
                    .split(';')
                    .next()
                    .unwrap_or("0")
                    .trim(),
                16,
            )
            .expect("hex chunk size");
            rest = &rest[line_end + 2..];
            if size == 0 {
                break;
            }
            out.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = out;
    }
    HttpResponse {
        status,
        headers,
        body,
    }
}

/// The devplatform example binary, built next to roost by `cargo test`.
pub fn devplatform_bin() -> PathBuf {
    Path::new(ROOST)
        .parent()
        .expect("target dir")
        .join("examples/devplatform")
}

/// A running devplatform on a Unix socket in `dir`, which also writes roost's run config.
pub struct DevPlatform {
    child: Option<Child>,
    args: Vec<String>,
    pub socket: PathBuf,
    pub config: PathBuf,
    ready: PathBuf,
}

pub const APP: &str = "test-app";
pub const MACHINE: &str = "m-0123456789";

impl DevPlatform {
    /// Serves `doc` as the MMDS document (`PUT /_dev/mmds`), as a host sets a VM's data.
    pub fn put_mmds(&self, doc: &[u8]) {
        let r = http(&self.socket, "PUT", "/_dev/mmds", &[], doc);
        assert_eq!(r.status, 204, "{}", r.text());
    }

    /// Starts the platform; `base` is the run config it completes with AppName, MachineId and
    /// Api.{Upstream, Token} into `dir/config.json`.
    pub fn start(dir: &Path, base: &serde_json::Value, extra: &[&str]) -> Self {
        let socket = dir.join("platform.sock");
        Self::start_on(dir, &format!("unix:{}", socket.display()), base, extra)
    }

    /// Starts the platform listening on `listen` (`unix:PATH` or `127.0.0.1:0`).
    pub fn start_on(dir: &Path, listen: &str, base: &serde_json::Value, extra: &[&str]) -> Self {
        let base_path = dir.join("base.json");
        std::fs::write(&base_path, base.to_string()).expect("base config");
        // The socket the tests talk to (a TCP platform has none: its requests() is unusable).
        let socket = listen
            .strip_prefix("unix:")
            .map_or_else(|| dir.join("platform.sock"), PathBuf::from);
        let config = dir.join("config.json");
        let ready = dir.join("platform.ready");
        let mut args: Vec<String> = vec![
            "--listen".into(),
            listen.to_string(),
            "--app".into(),
            APP.into(),
            "--machine".into(),
            MACHINE.into(),
            "--root-key-file".into(),
            dir.join("root.key").display().to_string(),
            "--write-config".into(),
            config.display().to_string(),
            "--base-config".into(),
            base_path.display().to_string(),
            "--ready-file".into(),
            ready.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut platform = DevPlatform {
            child: None,
            args,
            socket,
            config,
            ready,
        };
        platform.restart();
        platform
    }

    /// (Re)starts the process with the same arguments (and so the same root key).
    pub fn restart(&mut self) {
        self.stop();
        let _ = std::fs::remove_file(&self.ready);
        let child = Command::new(devplatform_bin())
            .args(&self.args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn devplatform (built by cargo test as an example)");
        self.child = Some(child);
        wait_for_file(&self.ready, Duration::from_secs(60));
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn token(&self) -> String {
        let config: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&self.config).expect("config"))
                .expect("json");
        config["Api"]["Token"].as_str().expect("token").to_string()
    }

    /// What the platform received, oldest first.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        let r = http(&self.socket, "GET", "/_dev/requests", &[], b"");
        assert_eq!(r.status, 200);
        r.json().as_array().cloned().unwrap_or_default()
    }
}

impl Drop for DevPlatform {
    fn drop(&mut self) {
        self.stop();
    }
}

/// roostctl's (exit code, stdout, stderr).
pub fn roostctl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(roostctl_bin())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run roostctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A host's end of the exit report: accepts one connection on `path`, reads one HTTP request,
/// acknowledges it with 200, and yields (request head, body).
pub fn exit_report_listener(path: &Path) -> JoinHandle<(String, String)> {
    use std::io::Write;
    let listener = std::os::unix::net::UnixListener::bind(path).expect("bind exit report socket");
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("exit report connection");
        let request = read_request(&s);
        s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
            .expect("ack");
        request
    })
}

/// One HTTP/1.1 request read from `stream`: its head (request line and headers) and its body
/// (`Content-Length` bytes).
pub fn read_request(stream: &std::os::unix::net::UnixStream) -> (String, String) {
    use std::io::BufRead;
    let mut reader = std::io::BufReader::new(stream.try_clone().expect("clone"));
    let mut head = String::new();
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).expect("read");
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().expect("length");
        }
        head.push_str(&line);
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).expect("body");
    (head, String::from_utf8_lossy(&body).into_owned())
}

/// How long the control rig waits for roost.
const RIG_T: Duration = Duration::from_secs(60);

/// roost with `--control unix:...`, running a workload that waits for `stop` and then exits
/// with `exit_code`.
pub struct Rig {
    pub scratch: Scratch,
    pub ctl: PathBuf,
    roost: Option<Running>,
}

impl Rig {
    pub fn start(extra: serde_json::Value, exit_code: i32) -> Self {
        let scratch = Scratch::new();
        let stop = scratch.path("stop");
        let mut doc = serde_json::json!({
            "ImageConfig": { "Cmd": ["/bin/sh", "-c", format!(
                "trap 'echo workload-got-term; exit 143' TERM; while [ ! -e {} ]; do sleep 0.05; done; exit {exit_code}",
                stop.display()
            )] },
            "ExtraEnv": { "FROM_CONFIG": "yes" },
            "KillTimeout": 2,
        });
        if let (Some(doc), Some(extra)) = (doc.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                doc.insert(k.clone(), v.clone());
            }
        }
        let config = scratch.config(&doc);
        let ctl = scratch.path("ctl.sock");
        let roost = roost_with_control(&config, &ctl, &[]);
        let rig = Rig {
            scratch,
            ctl,
            roost: Some(roost),
        };
        // Running means the workload has a pid.
        let deadline = Instant::now() + RIG_T;
        while rig.status()["workload"]["state"] != "running" {
            assert!(Instant::now() < deadline, "workload never ran");
            std::thread::sleep(Duration::from_millis(20));
        }
        rig
    }

    /// roost's own status (`/v2/status`; `/v1/status` is the anchors' `{"ok": true}`).
    pub fn status(&self) -> serde_json::Value {
        let r = http(&self.ctl, "GET", "/v2/status", &[], b"");
        assert_eq!(r.status, 200);
        r.json()
    }

    pub fn exec(&self, body: serde_json::Value) -> HttpResponse {
        http(
            &self.ctl,
            "POST",
            "/v1/exec",
            &[],
            body.to_string().as_bytes(),
        )
    }

    pub fn stop_workload(&self) {
        std::fs::write(self.scratch.path("stop"), b"").expect("stop");
    }

    /// A signal to roost itself (a SIGTERM ends a linger at once).
    pub fn signal_roost(&self, sig: i32) {
        if let Some(roost) = &self.roost {
            roost.signal(sig);
        }
    }

    pub fn finish(mut self) -> Finished {
        self.roost.take().expect("running").wait(RIG_T)
    }
}

/// `unshare` with roost as PID 1 of `config`, the control API on `ctl`, and `env` for roost.
pub fn roost_with_control(config: &Path, ctl: &Path, env: &[(&str, &str)]) -> Running {
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(PID_NS)
        .arg(ROOST)
        .args(["container", "--config"])
        .arg(config)
        .arg("--control")
        .arg(format!("unix:{}", ctl.display()))
        .envs(env.iter().copied());
    let roost = Running::spawn(cmd);
    wait_for_file(ctl, RIG_T);
    roost
}

/// Firecracker's host side of vsock: a Unix socket that reads `CONNECT <port>\n`, answers
/// `OK <port>\n` and splices the stream to the guest's listener (here roost's control socket).
/// A port nobody listens on gets the connection closed, as Firecracker does.
pub fn firecracker_vsock_shim(path: &Path, guest: PathBuf) {
    let listener = std::os::unix::net::UnixListener::bind(path).expect("bind shim");
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let guest = guest.clone();
            std::thread::spawn(move || {
                let mut reader = std::io::BufReader::new(conn.try_clone().expect("clone"));
                let mut line = String::new();
                if std::io::BufRead::read_line(&mut reader, &mut line).is_err()
                    || line.trim() != "CONNECT 10000"
                {
                    return;
                }
                let Ok(upstream) = std::os::unix::net::UnixStream::connect(&guest) else {
                    return;
                };
                let mut conn_w = conn.try_clone().expect("clone");
                std::io::Write::write_all(&mut conn_w, b"OK 1073741824\n").expect("ok line");
                let mut up_r = upstream.try_clone().expect("clone");
                let mut up_w = upstream;
                let t = std::thread::spawn(move || {
                    let _ = std::io::copy(&mut reader, &mut up_w);
                    let _ = up_w.shutdown(std::net::Shutdown::Write);
                });
                let _ = std::io::copy(&mut up_r, &mut conn_w);
                let _ = conn_w.shutdown(std::net::Shutdown::Write);
                let _ = t.join();
            });
        }
    });
}

/// A TCP port on the loopback that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// roostctl against roost's control socket in container mode: (code, stdout, stderr).
pub fn roostctl_on(ctl: &Path, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(roostctl_bin())
        .arg("--unix")
        .arg(ctl)
        .args(args)
        .output()
        .expect("roostctl");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
