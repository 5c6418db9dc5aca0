//! What the benchmarks share: percentiles, the devplatform and roost harness, small probes.
#![allow(dead_code)]

use super::*;

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

/// A keep-alive HTTP/1.1 client on a Unix socket, minimal and allocation-light, so the
/// figures are the servers' and not the client's.
pub(crate) struct KeepAlive {
    reader: std::io::BufReader<std::os::unix::net::UnixStream>,
    writer: std::os::unix::net::UnixStream,
}

impl KeepAlive {
    pub(crate) fn connect(path: &Path) -> Self {
        let stream = std::os::unix::net::UnixStream::connect(path).expect("connect");
        KeepAlive {
            writer: stream.try_clone().expect("clone"),
            reader: std::io::BufReader::with_capacity(256 * 1024, stream),
        }
    }

    /// Sends a GET and reads the whole response; returns (status, body bytes).
    pub(crate) fn get(&mut self, path: &str, auth: Option<&str>) -> (u16, u64) {
        self.request("GET", path, auth, "")
    }

    pub(crate) fn request(
        &mut self,
        method: &str,
        path: &str,
        auth: Option<&str>,
        body: &str,
    ) -> (u16, u64) {
        use std::io::{BufRead, Read};
        let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
        write!(
            self.writer,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let mut length = 0u64;
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            if let Some((k, v)) = line.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().expect("length");
                }
            }
        }
        let copied =
            std::io::copy(&mut (&mut self.reader).take(length), &mut std::io::sink()).unwrap();
        (status, copied)
    }
}

/// The devplatform on `d/platform.sock` completing `api` into a run config, and roost running
/// it as a subreaper with its control API on `d/ctl.sock`; returns both children once the
/// proxy and control sockets are up.
pub(crate) fn start_platform_and_roost(
    roost: &Path,
    devplatform: &Path,
    d: &Path,
    api: serde_json::Value,
) -> (std::process::Child, std::process::Child) {
    let base = serde_json::json!({ "ExecOverride": ["/bin/sleep", "3600"], "Api": api });
    std::fs::write(d.join("base.json"), base.to_string()).unwrap();
    let platform = Command::new(devplatform)
        .arg("--listen")
        .arg(format!("unix:{}", d.join("platform.sock").display()))
        .args(["--app", "bench", "--machine", "m1"])
        .arg("--base-config")
        .arg(d.join("base.json"))
        .arg("--write-config")
        .arg(d.join("config.json"))
        .arg("--ready-file")
        .arg(d.join("ready"))
        .stderr(Stdio::null())
        .spawn()
        .expect("devplatform");
    while !d.join("ready").exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let ctl = d.join("ctl.sock");
    let init = start_roost(roost, &d.join("config.json"), &ctl);
    while !d.join("api.sock").exists() || !ctl.exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    (platform, init)
}

pub(crate) fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

pub(crate) fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// One keep-alive HTTP/1.1 connection over a Unix socket (hyper), for the load runs.
pub(crate) async fn hyper_conn(
    path: &Path,
) -> hyper::client::conn::http1::SendRequest<http_body_util::Full<bytes::Bytes>> {
    let stream = tokio::net::UnixStream::connect(path)
        .await
        .expect("connect");
    let (sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(conn);
    sender
}

pub(crate) fn http_get_json(socket: &Path, path: &str) -> serde_json::Value {
    let mut c = KeepAlive::connect(socket);
    use std::io::{BufRead, Read};
    write!(c.writer, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut line = String::new();
    let mut length = 0usize;
    loop {
        line.clear();
        c.reader.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    c.reader.read_exact(&mut body).unwrap();
    serde_json::from_slice(&body).unwrap_or_default()
}

pub(crate) fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

/// `roost container --config CONFIG --control unix:CTL`, quiet but for warnings.
pub(crate) fn start_roost(roost: &Path, config: &Path, ctl: &Path) -> std::process::Child {
    Command::new(roost)
        .arg("container")
        .arg("--config")
        .arg(config)
        .arg("--control")
        .arg(format!("unix:{}", ctl.display()))
        .env("ROOST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("roost")
}

/// Stops an init the way a host would: SIGTERM (its graceful stop ends the workload, removes
/// its cgroup leaves and exits), SIGKILL only after 15 s. A bare SIGKILL would leave the
/// workload and its cgroup behind on the machine.
pub(crate) fn stop_init(init: &mut std::process::Child) {
    let pid = init.id();
    if !terminate_and_wait(init, pid) {
        let _ = init.kill();
    }
    let _ = init.wait();
}

/// SIGTERM to `pid` (the init itself, or PID 1 inside the namespace `child` started), then
/// up to 15 s for `child` to exit; whether it did.
pub(crate) fn terminate_and_wait(child: &mut std::process::Child, pid: u32) -> bool {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}
