//! A service is not the VM: what one process service can do to PID 1 and to the others, and
//! what it cannot (docs/services.md, "Isolation"). Each test here was written against an
//! attack that worked before its fix: a service printing empty lines grew PID 1 without
//! bound; a service swapping a parent of its own `files` entry for a link made roost write
//! into any directory; a secret's file was readable by every other service; ...
//! The container side of the same model is in tests/container_services.rs.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::json;
use std::path::Path;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + T;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// roost as PID 1 with the control API on `ctl`, its console (stdout) thrown away so that a
/// service's flood of output costs the test nothing; stderr (roost's own log) is kept.
fn roost_quiet_console(config: &Path, ctl: &Path) -> Running {
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(r#"exec unshare --pid --fork --mount-proc "$0" container --config "$1" --control "unix:$2" >/dev/null"#)
        .arg(ROOST)
        .arg(config)
        .arg(ctl);
    let roost = Running::spawn(cmd);
    wait_for_file(ctl, T);
    roost
}

/// Resident memory of `pid` in KiB.
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// `yes ''` and `yes x` for 10 s: PID 1's memory stays within a few MiB of where it started
/// and each logs answer holds at most the kept lines. (Before, empty lines cost nothing in
/// the buffer's count: roost grew from 18 MiB to 449 MiB in 15 s and one answer held 19
/// million lines.)
#[test]
fn a_service_flooding_its_log_with_empty_lines_cannot_grow_pid_1() {
    let scratch = Scratch::new();
    let doc = json!({"Containers": [
        {"name": "empty", "exec": ["yes", ""]},
        {"name": "short", "exec": ["yes", "x"]},
    ]});
    let config = scratch.config(&doc);
    let ctl = scratch.path("ctl.sock");
    let roost = roost_quiet_console(&config, &ctl);
    let pid = roost.roost_pid();
    wait_until("both flooding", || {
        ["empty", "short"].iter().all(|name| {
            http(&ctl, "GET", &format!("/v2/services/{name}/logs"), &[], b"").json()["next"]
                .as_u64()
                .is_some_and(|n| n > 10_000)
        })
    });
    let before = rss_kib(pid);
    let mut peak = before;
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        peak = peak.max(rss_kib(pid));
        std::thread::sleep(Duration::from_millis(200));
    }
    for name in ["empty", "short"] {
        let logs = http(&ctl, "GET", &format!("/v2/services/{name}/logs"), &[], b"").json();
        let kept = logs["lines"].as_array().map_or(0, Vec::len);
        let written = logs["next"].as_u64().unwrap_or(0);
        assert!(
            (1..=1024).contains(&kept),
            "{name}: {kept} lines in one answer"
        );
        assert!(written > 100_000, "{name} wrote only {written} lines");
        let after_zero = http(
            &ctl,
            "GET",
            &format!("/v2/services/{name}/logs?after=0"),
            &[],
            b"",
        )
        .json();
        assert!(after_zero["lines"].as_array().map_or(0, Vec::len) <= 1024);
    }
    assert!(
        peak < before + 16 * 1024,
        "roost grew from {before} KiB to {peak} KiB under yes '' and yes x"
    );
    roost.signal(libc::SIGTERM);
    let done = roost.wait(T);
    assert_eq!(done.code, Some(143), "{}", done.stderr);
}
