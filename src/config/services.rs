//! Validation of `Containers` and `Volumes` into [`Service`]s: the whole graph is checked
//! before anything starts (unique names, every dependency defined, no cycle, each condition
//! possible), and every refusal names the field's path. Pure, no I/O. docs/services.md has
//! each default and why.

use super::containers::{
    ContainerConfig, DependsOn, GoDuration, HealthcheckConfig, Seconds, VolumeConfig,
};
use super::typed::{
    defaults, CheckKind, Condition, ContainerSpec, Dependency, HealthCheck, ImageRoot, OnExit,
    Probe, Process, Restart, RestartPolicy, Service, ServiceFile, ServiceMount, Signal, Stop,
    Volume,
};
use super::ConfigError;
use roost_platform::Token;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Most services one VM runs.
pub const MAX_SERVICES: usize = 256;
/// Most entries of each list inside a service (files, checks, dependencies, mounts, secrets).
pub const MAX_PER_SERVICE: usize = 64;
/// Longest health check period, timeout or grace, and the longest restart backoff.
pub const MAX_PERIOD_SECS: f64 = 3600.0;
/// Shortest check period or timeout: 10 ms.
pub const MIN_PERIOD_SECS: f64 = 0.01;
/// Most restarts `max_retries` allows, and longest retry window.
pub const MAX_RETRIES: u64 = 10_000;
pub const MAX_WINDOW_SECS: u64 = 86_400;
/// Longest `ready_log_line`.
pub const MAX_READY_LINE: usize = 4096;

fn f(field: impl Into<String>, problem: impl Into<String>) -> ConfigError {
    ConfigError::field(field, problem)
}

/// What the rest of the config gives the services.
#[derive(Debug)]
pub struct Context<'a> {
    pub kill_signal: Signal,
    pub kill_timeout: Duration,
    /// The top-level `ExtraEnv`: under every service's own env.
    pub machine_env: &'a BTreeMap<String, String>,
    pub secrets: &'a BTreeMap<String, Token>,
    /// `env_from` values: id, app_name, private_ip, region, version.
    pub machine_fields: BTreeMap<&'static str, String>,
}

/// Validates the volumes, then the services against them.
pub fn validate(
    containers: &[ContainerConfig],
    volumes: &[VolumeConfig],
    cx: &Context<'_>,
) -> Result<(Vec<Service>, Vec<Volume>), ConfigError> {
    let volumes = validate_volumes(volumes)?;
    if containers.len() > MAX_SERVICES {
        return Err(f(
            "Containers",
            format!("has more than {MAX_SERVICES} entries"),
        ));
    }
    let mut index = BTreeMap::new();
    for (i, c) in containers.iter().enumerate() {
        let field = format!("Containers[{i}].name");
        check_name(&field, &c.name)?;
        if index.insert(c.name.as_str(), i).is_some() {
            return Err(f(field, format!("{:?} is defined twice", c.name)));
        }
    }
    let mut services = Vec::with_capacity(containers.len());
    for (i, c) in containers.iter().enumerate() {
        services.push(service(i, c, &index, &volumes, cx)?);
    }
    check_graph(&services)?;
    apply_on_exit_defaults(containers, &mut services)?;
    Ok((services, volumes))
}

/// A DNS label: 1 to 63 lowercase letters, digits and `-`, not at either end (the name is
/// a path segment of the API, a cgroup leaf and a log prefix).
fn check_name(field: &str, name: &str) -> Result<(), ConfigError> {
    let ok = (1..=63).contains(&name.len())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !ok {
        return Err(f(
            field,
            format!("{name:?} must be 1 to 63 lowercase letters, digits or '-' (a DNS label)"),
        ));
    }
    Ok(())
}

fn check_len<T>(field: &str, list: &[T]) -> Result<(), ConfigError> {
    if list.len() > MAX_PER_SERVICE {
        return Err(f(field, format!("has more than {MAX_PER_SERVICE} entries")));
    }
    Ok(())
}

fn check_text(field: &str, value: &str) -> Result<(), ConfigError> {
    if value.contains('\0') {
        return Err(f(field, "contains a NUL byte"));
    }
    Ok(())
}

