#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use libcontainer::oci_spec::runtime::LinuxSeccomp;

fn profile(json: serde_json::Value) -> LinuxSeccomp {
    serde_json::from_value(json).expect("profile")
}

#[test]
fn an_allow_everything_profile_installs_nothing() {
    let filters = compile(&profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ALLOW"}]
    })))
    .expect("compile");
    assert!(filters.is_empty());
}

#[test]
fn a_deny_list_is_the_guard_and_one_filter_per_action() {
    let filters = compile(&profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
            {"names": ["rmdir"], "action": "SCMP_ACT_ERRNO"},
            {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13,
             "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]},
            {"names": ["not_a_syscall_anywhere"], "action": "SCMP_ACT_KILL"}
        ]
    })))
    .expect("compile");
    // x86_64: the x32 guard, then ERRNO(13) and ERRNO(EPERM); the unknown name is skipped,
    // so SCMP_ACT_KILL has no filter; no default filter (the default is ALLOW).
    let expected = if cfg!(target_arch = "x86_64") { 3 } else { 2 };
    assert_eq!(filters.len(), expected);
}

#[test]
fn an_allow_list_has_a_default_filter() {
    let filters = compile(&profile(serde_json::json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "syscalls": [{"names": ["read", "write", "exit_group"], "action": "SCMP_ACT_ALLOW"}]
    })))
    .expect("compile");
    let last = filters.last().expect("a filter");
    // The default filter ends with the default action: ERRNO | 38.
    assert_eq!(
        last.last().map(|i| i.k),
        Some(libc::SECCOMP_RET_ERRNO | 38),
        "{last:?}"
    );
}

#[test]
fn what_cannot_be_enforced_is_refused_with_its_field() {
    for (json, field) in [
        (
            serde_json::json!({"defaultAction": "SCMP_ACT_NOTIFY"}),
            "linux.seccomp.defaultAction",
        ),
        (
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_NOTIFY"}]}),
            "linux.seccomp.syscalls[0]",
        ),
        (
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["read"], "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 6, "value": 0, "op": "SCMP_CMP_EQ"}]}]}),
            "linux.seccomp.syscalls[0].args[0]",
        ),
        (
            serde_json::json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/l.sock"}),
            "linux.seccomp.listenerPath",
        ),
    ] {
        let err = format!("{:#}", compile(&profile(json)).expect_err("refused"));
        assert!(err.contains(field), "{field}: {err}");
    }
}

#[test]
fn an_unconditional_rule_absorbs_conditional_ones_for_the_same_syscall() {
    let mut map = BTreeMap::new();
    let cond = SeccompRule::new(vec![SeccompCondition::new(
        0,
        SeccompCmpArgLen::Qword,
        SeccompCmpOp::Eq,
        1,
    )
    .expect("condition")])
    .expect("rule");
    add(&mut map, 1, Some(cond.clone()));
    add(&mut map, 1, Some(cond.clone()));
    assert_eq!(map[&1].len(), 2);
    add(&mut map, 1, None);
    assert!(map[&1].is_empty());
    add(&mut map, 1, Some(cond));
    assert!(map[&1].is_empty());
}
