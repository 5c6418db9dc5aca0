//! A non-root workload that takes every pid it can (a fork bomb) while roost is confined to
//! a pids budget of its own: the workload's cgroup gets a `pids.max` below it, so PID 1
//! keeps its pids for the host's execs, the proxy and the broker, and never panics.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

const BOMB: &str = r#"
import os, sys, time
kids = []
while not os.path.exists(sys.argv[1]):
    try:
        pid = os.fork()
        if pid == 0:
            time.sleep(60)
            os._exit(0)
        kids.append(pid)
    except OSError:
        time.sleep(0.005)
for k in kids:
    os.kill(k, 9)
"#;

/// A v1 pids cgroup (this host is hybrid) or a v2 one with the pids controller, below the
/// test's own, with `pids.max`; removed when dropped.
struct PidsCgroup(PathBuf);

impl PidsCgroup {
    fn new(max: u32) -> Option<Self> {
        let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
        let base = match own.lines().find_map(|l| {
            let mut p = l.splitn(3, ':');
            let (_, c, path) = (p.next()?, p.next()?, p.next()?);
            c.split(',').any(|c| c == "pids").then(|| path.to_string())
        }) {
            Some(path) => PathBuf::from("/sys/fs/cgroup/pids").join(path.trim_start_matches('/')),
            None => {
                let path = own.lines().find_map(|l| l.strip_prefix("0::"))?;
                PathBuf::from("/sys/fs/cgroup").join(path.trim_start_matches('/'))
            }
        };
        let dir = base.join(format!("roost-test-pids-{}", std::process::id()));
        std::fs::create_dir(&dir).ok()?;
        std::fs::write(dir.join("pids.max"), max.to_string()).ok()?;
        Some(PidsCgroup(dir))
    }
}

impl Drop for PidsCgroup {
    fn drop(&mut self) {
        // Everything in it is dead once roost is; the kernel may need a moment.
        for _ in 0..100 {
            if std::fs::remove_dir(&self.0).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn a_fork_bomb_in_the_workload_leaves_pid_1_its_pids_and_its_broker() {
    let cg = PidsCgroup::new(400).expect("a pids cgroup for the test (v1 pids or v2 pids)");
    let scratch = Scratch::new();
    let stop = scratch.path("stop");
    let api = scratch.path("fly/api");
    let base = json!({
        "UserOverride": "65534:65534",
        // Fork until refused, and keep trying, until told to stop; then kill them all.
        "ImageConfig": { "Cmd": ["/usr/bin/python3", "-c", BOMB, stop] },
        "ExtraEnv": { "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/r" },
        "Api": { "SocketPath": api },
        "Oidc": { "TokenPath": scratch.path("oidc/token") },
    });
    let platform = DevPlatform::start(scratch.dir.path(), &base, &["--token-lifetime", "6"]);
    let ctl = scratch.path("ctl.sock");
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c").arg(format!(
        "echo $$ > {procs} && exec unshare --pid --fork --mount-proc {roost} container --config {config} --control unix:{ctl}",
        procs = cg.0.join("cgroup.procs").display(),
        roost = ROOST,
        config = platform.config.display(),
        ctl = ctl.display()
    ));
    let roost = Running::spawn(cmd);
    wait_for_file(&ctl, T);
    // The bomb has gone off once the workload's cgroup is full.
    let status = || http(&ctl, "GET", "/v2/status", &[], b"").json();
    let deadline = Instant::now() + T;
    loop {
        let current = std::fs::read_to_string(cg.0.join("pids.current")).unwrap_or_default();
        if current.trim().parse::<u32>().unwrap_or(0) >= 300 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the fork bomb never filled its cgroup ({current}): {}",
            status()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let refreshes_before = status()["broker"][0]["refreshes"].as_u64().unwrap_or(0);
    // The host can still run a command in the VM: roost's own pids are there.
    let r = http(
        &ctl,
        "POST",
        "/v1/exec",
        &[],
        json!({"cmd": ["echo", "still-here"]})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["stdout"], "still-here\n");
    // The proxy answers (its upstream's name needs no blocking pool).
    let machine = format!("/v1/apps/{APP}/machines/{MACHINE}/metadata");
    let r = http(&api, "GET", &machine, &[], b"");
    assert_eq!(r.status, 200, "{}", r.text());
    // The broker goes on refreshing the 6 s token.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = status();
        let token = &s["broker"][0];
        if token["refreshes"].as_u64().unwrap_or(0) >= refreshes_before + 2 {
            assert_eq!(token["restarts"], 0, "{s}");
            // 6 s tokens cannot stay valid the 60 s AWS SDKs may take: said in the status.
            assert!(
                token["warning"]
                    .as_str()
                    .is_some_and(|w| w.contains("live 6 s")),
                "{s}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the broker stopped refreshing: {s}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::fs::write(&stop, b"").expect("stop");
    let f = roost.wait(T);
    f.assert_code(0);
    assert!(!f.stderr.contains("panicked"), "{}", f.stderr);
    assert!(f.stderr.contains("workload pids.max: 336"), "{}", f.stderr);
    drop(platform);
}