fn check_absolute(field: &str, path: &str) -> Result<PathBuf, ConfigError> {
    check_text(field, path)?;
    if !path.starts_with('/') {
        return Err(f(field, format!("{path:?} is not an absolute path")));
    }
    if path.split('/').any(|part| part == "..") {
        return Err(f(field, format!("{path:?} has a '..' component")));
    }
    Ok(PathBuf::from(path))
}

fn validate_volumes(volumes: &[VolumeConfig]) -> Result<Vec<Volume>, ConfigError> {
    if volumes.len() > MAX_SERVICES {
        return Err(f(
            "Volumes",
            format!("has more than {MAX_SERVICES} entries"),
        ));
    }
    let mut out: Vec<Volume> = Vec::new();
    for (i, v) in volumes.iter().enumerate() {
        check_name(&format!("Volumes[{i}].name"), &v.name)?;
        if out.iter().any(|o| o.name == v.name) {
            return Err(f(
                format!("Volumes[{i}].name"),
                format!("{:?} is defined twice", v.name),
            ));
        }
        let Some(temp) = &v.temp_dir else {
            return Err(f(
                format!("Volumes[{i}]"),
                "only temp_dir volumes are supported",
            ));
        };
        let memory = match temp.storage_type.as_deref() {
            None | Some("disk") => false,
            Some("memory") => true,
            Some(other) => {
                return Err(f(
                    format!("Volumes[{i}].temp_dir.storage_type"),
                    format!("{other:?} is not disk or memory"),
                ))
            }
        };
        if let Some(size) = temp.size_mb {
            if !(1..=super::limits::MAX_MEMORY_LIMIT_MIB).contains(&size) {
                return Err(f(
                    format!("Volumes[{i}].temp_dir.size_mb"),
                    format!(
                        "{size} is outside 1..={}",
                        super::limits::MAX_MEMORY_LIMIT_MIB
                    ),
                ));
            }
        }
        out.push(Volume {
            name: v.name.clone(),
            memory,
            size_mb: temp.size_mb,
        });
    }
    Ok(out)
}

