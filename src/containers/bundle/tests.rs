use super::*;
use crate::workload::Identity;

fn service(doc: serde_json::Value) -> Service {
    let doc = json!({"Containers": [doc]});
    let config = crate::config::parse(doc.to_string().as_bytes()).expect("valid config");
    config.services[0].clone()
}

fn spec(uid: u32) -> WorkloadSpec {
    WorkloadSpec {
        argv: vec!["/bin/app".into(), "--serve".into()],
        env: vec![
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("TOKEN".into(), "s3cret".into()),
        ]
        .into(),
        identity: Identity {
            uid,
            gid: uid,
            groups: vec![uid, 44],
            home: "/home/app".into(),
        },
        working_dir: "/srv".into(),
        warnings: Vec::new(),
    }
}

fn container(extra: serde_json::Value) -> Service {
    let mut doc = json!({"name": "web", "kind": "container", "exec": ["/bin/app"],
                         "image_root": {"directory": "/images/web"},
                         "stop": {"signal": "SIGINT", "timeout": "7s"}});
    if let (Some(obj), Some(extra)) = (doc.as_object_mut(), extra.as_object()) {
        obj.extend(extra.clone());
    }
    service(doc)
}

fn build(service: &Service, spec: &WorkloadSpec, binds: &[Bind]) -> Value {
    config_json(&BundleSpec {
        service,
        spec,
        rootfs: Path::new("/run/roost/containers/web/rootfs"),
        hostname: "machine-1",
        cgroups_path: Some("/roost-workload-1-web"),
        binds,
        rlimits: &[Rlimit {
            name: "RLIMIT_NOFILE",
            soft: 1024,
            hard: 4096,
        }],
    })
}

#[test]
fn the_process_is_the_resolved_workload_with_no_new_privileges() {
    let s = container(json!({}));
    let v = build(&s, &spec(1000), &[]);
    let p = &v["process"];
    assert_eq!(p["args"], json!(["/bin/app", "--serve"]));
    assert_eq!(p["env"], json!(["PATH=/usr/bin:/bin", "TOKEN=s3cret"]));
    assert_eq!(p["cwd"], "/srv");
    assert_eq!(
        p["user"],
        json!({"uid": 1000, "gid": 1000, "additionalGids": [1000, 44]})
    );
    assert_eq!(p["noNewPrivileges"], true);
    assert_eq!(p["terminal"], false);
    assert_eq!(
        p["rlimits"],
        json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096}])
    );
    assert_eq!(
        v["root"],
        json!({"path": "/run/roost/containers/web/rootfs", "readonly": false})
    );
    assert_eq!(v["hostname"], "machine-1");
}

#[test]
fn a_root_process_holds_the_default_capabilities_and_a_user_only_bounds_them() {
    let s = container(json!({}));
    let root = build(&s, &spec(0), &[]);
    let caps = &root["process"]["capabilities"];
    assert_eq!(caps["bounding"], json!(DEFAULT_CAPABILITIES));
    assert_eq!(caps["effective"], json!(DEFAULT_CAPABILITIES));
    assert_eq!(caps["permitted"], json!(DEFAULT_CAPABILITIES));
    assert_eq!(caps["ambient"], json!([]));
    assert!(!caps["bounding"]
        .as_array()
        .is_some_and(|a| a.contains(&json!("CAP_SYS_ADMIN"))));
    let user = build(&s, &spec(1000), &[]);
    let caps = &user["process"]["capabilities"];
    assert_eq!(caps["bounding"], json!(DEFAULT_CAPABILITIES));
    assert_eq!(caps["effective"], json!([]));
    assert_eq!(caps["permitted"], json!([]));
}

#[test]
fn own_pid_ipc_uts_and_mount_namespaces_and_the_machines_network() {
    let v = build(&container(json!({})), &spec(0), &[]);
    let types: Vec<&str> = v["linux"]["namespaces"]
        .as_array()
        .expect("namespaces")
        .iter()
        .filter_map(|n| n["type"].as_str())
        .collect();
    assert_eq!(types, ["pid", "ipc", "uts", "mount"]);
    assert_eq!(v["linux"]["cgroupsPath"], "/roost-workload-1-web");
    assert_eq!(v["linux"]["maskedPaths"], json!(MASKED_PATHS));
    assert_eq!(v["linux"]["readonlyPaths"], json!(READONLY_PATHS));
    // Only the device rules: roost sets the limits in the leaf itself.
    let resources: Vec<&String> = v["linux"]["resources"]
        .as_object()
        .expect("resources")
        .keys()
        .collect();
    assert_eq!(resources, ["devices"]);
}

