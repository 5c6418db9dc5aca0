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

/// A service swaps a parent directory of its own `files` entry for a link to a directory of
/// root's, exits and is restarted: roost refuses the link (the service's user planted it)
/// and writes nothing there. Before, roost followed it and wrote the file, owned by the
/// service, into any directory. And a `secret_name` file with no mode is its user's alone
/// (0400): another non-root service cannot read it (it was 0644 in the shared root).
#[test]
fn files_are_written_by_descriptor_and_a_secret_file_is_its_users_alone() {
    let scratch = Scratch::new();
    let s = scratch.dir.path().display().to_string();
    let home = scratch.path("home");
    let target = scratch.path("target");
    std::fs::create_dir(&target).unwrap();
    // The service's own directories: it may replace `conf` in `home`.
    std::fs::create_dir_all(home.join("conf")).unwrap();
    std::os::unix::fs::chown(&home, Some(65534), Some(65534)).unwrap();
    std::os::unix::fs::chown(home.join("conf"), Some(65534), Some(65534)).unwrap();
    let out = scratch.path("out");
    std::fs::create_dir(&out).unwrap();
    std::os::unix::fs::chown(&out, Some(1000), Some(1000)).unwrap();
    let doc = json!({
    "Secrets": {"KEY": "s3cret-value"},
    "Containers": [
        {"name": "reader", "user": "1000:1000", "on_exit": "ignore",
         "exec": ["sh", "-c", format!(
             "sleep 0.5; stat -c '%a %u' {s}/home/secret > {s}/out/mode; \
              cat {s}/home/secret > {s}/out/read 2>/dev/null && echo read >> {s}/out/mode || echo denied >> {s}/out/mode")]},
        {"name": "swapper", "user": "65534:65534",
         "restart": {"policy": "on-failure", "max_retries": 1, "backoff_seconds": 0.1},
         "files": [
            {"guest_path": format!("{s}/home/conf/app.conf"), "raw_value": "eA=="},
            {"guest_path": format!("{s}/home/secret"), "secret_name": "KEY"},
         ],
         "exec": ["sh", "-c", format!(
             "sleep 1; rm -rf {s}/home/conf && ln -s {s}/target {s}/home/conf && exit 3")]},
    ]});
    let config = scratch.config(&doc);
    let done = Running::start(PID_NS, &config).wait(T);
    assert_eq!(
        std::fs::read_dir(&target).unwrap().count(),
        0,
        "roost wrote through the planted link: {}",
        done.stderr
    );
    assert!(
        done.stderr.contains("could have planted"),
        "{}",
        done.stderr
    );
    // The start after the swap failed for good: the machine ends with 126.
    assert_eq!(done.code, Some(126), "{}", done.stderr);
    assert_eq!(
        std::fs::read_to_string(out.join("mode")).unwrap(),
        "400 65534\ndenied\n"
    );
    assert!(!done.stderr.contains("s3cret-value") && !done.stdout.contains("s3cret-value"));
    let _ = Path::new(&s);
}

/// Every listed service says which commands it accepts, and accepts them: the single
/// workload's `main` takes a signal and a stop (the machine's), and refuses start and
/// restart with why. Before, `main` was listed and every command to it was refused.
#[test]
fn main_accepts_what_the_list_says() {
    let scratch = Scratch::new();
    let out = scratch.path("usr1");
    let trapped = scratch.path("trapped");
    let doc = json!({"ImageConfig": {"Cmd": ["sh", "-c", format!(
        "trap 'echo got > {}' USR1; trap 'exit 9' TERM; touch {}; while :; do sleep 0.05; done",
        out.display(), trapped.display())]}});
    let config = scratch.config(&doc);
    let ctl = scratch.path("ctl.sock");
    let roost = roost_with_control(&config, &ctl, &[]);
    wait_until("main running", || {
        http(&ctl, "GET", "/v2/services", &[], b"").json()["services"][0]["state"] == "running"
    });
    // Its traps are set before any signal is sent (else USR1's default action ends it).
    wait_for_file(&trapped, T);
    let list = http(&ctl, "GET", "/v2/services", &[], b"").json();
    assert_eq!(
        list["services"][0]["accepts"],
        json!(["signal", "stop"]),
        "{list}"
    );
    let usr1 = http(
        &ctl,
        "POST",
        "/v2/services/main/signal",
        &[],
        br#"{"signal": 10}"#,
    );
    assert_eq!(usr1.status, 200, "{}", usr1.text());
    wait_until("USR1 handled", || out.exists());
    for refused in ["start", "restart"] {
        let r = http(
            &ctl,
            "POST",
            &format!("/v2/services/main/{refused}"),
            &[],
            b"",
        );
        assert_eq!(r.status, 409, "{refused}: {}", r.text());
        assert!(r.text().contains("does not start again"), "{}", r.text());
    }
    let stop = http(&ctl, "POST", "/v2/services/main/stop", &[], b"");
    assert_eq!(stop.status, 200, "{}", stop.text());
    let done = roost.wait(T);
    assert_eq!(done.code, Some(9), "{}", done.stderr);
}