fn service(
    i: usize,
    c: &ContainerConfig,
    index: &BTreeMap<&str, usize>,
    volumes: &[Volume],
    cx: &Context<'_>,
) -> Result<Service, ConfigError> {
    let at = |rest: &str| format!("Containers[{i}].{rest}");
    let container = match c.kind.as_deref() {
        None | Some("process") => {
            if c.image_root.is_some() || c.init || c.seccomp.is_some() || c.fly_api {
                return Err(f(
                    at("kind"),
                    "image_root, init, seccomp and fly_api need kind \"container\"",
                ));
            }
            None
        }
        Some("container") => Some(container_spec(i, c)?),
        Some(other) => {
            return Err(f(
                at("kind"),
                format!("{other:?} is not process or container"),
            ))
        }
    };
    let process = process(i, c, cx)?;
    let stop = stop(i, c, cx)?;
    check_len(&at("depends_on"), &c.depends_on)?;
    let mut depends_on = Vec::new();
    for (j, d) in c.depends_on.iter().enumerate() {
        depends_on.push(dependency(&at(&format!("depends_on[{j}]")), d, index, i)?);
    }
    let restart = restart(i, c)?;
    check_len(&at("healthchecks"), &c.healthchecks)?;
    let mut healthchecks: Vec<HealthCheck> = Vec::new();
    for (j, h) in c.healthchecks.iter().enumerate() {
        let check = healthcheck(&at(&format!("healthchecks[{j}]")), j, h)?;
        if healthchecks.iter().any(|o| o.name == check.name) {
            return Err(f(
                at(&format!("healthchecks[{j}].name")),
                format!("{:?} is defined twice", check.name),
            ));
        }
        healthchecks.push(check);
    }
    let success_exit_codes = match &c.success_exit_codes {
        None => vec![0],
        Some(codes) if codes.is_empty() => {
            return Err(f(at("success_exit_codes"), "is empty"));
        }
        Some(codes) => {
            check_len(&at("success_exit_codes"), codes)?;
            codes
                .iter()
                .map(|&code| {
                    u8::try_from(code).map(i32::from).map_err(|_| {
                        f(
                            at("success_exit_codes"),
                            format!("{code} is outside 0..=255"),
                        )
                    })
                })
                .collect::<Result<_, _>>()?
        }
    };
    if let Some(line) = &c.ready_log_line {
        check_text(&at("ready_log_line"), line)?;
        if line.is_empty() || line.len() > MAX_READY_LINE || line.contains('\n') {
            return Err(f(
                at("ready_log_line"),
                format!("must be 1 to {MAX_READY_LINE} bytes on one line"),
            ));
        }
    }
    let files = files(i, c, cx)?;
    check_len(&at("mounts"), &c.mounts)?;
    let mut mounts = Vec::new();
    for (j, m) in c.mounts.iter().enumerate() {
        let Some(volume) = volumes.iter().position(|v| v.name == m.name) else {
            return Err(f(
                at(&format!("mounts[{j}].name")),
                format!("no volume named {:?} in Volumes", m.name),
            ));
        };
        let path = check_absolute(&at(&format!("mounts[{j}].path")), &m.path)?;
        mounts.push(ServiceMount { volume, path });
    }
    let (mut memory_limit_mib, mut pids_max, mut cpu_weight) = (None, None, None);
    if let Some(cg) = &c.cgroup {
        let range = |field: &str, v: Option<u64>, min: u64, max: u64| match v {
            Some(v) if !(min..=max).contains(&v) => {
                Err(f(at(field), format!("{v} is outside {min}..={max}")))
            }
            v => Ok(v),
        };
        memory_limit_mib = range(
            "cgroup.memory_mib",
            cg.memory_mib,
            1,
            super::limits::MAX_MEMORY_LIMIT_MIB,
        )?;
        pids_max = range(
            "cgroup.pids_max",
            cg.pids_max,
            super::limits::MIN_PIDS_MAX,
            super::limits::MAX_PIDS_MAX,
        )?;
        cpu_weight = range("cgroup.cpu_weight", cg.cpu_weight, 1, 10_000)?;
    }
    let on_exit = match c.on_exit.as_deref() {
        // Decided once the whole graph is known (one-shots others wait on).
        None => OnExit::StopMachine,
        Some("stop_machine") => OnExit::StopMachine,
        Some("stop_machine_on_failure") => OnExit::StopMachineOnFailure,
        Some("ignore") => OnExit::Ignore,
        Some(other) => {
            return Err(f(
                at("on_exit"),
                format!("{other:?} is not stop_machine, stop_machine_on_failure or ignore"),
            ))
        }
    };
    Ok(Service {
        name: c.name.clone(),
        process,
        stop,
        memory_limit_mib,
        pids_max,
        cpu_weight,
        depends_on,
        restart,
        healthchecks,
        on_exit,
        success_exit_codes,
        ready_log_line: c.ready_log_line.clone(),
        notify: c.notify,
        files,
        mounts,
        container,
        single_workload: false,
    })
}

/// The file systems an image root may be.
pub const IMAGE_FSTYPES: [&str; 3] = ["ext4", "erofs", "squashfs"];

/// `kind: container`: its image root, exactly one of a directory or a device.
fn container_spec(i: usize, c: &ContainerConfig) -> Result<ContainerSpec, ConfigError> {
    let at = |rest: &str| format!("Containers[{i}].{rest}");
    let Some(root) = &c.image_root else {
        return Err(f(
            at("image_root"),
            "is needed with kind \"container\": a directory or a device holding the image's root",
        ));
    };
    let image = match (&root.directory, &root.device) {
        (Some(dir), None) => {
            if root.fstype.is_some() {
                return Err(f(
                    at("image_root.fstype"),
                    "is for a device, not a directory",
                ));
            }
            ImageRoot::Directory(check_absolute(&at("image_root.directory"), dir)?)
        }
        (None, Some(device)) => {
            let path = check_absolute(&at("image_root.device"), device)?;
            let fstype = root.fstype.clone().unwrap_or_else(|| "ext4".into());
            if !IMAGE_FSTYPES.contains(&fstype.as_str()) {
                return Err(f(
                    at("image_root.fstype"),
                    format!("{fstype:?} is not one of {IMAGE_FSTYPES:?}"),
                ));
            }
            ImageRoot::Device { path, fstype }
        }
        _ => {
            return Err(f(
                at("image_root"),
                "needs exactly one of directory or device",
            ))
        }
    };
    let seccomp = match c.seccomp.as_deref() {
        None | Some("default") => true,
        Some("unconfined") => false,
        Some(other) => {
            return Err(f(
                at("seccomp"),
                format!("{other:?} is not default or unconfined"),
            ))
        }
    };
    Ok(ContainerSpec {
        image,
        init: c.init,
        seccomp,
        fly_api: c.fly_api,
    })
}

