//! Property tests (proptest) for the pure functions that take input from outside.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use roost::config::ImageConfig;
use roost::workload::{argv::resolve_argv, env::merge_env, user};

fn strings() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec("[a-z/ .-]{0,8}", 0..5)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn argv_priority_and_order(entry in strings(), cmd in strings(), exec in prop::option::of(strings()), over in prop::option::of("[a-z ]{0,6}")) {
        let image = ImageConfig { entrypoint: entry.clone(), cmd: cmd.clone(), ..ImageConfig::default() };
        let got = resolve_argv(&image, exec.as_deref(), over.as_deref());
        let want: Vec<String> = match (&exec, &over) {
            (Some(e), _) if !e.is_empty() => e.clone(),
            (_, Some(o)) if !o.is_empty() => entry.iter().cloned().chain([o.clone()]).collect(),
            _ => entry.iter().chain(&cmd).cloned().collect(),
        };
        match got {
            Ok(argv) => { prop_assert_eq!(&argv, &want); prop_assert!(!argv[0].is_empty()); }
            Err(_) => prop_assert!(want.is_empty() || want[0].is_empty()),
        }
    }

    #[test]
    fn env_is_always_valid_unique_and_complete(image in prop::collection::vec(".{0,12}", 0..8), extra in prop::collection::btree_map(".{0,6}", ".{0,6}", 0..5), home in "/[a-z]{0,8}") {
        let m = merge_env(&image, &extra, &home);
        let mut keys: Vec<&str> = m.vars.iter().map(|(k, _)| k.as_str()).collect();
        for k in &keys {
            prop_assert!(!k.is_empty() && !k.contains('=') && !k.contains('\0'));
        }
        for (_, v) in &m.vars { prop_assert!(!v.contains('\0')); }
        let n = keys.len();
        keys.sort();
        keys.dedup();
        prop_assert_eq!(keys.len(), n, "duplicate keys");
        prop_assert!(m.get("PATH").is_some() && m.get("HOME").is_some());
        for (k, v) in &extra {
            if !k.is_empty() && !k.contains('=') && !k.contains('\0') && !v.contains('\0') {
                prop_assert_eq!(m.get(k), Some(v.as_str()));
            }
        }
    }

    #[test]
    fn user_resolution_never_panics_and_numbers_are_exact(passwd in ".{0,200}", group in ".{0,200}", uid in 0u32..4_000_000_000, spec in ".{0,20}") {
        let p = user::parse_passwd(&passwd);
        let g = user::parse_group(&group);
        let _ = user::resolve_user(Some(&spec), &p, &g);
        let id = user::resolve_user(Some(&uid.to_string()), &p, &g).expect("numeric uid");
        prop_assert_eq!(id.uid, uid);
        prop_assert_eq!(id.groups[0], id.gid);
    }

    #[test]
    fn config_parser_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let _ = roost::config::parse(&bytes);
    }

    #[test]
    fn config_parser_never_panics_on_json_shapes(doc in r#"\{("[A-Za-z]{1,12}": ?(null|[0-9]{1,3}|"[a-z/:]{0,8}"|\[\]|\{\}|true),? ?){0,5}\}"#) {
        let _ = roost::config::parse(doc.as_bytes());
    }

    #[test]
    fn cmdline_parser_never_panics(line in ".{0,200}") {
        let o = roost::vm::cmdline::parse(&line);
        prop_assert!(o.config_file.is_absolute());
    }
}