/// A process a service leaves behind, ignoring the stop signal, gets what is left of the
/// machine's one `KillTimeout` before SIGKILL, as the single workload's leftovers do (before:
/// min(2 s, KillTimeout) with `Containers`, the full KillTimeout without).
#[test]
fn leftovers_get_the_same_kill_timeout_on_both_paths() {
    // The leftover leaves its process group and its service's cgroup leaf (to the v2 root),
    // so that only the machine's leftover stop reaches it (a service's leaf ends with it).
    let script = "setsid sh -c 'for f in /sys/fs/cgroup/unified/cgroup.procs /sys/fs/cgroup/cgroup.procs; do \
                  [ -e $f ] && echo $$ > $f && break; done; trap \"\" TERM; while :; do sleep 0.1; done' & \
                  sleep 0.3; exit 0";
    for several in [false, true] {
        let doc = if several {
            json!({"KillTimeout": 4, "Containers": [{"name": "app", "exec": ["sh", "-c", script]}]})
        } else {
            json!({"KillTimeout": 4, "ImageConfig": {"Cmd": ["sh", "-c", script]}})
        };
        let scratch = Scratch::new();
        let config = scratch.config(&doc);
        let started = Instant::now();
        let done = Running::start(PID_NS, &config).wait(T);
        let took = started.elapsed();
        assert_eq!(done.code, Some(0), "{}", done.stderr);
        assert!(
            took >= Duration::from_millis(3500),
            "several={several}: the leftover was killed after {took:?}\n{}",
            done.stderr
        );
        assert!(done.stderr.contains("SIGKILL"), "{}", done.stderr);
    }
}

/// Two services that fork until they cannot leave PID 1 its reserve: a root exec still
/// runs. Before, each service's leaf kept the reserve on its own (seven eighths of what roost
/// may use each), so two of them together took PID 1's pids and the exec failed (EAGAIN).
/// roost runs in a v1 pids cgroup of this test's with `pids.max` 300.
#[test]
fn two_forking_services_leave_pid_1_its_pids_reserve() {
    let pids = Path::new("/sys/fs/cgroup/pids");
    assert!(
        pids.join("cgroup.procs").exists(),
        "this test needs the v1 pids hierarchy (a hybrid host)"
    );
    let scratch = Scratch::new();
    // The subshell forks until a fork fails (which ends it); its sleepers stay.
    let fork = "( while :; do sleep 60 & done ) 2>/dev/null; echo forked; exec sleep 60";
    let doc = json!({"KillTimeout": 2, "Containers": [
        {"name": "a", "exec": ["sh", "-c", fork], "stop": {"signal": "SIGKILL"}},
        {"name": "b", "exec": ["sh", "-c", fork], "stop": {"signal": "SIGKILL"}},
    ]});
    let config = scratch.config(&doc);
    let ctl = scratch.path("ctl.sock");
    let cgroup = pids.join(format!("roost-test-pids-{}", std::process::id()));
    std::fs::create_dir(&cgroup).unwrap();
    // Removed however the test ends (roost removes what it made inside when it stops).
    struct Removed(std::path::PathBuf);
    impl Drop for Removed {
        fn drop(&mut self) {
            // Deepest first: what a killed roost left inside, then the test's own.
            let mut dirs = vec![self.0.clone()];
            let mut i = 0;
            while i < dirs.len() {
                for e in std::fs::read_dir(&dirs[i]).into_iter().flatten().flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        dirs.push(e.path());
                    }
                }
                i += 1;
            }
            for dir in dirs.iter().rev() {
                for _ in 0..100 {
                    if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
    }
    let _removed = Removed(cgroup.clone());
    std::fs::write(cgroup.join("pids.max"), "300").unwrap();
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(r#"echo $$ > "$3/cgroup.procs" && exec unshare --pid --fork --mount-proc "$0" container --config "$1" --control "unix:$2""#)
        .arg(ROOST)
        .arg(&config)
        .arg(&ctl)
        .arg(&cgroup);
    let roost = Running::spawn(cmd);
    wait_for_file(&ctl, T);
    let forked = |name: &str| {
        http(&ctl, "GET", &format!("/v2/services/{name}/logs"), &[], b"").json()["lines"]
            .as_array()
            .is_some_and(|l| l.iter().any(|x| x == "forked"))
    };
    wait_until("both services forked all they could", || {
        forked("a") && forked("b")
    });
    let used: u64 = std::fs::read_to_string(cgroup.join("pids.current"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let exec = http(
        &ctl,
        "POST",
        "/v1/exec",
        &[],
        json!({"cmd": ["sh", "-c", "echo exec ran"]})
            .to_string()
            .as_bytes(),
    );
    roost.signal(libc::SIGTERM);
    let done = roost.wait(T);
    assert!(used < 300, "the services took every pid: {used}");
    assert_eq!(exec.status, 200, "{}\n{}", exec.text(), done.stderr);
    assert!(exec.text().contains("exec ran"), "{}", exec.text());
}
