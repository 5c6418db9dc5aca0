//! `Oidc`: where the broker writes tokens and how long the boot waits for the first ones.

use super::super::checks::*;
use super::super::limits::*;
use super::super::schema::RunConfig;
use super::super::typed::{self, defaults};
use super::super::ConfigError;
use std::path::PathBuf;
use std::time::Duration;

pub(super) fn oidc(config: &RunConfig) -> Result<typed::Oidc, ConfigError> {
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
    Ok(oidc)
}
