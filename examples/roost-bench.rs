//! Benchmarks of roost against tini, printed as a Markdown table (run by `bench/run.sh`).
//!
//! `roost-bench compare --roost PATH --tini PATH [--runs N] [--orphans N]`
//!   - startup: from the harness's fork+exec of the init to the workload's first instruction
//!     (the workload, `roost-bench stamp`, prints CLOCK_MONOTONIC), median and p90;
//!   - idle RSS of the init while it supervises a sleeping workload;
//!   - wall time for a workload that leaves N orphans behind, until the init has exited.
//!
//! Helpers used as workloads: `roost-bench stamp`, `roost-bench orphans N`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn monotonic_ns() -> u128 {
    let ts = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC).expect("clock");
    ts.tv_sec() as u128 * 1_000_000_000 + ts.tv_nsec() as u128
}

/// Leaves `n` orphans: each is the child of a short-lived intermediate process.
fn orphans(n: usize) {
    use nix::unistd::{fork, ForkResult};
    for _ in 0..n {
        // SAFETY: single-threaded helper; the children only call _exit.
        match unsafe { fork() }.expect("fork") {
            ForkResult::Child => {
                // SAFETY: as above.
                if let Ok(ForkResult::Child) = unsafe { fork() } {
                    // SAFETY: _exit is always safe to call.
                    unsafe { libc::_exit(0) };
                }
                // SAFETY: _exit is always safe to call.
                unsafe { libc::_exit(0) };
            }
            ForkResult::Parent { child } => {
                nix::sys::wait::waitpid(child, None).expect("wait");
            }
        }
    }
}

enum Init<'a> {
    Roost { bin: &'a Path, dir: &'a Path },
    Tini(&'a Path),
}

impl Init<'_> {
    fn name(&self) -> &'static str {
        match self {
            Init::Roost { .. } => "roost",
            Init::Tini(_) => "tini -s",
        }
    }

    fn command(&self, argv: &[String]) -> Command {
        match self {
            Init::Roost { bin, dir } => {
                let config = dir.join(format!("bench-{}.json", monotonic_ns()));
                let doc = serde_json::json!({ "ExecOverride": argv, "KillTimeout": 1 });
                std::fs::write(&config, doc.to_string()).expect("write config");
                let mut cmd = Command::new(bin);
                cmd.arg("container").arg("--config").arg(config);
                cmd
            }
            Init::Tini(bin) => {
                let mut cmd = Command::new(bin);
                cmd.arg("-s").arg("--").args(argv);
                cmd
            }
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx]
}

/// One startup sample: milliseconds from before the init's fork+exec to the workload's exec.
fn startup_sample(init: &Init, me: &Path) -> f64 {
    let argv = vec![me.display().to_string(), "stamp".into()];
    let mut cmd = init.command(&argv);
    cmd.stdout(Stdio::piped()).stderr(Stdio::null());
    let t0 = monotonic_ns();
    let out = cmd.output().expect("run init");
    let text = String::from_utf8_lossy(&out.stdout);
    let stamp: u128 = text.trim().parse().expect("stamp output");
    (stamp - t0) as f64 / 1e6
}

/// (VmRSS, RssAnon) in KiB: all resident pages, and those that are the process's own (the rest
/// is the binary's pages in the page cache, shared by every process running it).
fn idle_rss_kib(init: &Init) -> (u64, u64) {
    let argv = vec!["/bin/sleep".to_string(), "2".into()];
    let mut child = init
        .command(&argv)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn init");
    std::thread::sleep(Duration::from_millis(1000));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    child.wait().expect("wait");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("RssAnon:"))
}

fn orphan_reap_secs(init: &Init, me: &Path, n: usize) -> f64 {
    let argv = vec![me.display().to_string(), "orphans".into(), n.to_string()];
    let t0 = Instant::now();
    let status = init
        .command(&argv)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run init");
    assert!(status.success(), "{} failed: {status}", init.name());
    t0.elapsed().as_secs_f64()
}

