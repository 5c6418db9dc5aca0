//! The device program on a real kernel: a cgroup made in this machine's cgroup v2 hierarchy
//! (pure v2, or the `unified` one of a hybrid host: cgroup eBPF needs no controller), the
//! program attached, and a shell moved into it that opens devices.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;
use libcontainer::oci_spec::runtime::LinuxDeviceCgroupBuilder;

fn rule(
    allow: bool,
    typ: Option<LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> LinuxDeviceCgroup {
    let mut b = LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .access(access);
    if let Some(t) = typ {
        b = b.typ(t);
    }
    if let Some(m) = major {
        b = b.major(m);
    }
    if let Some(m) = minor {
        b = b.minor(m);
    }
    b.build().expect("rule")
}

/// Where cgroup2 is mounted on this machine.
fn cgroup2_mount() -> std::path::PathBuf {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    mounts
        .lines()
        .find_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.get(2) == Some(&"cgroup2")).then(|| std::path::PathBuf::from(f[1]))
        })
        .expect("a cgroup2 mount")
}

fn sh_in(cgroup: Option<&Path>, script: &str) -> String {
    let script = match cgroup {
        Some(dir) => format!(
            "echo $$ > {}/cgroup.procs && {{ {script}; }}",
            dir.display()
        ),
        None => script.to_string(),
    };
    let out = std::process::Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("sh");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

// `true`, not `:`: a failed redirection of a special builtin ends a POSIX shell.
const PROBE: &str = "true </dev/null && echo null; \
                     true </dev/zero && echo zero-read; \
                     true >/dev/zero 2>/dev/null || echo zero-write-denied; \
                     true </dev/kmsg 2>/dev/null || echo kmsg-denied";

#[test]
fn the_program_denies_what_the_rules_do_not_allow_on_a_real_cgroup() {
    // Without the program, this process may read /dev/kmsg: the denial below is the
    // program's.
    assert_eq!(
        sh_in(None, PROBE),
        "null\nzero-read\n",
        "the probe needs root and /dev/kmsg"
    );
    let rules = [
        rule(false, None, None, None, "rwm"),
        rule(true, Some(LinuxDeviceType::C), Some(1), Some(3), "rwm"),
        rule(true, Some(LinuxDeviceType::C), Some(1), Some(5), "r"),
    ];
    let insns = program(&rules).expect("program");
    let dir = cgroup2_mount().join(format!("roost-oci-devices-{}", std::process::id()));
    std::fs::create_dir(&dir).expect("a test cgroup");
    let attached = attach(&dir, &insns);
    let out = attached.as_ref().ok().map(|()| sh_in(Some(&dir), PROBE));
    // The shell has exited: the cgroup is empty and can go (with the program).
    let removed = std::fs::remove_dir(&dir);
    attached.expect("attach");
    removed.expect("remove the test cgroup");
    assert_eq!(
        out.as_deref(),
        Some("null\nzero-read\nzero-write-denied\nkmsg-denied\n")
    );
}

#[test]
fn rules_compile_to_blocks_that_skip_to_the_next_on_a_mismatch() {
    let insns = program(&[
        rule(false, None, None, None, "rwm"),
        rule(true, Some(LinuxDeviceType::C), Some(136), None, "rwm"),
    ])
    .expect("program");
    // 6 loads, the pts block (type, major, 5), the deny-all block (5), the default (2).
    assert_eq!(insns.len(), 6 + 2 + 5 + 5 + 2);
    // The pts block's type test jumps past its own 6 remaining instructions.
    assert_eq!(
        (insns[6].code, insns[6].off, insns[6].imm),
        (JMP_JNE_K, 6, DEV_CHAR)
    );
    assert_eq!(
        (insns[7].code, insns[7].off, insns[7].imm),
        (JMP_JNE_K, 5, 136)
    );
    assert!(program(&[rule(true, None, None, None, "rwx")]).is_err());
}
