//! Property tests for the allow-list: no spelling of another machine's path is forwarded.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use roost_platform::policy::{Decision, Policy};

const APP: &str = "app1";
const MACHINE: &str = "m1";

fn policy() -> Policy {
    Policy::new(&[], Some(APP), Some(MACHINE)).expect("defaults")
}

/// Decodes %XX escapes, repeatedly, the way a lenient upstream (or a chain of them) might.
fn decode(s: &str) -> String {
    let mut current = s.to_string();
    for _ in 0..3 {
        let b = current.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            if let (b'%', Some(Ok(v))) = (b[i], hex.map(|h| u8::from_str_radix(h, 16))) {
                out.push(v);
                i += 3;
                continue;
            }
            out.push(b[i]);
            i += 1;
        }
        current = String::from_utf8_lossy(&out).into_owned();
    }
    current
}

/// Normalises a path the way a server might: decode, backslashes as slashes, collapse empty
/// segments, resolve `.` and `..`.
fn normalise(path: &str) -> Vec<String> {
    let mut segs: Vec<String> = Vec::new();
    for seg in decode(path).replace('\\', "/").split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                segs.pop();
            }
            s => segs.push(s.to_string()),
        }
    }
    segs
}

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("v1".to_string()),
        Just("apps".to_string()),
        Just("app1".to_string()),
        Just("app2".to_string()),
        Just("machines".to_string()),
        Just("m1".to_string()),
        Just("M1".to_string()),
        Just("m2".to_string()),
        Just("metadata".to_string()),
        Just("..".to_string()),
        Just(".".to_string()),
        Just("".to_string()),
        Just("%2F".to_string()),
        Just("%2f".to_string()),
        Just("%2e%2e".to_string()),
        Just("%252F".to_string()),
        Just("%6D1".to_string()),
        Just("m1%00".to_string()),
        Just("\\".to_string()),
        "[a-z0-9%./\\\\]{0,6}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20000))]

    #[test]
    fn whatever_is_forwarded_is_this_machines_own_path(
        segs in prop::collection::vec(segment(), 1..9),
        method in prop_oneof![Just("GET"), Just("POST"), Just("DELETE")],
    ) {
        let path = format!("/{}", segs.join("/"));
        if policy().decide(method, &path) == Decision::Forward {
            let norm = normalise(&path);
            // However a server normalises it, a forwarded path is the OIDC endpoint or names
            // this app and this machine, exactly.
            let own = norm.len() >= 5
                && norm[0] == "v1" && norm[1] == "apps" && norm[2] == APP
                && norm[3] == "machines" && norm[4] == MACHINE;
            let oidc = norm == ["v1", "tokens", "oidc"];
            prop_assert!(own || oidc, "{} forwarded, normalised to {:?}", path, norm);
            // And the raw path is already normal: no server reads it differently.
            let raw: Vec<String> = path.trim_start_matches('/').split('/').map(str::to_string).collect();
            prop_assert_eq!(raw, norm);
        }
    }

    #[test]
    fn own_paths_are_forwarded(key in "[a-z][a-z0-9_-]{0,10}") {
        let path = format!("/v1/apps/{APP}/machines/{MACHINE}/metadata/{key}");
        prop_assert_eq!(policy().decide("POST", &path), Decision::Forward);
    }

    #[test]
    fn never_panics(path in ".{0,80}", method in "[A-Za-z]{0,8}") {
        let _ = policy().decide(&method, &path);
    }
}
