//! Validation: every rule names the field it checks. Pure, no I/O.

use super::checks::*;
use super::limits::*;
use super::schema::{RunConfig, SignalSpec};
use super::typed::{self, defaults, Address, HostEntry, Network, Service, Signal, Stop};
use super::{ConfigError, DEFAULT_KILL_TIMEOUT_SECS, MAX_KILL_TIMEOUT_SECS};
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// A run config that passed validation: the typed values roost runs on, and the document's
/// workload fields (the image config and its overrides, resolved against the image's files by
/// [`crate::workload`]).
#[derive(Debug)]
pub struct Validated {
    pub machine: typed::Machine,
    pub vm: typed::Vm,
    /// The services: the one implicit main service, or those of `Containers` in their
    /// order (the first is the main one signals go to).
    pub services: Vec<Service>,
    pub volumes: Vec<typed::Volume>,
    pub signal_target: typed::SignalTarget,
    /// What validation noticed and accepted, for the log.
    pub warnings: Vec<String>,
    pub network: Network,
    pub api: Option<typed::Api>,
    pub control: typed::Control,
    pub oidc: typed::Oidc,
    /// `ContainerRuntime`: None for the default (`roost-oci` beside roost).
    pub container_runtime: Option<std::path::PathBuf>,
}

impl Validated {
    /// The main service: the image config's workload. Validation always puts it first.
    pub fn main_service(&self) -> Option<&Service> {
        self.services.first()
    }
}

/// Highest signal number on Linux (SIGRTMAX).
const MAX_SIGNAL: i64 = 64;

/// Parses a signal given by number or by name (`SIGTERM`, `TERM`, case-insensitive).
pub fn parse_signal(spec: &SignalSpec) -> Result<Signal, String> {
    match spec {
        SignalSpec::Number(n) => {
            Signal::new(*n).ok_or_else(|| format!("signal {n} is outside 1..={MAX_SIGNAL}"))
        }
        SignalSpec::Name(name) => {
            let upper = name.trim().to_ascii_uppercase();
            let full = if upper.starts_with("SIG") {
                upper
            } else {
                format!("SIG{upper}")
            };
            nix::sys::signal::Signal::from_str(&full)
                .ok()
                .and_then(|sig| Signal::new(sig as i64))
                .ok_or_else(|| format!("unknown signal name {name:?}"))
        }
    }
}

