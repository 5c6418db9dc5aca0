//! `create --bundle B [--pid-file P] [--console-socket S] ID`: the container's environment,
//! its init waiting for `start` (OCI runtime spec, "create").

use crate::init::{self, InitOptions};
use anyhow::Result;
use std::path::Path;

pub fn run(root: &Path, args: liboci_cli::Create) -> Result<()> {
    init::create(
        root,
        &args.container_id,
        &args.bundle,
        InitOptions {
            pid_file: args.pid_file,
            console_socket: args.console_socket,
            preserve_fds: args.preserve_fds,
            no_pivot: args.no_pivot,
            detach: true,
        },
    )?;
    Ok(())
}
