//! A container's `config.json`, built from its service and the resolved workload: a pure
//! function, so every default is tested without a runtime. The defaults and why are in
//! docs/containers.md ("Bundle defaults").

use crate::config::typed::Service;
use crate::workload::WorkloadSpec;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Where roost is bind-mounted in a container that asks for an init.
pub const INIT_PATH: &str = "/.roost/init";
/// Where that init's run config is bind-mounted.
pub const INIT_CONFIG_PATH: &str = "/.roost/init.json";

/// What a root process in a container keeps: Docker's and runc's default set less
/// `CAP_MKNOD` (as Podman: a device node made inside is a way to the VM's disks) and
/// `CAP_NET_RAW` (the container shares the VM's network, where an `AF_PACKET` socket reads
/// every other service's loopback traffic; `ping` works through `net.ipv4.ping_group_range`).
pub const DEFAULT_CAPABILITIES: [&str; 12] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// runc's default masked paths: kernel interfaces that leak host details or are unsafe.
pub const MASKED_PATHS: [&str; 10] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
];

/// runc's default read-only paths.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// The devices a container may open or make (runc's defaults, which Docker and Podman keep):
/// `(type, major, minor)`, `None` for any minor. Everything else is denied, so a device node
/// that reaches the container some other way (an image, a bind) opens nothing.
pub const ALLOWED_DEVICES: [(&str, i64, Option<i64>); 8] = [
    ("c", 1, Some(3)), // null
    ("c", 1, Some(5)), // zero
    ("c", 1, Some(7)), // full
    ("c", 1, Some(8)), // random
    ("c", 1, Some(9)), // urandom
    ("c", 5, Some(0)), // tty
    ("c", 5, Some(2)), // ptmx
    ("c", 136, None),  // pts
];

/// `linux.resources.devices`: deny all, then [`ALLOWED_DEVICES`] for reading, writing and
/// making. On cgroup v1 the runtime writes them to the devices controller; on cgroup v2 it
/// attaches an eBPF device program to the container's cgroup.
pub fn device_rules() -> Vec<Value> {
    let mut rules = vec![json!({"allow": false, "access": "rwm"})];
    for (kind, major, minor) in ALLOWED_DEVICES {
        let mut rule = json!({"allow": true, "type": kind, "major": major, "access": "rwm"});
        if let (Some(minor), Some(obj)) = (minor, rule.as_object_mut()) {
            obj.insert("minor".into(), json!(minor));
        }
        rules.push(rule);
    }
    rules
}

/// A bind mount from the VM into the container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub source: PathBuf,
    pub destination: PathBuf,
    pub readonly: bool,
}

/// A resource limit the container's processes start with (`RLIMIT_NOFILE`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rlimit {
    pub name: &'static str,
    pub soft: u64,
    pub hard: u64,
}

/// Everything `config.json` is made of.
#[derive(Debug)]
pub struct BundleSpec<'a> {
    pub service: &'a Service,
    /// The workload resolved against the image's root (its passwd and group).
    pub spec: &'a WorkloadSpec,
    /// The container's root: the image under its writable layer.
    pub rootfs: &'a Path,
    /// The container's own UTS namespace gets the machine's hostname.
    pub hostname: &'a str,
    /// The container's `cgroupsPath`: the service's v2 leaf relative to the cgroup2 mount
    /// (`/roost-...-web`), or the leaf's unique name on a hybrid host.
    pub cgroups_path: Option<&'a str>,
    /// Bind mounts after the standard file systems, in order.
    pub binds: &'a [Bind],
    pub rlimits: &'a [Rlimit],
}

/// The runtime spec of the container.
pub fn config_json(b: &BundleSpec<'_>) -> Value {
    let init = b.service.container.as_ref().is_some_and(|c| c.init);
    // With an init, roost runs as root inside and becomes the workload's user itself.
    let (args, uid, gid, groups): (Vec<String>, u32, u32, Vec<u32>) = if init {
        (
            vec![
                INIT_PATH.into(),
                "container".into(),
                "--config".into(),
                INIT_CONFIG_PATH.into(),
            ],
            0,
            0,
            vec![0],
        )
    } else {
        (
            b.spec.argv.clone(),
            b.spec.identity.uid,
            b.spec.identity.gid,
            b.spec.identity.groups.clone(),
        )
    };
    // A non-root process gets no effective capabilities (as Docker since 20.10): the set
    // bounds what a setuid binary could gain, nothing more.
    let caps: Vec<&str> = DEFAULT_CAPABILITIES.to_vec();
    let none: Vec<&str> = Vec::new();
    let held = if uid == 0 { &caps } else { &none };
    let mut env: Vec<String> = b.spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    // The inner roost logs warnings only (the outer one logs each start and exit); a
    // service that sets ROOST_LOG itself keeps its own.
    if init && !b.spec.env.iter().any(|(k, _)| k == "ROOST_LOG") {
        env.push("ROOST_LOG=warn".into());
    }
    let rlimits: Vec<Value> = b
        .rlimits
        .iter()
        .map(|r| json!({"type": r.name, "soft": r.soft, "hard": r.hard}))
        .collect();
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
    ];
    for bind in b.binds {
        let mut options = vec!["rbind", "nosuid", "nodev"];
        if bind.readonly {
            options.push("ro");
        }
        mounts.push(json!({
            "destination": bind.destination,
            "type": "bind",
            "source": bind.source,
            "options": options,
        }));
    }
    let mut linux = json!({
        // The machine's network is shared: no network namespace of its own.
        "namespaces": [{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}],
        "maskedPaths": MASKED_PATHS,
        "readonlyPaths": READONLY_PATHS,
        "resources": {"devices": device_rules()},
    });
    let seccomp = b.service.container.as_ref().is_none_or(|c| c.seccomp);
    if let (true, Some(obj)) = (seccomp, linux.as_object_mut()) {
        obj.insert(
            "seccomp".into(),
            super::seccomp_profile::docker_default(&DEFAULT_CAPABILITIES),
        );
    }
    if let (Some(path), Some(obj)) = (b.cgroups_path, linux.as_object_mut()) {
        obj.insert("cgroupsPath".into(), json!(path));
    }
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": uid, "gid": gid, "additionalGids": groups},
            "args": args,
            "env": env,
            "cwd": b.spec.working_dir,
            "capabilities": {
                "bounding": caps,
                "effective": held,
                "permitted": held,
                "inheritable": none,
                "ambient": none,
            },
            "rlimits": rlimits,
            "noNewPrivileges": true,
        },
        "root": {"path": b.rootfs, "readonly": false},
        "hostname": b.hostname,
        "mounts": mounts,
        "linux": linux,
    })
}

/// The run config of roost as the container's init: the workload as resolved, its stop
/// signal, and a stop bound a second short of the service's, so the inner roost reports
/// the workload's code before the outer one's SIGKILL.
pub fn init_config(service: &Service, spec: &WorkloadSpec) -> Value {
    let env: serde_json::Map<String, Value> = spec
        .env
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let timeout = service.stop.timeout.as_secs().saturating_sub(1).max(1);
    json!({
        "ExecOverride": spec.argv,
        "ExtraEnv": env,
        "UserOverride": format!("{}:{}", spec.identity.uid, spec.identity.gid),
        "ImageConfig": {"WorkingDir": spec.working_dir},
        "KillSignal": service.stop.signal.number(),
        "KillTimeout": timeout,
    })
}

#[cfg(test)]
mod tests;
