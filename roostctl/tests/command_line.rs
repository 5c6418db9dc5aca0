//! roostctl's own command line: usage errors are 2, an unreachable roost is 69.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

const ROOSTCTL: &str = env!("CARGO_BIN_EXE_roostctl");

fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(ROOSTCTL)
        .args(args)
        .output()
        .expect("run roostctl");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn usage_errors_are_2() {
    // No transport, an unknown command, a signal name that does not exist.
    assert_eq!(run(&["status"]).0, Some(2));
    assert_eq!(run(&["--unix", "/nonexistent", "frobnicate"]).0, Some(2));
    assert_eq!(
        run(&["--unix", "/nonexistent", "signal", "NOPE"]).0,
        Some(2)
    );
}

#[test]
fn an_unreachable_roost_is_69_with_a_hint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("ctl.sock");
    let (code, err) = run(&["--unix", missing.to_str().expect("utf-8"), "status"]);
    assert_eq!(code, Some(69), "{err}");
    assert!(err.contains("is roost running"), "{err}");
    let (code, err) = run(&["--uds", missing.to_str().expect("utf-8"), "status"]);
    assert_eq!(code, Some(69), "{err}");
    assert!(err.contains("is the VM running"), "{err}");
}
