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
        "Mmds": {"AfterBoot": "keep"},
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
    let c = &v.config;
    assert_eq!(c.image_config.entrypoint, ["/bin/app"]);
    assert_eq!(c.cmd_override.as_deref(), Some("run"));
    assert_eq!(c.ip_configs.len(), 2);
    assert_eq!(c.ip_configs[0].mask, 30);
    assert_eq!(c.mtu, Some(1500));
    assert_eq!(c.etc_hosts[0].desc.as_deref(), Some("database"));
    assert_eq!(c.memory_limit_mib, Some(256));
    assert_eq!(c.mmds.after_boot, MmdsAfterBoot::Keep);
    assert_eq!(c.control.exit_report_port, Some(10001));
    let api = c.api.as_ref().expect("api");
    assert_eq!(api.allow_uids, [0, 1000]);
    assert!(api.attenuate);
    assert_eq!(
        api.token.as_ref().map(roost_platform::Token::expose),
        Some("fm2_secret")
    );
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
    assert_eq!(v.config.mmds.after_boot, MmdsAfterBoot::Block);
}

#[test]
fn nulls_from_go_drivers_mean_absent() {
    let v = parse_str(
        r#"{"ImageConfig": {"Entrypoint": null, "Cmd": null, "Env": null},
            "ExtraEnv": null, "IPConfigs": null, "Mounts": null, "EtcHosts": null,
            "Control": null, "Mmds": null}"#,
    )
    .expect("valid");
    assert!(v.config.image_config.cmd.is_empty());
    assert!(v.config.extra_env.is_empty());
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
