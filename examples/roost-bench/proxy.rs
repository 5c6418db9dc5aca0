//! /.fly/api: the latency the proxy adds, and streaming throughput.

use super::*;

pub fn run(args: &[String]) {
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
    stop_init(&mut init);
    let _ = platform.kill();
    let _ = platform.wait();
}
