//! The machine's own fields: how it stops (`KillSignal`, `KillTimeout`), its limits, its id
//! and app name.

use super::super::checks::*;
use super::super::limits::*;
use super::super::schema::RunConfig;
use super::super::typed::{self, Signal, Stop};
use super::super::{ConfigError, DEFAULT_KILL_TIMEOUT_SECS, MAX_KILL_TIMEOUT_SECS};
use super::parse_signal;
use std::time::Duration;

/// `KillSignal` and `KillTimeout`: the main service's stop and the whole machine's bound.
pub(super) fn stop(config: &RunConfig) -> Result<Stop, ConfigError> {
    let kill_signal = match &config.kill_signal {
        Some(spec) => parse_signal(spec).map_err(|problem| f("KillSignal", problem))?,
        None => Signal::TERM,
    };
    let kill_timeout = config.kill_timeout.unwrap_or(DEFAULT_KILL_TIMEOUT_SECS);
    check_range("KillTimeout", Some(kill_timeout), 0, MAX_KILL_TIMEOUT_SECS)?;
    Ok(Stop {
        signal: kill_signal,
        timeout: Duration::from_secs(kill_timeout),
        parent_only: false,
    })
}

/// `MemoryLimitMiB`, `PidsMax`, `MachineId` and `AppName`.
pub(super) fn check_limits_and_ids(config: &RunConfig) -> Result<(), ConfigError> {
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

    Ok(())
}

/// Who the machine is.
pub(super) fn machine(config: &RunConfig, stop: &Stop) -> typed::Machine {
    typed::Machine {
        id: config.machine_id.clone(),
        app_name: config.app_name.clone(),
        hostname: config.hostname.clone(),
        kill_timeout: stop.timeout,
    }
}
