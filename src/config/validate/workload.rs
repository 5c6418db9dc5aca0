//! The single workload's fields: its argv, user and directory, and the main service they make.

use super::super::checks::*;
use super::super::schema::RunConfig;
use super::super::typed::{self, Service, Stop};
use super::super::ConfigError;

/// `ExecOverride`, the image's `Entrypoint` and `Cmd`, `CmdOverride`, the users and the
/// working directory.
pub(super) fn check(config: &RunConfig) -> Result<(), ConfigError> {
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

    Ok(())
}

/// The one implicit service a config without `Containers` runs.
pub(super) fn main_service(config: &RunConfig, stop: Stop) -> Result<Service, ConfigError> {
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
        stop,
    );
    main.memory_limit_mib = config.memory_limit_mib;
    main.pids_max = config.pids_max;
    main.snapshot =
        crate::config::snapshot_hooks::snapshot_hooks("Snapshot", config.snapshot.as_ref(), false)?;
    Ok(main)
}
