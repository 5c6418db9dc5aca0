use super::*;

fn parse_str(s: &str) -> Result<Validated, ConfigError> {
    parse(s.as_bytes())
}

fn field_error(s: &str) -> (String, String) {
    match parse_str(s) {
        Err(ConfigError::Field { field, problem }) => (field, problem),
        other => panic!("expected a field error, got {other:?}"),
    }
}

#[test]
fn full_schema_parses() {
    let doc = r#"{
        "ImageConfig": {"Entrypoint": ["/bin/app"], "Cmd": ["serve"], "Env": ["A=1"],
                        "WorkingDir": "/srv", "User": "app:app"},
        "ExecOverride": null, "CmdOverride": "run", "UserOverride": "1000",
        "ExtraEnv": {"B": "2"},
        "MTU": 1500,
        "IPConfigs": [{"IP": "172.16.0.2", "Mask": 30, "Gateway": "172.16.0.1"},
                      {"IP": "fdaa::2", "Mask": 64, "Gateway": "fdaa::1"}],
        "Hostname": "app-1", "Mounts": [{"DevicePath": "/dev/vdb", "MountPath": "/data"}],
        "RootDevice": "/dev/vda", "EtcResolv": {"Nameservers": ["10.0.0.3"]},
        "EtcHosts": [{"Host": "db", "IP": "10.0.0.9", "Desc": "database"}],
        "MachineId": "m1", "AppName": "a1", "KillSignal": "SIGINT", "KillTimeout": 30,
        "MemoryLimitMiB": 256,
        "Api": {"Upstream": "unix:///run/up.sock", "Token": "fm2_secret", "TokenScheme": "FlyV1",
                "SocketPath": "/.fly/api", "AllowUids": [0, 1000], "AllowGids": [], "Paths": [],
                "Attenuate": true},
        "Oidc": {"TokenPath": "/.fly/oidc_token", "BootWaitSeconds": 3},
        "Control": {"VsockPort": 10000, "ExitReportPort": 10001},
        "Mmds": {"AfterBoot": "keep", "OnRestore": "reread"},
        "SomethingNew": {"ignored": true}
    }"#;
    let v = parse_str(doc).expect("valid config");
    let main = v.main_service().expect("main service");
    assert_eq!(main.name, "main");
    assert_eq!(main.stop.signal.number(), libc::SIGINT);
    assert_eq!(main.stop.timeout, std::time::Duration::from_secs(30));
    assert_eq!(v.services.len(), 1);
    // Typed once, here: addresses, the upstream, durations and defaults.
    assert_eq!(v.network.addresses.len(), 2);
    assert_eq!(v.network.addresses[0].prefix, 30);
    assert_eq!(v.network.mtu, Some(1500));
    assert_eq!(v.network.hosts[0].ip.to_string(), "10.0.0.9");
    let typed_api = v.api.as_ref().expect("typed api");
    assert_eq!(typed_api.scheme, "FlyV1");
    assert_eq!(typed_api.socket_path, std::path::Path::new("/.fly/api"));
    assert_eq!(
        typed_api.request_timeout,
        std::time::Duration::from_secs(60)
    );
    assert_eq!(v.oidc.boot_wait, std::time::Duration::from_secs(3));
    assert_eq!(v.control.linger, std::time::Duration::from_secs(2));
    let main = v.main_service().expect("main service");
    assert_eq!(main.process.image_config.entrypoint, ["/bin/app"]);
    assert_eq!(main.process.cmd_override.as_deref(), Some("run"));
    assert_eq!(v.network.addresses.len(), 2);
    assert_eq!(v.network.addresses[0].prefix, 30);
    assert_eq!(v.network.mtu, Some(1500));
    assert_eq!(v.network.hosts[0].desc.as_deref(), Some("database"));
    assert_eq!(main.memory_limit_mib, Some(256));
    assert!(v.vm.mmds_reachable_after_boot);
    assert!(v.vm.reread_identity_on_unannounced_restore);
    assert_eq!(v.control.exit_report_port, Some(10001));
    assert_eq!(typed_api.allow_uids, [0, 1000]);
    assert!(typed_api.attenuate);
    assert_eq!(typed_api.token.expose(), "fm2_secret");
}