/// A keep-alive HTTP/1.1 client on a Unix socket, minimal and allocation-light, so the
/// figures are the servers' and not the client's.
struct KeepAlive {
    reader: std::io::BufReader<std::os::unix::net::UnixStream>,
    writer: std::os::unix::net::UnixStream,
}

impl KeepAlive {
    fn connect(path: &Path) -> Self {
        let stream = std::os::unix::net::UnixStream::connect(path).expect("connect");
        KeepAlive {
            writer: stream.try_clone().expect("clone"),
            reader: std::io::BufReader::with_capacity(256 * 1024, stream),
        }
    }

    /// Sends a GET and reads the whole response; returns (status, body bytes).
    fn get(&mut self, path: &str, auth: Option<&str>) -> (u16, u64) {
        self.request("GET", path, auth, "")
    }

    fn request(&mut self, method: &str, path: &str, auth: Option<&str>, body: &str) -> (u16, u64) {
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
fn start_platform_and_roost(
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
    let init = Command::new(roost)
        .arg("container")
        .arg("--config")
        .arg(d.join("config.json"))
        .arg("--control")
        .arg(format!("unix:{}", ctl.display()))
        .env("ROOST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("roost");
    while !d.join("api.sock").exists() || !ctl.exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    (platform, init)
}

fn proxy_bench(args: &[String]) {
    let roost = PathBuf::from(arg_value(args, "--roost").expect("--roost PATH"));
    let devplatform = PathBuf::from(arg_value(args, "--devplatform").expect("--devplatform PATH"));
    let requests: usize = arg_value(args, "--requests").map_or(5000, |v| v.parse().unwrap());
    let bytes: u64 = arg_value(args, "--bytes").map_or(256 << 20, |v| v.parse().unwrap());
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let api = serde_json::json!({ "SocketPath": d.join("api.sock"), "RequestTimeoutSeconds": 600,
        "Paths": ["GET /v1/apps/{app}/machines/{machine}/metadata",
                  "GET /v1/apps/{app}/machines/{machine}/blob"] });
    let (mut platform, mut init) = start_platform_and_roost(&roost, &devplatform, d, api);
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("config.json")).unwrap()).unwrap();
    let auth = format!("FlyV1 {}", config["Api"]["Token"].as_str().unwrap());

    let mut direct = KeepAlive::connect(&d.join("platform.sock"));
    let mut proxied = KeepAlive::connect(&d.join("api.sock"));
    let path = "/v1/apps/bench/machines/m1/metadata";
    for _ in 0..200 {
        assert_eq!(direct.get(path, Some(&auth)).0, 200);
        assert_eq!(proxied.get(path, None).0, 200);
    }
    let (mut t_direct, mut t_proxy) = (Vec::new(), Vec::new());
    for _ in 0..requests {
        let t = Instant::now();
        direct.get(path, Some(&auth));
        t_direct.push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        proxied.get(path, None);
        t_proxy.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let blob = format!("/v1/apps/bench/machines/m1/blob?bytes={bytes}");
    let t = Instant::now();
    assert_eq!(direct.get(&blob, Some(&auth)).1, bytes);
    let mb_direct = bytes as f64 / 1048576.0 / t.elapsed().as_secs_f64();
    let t = Instant::now();
    assert_eq!(proxied.get(&blob, None).1, bytes);
    let mb_proxy = bytes as f64 / 1048576.0 / t.elapsed().as_secs_f64();

    t_direct.sort_by(f64::total_cmp);
    t_proxy.sort_by(f64::total_cmp);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "| route | p50 latency | p99 latency | GET {} MiB |",
        bytes >> 20
    )
    .unwrap();
    writeln!(out, "|---|---|---|---|").unwrap();
    for (name, t, mb) in [
        ("devplatform directly", &t_direct, mb_direct),
        ("through /.fly/api (roost)", &t_proxy, mb_proxy),
    ] {
        writeln!(
            out,
            "| {name} | {:.0} µs | {:.0} µs | {mb:.0} MiB/s |",
            percentile(t, 0.5),
            percentile(t, 0.99)
        )
        .unwrap();
    }
    writeln!(
        out,
        "\nadded by the proxy: p50 {:.0} µs, p99 {:.0} µs ({requests} sequential keep-alive requests each)",
        percentile(&t_proxy, 0.5) - percentile(&t_direct, 0.5),
        percentile(&t_proxy, 0.99) - percentile(&t_direct, 0.99)
    )
    .unwrap();
    let _ = init.kill();
    let _ = init.wait();
    let _ = platform.kill();
    let _ = platform.wait();
}

fn control_bench(args: &[String]) {
    let roost = PathBuf::from(arg_value(args, "--roost").expect("--roost PATH"));
    let requests: usize = arg_value(args, "--requests").map_or(2000, |v| v.parse().unwrap());
    let bytes: u64 = arg_value(args, "--bytes").map_or(256 << 20, |v| v.parse().unwrap());
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(
        d.join("c.json"),
        r#"{"ExecOverride": ["/bin/sleep", "3600"]}"#,
    )
    .unwrap();
    let ctl = d.join("ctl.sock");
    let mut init = Command::new(&roost)
        .arg("container")
        .arg("--config")
        .arg(d.join("c.json"))
        .arg("--control")
        .arg(format!("unix:{}", ctl.display()))
        .env("ROOST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("roost");
    while !ctl.exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    let mut client = KeepAlive::connect(&ctl);
    let time = |n: usize, f: &mut dyn FnMut() -> u16| {
        let mut t: Vec<f64> = (0..n)
            .map(|_| {
                let t0 = Instant::now();
                assert_eq!(f(), 200);
                t0.elapsed().as_secs_f64() * 1e6
            })
            .collect();
        t.sort_by(f64::total_cmp);
        (percentile(&t, 0.5), percentile(&t, 0.99))
    };
    let status = time(requests, &mut || client.get("/v1/status", None).0);
    let exec = time(requests / 4, &mut || {
        client
            .request("POST", "/v1/exec", None, r#"{"cmd":["true"]}"#)
            .0
    });

    // WebSocket exec throughput: a command writing `bytes` to stdout, without and with a PTY.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ws_rate = |tty: bool| -> f64 {
        rt.block_on(async {
            use futures_util::{SinkExt, StreamExt};
            use tokio_tungstenite::tungstenite::Message;
            let stream = tokio::net::UnixStream::connect(&ctl).await.unwrap();
            let (mut ws, _) = tokio_tungstenite::client_async("ws://roost/v1/ws/exec", stream)
                .await
                .unwrap();
            let init = serde_json::json!({
                "command": ["head", "-c", bytes.to_string(), "/dev/zero"], "tty": tty });
            ws.send(Message::Text(init.to_string().into()))
                .await
                .unwrap();
            let t0 = Instant::now();
            let mut got = 0u64;
            while let Some(Ok(msg)) = ws.next().await {
                match msg {
                    Message::Binary(b) => got += b.len() as u64,
                    Message::Text(t) if t.as_str().contains("Exit") => break,
                    _ => {}
                }
            }
            // A PTY may translate output; count what arrived.
            got as f64 / 1048576.0 / t0.elapsed().as_secs_f64()
        })
    };
    let pipes = ws_rate(false);
    let pty = ws_rate(true);
    let mut out = std::io::stdout().lock();
    writeln!(out, "| control API (Unix socket, keep-alive) | p50 | p99 |").unwrap();
    writeln!(out, "|---|---|---|").unwrap();
    writeln!(
        out,
        "| GET /v1/status ({requests} requests) | {:.0} µs | {:.0} µs |",
        status.0, status.1
    )
    .unwrap();
    writeln!(
        out,
        "| POST /v1/exec `true` ({} requests) | {:.0} µs | {:.0} µs |",
        requests / 4,
        exec.0,
        exec.1
    )
    .unwrap();
    writeln!(
        out,
        "\n| ws exec, {} MiB of output | throughput |\n|---|---|",
        bytes >> 20
    )
    .unwrap();
    writeln!(out, "| pipes (`tty: false`) | {pipes:.0} MiB/s |").unwrap();
    writeln!(out, "| PTY (`tty: true`) | {pty:.0} MiB/s |").unwrap();
    let _ = init.kill();
    let _ = init.wait();
}

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// One keep-alive HTTP/1.1 connection over a Unix socket (hyper), for the load runs.
async fn hyper_conn(
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

/// Load: `/.fly/api` with many concurrent keep-alive clients, and many concurrent execs.
fn load_bench(args: &[String]) {
    use http_body_util::BodyExt;
    let roost = PathBuf::from(arg_value(args, "--roost").expect("--roost PATH"));
    let devplatform = PathBuf::from(arg_value(args, "--devplatform").expect("--devplatform PATH"));
    let clients: usize = arg_value(args, "--clients").map_or(1000, |v| v.parse().unwrap());
    let requests: usize = arg_value(args, "--requests").map_or(100_000, |v| v.parse().unwrap());
    let execs: usize = arg_value(args, "--execs").map_or(200, |v| v.parse().unwrap());
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    let api = serde_json::json!({ "SocketPath": d.join("api.sock"), "RequestTimeoutSeconds": 600 });
    let (mut platform, mut init) = start_platform_and_roost(&roost, &devplatform, d, api);
    let ctl = d.join("ctl.sock");
    std::thread::sleep(Duration::from_millis(300));
    let pid = init.id();
    let fds_before = fd_count(pid);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let api = d.join("api.sock");
    let per_client = requests / clients;
    let t0 = Instant::now();
    let (mut latencies, errors) = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..clients {
            let api = api.clone();
            tasks.push(tokio::spawn(async move {
                let mut sender = hyper_conn(&api).await;
                let mut lat = Vec::with_capacity(per_client);
                let mut errors = 0usize;
                for _ in 0..per_client {
                    let req = http::Request::get("/v1/apps/bench/machines/m1/metadata")
                        .header("host", "x")
                        .body(http_body_util::Full::new(bytes::Bytes::new()))
                        .unwrap();
                    let t = Instant::now();
                    match sender.send_request(req).await {
                        Ok(resp) => {
                            let ok = resp.status() == 200;
                            let _ = resp.into_body().collect().await;
                            if ok {
                                lat.push(t.elapsed().as_secs_f64() * 1e3)
                            } else {
                                errors += 1
                            }
                        }
                        Err(_) => errors += 1,
                    }
                }
                (lat, errors)
            }));
        }
        let mut all = Vec::new();
        let mut errors = 0;
        for t in tasks {
            let (lat, e) = t.await.unwrap();
            all.extend(lat);
            errors += e;
        }
        (all, errors)
    });
    let elapsed = t0.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let stats = http_get_json(&d.join("platform.sock"), "/_dev/stats");
    let api_rss = peak_rss_kib(pid);

    // Concurrent execs.
    let t1 = Instant::now();
    let (mut exec_lat, exec_errors, lost) = rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..execs {
            let ctl = ctl.clone();
            tasks.push(tokio::spawn(async move {
                let mut sender = hyper_conn(&ctl).await;
                let req = http::Request::post("/v1/exec")
                    .header("host", "x")
                    .body(http_body_util::Full::new(bytes::Bytes::from(
                        r#"{"cmd":["sh","-c","exit 3"]}"#,
                    )))
                    .unwrap();
                let t = Instant::now();
                let resp = sender.send_request(req).await.ok()?;
                let ok = resp.status() == 200;
                let body = resp.into_body().collect().await.ok()?.to_bytes();
                let v: serde_json::Value = serde_json::from_slice(&body).ok()?;
                Some((t.elapsed().as_secs_f64() * 1e3, ok, v["exit_code"] == 3))
            }));
        }
        let (mut lat, mut errors, mut lost) = (Vec::new(), 0, 0);
        for t in tasks {
            match t.await.unwrap() {
                Some((l, true, true)) => lat.push(l),
                Some((_, true, false)) => lost += 1,
                _ => errors += 1,
            }
        }
        (lat, errors, lost)
    });
    let exec_elapsed = t1.elapsed().as_secs_f64();
    exec_lat.sort_by(f64::total_cmp);
    // Idle pooled upstream connections close within 30 s: count after that, so a leak shows.
    let fds_pooled = fd_count(pid);
    std::thread::sleep(Duration::from_secs(35));
    let fds_after = fd_count(pid);
    if std::env::var_os("ROOST_BENCH_DUMP_FDS").is_some() {
        for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .flatten()
        {
            eprintln!(
                "fd {:?} -> {:?}",
                e.file_name(),
                std::fs::read_link(e.path()).ok()
            );
        }
    }
    let peak = peak_rss_kib(pid);
    let mut out = std::io::stdout().lock();
    writeln!(out, "| load | throughput | p50 | p99 | errors | other |").unwrap();
    writeln!(out, "|---|---|---|---|---|---|").unwrap();
    writeln!(
        out,
        "| /.fly/api: {clients} clients, {} requests | {:.0} req/s | {:.2} ms | {:.2} ms | {errors} | upstream saw {} requests, {} without a valid macaroon; roost peak RSS {api_rss} KiB |",
        latencies.len() + errors,
        latencies.len() as f64 / elapsed,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        stats["total"], stats["auth_failed"],
    ).unwrap();
    writeln!(
        out,
        "| control API: {execs} concurrent execs | {:.0} execs/s | {:.0} ms | {:.0} ms | {exec_errors} | lost exit codes: {lost}; roost's fds: {fds_before} before, {fds_pooled} right after (pooled upstream connections), {fds_after} 35 s later; peak RSS {peak} KiB |",
        exec_lat.len() as f64 / exec_elapsed,
        percentile(&exec_lat, 0.5),
        percentile(&exec_lat, 0.99),
    ).unwrap();
    let _ = init.kill();
    let _ = init.wait();
    let _ = platform.kill();
    let _ = platform.wait();
}