/// No CAP_MKNOD (a device node made inside reaches the VM's disks) and no CAP_NET_RAW (a
/// packet socket on the shared network reads other services' traffic), for root or not.
#[test]
fn no_mknod_and_no_raw_sockets_on_the_shared_network() {
    let s = container(json!({}));
    for uid in [0, 1000] {
        let v = build(&s, &spec(uid), &[]);
        for set in ["bounding", "effective", "permitted"] {
            let held = v["process"]["capabilities"][set]
                .as_array()
                .expect("a set")
                .clone();
            for cap in ["CAP_MKNOD", "CAP_NET_RAW", "CAP_SYS_ADMIN"] {
                assert!(!held.contains(&json!(cap)), "{uid}: {set} has {cap}");
            }
        }
    }
}

/// Deny every device, then runc's defaults: null, zero, full, random, urandom, tty, ptmx,
/// and the pts.
#[test]
fn devices_are_denied_but_runcs_defaults() {
    let v = build(&container(json!({})), &spec(0), &[]);
    let rules = v["linux"]["resources"]["devices"]
        .as_array()
        .expect("rules");
    assert_eq!(rules[0], json!({"allow": false, "access": "rwm"}));
    let allowed: Vec<String> = rules[1..]
        .iter()
        .map(|r| {
            assert_eq!(
                (r["allow"].clone(), r["access"].clone()),
                (json!(true), json!("rwm"))
            );
            format!(
                "{} {}:{}",
                r["type"].as_str().unwrap_or("?"),
                r["major"],
                r.get("minor").map_or("*".into(), |m| m.to_string())
            )
        })
        .collect();
    assert_eq!(
        allowed,
        ["c 1:3", "c 1:5", "c 1:7", "c 1:8", "c 1:9", "c 5:0", "c 5:2", "c 136:*"]
    );
}

/// Docker's default seccomp profile unless the service says `seccomp: unconfined`: EPERM by
/// default; no user namespace, mount, keyctl, bpf, userfaultfd, perf_event_open or io_uring;
/// clone without namespace flags; clone3 ENOSYS (glibc falls back to clone).
#[test]
fn dockers_default_seccomp_profile_unless_unconfined() {
    let v = build(&container(json!({})), &spec(0), &[]);
    let profile = &v["linux"]["seccomp"];
    assert_eq!(profile["defaultAction"], "SCMP_ACT_ERRNO");
    assert_eq!(profile["defaultErrnoRet"], libc::EPERM);
    let rules = profile["syscalls"].as_array().expect("rules");
    let allowed: Vec<&str> = rules
        .iter()
        .filter(|r| r["action"] == "SCMP_ACT_ALLOW" && r.get("args").is_none())
        .flat_map(|r| r["names"].as_array().into_iter().flatten())
        .filter_map(|n| n.as_str())
        .collect();
    for call in [
        "read",
        "write",
        "openat",
        "execve",
        "socket",
        "chroot",
        "ptrace",
        "arch_prctl",
    ] {
        assert!(allowed.contains(&call), "{call} is not allowed");
    }
    for call in [
        "unshare",
        "mount",
        "setns",
        "keyctl",
        "add_key",
        "request_key",
        "bpf",
        "userfaultfd",
        "perf_event_open",
        "io_uring_setup",
        "io_uring_enter",
        "kexec_load",
        "init_module",
        "reboot",
        "clock_settime",
        "swapon",
        "clone",
        "clone3",
    ] {
        assert!(!allowed.contains(&call), "{call} is allowed outright");
    }
    let clone = rules
        .iter()
        .find(|r| r["names"] == json!(["clone"]))
        .expect("a clone rule");
    assert_eq!(
        clone["args"],
        json!([{"index": 0, "value": 0x7e02_0000_u64, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}])
    );
    let clone3 = rules
        .iter()
        .find(|r| r["names"] == json!(["clone3"]))
        .expect("a clone3 rule");
    assert_eq!(
        (clone3["action"].as_str(), clone3["errnoRet"].as_i64()),
        (Some("SCMP_ACT_ERRNO"), Some(i64::from(libc::ENOSYS)))
    );

    let unconfined = build(&container(json!({"seccomp": "unconfined"})), &spec(0), &[]);
    assert!(unconfined["linux"].get("seccomp").is_none());
    let doc = json!({"Containers": [{"name": "web", "kind": "container", "exec": ["/bin/app"],
        "image_root": {"directory": "/images/web"}, "seccomp": "off"}]});
    let err = crate::config::parse(doc.to_string().as_bytes()).expect_err("refused");
    assert!(err.to_string().contains("Containers[0].seccomp"), "{err}");
}