#[test]
fn empty_document_gets_defaults() {
    let v = parse_str("{}").expect("valid");
    let main = v.main_service().expect("main service");
    assert_eq!(main.stop.signal.number(), libc::SIGTERM);
    assert_eq!(
        main.stop.timeout,
        std::time::Duration::from_secs(DEFAULT_KILL_TIMEOUT_SECS)
    );
    assert!(v.api.is_none());
    assert_eq!(v.oidc.token_path, std::path::Path::new("/.fly/oidc_token"));
    assert!(!v.vm.mmds_reachable_after_boot);
    assert!(!v.vm.reread_identity_on_unannounced_restore);
}

#[test]
fn nulls_from_go_drivers_mean_absent() {
    let v = parse_str(
        r#"{"ImageConfig": {"Entrypoint": null, "Cmd": null, "Env": null},
            "ExtraEnv": null, "IPConfigs": null, "Mounts": null, "EtcHosts": null,
            "Control": null, "Mmds": null}"#,
    )
    .expect("valid");
    let main = v.main_service().expect("main service");
    assert!(main.process.image_config.cmd.is_empty());
    assert!(main.process.extra_env.is_empty());
}

#[test]
fn wrong_type_names_the_field() {
    let (field, problem) = field_error(r#"{"KillTimeout": "soon"}"#);
    assert_eq!(field, "KillTimeout");
    assert!(problem.contains("invalid type"), "{problem}");
    let (field, _) = field_error(r#"{"ImageConfig": {"Cmd": [1]}}"#);
    assert_eq!(field, "ImageConfig.Cmd[0]");
    let (field, _) = field_error(r#"{"IPConfigs": [{"IP": "10.0.0.2", "Mask": "24"}]}"#);
    assert_eq!(field, "IPConfigs[0].Mask");
    let (field, problem) = field_error(r#"{"Mmds": {"AfterBoot": "forget"}}"#);
    assert_eq!(field, "Mmds.AfterBoot");
    assert!(problem.contains("unknown variant"), "{problem}");
    let (field, problem) = field_error(r#"{"Mmds": {"OnRestore": "always"}}"#);
    assert_eq!(field, "Mmds.OnRestore");
    assert!(problem.contains("unknown variant"), "{problem}");
}

#[test]
fn invalid_values_name_the_field() {
    let cases = [
        (r#"{"KillSignal": "SIGFOO"}"#, "KillSignal"),
        (r#"{"KillSignal": 65}"#, "KillSignal"),
        (r#"{"KillSignal": 0}"#, "KillSignal"),
        (r#"{"KillTimeout": 100000}"#, "KillTimeout"),
        (r#"{"MTU": 10}"#, "MTU"),
        (
            r#"{"IPConfigs": [{"IP": "nope", "Mask": 24}]}"#,
            "IPConfigs[0].IP",
        ),
        (
            r#"{"IPConfigs": [{"IP": "10.0.0.2", "Mask": 33}]}"#,
            "IPConfigs[0].Mask",
        ),
        (
            r#"{"IPConfigs": [{"IP": "10.0.0.2", "Mask": 24, "Gateway": "fe80::1"}]}"#,
            "IPConfigs[0].Gateway",
        ),
        (r#"{"Hostname": "bad_name!"}"#, "Hostname"),
        (
            r#"{"Mounts": [{"DevicePath": "vdb", "MountPath": "/d"}]}"#,
            "Mounts[0].DevicePath",
        ),
        (
            r#"{"EtcResolv": {"Nameservers": ["x"]}}"#,
            "EtcResolv.Nameservers[0]",
        ),
        (
            r#"{"Api": {"Upstream": "ftp://x", "Token": "t"}}"#,
            "Api.Upstream",
        ),
        (r#"{"Api": {"Token": "t"}}"#, "Api.Upstream"),
        (r#"{"Api": {"Upstream": "unix:///u"}}"#, "Api.Token"),
        (
            r#"{"Api": {"Upstream": "unix:///u", "Token": "a b"}}"#,
            "Api.Token",
        ),
        (
            r#"{"Api": {"Upstream": "unix:///u", "Token": "t", "SocketPath": "api"}}"#,
            "Api.SocketPath",
        ),
        (
            r#"{"Api": {"Upstream": "unix:///u", "Token": "t", "Paths": ["GET /a//b"]}}"#,
            "Api.Paths",
        ),
        (
            r#"{"ExecOverride": ["/bin/sh", "a\u0000b"]}"#,
            "ExecOverride[1]",
        ),
        (r#"{"UserOverride": "a:b:c"}"#, "UserOverride"),
        (r#"{"MemoryLimitMiB": 0}"#, "MemoryLimitMiB"),
        (r#"{"Control": {"VsockPort": 0}}"#, "Control.VsockPort"),
    ];
    for (doc, want) in cases {
        let (field, problem) = field_error(doc);
        assert_eq!(field, want, "{doc}: {problem}");
        assert!(!problem.is_empty());
    }
}

#[test]
fn signal_names_and_numbers() {
    let name = |s: &str| parse_signal(&SignalSpec::Name(s.into())).map(|s| s.number());
    assert_eq!(name("SIGTERM"), Ok(libc::SIGTERM));
    assert_eq!(name("term"), Ok(libc::SIGTERM));
    assert_eq!(name("USR1"), Ok(libc::SIGUSR1));
    assert!(name("").is_err());
    assert_eq!(
        parse_signal(&SignalSpec::Number(34)).map(|s| s.number()),
        Ok(34)
    );
    assert!(parse_signal(&SignalSpec::Number(65)).is_err());
}

#[test]
fn syntax_errors_are_reported_as_such() {
    assert!(matches!(parse_str("{"), Err(ConfigError::Syntax(_))));
    assert!(matches!(parse_str("{} x"), Err(ConfigError::Syntax(_))));
    assert!(matches!(parse_str("[]"), Err(ConfigError::Syntax(_))));
}

#[test]
fn token_never_appears_in_debug_output() {
    let v = parse_str(r#"{"Api": {"Upstream": "unix:///u", "Token": "fm2_topsecret"}}"#)
        .expect("valid");
    let debug = format!("{v:?}");
    assert!(!debug.contains("topsecret"), "{debug}");
    assert!(debug.contains("redacted"));
}

#[test]
fn oversized_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("big.json");
    std::fs::write(&path, vec![b' '; (MAX_CONFIG_BYTES + 1) as usize]).expect("write");
    assert!(matches!(
        load_file(&path),
        Err(ConfigError::TooLarge { .. })
    ));
    assert!(matches!(
        load_file(&dir.path().join("missing.json")),
        Err(ConfigError::Read { .. })
    ));
}

#[test]
fn every_numeric_field_has_a_maximum_and_the_edge_is_accepted() {
    let cases = [
        (
            r#"{"Api": {"Upstream": "unix:///u", "Token": "t", "MaxConcurrent": N}}"#,
            "Api.MaxConcurrent",
            4096u64,
        ),
        (
            r#"{"Api": {"Upstream": "unix:///u", "Token": "t", "RequestTimeoutSeconds": N}}"#,
            "Api.RequestTimeoutSeconds",
            3600,
        ),
        (
            r#"{"Api": {"Upstream": "unix:///u", "Token": "t", "MaxBodyBytes": N}}"#,
            "Api.MaxBodyBytes",
            64 * 1024 * 1024,
        ),
        (
            r#"{"MemoryLimitMiB": N}"#,
            "MemoryLimitMiB",
            16 * 1024 * 1024,
        ),
        (r#"{"PidsMax": N}"#, "PidsMax", 4 * 1024 * 1024),
        (r#"{"KillTimeout": N}"#, "KillTimeout", 86_400),
        (
            r#"{"Oidc": {"BootWaitSeconds": N}}"#,
            "Oidc.BootWaitSeconds",
            600,
        ),
        (
            r#"{"Control": {"LingerSeconds": N}}"#,
            "Control.LingerSeconds",
            600,
        ),
    ];
    for (template, field, max) in cases {
        let at = template.replace('N', &max.to_string());
        assert!(parse_str(&at).is_ok(), "{field} = {max} must be accepted");
        let over = template.replace('N', &(max + 1).to_string());
        assert_eq!(field_error(&over).0, field, "{field} = {}", max + 1);
        // The values that used to panic PID 1: near u64::MAX.
        let huge = template.replace('N', &u64::MAX.to_string());
        assert!(parse_str(&huge).is_err(), "{field} = u64::MAX");
    }
    assert_eq!(field_error(r#"{"PidsMax": 15}"#).0, "PidsMax");
    assert_eq!(
        field_error(
            r#"{"Api": {"Upstream": "unix:///u", "Token": "t", "AllowUids": [4294967295]}}"#
        )
        .0,
        "Api.AllowUids"
    );
}

#[test]
fn strings_that_reach_headers_host_names_and_etc_files_are_checked() {
    for (doc, field) in [
        (
            r#"{"Api": {"Upstream": "http://a\u0000b", "Token": "t"}}"#,
            "Api.Upstream",
        ),
        (
            r#"{"Api": {"Upstream": "http://a b", "Token": "t"}}"#,
            "Api.Upstream",
        ),
        (
            r#"{"Api": {"Upstream": "unix:///u", "Token": "fm2_\u00e9"}}"#,
            "Api.Token",
        ),
        (
            r#"{"Api": {"Upstream": "unix:///u", "Token": "a\u007fb"}}"#,
            "Api.Token",
        ),
        (r#"{"MachineId": "m1\u0000"}"#, "MachineId"),
        (r#"{"MachineId": "m1\nevil 10.0.0.1"}"#, "MachineId"),
        (r#"{"MachineId": ""}"#, "MachineId"),
        (r#"{"AppName": "a/b"}"#, "AppName"),
    ] {
        assert_eq!(field_error(doc).0, field, "{doc}");
    }
    assert!(parse_str(r#"{"MachineId": "148e272b626e89", "AppName": "my_app-1"}"#).is_ok());
}

mod containers {
    use crate::config::parse;
    use crate::config::typed::{CheckKind, Condition, OnExit, Probe, RestartPolicy};
    use std::time::Duration;

    fn field_error(doc: &str) -> (String, String) {
        match parse(doc.as_bytes()) {
            Err(crate::config::ConfigError::Field { field, problem }) => (field, problem),
            other => panic!("expected a field error, got {other:?}"),
        }
    }

    /// The multi-container docs' examples, as Fly publishes them, with the image config the
    /// host resolves for each image added (a process service needs something to run).
    #[test]
    fn flys_documented_examples_parse_and_validate() {
        let examples = [
            r#"{"containers": [
                {"name": "my-app", "image": "registry.fly.io/my-app:latest", "env": {"PORT": "8080"},
                 "healthchecks": [{"http": {"port": 8080, "method": "GET", "path": "/health", "scheme": "http"},
                   "interval": 10, "timeout": 5, "grace_period": 5, "success_threshold": 2, "failure_threshold": 3}]},
                {"name": "log-shipper", "image": "registry.fly.io/log-shipper:latest", "env": {"LOG_LEVEL": "info"},
                 "depends_on": [{"name": "my-app", "condition": "healthy"}]}]}"#,
            r#"{"containers": [
                {"name": "nginx", "image": "nginx:latest", "files": [{"guest_path": "/etc/nginx/conf.d/default.conf",
                  "raw_value": "bGltaXRfcmVxX3pvbmUgJGJpbmFyeV9yZW1vdGVfYWRkciB6b25lPW15X3pvbmU6MTBtIHJhdGU9MXIvczsKCnNlcnZlciB7CiAgbGlzdGVuIDgwODA7CgogIGxvY2F0aW9uIC8gewogICAgbGltaXRfcmVxIHpvbmU9bXlfem9uZTsKICAgIHByb3h5X3Bhc3MgaHR0cDovL2xvY2FsaG9zdDo4MDsKICB9Cn0="}]},
                {"name": "echo", "image": "ealen/echo-server"}]}"#,
            r#"{"containers": [
                {"name": "litefs", "image": "flyio/litefs:latest",
                 "env": {"LITEFS_DIR": "/data", "LITEFS_CONFIG": "/etc/litefs.yml"},
                 "healthchecks": [{"http": {"port": 8080, "method": "GET", "path": "/info", "scheme": "http"},
                   "grace_period": 500, "interval": 1000, "timeout": 1000, "success_threshold": 1, "failure_threshold": 5}]}]}"#,
            r#"{"containers": [
                {"name": "nginx", "image": "nginx:latest", "depends_on": [{"name": "echo", "condition": "healthy"}]},
                {"name": "echo", "image": "ealen/echo-server",
                 "healthchecks": [{"exec": {"command": ["wget", "-q", "--spider", "http://localhost"]}}]}]}"#,
        ];
        for example in examples {
            let mut doc: serde_json::Value = serde_json::from_str(example).expect("json");
            let containers = doc["containers"].take();
            let mut containers = containers.as_array().cloned().unwrap_or_default();
            // Without the image's config there is nothing to run: a clear refusal.
            let bare = serde_json::json!({ "Containers": containers }).to_string();
            let (field, problem) = field_error(&bare);
            assert_eq!(field, "Containers[0]", "{problem}");
            assert!(problem.contains("image_config"), "{problem}");
            for c in &mut containers {
                c["image_config"] = serde_json::json!({"Cmd": ["/bin/true"]});
            }
            let doc = serde_json::json!({ "Containers": containers }).to_string();
            let v = parse(doc.as_bytes()).unwrap_or_else(|e| panic!("{e}: {doc}"));
            assert!(v.services.iter().all(|s| !s.single_workload));
            assert_eq!(v.services.len(), containers.len());
        }
        let v = parse(
            br#"{"Containers": [
                {"name": "my-app", "image_config": {"Cmd": ["x"]},
                 "healthchecks": [{"http": {"port": 8080, "path": "/health"}, "interval": 10, "timeout": 5,
                   "grace_period": 5, "success_threshold": 2, "failure_threshold": 3}]},
                {"name": "log-shipper", "image_config": {"Cmd": ["y"]},
                 "depends_on": [{"name": "my-app", "condition": "healthy"}]}]}"#,
        )
        .expect("valid");
        let check = &v.services[0].healthchecks[0];
        assert_eq!(check.kind, CheckKind::Readiness);
        assert!(!check.stop_when_unhealthy);
        assert_eq!(
            (check.interval, check.timeout, check.grace_period),
            (
                Duration::from_secs(10),
                Duration::from_secs(5),
                Duration::from_secs(5)
            )
        );
        assert_eq!((check.success_threshold, check.failure_threshold), (2, 3));
        assert!(
            matches!(&check.probe, Probe::Http { port: 8080, path, method, .. } if path == "/health" && method == "GET")
        );
        assert_eq!(v.services[1].depends_on[0].on, 0);
        assert_eq!(v.services[1].depends_on[0].condition, Condition::Healthy);
        assert_eq!(v.services[0].restart.policy, RestartPolicy::OnFailure);
        assert_eq!(v.services[0].restart.max_retries, 10);
    }

    /// A secret's file defaults to 0400 (its user's alone: process services share the VM's
    /// root); a `raw_value` file keeps 0644; a mode given is kept for either.
    #[test]
    fn a_secret_file_defaults_to_its_user_alone_and_a_raw_value_to_0644() {
        let v = parse(
            br#"{"Secrets": {"KEY": "s3cret"}, "Containers": [{"name": "a", "exec": ["x"],
                "files": [{"guest_path": "/s", "secret_name": "KEY"},
                          {"guest_path": "/r", "raw_value": "eA=="},
                          {"guest_path": "/m", "secret_name": "KEY", "mode": 416}]}]}"#,
        )
        .expect("valid");
        let modes: Vec<u32> = v.services[0].files.iter().map(|f| f.mode).collect();
        assert_eq!(modes, [0o400, 0o644, 0o640]);
    }

    #[test]
    fn flyctls_local_path_is_refused_with_what_to_send_instead() {
        let (field, problem) = field_error(
            r#"{"Containers": [{"name": "nginx", "exec": ["nginx"],
                "files": [{"guest_path": "/etc/nginx/conf.d/default.conf", "local_path": "nginx.conf"}]}]}"#,
        );
        assert_eq!(field, "Containers[0].files[0].local_path");
        assert!(problem.contains("raw_value"), "{problem}");
    }

    #[test]
    fn the_graph_is_checked_before_anything_starts() {
        let cases = [
            (
                r#"[{"name": "a", "exec": ["x"], "depends_on": [{"name": "b"}]},
                 {"name": "b", "exec": ["x"], "depends_on": [{"name": "c"}]},
                 {"name": "c", "exec": ["x"], "depends_on": [{"name": "a"}]}]"#,
                "Containers[0].depends_on",
                "dependency cycle: a -> b -> c -> a",
            ),
            (
                r#"[{"name": "a", "exec": ["x"], "depends_on": [{"name": "ghost"}]}]"#,
                "Containers[0].depends_on[0].name",
                "no service named \"ghost\"",
            ),
            (
                r#"[{"name": "a", "exec": ["x"], "depends_on": [{"name": "a"}]}]"#,
                "Containers[0].depends_on[0].name",
                "itself",
            ),
            (
                r#"[{"name": "a", "exec": ["x"], "daemon": true, "stop": {"parent_only": true}}]"#,
                "Containers[0].stop.parent_only",
                "is for a process service",
            ),
            (
                r#"[{"name": "a", "kind": "container", "image_root": {"directory": "/i"}, "exec": ["x"], "stop": {"parent_only": true}}]"#,
                "Containers[0].stop.parent_only",
                "is for a process service",
            ),
            (
                r#"[{"name": "a", "exec": ["x"]}, {"name": "a", "exec": ["x"]}]"#,
                "Containers[1].name",
                "defined twice",
            ),
            (
                r#"[{"name": "Web_1", "exec": ["x"]}]"#,
                "Containers[0].name",
                "DNS label",
            ),
            (
                r#"[{"name": "a", "exec": ["x"]}, {"name": "b", "exec": ["x"], "depends_on": [{"name": "a", "condition": "healthy"}]}]"#,
                "Containers[1].depends_on[0].condition",
                "needs a health check",
            ),
            (
                r#"[{"name": "a", "exec": ["x"]}, {"name": "b", "exec": ["x"], "depends_on": [{"name": "a", "condition": "log_ready"}]}]"#,
                "Containers[1].depends_on[0].condition",
                "ready_log_line",
            ),
            (
                r#"[{"name": "a", "exec": ["x"], "restart": {"policy": "always"}}, {"name": "b", "exec": ["x"], "depends_on": [{"name": "a", "condition": "exited_successfully"}]}]"#,
                "Containers[1].depends_on[0].condition",
                "restarts always",
            ),
            (
                r#"[{"name": "a", "exec": ["x"], "mounts": [{"name": "scratch", "path": "/scratch"}]}]"#,
                "Containers[0].mounts[0].name",
                "no volume named \"scratch\"",
            ),
            (
                r#"[{"name": "b", "exec": ["x"]}, {"name": "a", "exec": ["x"], "depends_on": [{"name": "b", "condition": "sometimes"}]}]"#,
                "Containers[1].depends_on[0].condition",
                "not started",
            ),
            (
                r#"[{"name": "a", "exec": ["x"], "healthchecks": [{"tcp": {"port": 1}, "http": {"port": 2}}]}]"#,
                "Containers[0].healthchecks[0]",
                "exactly one",
            ),
            (
                r#"[{"name": "a", "exec": ["x"], "healthchecks": [{"tcp": {"port": 1}, "interval": 0}]}]"#,
                "Containers[0].healthchecks[0].interval",
                "outside",
            ),
            (
                r#"[{"name": "a", "exec": ["x"], "stop": {"timeout": "forever"}}]"#,
                "Containers[0].stop.timeout",
                "not a duration",
            ),
            (
                r#"[{"name": "a", "exec": ["x"], "secrets": [{"env_var": "K", "name": "missing"}]}]"#,
                "Containers[0].secrets[0].name",
                "no secret named",
            ),
            (
                r#"[{"name": "a", "exec": ["x"], "kind": "container"}]"#,
                "Containers[0].image_root",
                "is needed with kind",
            ),
            (
                r#"[{"name": "a", "exec": ["x"], "kind": "container", "image_root": {"directory": "/i", "device": "/dev/vdb"}}]"#,
                "Containers[0].image_root",
                "exactly one of directory or device",
            ),
            (
                r#"[{"name": "a", "exec": ["x"], "kind": "container", "image_root": {"device": "/dev/vdb", "fstype": "xfs"}}]"#,
                "Containers[0].image_root.fstype",
                "is not one of",
            ),
            (
                r#"[{"name": "a", "exec": ["x"], "kind": "container", "image_root": {"directory": "images/x"}}]"#,
                "Containers[0].image_root.directory",
                "not an absolute path",
            ),
            (
                r#"[{"name": "a", "exec": ["x"], "init": true}]"#,
                "Containers[0].kind",
                "need kind",
            ),
            (
                r#"[{"name": "a", "exec": ["x"], "cgroup": {"cpu_weight": 0}}]"#,
                "Containers[0].cgroup.cpu_weight",
                "outside 1..=10000",
            ),
        ];
        for (containers, want_field, want_problem) in cases {
            let doc = format!(r#"{{"Containers": {containers}}}"#);
            let (field, problem) = field_error(&doc);
            assert_eq!(field, want_field, "{problem}");
            assert!(problem.contains(want_problem), "{field}: {problem}");
        }
    }

    #[test]
    fn defaults_where_fly_is_silent() {
        let v = parse(
            br#"{"KillSignal": "SIGINT", "ExtraEnv": {"FROM_MACHINE": "1", "PORT": "1"},
                 "Secrets": {"DB_PASSWORD": "s3cret"}, "MachineId": "m1",
                 "Volumes": [{"name": "scratch", "temp_dir": {"storage_type": "memory", "size_mb": 8}}],
                 "Containers": [
                   {"name": "setup", "exec": ["mkdir", "-p", "/srv"]},
                   {"name": "web", "entrypoint": ["nginx"], "image_config": {"Entrypoint": ["x"], "Cmd": ["-g", "daemon off;"]},
                    "env": {"PORT": "8080"}, "env_from": [{"env_var": "ID", "field_ref": "id"}],
                    "stop": {"signal": "SIGQUIT", "timeout": 3000000000},
                    "mounts": [{"name": "scratch", "path": "/scratch"}],
                    "depends_on": [{"name": "setup", "condition": "exited_successfully"}],
                    "healthchecks": [{"kind": "liveness", "tcp": {"port": 80}}]}]}"#,
        )
        .expect("valid");
        let (setup, web) = (&v.services[0], &v.services[1]);
        // A one-shot others wait on stops the machine only when it fails; the rest always.
        assert_eq!(setup.on_exit, OnExit::StopMachineOnFailure);
        assert_eq!(web.on_exit, OnExit::StopMachine);
        assert_eq!(setup.stop.signal.number(), libc::SIGINT);
        assert_eq!(web.stop.signal.number(), libc::SIGQUIT);
        assert_eq!(web.stop.timeout, Duration::from_secs(3));
        // entrypoint replaces the image's and drops its cmd, as Docker does.
        assert_eq!(web.process.image_config.entrypoint, ["nginx"]);
        assert!(web.process.image_config.cmd.is_empty());
        let env = &web.process.extra_env;
        assert_eq!(env.get("PORT").map(String::as_str), Some("8080"));
        assert_eq!(env.get("FROM_MACHINE").map(String::as_str), Some("1"));
        assert_eq!(
            web.process
                .secret_env
                .get("DB_PASSWORD")
                .map(|t| t.expose()),
            Some("s3cret")
        );
        assert_eq!(env.get("ID").map(String::as_str), Some("m1"));
        let check = &web.healthchecks[0];
        assert!(check.stop_when_unhealthy, "liveness stops by default");
        assert_eq!(
            (check.interval, check.timeout, check.failure_threshold),
            (Duration::from_secs(10), Duration::from_secs(1), 3)
        );
        assert!(v.volumes[0].memory);
        assert_eq!(web.mounts[0].volume, 0);
        assert!(
            !format!("{v:?}").contains("s3cret"),
            "a secret in the config's Debug"
        );
    }
}

/// Fly's machine config as written, and a Machines API request, run unchanged: `containers`,
/// `volumes`, `env`, `stop_config` and `init.exec` mapped; the host's keys each a warning;
/// errors name the keys the user wrote.
#[test]
fn fly_machine_configs_and_api_requests_are_read_as_written() {
    let machine = r#"{
        "containers": [{"name": "web", "exec": ["/bin/web"], "env": {"PORT": "8080"}},
                       {"name": "log", "image": "vector:latest", "exec": ["/bin/vector"]}],
        "volumes": [{"name": "scratch", "temp_dir": {"storage_type": "memory", "size_mb": 8}}],
        "env": {"REGION": "ord"},
        "stop_config": {"timeout": "10s", "signal": "SIGINT"},
        "guest": {"cpus": 1, "memory_mb": 256}, "services": [], "restart": {"policy": "always"},
        "image": "registry.fly.io/app:latest", "metadata": {"fly_process_group": "app"}
    }"#;
    let v = parse_str(machine).expect("a machine config");
    let names: Vec<&str> = v.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["web", "log"]);
    assert_eq!(v.volumes.len(), 1);
    assert_eq!(v.machine.kill_timeout, std::time::Duration::from_secs(10));
    assert_eq!(v.services[0].stop.signal.number(), libc::SIGINT);
    assert_eq!(
        v.services[0]
            .process
            .extra_env
            .get("REGION")
            .map(String::as_str),
        Some("ord")
    );
    for key in ["guest", "services", "restart", "image", "metadata"] {
        assert!(
            v.warnings
                .iter()
                .any(|w| w.starts_with(&format!("{key}: the host's"))),
            "{key}: {:?}",
            v.warnings
        );
    }
    // The Machines API's create request: its config is the machine's.
    let request = format!(r#"{{"name": "m1", "region": "ord", "config": {machine}}}"#);
    let v = parse_str(&request).expect("an API request");
    assert_eq!(v.services.len(), 2);
    assert!(v
        .warnings
        .iter()
        .any(|w| w.starts_with("region: part of the Machines API request")));
    assert!(v
        .warnings
        .iter()
        .any(|w| w.starts_with("config.guest: the host's")));
    // Errors name what the user wrote, not roost's key.
    let (field, _) =
        field_error(r#"{"config": {"containers": [{"name": "Bad Name", "exec": ["x"]}]}}"#);
    assert_eq!(field, "config.containers[0].name");
    let (field, problem) = field_error(r#"{"containers": [{"name": "web", "cmd": ["serve"]}]}"#);
    assert_eq!(field, "containers[0].cmd");
    assert!(problem.contains("replaces the image's CMD"), "{problem}");
    let (field, problem) = field_error(
        r#"{"volumes": [{"name": "data"}], "containers": [{"name": "a", "exec": ["x"]}]}"#,
    );
    assert_eq!(field, "volumes[0]");
    assert!(problem.contains("Mounts"), "{problem}");
    let (field, _) = field_error(r#"{"init": {"cmd": ["serve"]}}"#);
    assert_eq!(field, "init.cmd");
    let (field, _) = field_error(r#"{"files": [{"guest_path": "/a", "raw_value": "eA=="}]}"#);
    assert_eq!(field, "files");
    // Nanoseconds, as the API documents the timeout, round up to whole seconds.
    let v =
        parse_str(r#"{"init": {"exec": ["/bin/app"]}, "stop_config": {"timeout": 1500000000}}"#)
            .expect("init.exec");
    assert_eq!(v.machine.kill_timeout, std::time::Duration::from_secs(2));
    assert_eq!(
        v.services[0].process.exec_override.as_deref(),
        Some(&["/bin/app".to_string()][..])
    );
}

/// roost's own form: a key it does not know is a warning, not silence.
#[test]
fn unknown_top_level_keys_are_warned_about() {
    let v = parse_str(r#"{"ImageConfig": {"Cmd": ["x"]}, "Contaners": [], "SomethingNew": 1}"#)
        .expect("valid");
    assert!(
        v.warnings
            .iter()
            .any(|w| w.starts_with("Contaners: not a key")),
        "{:?}",
        v.warnings
    );
    assert!(v
        .warnings
        .iter()
        .any(|w| w.starts_with("SomethingNew: not a key")));
    let v = parse_str(r#"{"ImageConfig": {"Cmd": ["x"]}}"#).expect("valid");
    assert!(
        v.warnings.iter().all(|w| !w.contains("not a key")),
        "{:?}",
        v.warnings
    );
}