/// What the service runs: its image config with Fly's overrides (`entrypoint` replaces the
/// image's and, as in Docker, drops the image's `cmd`; `cmd` replaces the cmd; `exec` replaces
/// both), its user, and its env: the machine's `ExtraEnv`, then its secrets and `env_from`,
/// then its own `env`.
fn process(i: usize, c: &ContainerConfig, cx: &Context<'_>) -> Result<Process, ConfigError> {
    let at = |rest: &str| format!("Containers[{i}].{rest}");
    let mut image_config = c.image_config.clone().unwrap_or_default();
    for (field, argv) in [
        ("exec", &c.exec),
        ("entrypoint", &c.entrypoint),
        ("cmd", &c.cmd),
    ] {
        for (j, arg) in argv.iter().enumerate() {
            check_text(&at(&format!("{field}[{j}]")), arg)?;
        }
    }
    if !c.entrypoint.is_empty() {
        image_config.entrypoint = c.entrypoint.clone();
        image_config.cmd.clear();
    }
    if !c.cmd.is_empty() {
        image_config.cmd = c.cmd.clone();
    }
    if let Some(dir) = &c.working_dir {
        check_absolute(&at("working_dir"), dir)?;
        image_config.working_dir = Some(dir.clone());
    }
    let exec_override = (!c.exec.is_empty()).then(|| c.exec.clone());
    if exec_override.is_none() && image_config.entrypoint.is_empty() && image_config.cmd.is_empty()
    {
        return Err(f(
            format!("Containers[{i}]"),
            "nothing to run: give exec, entrypoint, cmd or image_config (the image's config, which the host resolves from image)",
        ));
    }
    if let Some(user) = &c.user {
        check_text(&at("user"), user)?;
    }
    let mut env = cx.machine_env.clone();
    let mut secret_env = BTreeMap::new();
    check_len(&at("secrets"), &c.secrets)?;
    if c.secrets.is_empty() {
        // fly-go: "If not provided, the secrets provided at the machine level will be used".
        for (name, value) in cx.secrets {
            check_env_name(&format!("Secrets.{name}"), name)?;
            secret_env.insert(name.clone(), value.clone());
        }
    }
    for (j, s) in c.secrets.iter().enumerate() {
        let Some(value) = cx.secrets.get(&s.name) else {
            return Err(f(
                at(&format!("secrets[{j}].name")),
                format!("no secret named {:?} in Secrets", s.name),
            ));
        };
        let var = if s.env_var.is_empty() {
            &s.name
        } else {
            &s.env_var
        };
        check_env_name(&at(&format!("secrets[{j}].env_var")), var)?;
        secret_env.insert(var.clone(), value.clone());
    }
    // A secret beats the machine's env; env_from and the service's env beat a secret.
    for var in secret_env.keys() {
        env.remove(var);
    }
    check_len(&at("env_from"), &c.env_from)?;
    for (j, e) in c.env_from.iter().enumerate() {
        check_env_name(&at(&format!("env_from[{j}].env_var")), &e.env_var)?;
        let value = match e.field_ref.as_str() {
            "image" => c.image.clone().unwrap_or_default(),
            other => match cx.machine_fields.get(other) {
                Some(value) => value.clone(),
                None if ["id", "version", "app_name", "private_ip", "region"].contains(&other) => {
                    String::new()
                }
                None => {
                    return Err(f(
                        at(&format!("env_from[{j}].field_ref")),
                        format!(
                            "{other:?} is not id, version, app_name, private_ip, region or image"
                        ),
                    ))
                }
            },
        };
        secret_env.remove(&e.env_var);
        env.insert(e.env_var.clone(), value);
    }
    for (k, v) in &c.env {
        check_env_name(&at(&format!("env.{k}")), k)?;
        check_text(&at(&format!("env.{k}")), v)?;
        secret_env.remove(k);
        env.insert(k.clone(), v.clone());
    }
    Ok(Process {
        image_config,
        exec_override,
        cmd_override: None,
        user_override: c.user.clone().filter(|u| !u.is_empty()),
        extra_env: env,
        secret_env,
    })
}