fn http_get_json(socket: &Path, path: &str) -> serde_json::Value {
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

fn arg_value(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("stamp") => println!("{}", monotonic_ns()),
        Some("orphans") => orphans(args.get(1).and_then(|n| n.parse().ok()).unwrap_or(100)),
        Some("proxy") => proxy_bench(&args),
        Some("control") => control_bench(&args),
        Some("load") => load_bench(&args),
        Some("compare") => {
            let roost = PathBuf::from(arg_value(&args, "--roost").expect("--roost PATH"));
            let tini = PathBuf::from(arg_value(&args, "--tini").unwrap_or("/usr/bin/tini".into()));
            let runs: usize = arg_value(&args, "--runs").map_or(200, |v| v.parse().unwrap());
            let n_orphans: usize =
                arg_value(&args, "--orphans").map_or(10_000, |v| v.parse().unwrap());
            let me = std::env::current_exe().expect("current exe");
            let dir = tempfile::tempdir().expect("tempdir");
            let inits = [
                Init::Roost {
                    bin: &roost,
                    dir: dir.path(),
                },
                Init::Tini(&tini),
            ];
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "| init | exec → workload exec, median (p90), {runs} runs | idle RSS (anonymous) | reap {n_orphans} orphans |"
            )
            .unwrap();
            writeln!(out, "|---|---|---|---|").unwrap();
            // Interleaved, so that drift in machine load hits every init alike.
            let mut samples = vec![Vec::with_capacity(runs); inits.len()];
            for _ in 0..runs {
                for (init, samples) in inits.iter().zip(&mut samples) {
                    samples.push(startup_sample(init, &me));
                }
            }
            for (init, samples) in inits.iter().zip(&mut samples) {
                samples.sort_by(f64::total_cmp);
                let (median, p90) = (percentile(samples, 0.5), percentile(samples, 0.9));
                let (rss, anon) = idle_rss_kib(init);
                let reap = orphan_reap_secs(init, &me, n_orphans);
                writeln!(
                    out,
                    "| {} | {median:.2} ms ({p90:.2} ms) | {rss} KiB ({anon} KiB) | {reap:.2} s |",
                    init.name()
                )
                .unwrap();
            }
        }
        _ => {
            eprintln!("usage: roost-bench compare --roost PATH [--tini PATH] [--runs N] [--orphans N] | proxy --roost PATH --devplatform PATH [--requests N] [--bytes N] | control --roost PATH [--requests N] [--bytes N] | stamp | orphans N");
            std::process::exit(64);
        }
    }
}