#[test]
fn standard_file_systems_then_the_binds_in_order() {
    let binds = [
        Bind {
            source: "/etc/resolv.conf".into(),
            destination: "/etc/resolv.conf".into(),
            readonly: true,
        },
        Bind {
            source: "/run/roost/volumes/data".into(),
            destination: "/data".into(),
            readonly: false,
        },
    ];
    let v = build(&container(json!({})), &spec(0), &binds);
    let mounts = v["mounts"].as_array().expect("mounts");
    let dests: Vec<&str> = mounts
        .iter()
        .filter_map(|m| m["destination"].as_str())
        .collect();
    assert_eq!(
        dests,
        [
            "/proc",
            "/dev",
            "/dev/pts",
            "/dev/shm",
            "/dev/mqueue",
            "/sys",
            "/etc/resolv.conf",
            "/data"
        ]
    );
    assert_eq!(
        mounts[5]["options"],
        json!(["nosuid", "noexec", "nodev", "ro"])
    );
    assert_eq!(
        mounts[6]["options"],
        json!(["rbind", "nosuid", "nodev", "ro"])
    );
    assert_eq!(mounts[7]["options"], json!(["rbind", "nosuid", "nodev"]));
    assert_eq!(mounts[7]["source"], "/run/roost/volumes/data");
}

#[test]
fn with_an_init_roost_runs_as_root_and_its_config_carries_the_workload() {
    let s = container(json!({"init": true}));
    let v = build(&s, &spec(1000), &[]);
    assert_eq!(
        v["process"]["args"],
        json!([INIT_PATH, "container", "--config", INIT_CONFIG_PATH])
    );
    assert_eq!(v["process"]["user"]["uid"], 0);
    assert_eq!(
        v["process"]["env"],
        json!(["PATH=/usr/bin:/bin", "TOKEN=s3cret", "ROOST_LOG=warn"])
    );
    let init = init_config(&s, &spec(1000));
    assert_eq!(init["ExecOverride"], json!(["/bin/app", "--serve"]));
    assert_eq!(init["UserOverride"], "1000:1000");
    assert_eq!(init["ExtraEnv"]["TOKEN"], "s3cret");
    assert_eq!(init["ImageConfig"]["WorkingDir"], "/srv");
    assert_eq!(init["KillSignal"], libc::SIGINT);
    // A second short of the service's 7 s, so the inner roost reports first.
    assert_eq!(init["KillTimeout"], 6);
    // The inner roost accepts what the outer one wrote.
    let parsed = crate::config::parse(init.to_string().as_bytes()).expect("init config parses");
    let main = parsed.main_service().expect("main");
    assert_eq!(main.stop.timeout, std::time::Duration::from_secs(6));
}

/// What a runtime reads: every config.json roost writes (a process service's user, a root
/// container with seccomp, an init, binds, rlimits) deserialises as the OCI runtime spec's
/// own `Spec` type (the `oci-spec` crate youki and others build on), not only as JSON.
#[test]
fn every_config_json_reads_as_the_oci_specs_own_type() {
    let binds = [Bind {
        source: PathBuf::from("/run/roost/volumes/data"),
        destination: "/data".into(),
        readonly: false,
    }];
    let cases = [
        (container(json!({})), spec(1000)),
        (container(json!({})), spec(0)),
        (container(json!({"seccomp": "unconfined"})), spec(0)),
        (container(json!({"init": true})), spec(1000)),
    ];
    for (service, spec) in &cases {
        let value = build(service, spec, &binds);
        let text = value.to_string();
        let parsed: oci_spec::runtime::Spec =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("not an OCI Spec: {e}\n{text}"));
        let process = parsed.process().as_ref().expect("a process");
        assert!(
            process.args().as_ref().is_some_and(|a| !a.is_empty()),
            "{text}"
        );
        assert_eq!(
            parsed.root().as_ref().map(|r| r.path().clone()),
            Some(PathBuf::from("/run/roost/containers/web/rootfs"))
        );
        let linux = parsed.linux().as_ref().expect("linux");
        assert_eq!(
            linux.cgroups_path().as_deref(),
            Some(Path::new("/roost-workload-1-web"))
        );
    }
}
