//! Running the real roost binary as PID 1 of fresh namespaces (`unshare`), with a timeout and
//! a guard that kills everything the test started, even when an assertion fails.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub const ROOST: &str = env!("CARGO_BIN_EXE_roost");

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
        let mut cmd = Command::new("unshare");
        cmd.args(ns_args)
            .arg(ROOST)
            .arg("container")
            .arg("--config")
            .arg(config);
        Self::spawn(cmd)
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
