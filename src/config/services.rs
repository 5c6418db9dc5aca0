//! Validation of `Containers` and `Volumes` into [`Service`]s: the whole graph is checked
//! before anything starts (unique names, every dependency defined, no cycle, each condition
//! possible), and every refusal names the field's path. Pure, no I/O. docs/services.md has
//! each default and why.

use super::checks::*;
use super::containers::{ContainerConfig, VolumeConfig};
use super::healthcheck::healthcheck;
use super::lifecycle::{dependency, restart, stop};
use super::limits::*;
use super::service_files::files;
use super::typed::{
    Condition, ContainerSpec, HealthCheck, ImageRoot, OnExit, Process, RestartPolicy, Service,
    ServiceMount, Signal, Volume,
};
use super::ConfigError;
use roost_platform::Token;
use std::collections::BTreeMap;
use std::time::Duration;

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
                "a volume without temp_dir is a Fly volume, which the host attaches as a disk: give that disk to roost as Mounts [{DevicePath, MountPath}] (only temp_dir volumes are made here)",
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
        check_no_nul(&at("ready_log_line"), line)?;
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
        Some("stop_machine_on_skip") => OnExit::StopMachineOnSkip,
        Some("ignore") => OnExit::Ignore,
        Some(other) => {
            return Err(f(
                at("on_exit"),
                format!("{other:?} is not stop_machine, stop_machine_on_failure, stop_machine_on_skip or ignore"),
            ))
        }
    };
    if c.daemon && container.is_some() {
        return Err(f(
            at("daemon"),
            "a container's init stays; daemon is for a process service whose command forks and exits",
        ));
    }
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
        snapshot: super::snapshot_hooks::snapshot_hooks(
            &at("snapshot"),
            c.snapshot.as_ref(),
            c.notify,
        )?,
        stop_command: stop_command(i, c)?,
        daemon: c.daemon,
        manual_start: match c.start.as_deref() {
            None | Some("auto") => false,
            Some("manual") => true,
            Some(other) => return Err(f(at("start"), format!("{other:?} is not auto or manual"))),
        },
        single_workload: false,
    })
}

/// `stop.command`: a non-empty argv without NUL bytes.
fn stop_command(i: usize, c: &ContainerConfig) -> Result<Option<Vec<String>>, ConfigError> {
    let Some(argv) = c
        .stop
        .as_ref()
        .map(|s| &s.command)
        .filter(|a| !a.is_empty())
    else {
        return Ok(None);
    };
    let at = format!("Containers[{i}].stop.command");
    if argv[0].is_empty() {
        return Err(f(at, "its program is empty"));
    }
    check_len(&at, argv)?;
    for (j, arg) in argv.iter().enumerate() {
        check_no_nul(&format!("{at}[{j}]"), arg)?;
    }
    Ok(Some(argv.clone()))
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
            check_no_nul(&at(&format!("{field}[{j}]")), arg)?;
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
    // Fly's `cmd` replaces the image's CMD and keeps its ENTRYPOINT: without the image's
    // config the argv is unknown, so `cmd` alone is not something to run.
    if exec_override.is_none()
        && c.image_config.is_none()
        && c.entrypoint.is_empty()
        && !c.cmd.is_empty()
    {
        return Err(f(
            format!("Containers[{i}].cmd"),
            "replaces the image's CMD (and keeps its ENTRYPOINT), and there is no image_config (the image's config, which the host resolves from image): nothing to run; give exec for the whole argv",
        ));
    }
    if exec_override.is_none() && image_config.entrypoint.is_empty() && image_config.cmd.is_empty()
    {
        return Err(f(
            format!("Containers[{i}]"),
            "nothing to run: give exec, entrypoint, cmd or image_config (the image's config, which the host resolves from image)",
        ));
    }
    if let Some(user) = &c.user {
        check_no_nul(&at("user"), user)?;
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
        check_no_nul(&at(&format!("env.{k}")), v)?;
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
                // `always` with a max_retries given ends with its last exit, which the
                // dependent waits for (process-compose's `max_restarts`); without one, a
                // wait for an exit would be a wait without an end in sight.
                Condition::ExitedSuccessfully | Condition::Completed
                    if target.restart.policy == RestartPolicy::Always && !target.restart.limited =>
                {
                    return Err(f(
                        field,
                        format!(
                            "{} waits for an exit, but {:?} restarts always (give it a max_retries below {MAX_RETRIES} for restarts that end)",
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
    use super::super::decode::*;
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
