//! Validation: every rule names the field it checks. Pure, no I/O. One file per section of
//! the document; the checks they share are in `checks.rs`, every bound in `limits.rs`.

mod api;
mod control;
mod machine;
mod network;
mod oidc;
mod vm;
mod workload;

use super::checks::*;
use super::schema::{RunConfig, SignalSpec};
use super::typed::{self, Network, Service, Signal, Stop};
use super::ConfigError;
use std::str::FromStr;

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
    workload::check(&config)?;
    let stop = machine::stop(&config)?;
    machine::check_limits_and_ids(&config)?;
    let network = network::network(&config)?;
    let vm = vm::vm(&config)?;
    let api = api::api(&config)?;
    let oidc = oidc::oidc(&config)?;
    let control = control::control(&config)?;
    let signal_target = match config.forward_signals.as_deref() {
        None | Some("main") => typed::SignalTarget::Main,
        Some("all") => typed::SignalTarget::All,
        Some(other) => return Err(f("ForwardSignals", format!("{other:?} is not main or all"))),
    };
    let (services, volumes, warnings) = services(&config, stop)?;
    let container_runtime = match &config.container_runtime {
        None => None,
        Some(path) => Some(check_absolute("ContainerRuntime", path)?),
    };
    Ok(Validated {
        container_runtime,
        machine: machine::machine(&config, &stop),
        vm,
        services,
        volumes,
        signal_target,
        warnings,
        network,
        api,
        control,
        oidc,
    })
}

/// The services, the volumes, and what validation noticed about them.
type ServicesSection = (Vec<Service>, Vec<typed::Volume>, Vec<String>);

/// The services: those of `Containers` (the top-level workload fields are then unused, and
/// said so), or the one main service.
fn services(config: &RunConfig, stop: Stop) -> Result<ServicesSection, ConfigError> {
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
            kill_signal: stop.signal,
            kill_timeout: stop.timeout,
            machine_env: &config.extra_env,
            secrets: &config.secrets,
            machine_fields,
        };
        super::services::validate(&config.containers, &config.volumes, &cx)?
    } else {
        if !config.volumes.is_empty() {
            warnings.push("Volumes is given without Containers: nothing mounts them".into());
        }
        (vec![workload::main_service(config, stop)?], Vec::new())
    };
    Ok((services, volumes, warnings))
}
