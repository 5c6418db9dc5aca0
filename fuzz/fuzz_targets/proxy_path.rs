//! The proxy's allow-list and self-scoping: a forwarded path must be this machine's own.
#![no_main]
use roost_platform::policy::{Decision, Policy};
libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let (method, path) = text.split_once(' ').unwrap_or(("GET", text));
    let Ok(policy) = Policy::new(&[], Some("app1"), Some("m1")) else { return };
    if policy.decide(method, path) == Decision::Forward {
        let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let own = segs.len() >= 5 && segs[..5] == ["v1", "apps", "app1", "machines", "m1"];
        assert!(own || segs == ["v1", "tokens", "oidc"], "forwarded {path:?}");
        assert!(!path.contains('%') || !path.to_ascii_lowercase().contains("%2f"));
    }
    // Custom patterns parse or are refused, never panic.
    let _ = Policy::new(&[text.to_string()], Some("a"), Some("m"));
});