fn check_env_name(field: &str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.contains('=') || name.contains('\0') {
        return Err(f(
            field,
            format!("{name:?} is not an environment variable name"),
        ));
    }
    Ok(())
}

fn stop(i: usize, c: &ContainerConfig, cx: &Context<'_>) -> Result<Stop, ConfigError> {
    let at = |rest: &str| format!("Containers[{i}].{rest}");
    let config = c.stop.clone().unwrap_or_default();
    let signal = match &config.signal {
        Some(spec) => super::parse_signal(spec).map_err(|e| f(at("stop.signal"), e))?,
        None => cx.kill_signal,
    };
    let timeout = match &config.timeout {
        None => defaults::SERVICE_STOP_TIMEOUT.min(cx.kill_timeout.max(Duration::from_secs(1))),
        Some(GoDuration::Nanos(n)) => Duration::from_nanos(*n),
        Some(GoDuration::Text(text)) => {
            parse_go_duration(text).map_err(|e| f(at("stop.timeout"), e))?
        }
    };
    if timeout > Duration::from_secs(super::MAX_KILL_TIMEOUT_SECS) {
        return Err(f(
            at("stop.timeout"),
            format!("is longer than {} s", super::MAX_KILL_TIMEOUT_SECS),
        ));
    }
    Ok(Stop { signal, timeout })
}

fn dependency(
    field: &str,
    d: &DependsOn,
    index: &BTreeMap<&str, usize>,
    me: usize,
) -> Result<Dependency, ConfigError> {
    let Some(&on) = index.get(d.name.as_str()) else {
        return Err(f(
            format!("{field}.name"),
            format!("no service named {:?} in Containers", d.name),
        ));
    };
    if on == me {
        return Err(f(
            format!("{field}.name"),
            "a service cannot depend on itself",
        ));
    }
    let condition = match d.condition.as_deref() {
        None | Some("started") => Condition::Started,
        Some("healthy") => Condition::Healthy,
        Some("exited_successfully") => Condition::ExitedSuccessfully,
        Some("completed") => Condition::Completed,
        Some("log_ready") => Condition::LogReady,
        Some(other) => {
            return Err(f(
                format!("{field}.condition"),
                format!(
                    "{other:?} is not started, healthy, exited_successfully, completed or log_ready"
                ),
            ))
        }
    };
    Ok(Dependency { on, condition })
}

fn restart(i: usize, c: &ContainerConfig) -> Result<Restart, ConfigError> {
    let at = |rest: &str| format!("Containers[{i}].restart.{rest}");
    let r = c.restart.clone().unwrap_or_default();
    let policy = match r.policy.as_deref() {
        // Fly's machine default.
        None | Some("on-failure") | Some("on_failure") => RestartPolicy::OnFailure,
        Some("always") => RestartPolicy::Always,
        Some("no") | Some("never") => RestartPolicy::No,
        Some(other) => {
            return Err(f(
                at("policy"),
                format!("{other:?} is not no, always or on-failure"),
            ))
        }
    };
    let max_retries = match r.max_retries {
        Some(n) if n > MAX_RETRIES => {
            return Err(f(
                at("max_retries"),
                format!("{n} is outside 0..={MAX_RETRIES}"),
            ))
        }
        Some(n) => n as u32,
        None => defaults::RESTART_MAX_RETRIES,
    };
    let seconds = |field: &str, v: Option<f64>, default: Duration| match v {
        None => Ok(default),
        Some(s) if s.is_finite() && (0.0..=MAX_PERIOD_SECS).contains(&s) => {
            Ok(Duration::from_secs_f64(s))
        }
        Some(s) => Err(f(
            at(field),
            format!("{s} is outside 0..={MAX_PERIOD_SECS}"),
        )),
    };
    let backoff = seconds(
        "backoff_seconds",
        r.backoff_seconds,
        defaults::RESTART_BACKOFF,
    )?;
    let max_backoff = seconds(
        "max_backoff_seconds",
        r.max_backoff_seconds,
        defaults::RESTART_MAX_BACKOFF.max(backoff),
    )?;
    if max_backoff < backoff {
        return Err(f(
            at("max_backoff_seconds"),
            "is shorter than backoff_seconds",
        ));
    }
    let window = match r.window_seconds {
        None => defaults::RESTART_WINDOW,
        Some(s) if (1..=MAX_WINDOW_SECS).contains(&s) => Duration::from_secs(s),
        Some(s) => {
            return Err(f(
                at("window_seconds"),
                format!("{s} is outside 1..={MAX_WINDOW_SECS}"),
            ))
        }
    };
    Ok(Restart {
        policy,
        max_retries,
        backoff,
        max_backoff,
        window,
    })
}

