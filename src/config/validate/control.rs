//! `Control`: the host control API's ports, socket, linger and allowed CIDs.

use super::super::checks::*;
use super::super::limits::*;
use super::super::schema::RunConfig;
use super::super::typed::{self, defaults};
use super::super::ConfigError;
use std::path::PathBuf;
use std::time::Duration;

pub(super) fn control(config: &RunConfig) -> Result<typed::Control, ConfigError> {
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
    Ok(control)
}
