//! Load: many /.fly/api clients and concurrent execs, with descriptors and RSS.

use super::*;

/// Load: `/.fly/api` with many concurrent keep-alive clients, and many concurrent execs.
pub fn run(args: &[String]) {
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
    stop_init(&mut init);
    let _ = platform.kill();
    let _ = platform.wait();
}