fn period(
    field: &str,
    v: &Option<Seconds>,
    default: Duration,
    min: f64,
) -> Result<Duration, ConfigError> {
    let secs = match v {
        None => return Ok(default),
        Some(Seconds::Number(n)) => *n,
        Some(Seconds::Text(text)) => parse_go_duration(text)
            .map_err(|e| f(field, e))?
            .as_secs_f64(),
    };
    if !secs.is_finite() || secs < min || secs > MAX_PERIOD_SECS {
        return Err(f(
            field,
            format!("{secs} s is outside {min}..={MAX_PERIOD_SECS} s"),
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn healthcheck(field: &str, j: usize, h: &HealthcheckConfig) -> Result<HealthCheck, ConfigError> {
    let at = |rest: &str| format!("{field}.{rest}");
    let name = h.name.clone().unwrap_or_else(|| format!("check-{j}"));
    check_text(&at("name"), &name)?;
    let kind = match h.kind.as_deref() {
        None | Some("readiness") => CheckKind::Readiness,
        Some("liveness") => CheckKind::Liveness,
        Some(other) => {
            return Err(f(
                at("kind"),
                format!("{other:?} is not readiness or liveness"),
            ))
        }
    };
    let stop_when_unhealthy = match h.unhealthy.as_deref() {
        None => kind == CheckKind::Liveness,
        Some("stop") => true,
        Some(other) => return Err(f(at("unhealthy"), format!("{other:?} is not stop"))),
    };
    let threshold = |name: &str, v: Option<u32>, default: u32| match v {
        None => Ok(default),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(n) => Err(f(at(name), format!("{n} is outside 1..=1000"))),
    };
    let probes = [h.http.is_some(), h.tcp.is_some(), h.exec.is_some()];
    if probes.iter().filter(|&&p| p).count() != 1 {
        return Err(f(field, "needs exactly one of http, tcp or exec"));
    }
    let port = |name: &str, port: u16| {
        if port == 0 {
            Err(f(at(name), "is not a port (1..=65535)"))
        } else {
            Ok(port)
        }
    };
    let probe = if let Some(http) = &h.http {
        let https = match http.scheme.as_deref() {
            None | Some("http") => false,
            Some("https") => true,
            Some(other) => {
                return Err(f(
                    at("http.scheme"),
                    format!("{other:?} is not http or https"),
                ))
            }
        };
        let method = http
            .method
            .clone()
            .unwrap_or_else(|| "GET".into())
            .to_ascii_uppercase();
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            return Err(f(
                at("http.method"),
                format!("{method:?} is not an HTTP method"),
            ));
        }
        let path = http.path.clone().unwrap_or_else(|| "/".into());
        if !path.starts_with('/') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(f(
                at("http.path"),
                format!("{path:?} is not a request path"),
            ));
        }
        let mut headers = Vec::new();
        for (k, header) in http.headers.iter().enumerate() {
            let ok_name = !header.name.is_empty()
                && header
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b));
            if !ok_name {
                return Err(f(
                    at(&format!("http.headers[{k}].name")),
                    "is not a header name",
                ));
            }
            for value in &header.values {
                if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
                    return Err(f(
                        at(&format!("http.headers[{k}].values")),
                        "has a line break",
                    ));
                }
                headers.push((header.name.clone(), value.clone()));
            }
        }
        Probe::Http {
            port: port("http.port", http.port)?,
            method,
            path,
            headers,
            https,
            tls_skip_verify: http.tls_skip_verify.unwrap_or(false),
            tls_server_name: match &http.tls_server_name {
                Some(name) if rustls::pki_types::ServerName::try_from(name.as_str()).is_err() => {
                    return Err(f(
                        at("http.tls_server_name"),
                        format!("{name:?} is not a server name"),
                    ))
                }
                name => name.clone(),
            },
        }
    } else if let Some(tcp) = &h.tcp {
        Probe::Tcp {
            port: port("tcp.port", tcp.port)?,
        }
    } else {
        let command = h
            .exec
            .as_ref()
            .map(|e| e.command.clone())
            .unwrap_or_default();
        if command.is_empty() {
            return Err(f(at("exec.command"), "is empty"));
        }
        for (k, arg) in command.iter().enumerate() {
            check_text(&at(&format!("exec.command[{k}]")), arg)?;
        }
        Probe::Exec { command }
    };
    Ok(HealthCheck {
        name,
        kind,
        stop_when_unhealthy,
        grace_period: period(&at("grace_period"), &h.grace_period, Duration::ZERO, 0.0)?,
        interval: period(
            &at("interval"),
            &h.interval,
            defaults::CHECK_INTERVAL,
            MIN_PERIOD_SECS,
        )?,
        timeout: period(
            &at("timeout"),
            &h.timeout,
            defaults::CHECK_TIMEOUT,
            MIN_PERIOD_SECS,
        )?,
        success_threshold: threshold(
            "success_threshold",
            h.success_threshold,
            defaults::CHECK_SUCCESS_THRESHOLD,
        )?,
        failure_threshold: threshold(
            "failure_threshold",
            h.failure_threshold,
            defaults::CHECK_FAILURE_THRESHOLD,
        )?,
        probe,
    })
}