pub(super) fn validate(config: RunConfig) -> Result<Validated, ConfigError> {
    if let Some(argv) = &config.exec_override {
        check_argv("ExecOverride", argv)?;
    }
    check_argv("ImageConfig.Entrypoint", &config.image_config.entrypoint)?;
    check_argv("ImageConfig.Cmd", &config.image_config.cmd)?;
    if let Some(cmd) = &config.cmd_override {
        check_no_nul("CmdOverride", cmd)?;
    }
    for (field, user) in [
        ("UserOverride", &config.user_override),
        ("ImageConfig.User", &config.image_config.user),
    ] {
        if let Some(user) = user {
            check_no_nul(field, user)?;
            if user.split(':').count() > 2 {
                return Err(f(field, format!("{user:?} is not \"user[:group]\"")));
            }
        }
    }
    if let Some(dir) = &config.image_config.working_dir {
        check_no_nul("ImageConfig.WorkingDir", dir)?;
    }

    let kill_signal = match &config.kill_signal {
        Some(spec) => parse_signal(spec).map_err(|problem| f("KillSignal", problem))?,
        None => Signal::TERM,
    };
    let kill_timeout = config.kill_timeout.unwrap_or(DEFAULT_KILL_TIMEOUT_SECS);
    check_range("KillTimeout", Some(kill_timeout), 0, MAX_KILL_TIMEOUT_SECS)?;
    check_range(
        "MemoryLimitMiB",
        config.memory_limit_mib,
        1,
        MAX_MEMORY_LIMIT_MIB,
    )?;
    check_range("PidsMax", config.pids_max, MIN_PIDS_MAX, MAX_PIDS_MAX)?;
    for (field, id) in [
        ("MachineId", &config.machine_id),
        ("AppName", &config.app_name),
    ] {
        if let Some(id) = id {
            check_identifier(field, id)?;
        }
    }

    check_range("MTU", config.mtu.map(u64::from), MIN_MTU, MAX_MTU)?;
    let mut network = Network {
        mtu: config.mtu,
        ..Network::default()
    };
    for (i, ip) in config.ip_configs.iter().enumerate() {
        let addr: IpAddr = ip.ip.parse().map_err(|_| {
            f(
                format!("IPConfigs[{i}].IP"),
                format!("{:?} is not an IP address", ip.ip),
            )
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if ip.mask > max {
            return Err(f(
                format!("IPConfigs[{i}].Mask"),
                format!("prefix length {} is longer than {max}", ip.mask),
            ));
        }
        let mut gateway = None;
        if let Some(gw) = &ip.gateway {
            let gw_addr: IpAddr = gw.parse().map_err(|_| {
                f(
                    format!("IPConfigs[{i}].Gateway"),
                    format!("{gw:?} is not an IP address"),
                )
            })?;
            if gw_addr.is_ipv4() != addr.is_ipv4() {
                return Err(f(
                    format!("IPConfigs[{i}].Gateway"),
                    "is not of the same address family as IP",
                ));
            }
            gateway = Some(gw_addr);
        }
        network.addresses.push(Address {
            ip: addr,
            prefix: ip.mask,
            gateway,
        });
    }
    if let Some(name) = &config.hostname {
        check_hostname(name).map_err(|problem| f("Hostname", problem))?;
    }
    for (i, m) in config.mounts.iter().enumerate() {
        check_absolute(&format!("Mounts[{i}].DevicePath"), &m.device_path)?;
        check_absolute(&format!("Mounts[{i}].MountPath"), &m.mount_path)?;
    }
    if let Some(dev) = &config.root_device {
        check_absolute("RootDevice", dev)?;
    }
    if let Some(resolv) = &config.etc_resolv {
        let mut nameservers = Vec::new();
        for (i, ns) in resolv.nameservers.iter().enumerate() {
            nameservers.push(ns.parse::<IpAddr>().map_err(|_| {
                f(
                    format!("EtcResolv.Nameservers[{i}]"),
                    format!("{ns:?} is not an IP address"),
                )
            })?);
        }
        network.nameservers = Some(nameservers);
    }
    for (i, host) in config.etc_hosts.iter().enumerate() {
        let ip = host.ip.parse::<IpAddr>().map_err(|_| {
            f(
                format!("EtcHosts[{i}].IP"),
                format!("{:?} is not an IP address", host.ip),
            )
        })?;
        check_hostname(&host.host).map_err(|problem| f(format!("EtcHosts[{i}].Host"), problem))?;
        network.hosts.push(HostEntry {
            ip,
            host: host.host.clone(),
            desc: host.desc.clone(),
        });
    }

    let mut typed_api = None;
    if let Some(api) = &config.api {
        if api.upstream.is_none() {
            return Err(f("Api.Upstream", "is required when Api is set"));
        }
        if api.token.is_none() {
            return Err(f("Api.Token", "is required when Api is set"));
        }
        check_range(
            "Api.RequestTimeoutSeconds",
            api.request_timeout_seconds,
            1,
            MAX_REQUEST_TIMEOUT_SECS,
        )?;
        check_range(
            "Api.MaxConcurrent",
            api.max_concurrent.map(|n| n as u64),
            1,
            MAX_CONCURRENT_REQUESTS,
        )?;
        check_range("Api.MaxBodyBytes", api.max_body_bytes, 1, MAX_BODY_BYTES)?;
        check_list("Api.AllowUids", &api.allow_uids)?;
        check_list("Api.AllowGids", &api.allow_gids)?;
        if api.paths.len() > MAX_LIST {
            return Err(f("Api.Paths", format!("has more than {MAX_LIST} entries")));
        }
        let mut upstream_parsed = None;
        if let Some(upstream) = &api.upstream {
            // Parsed by hand below and used in a URI and a Host header: nothing that could
            // cut or split it.
            if upstream
                .chars()
                .any(|c| c.is_control() || c.is_whitespace())
            {
                return Err(f(
                    "Api.Upstream",
                    "contains a control character or white space",
                ));
            }
            upstream_parsed = Some(
                roost_platform::Upstream::parse(upstream)
                    .map_err(|err| f("Api.Upstream", err.to_string()))?,
            );
        }
        if let Some(scheme) = &api.token_scheme {
            if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(f("Api.TokenScheme", "must be a non-empty ASCII word"));
            }
        }
        if let Some(token) = &api.token {
            // The token goes into an HTTP header: visible ASCII only (anything else is refused
            // by the header type on every request, a 500 per call instead of a clear boot error).
            let t = token.expose();
            if t.is_empty() || t.len() > MAX_TOKEN_BYTES || !t.bytes().all(|b| b.is_ascii_graphic())
            {
                return Err(f(
                    "Api.Token",
                    format!("must be 1 to {MAX_TOKEN_BYTES} visible ASCII characters (no spaces, control characters or non-ASCII)"),
                ));
            }
        }
        if let Some(path) = &api.socket_path {
            check_absolute("Api.SocketPath", path)?;
        }
        if let Some(path) = &api.upstream_ca_file {
            check_absolute("Api.UpstreamCaFile", path)?;
        }
        let policy = roost_platform::policy::Policy::new(
            &api.paths,
            config.app_name.as_deref(),
            config.machine_id.as_deref(),
        )
        .map_err(|e| f("Api.Paths", e.to_string()))?;
        // Both are required above; this is where they become the typed values.
        if let (Some(upstream), Some(token)) = (upstream_parsed, api.token.clone()) {
            typed_api = Some(typed::Api {
                upstream,
                token,
                scheme: api
                    .token_scheme
                    .clone()
                    .unwrap_or_else(|| defaults::TOKEN_SCHEME.to_string()),
                ca_file: api.upstream_ca_file.as_ref().map(PathBuf::from),
                socket_path: PathBuf::from(
                    api.socket_path.as_deref().unwrap_or(defaults::API_SOCKET),
                ),
                allow_uids: api.allow_uids.clone(),
                allow_gids: api.allow_gids.clone(),
                policy,
                attenuate: api.attenuate,
                max_body_bytes: api.max_body_bytes.unwrap_or(defaults::MAX_BODY_BYTES),
                request_timeout: api
                    .request_timeout_seconds
                    .map_or(defaults::REQUEST_TIMEOUT, Duration::from_secs),
                max_concurrent: api.max_concurrent.unwrap_or(defaults::MAX_CONCURRENT),
            });
        }
    }
    if let Some(oidc) = &config.oidc {
        if let Some(path) = &oidc.token_path {
            check_absolute("Oidc.TokenPath", path)?;
            if path.ends_with('/') {
                return Err(f("Oidc.TokenPath", "must name a file, not a directory"));
            }
        }
        check_range(
            "Oidc.BootWaitSeconds",
            oidc.boot_wait_seconds,
            0,
            MAX_BOOT_WAIT_SECS,
        )?;
    }
    check_list("Control.AllowCids", &config.control.allow_cids)?;
    if let Some(path) = &config.control.exit_report_socket {
        check_absolute("Control.ExitReportSocket", path)?;
    }
    check_range(
        "Control.LingerSeconds",
        config.control.linger_seconds,
        0,
        MAX_LINGER_SECS,
    )?;
    for (field, port) in [
        ("Control.VsockPort", config.control.vsock_port),
        ("Control.ExitReportPort", config.control.exit_report_port),
    ] {
        if port == Some(0) || port == Some(u32::MAX) {
            return Err(f(field, "is not a usable vsock port"));
        }
    }

    let mut main = Service::single(
        typed::MAIN_SERVICE,
        typed::Process {
            image_config: config.image_config.clone(),
            exec_override: config.exec_override.clone(),
            cmd_override: config.cmd_override.clone(),
            user_override: config.user_override.clone(),
            extra_env: config.extra_env.clone(),
            secret_env: Default::default(),
        },
        Stop {
            signal: kill_signal,
            timeout: Duration::from_secs(kill_timeout),
        },
    );
    main.memory_limit_mib = config.memory_limit_mib;
    main.pids_max = config.pids_max;
    let control = typed::Control {
        vsock_port: config.control.vsock_port,
        exit_report_port: config.control.exit_report_port,
        exit_report_socket: config
            .control
            .exit_report_socket
            .as_ref()
            .map(PathBuf::from),
        linger: config
            .control
            .linger_seconds
            .map_or(defaults::LINGER, Duration::from_secs),
        allow_cids: config.control.allow_cids.clone(),
        dialect: config.control.dialect,
    };
    let oidc_config = config.oidc.as_ref();
    let oidc = typed::Oidc {
        token_path: PathBuf::from(
            oidc_config
                .and_then(|o| o.token_path.as_deref())
                .unwrap_or(defaults::TOKEN_PATH),
        ),
        boot_wait: oidc_config
            .and_then(|o| o.boot_wait_seconds)
            .map_or(defaults::BOOT_WAIT, Duration::from_secs),
        group_readable: oidc_config.is_some_and(|o| o.group_readable),
    };
    let signal_target = match config.forward_signals.as_deref() {
        None | Some("main") => typed::SignalTarget::Main,
        Some("all") => typed::SignalTarget::All,
        Some(other) => return Err(f("ForwardSignals", format!("{other:?} is not main or all"))),
    };
    let mut warnings = Vec::new();
    let (services, volumes) = if !config.containers.is_empty() {
        let ignored: Vec<&str> = [
            ("ImageConfig", config.image_config != Default::default()),
            ("ExecOverride", config.exec_override.is_some()),
            ("CmdOverride", config.cmd_override.is_some()),
            ("UserOverride", config.user_override.is_some()),
            ("MemoryLimitMiB", config.memory_limit_mib.is_some()),
            ("PidsMax", config.pids_max.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, given)| given.then_some(name))
        .collect();
        if !ignored.is_empty() {
            warnings.push(format!(
                "Containers is given: the top-level {} describe no service and are not used",
                ignored.join(", ")
            ));
        }
        let mut machine_fields = std::collections::BTreeMap::new();
        for (key, value) in [
            ("id", config.machine_id.clone()),
            ("app_name", config.app_name.clone()),
            (
                "private_ip",
                config.ip_configs.first().map(|c| c.ip.clone()),
            ),
            ("region", config.extra_env.get("FLY_REGION").cloned()),
            (
                "version",
                config.extra_env.get("FLY_MACHINE_VERSION").cloned(),
            ),
        ] {
            if let Some(value) = value {
                machine_fields.insert(key, value);
            }
        }
        let cx = super::services::Context {
            kill_signal,
            kill_timeout: Duration::from_secs(kill_timeout),
            machine_env: &config.extra_env,
            secrets: &config.secrets,
            machine_fields,
        };
        super::services::validate(&config.containers, &config.volumes, &cx)?
    } else {
        if !config.volumes.is_empty() {
            warnings.push("Volumes is given without Containers: nothing mounts them".into());
        }
        (vec![main], Vec::new())
    };
    let container_runtime = match &config.container_runtime {
        None => None,
        Some(path) if path.starts_with('/') && !path.contains('\0') => {
            Some(std::path::PathBuf::from(path))
        }
        Some(path) => {
            return Err(ConfigError::field(
                "ContainerRuntime",
                format!("{path:?} is not an absolute path"),
            ))
        }
    };
    let machine = typed::Machine {
        id: config.machine_id.clone(),
        app_name: config.app_name.clone(),
        hostname: config.hostname.clone(),
        kill_timeout: Duration::from_secs(kill_timeout),
    };
    let vm = typed::Vm {
        root_device: PathBuf::from(config.root_device.as_deref().unwrap_or("/dev/vda")),
        disks: config
            .mounts
            .iter()
            .map(|m| typed::Disk {
                device: PathBuf::from(&m.device_path),
                mount_path: PathBuf::from(&m.mount_path),
            })
            .collect(),
        mmds_reachable_after_boot: config.mmds.after_boot == super::MmdsAfterBoot::Keep,
    };
    Ok(Validated {
        container_runtime,
        machine,
        vm,
        services,
        volumes,
        signal_target,
        warnings,
        network,
        api: typed_api,
        control,
        oidc,
    })
}
