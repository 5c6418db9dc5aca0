//! The control API: round trips and WebSocket exec throughput.

use super::*;

pub fn run(args: &[String]) {
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
    let mut init = start_roost(&roost, &d.join("c.json"), &ctl);
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
    stop_init(&mut init);
}