/// The mode of a `secret_name` file that gives none: read-only, for its service's user.
pub const SECRET_FILE_MODE: u32 = 0o400;

fn files(i: usize, c: &ContainerConfig, cx: &Context<'_>) -> Result<Vec<ServiceFile>, ConfigError> {
    let at = |rest: &str| format!("Containers[{i}].files{rest}");
    check_len(&at(""), &c.files)?;
    let mut out: Vec<ServiceFile> = Vec::new();
    for (j, file) in c.files.iter().enumerate() {
        let here = |rest: &str| at(&format!("[{j}].{rest}"));
        let path = check_absolute(&here("guest_path"), &file.guest_path)?;
        if file.local_path.is_some() {
            return Err(f(
                here("local_path"),
                "is flyctl's: it reads the file and sends its contents as raw_value (base64)",
            ));
        }
        let (contents, secret) =
            match (&file.raw_value, &file.secret_name, &file.image_config) {
                (Some(raw), None, None) => (
                    decode_base64(raw).map_err(|e| f(here("raw_value"), e))?,
                    false,
                ),
                (None, Some(name), None) => match cx.secrets.get(name) {
                    Some(value) => (value.expose().as_bytes().to_vec(), true),
                    None => {
                        return Err(f(
                            here("secret_name"),
                            format!("no secret named {name:?} in Secrets"),
                        ))
                    }
                },
                (None, None, Some(_)) => return Err(f(
                    here("image_config"),
                    "an image's config as a file is not supported: give raw_value or secret_name",
                )),
                _ => {
                    return Err(f(
                        format!("Containers[{i}].files[{j}]"),
                        "needs exactly one of raw_value, secret_name or image_config",
                    ))
                }
            };
        // A secret's file is its user's alone by default: process services share the VM's
        // root, so 0644 would hand it to every other service (Fly's containers each have a
        // root of their own, where 0644 reaches no one else).
        let mode = file
            .mode
            .unwrap_or(if secret { SECRET_FILE_MODE } else { 0o644 });
        if mode > 0o7777 {
            return Err(f(here("mode"), format!("{mode:o} has bits beyond 07777")));
        }
        if out.iter().any(|o| o.path == path) {
            return Err(f(here("guest_path"), "is written twice"));
        }
        out.push(ServiceFile {
            path,
            contents,
            mode,
            secret,
        });
    }
    Ok(out)
}

/// Standard base64 (padding optional, whitespace ignored), as fly-go's `raw_value` is. Small
/// enough to keep here rather than add a crate to PID 1's size budget.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    let mut padding = 0;
    for c in text.bytes().filter(|b| !b.is_ascii_whitespace()) {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                padding += 1;
                continue;
            }
            _ => return Err(format!("{:?} is not a base64 character", c as char)),
        };
        if padding > 0 {
            return Err("data after base64 padding".into());
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bits >= 6 || padding > 2 {
        return Err("is not whole base64".into());
    }
    Ok(out)
}

