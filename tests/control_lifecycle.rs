//! The control API across roost's life, with roost as PID 1 of a fresh PID namespace: the
//! exit code answered to every caller and pushed to the host, a stop during the boot, a
//! critical task's death, and the linger after the exit.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use serde_json::json;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(60);

#[test]
fn the_exit_code_is_answered_to_every_caller_after_the_exit_and_pushed_to_the_host() {
    let scratch = Scratch::new();
    let report_sock = scratch.path("host-exit.sock");
    let host = exit_report_listener(&report_sock);
    let rig = Rig::start(
        json!({
            "MachineId": "m-exit",
            "Control": {"LingerSeconds": 3, "ExitReportSocket": report_sock},
        }),
        7,
    );
    // A long-poll that starts before the exit...
    let ctl = rig.ctl.clone();
    let early = std::thread::spawn(move || http(&ctl, "GET", "/v1/exit_code", &[], b""));
    std::thread::sleep(Duration::from_millis(200));
    rig.stop_workload();
    let deadline = Instant::now() + T;
    while rig.status()["workload"]["state"] != "exited" {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    // ...and callers that ask after it all get the same answer.
    let want = json!({"code": 7, "oom_killed": false});
    assert_eq!(early.join().expect("thread").json(), want);
    for _ in 0..3 {
        assert_eq!(
            http(&rig.ctl, "GET", "/v1/exit_code", &[], b"").json(),
            want
        );
    }
    assert_eq!(
        http(&rig.ctl, "POST", "/v1/signals", &[], br#"{"signal": 15}"#).status,
        409
    );
    let (head, body) = host.join().expect("host");
    assert!(head.starts_with("POST /v1/exit HTTP/1.1"), "{head}");
    let body: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(
        body,
        json!({"code": 7, "oom_killed": false, "machine_id": "m-exit"})
    );
    let f = rig.finish();
    f.assert_code(7);
    assert!(
        f.stderr
            .contains(r#"roost: exit {"code":7,"oom_killed":false}"#),
        "{}",
        f.stderr
    );
    assert!(
        f.stderr.contains("exit report acknowledged"),
        "{}",
        f.stderr
    );
}

#[test]
fn a_critical_task_that_dies_stops_roost_with_70_never_a_hang() {
    // The reaper task panics at the first SIGCHLD (an orphan's exit): roost notices, stops
    // the workload gracefully, reaps it itself, and reports 70.
    let scratch = Scratch::new();
    let config = scratch.config(&json!({
        "ImageConfig": { "Cmd": ["/bin/sh", "-c",
            "trap 'echo workload-got-term; exit 0' TERM; sh -c 'sleep 0.3 &'; while :; do sleep 0.05; done"] },
        "KillTimeout": 5,
    }));
    let mut cmd = Command::new("unshare");
    cmd.args(PID_NS)
        .arg(ROOST)
        .args(["container", "--config"])
        .arg(&config)
        .env("ROOST_FAULT", "reaper");
    let f = Running::spawn(cmd).wait(T);
    f.assert_code(70);
    assert!(
        f.stderr.contains("critical task reaper panicked"),
        "{}",
        f.stderr
    );
    assert!(f.stdout.contains("workload-got-term"), "{}", f.stdout);
    assert!(
        f.stderr.contains(r#"roost: exit {"code":70"#),
        "{}",
        f.stderr
    );
}

/// roost whose boot waits (up to 60 s) for a first identity token that never comes: the
/// platform's socket does not exist.
fn roost_waiting_for_a_token(scratch: &Scratch) -> (Running, PathBuf, PathBuf) {
    let marker = scratch.path("workload-ran");
    let config = scratch.config(&json!({
        "ImageConfig": { "Cmd": ["/bin/sh", "-c", format!("touch {}", marker.display())] },
        "ExtraEnv": { "AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/r" },
        "Api": { "Upstream": format!("unix://{}", scratch.path("no-platform.sock").display()),
                 "Token": "fm2_never_used", "SocketPath": scratch.path("api.sock") },
        "Oidc": { "BootWaitSeconds": 60, "TokenPath": scratch.path("oidc/token") },
    }));
    let ctl = scratch.path("ctl.sock");
    let roost = roost_with_control(&config, &ctl, &[]);
    // The boot is in the token wait once the proxy's socket is there.
    wait_for_file(&scratch.path("api.sock"), T);
    (roost, ctl, marker)
}

#[test]
fn a_stop_during_the_boot_ends_it_at_once_without_starting_the_workload() {
    // SIGTERM to roost.
    let scratch = Scratch::new();
    let (roost, ctl, marker) = roost_waiting_for_a_token(&scratch);
    let status = http(&ctl, "GET", "/v2/status", &[], b"").json();
    assert_eq!(status["workload"]["state"], "starting");
    roost.signal(libc::SIGTERM);
    let f = roost.wait(Duration::from_secs(20));
    f.assert_code(128 + libc::SIGTERM);
    assert!(
        !marker.exists(),
        "the workload was started just to be stopped"
    );
    assert!(
        f.stderr
            .contains("stop requested during the boot by a signal (SIGTERM)"),
        "{}",
        f.stderr
    );
    assert!(
        f.stderr.contains(r#"roost: exit {"code":143"#),
        "{}",
        f.stderr
    );

    // The host's POST /v1/signals (it used to answer 409 until the workload ran).
    let scratch = Scratch::new();
    let (roost, ctl, marker) = roost_waiting_for_a_token(&scratch);
    let r = http(&ctl, "POST", "/v1/signals", &[], br#"{"signal": 15}"#);
    assert_eq!((r.status, r.json()), (200, json!({"ok": true})));
    let f = roost.wait(Duration::from_secs(20));
    f.assert_code(143);
    assert!(!marker.exists());
    assert!(f.stderr.contains("by the host"), "{}", f.stderr);
    // A signal that is no stop still has no workload to go to.
    let scratch = Scratch::new();
    let (roost, ctl, _marker) = roost_waiting_for_a_token(&scratch);
    let r = http(&ctl, "POST", "/v1/signals", &[], br#"{"signal": 1}"#);
    assert_eq!(r.status, 409);
    drop(roost);
}

#[test]
fn a_stop_signal_ends_the_linger_after_the_exit() {
    for sig in [libc::SIGTERM, libc::SIGINT] {
        let scratch = Scratch::new();
        let config = scratch.config(&json!({
            "ImageConfig": { "Cmd": ["/bin/sh", "-c", "exit 5"] },
            "Control": { "LingerSeconds": 60 },
        }));
        let ctl = scratch.path("ctl.sock");
        let roost = roost_with_control(&config, &ctl, &[]);
        // The exit code is there, and the API lingers for it.
        let code = http(&ctl, "GET", "/v1/exit_code", &[], b"").json();
        assert_eq!(code["code"], 5);
        let asked = Instant::now();
        roost.signal(sig);
        let f = roost.wait(Duration::from_secs(20));
        f.assert_code(5);
        assert!(
            asked.elapsed() < Duration::from_secs(20),
            "the linger was not ended"
        );
        assert!(
            f.stderr.contains("while lingering: ending the linger"),
            "{}",
            f.stderr
        );
    }
}

/// A service's log outlives the machine: during the linger a host still reads the single
/// workload's last lines (the supervisor's buffers, not its loop's answer).
#[test]
fn the_last_lines_are_readable_during_the_linger() {
    let scratch = Scratch::new();
    let config = scratch.config(&json!({
        "ImageConfig": { "Cmd": ["/bin/sh", "-c", "echo first words; echo last words; exit 4"] },
        "Control": { "LingerSeconds": 60 },
    }));
    let ctl = scratch.path("ctl.sock");
    let roost = roost_with_control(&config, &ctl, &[]);
    // /v1/exit_code waits for the exit; the leftovers and the report follow it.
    let code = http(&ctl, "GET", "/v1/exit_code", &[], b"").json();
    assert_eq!(code["code"], 4);
    let deadline = Instant::now() + T;
    let page = loop {
        let page = http(&ctl, "GET", "/v2/services/main/logs", &[], b"");
        if page.status == 200
            && page.json()["lines"]
                .as_array()
                .is_some_and(|l| l.len() == 2)
        {
            break page.json();
        }
        assert!(Instant::now() < deadline, "{}", page.text());
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(page["lines"], json!(["first words", "last words"]));
    // Well after the machine's end (the console line is out), still there.
    std::thread::sleep(Duration::from_millis(500));
    let again = http(&ctl, "GET", "/v2/services/main/logs", &[], b"");
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(again.json()["lines"], page["lines"]);
    roost.signal(libc::SIGTERM);
    roost.wait(T).assert_code(4);
}