/// A Go duration string (`300ms`, `10s`, `1m30s`, `2h`; units ns, us, µs, ms, s, m, h), as
/// fly-go's `Duration` takes it. Negative durations are refused.
pub fn parse_go_duration(text: &str) -> Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration like \"10s\" or \"1m30s\"");
    let s = text.trim().strip_prefix('+').unwrap_or(text.trim());
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() || s.starts_with('-') {
        return Err(bad());
    }
    let mut total = 0f64;
    let mut rest = s;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..num_len].parse().map_err(|_| bad())?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    if !total.is_finite() || total > 1e12 {
        return Err(bad());
    }
    Ok(Duration::from_secs_f64(total))
}

/// The graph as a whole: no cycle (named), and each condition can hold.
fn check_graph(services: &[Service]) -> Result<(), ConfigError> {
    let deps: Vec<Vec<usize>> = services
        .iter()
        .map(|s| s.depends_on.iter().map(|d| d.on).collect())
        .collect();
    if let Some(cycle) = super::graph::find_cycle(&deps) {
        let names: Vec<&str> = cycle.iter().map(|&i| services[i].name.as_str()).collect();
        let first = cycle.first().copied().unwrap_or(0);
        return Err(f(
            format!("Containers[{first}].depends_on"),
            format!("dependency cycle: {}", names.join(" -> ")),
        ));
    }
    for (i, s) in services.iter().enumerate() {
        for (j, d) in s.depends_on.iter().enumerate() {
            let target = &services[d.on];
            let field = format!("Containers[{i}].depends_on[{j}].condition");
            match d.condition {
                Condition::Healthy if target.healthchecks.is_empty() && !target.notify => {
                    return Err(f(
                        field,
                        format!(
                            "healthy needs a health check (or notify) on {:?}",
                            target.name
                        ),
                    ))
                }
                Condition::LogReady if target.ready_log_line.is_none() => {
                    return Err(f(
                        field,
                        format!("log_ready needs a ready_log_line on {:?}", target.name),
                    ))
                }
                Condition::ExitedSuccessfully | Condition::Completed
                    if target.restart.policy == RestartPolicy::Always =>
                {
                    return Err(f(
                        field,
                        format!(
                            "{} waits for an exit, but {:?} restarts always",
                            d.condition.name(),
                            target.name
                        ),
                    ))
                }
                _ => {}
            }
        }
    }
    Ok(())
}

/// A service without `on_exit` stops the machine when it ends for good, except a one-shot
/// that others wait on to exit: that one stops it only on failure.
fn apply_on_exit_defaults(
    containers: &[ContainerConfig],
    services: &mut [Service],
) -> Result<(), ConfigError> {
    let awaited: Vec<usize> = services
        .iter()
        .flat_map(|s| s.depends_on.iter())
        .filter(|d| {
            matches!(
                d.condition,
                Condition::ExitedSuccessfully | Condition::Completed
            )
        })
        .map(|d| d.on)
        .collect();
    for (i, s) in services.iter_mut().enumerate() {
        if containers.get(i).is_some_and(|c| c.on_exit.is_none()) && awaited.contains(&i) {
            s.on_exit = OnExit::StopMachineOnFailure;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes_what_fly_sends() {
        assert_eq!(
            decode_base64("aGVsbG8gd29ybGQK").as_deref(),
            Ok(&b"hello world\n"[..])
        );
        assert_eq!(decode_base64("YQ==").as_deref(), Ok(&b"a"[..]));
        assert_eq!(decode_base64("YWI=").as_deref(), Ok(&b"ab"[..]));
        assert_eq!(decode_base64("YWJj").as_deref(), Ok(&b"abc"[..]));
        assert_eq!(decode_base64("").as_deref(), Ok(&b""[..]));
        assert!(decode_base64("Y").is_err());
        assert!(decode_base64("YQ==YQ").is_err());
        assert!(decode_base64("a*b=").is_err());
    }

    #[test]
    fn go_durations() {
        let d = |s: &str| parse_go_duration(s);
        assert_eq!(d("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(d("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(d("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(d("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(d("0"), Ok(Duration::ZERO));
        for bad in ["", "10", "-1s", "1x", "s", "1e400s", "9999999999999h"] {
            assert!(d(bad).is_err(), "{bad}");
        }
    }
}
