//! `run --bundle B ID`: create and start; without `--detach`, wait for the process and exit
//! with its code, then delete (unless `--keep`).

use crate::init::{self, InitOptions};
use anyhow::{Context, Result};
use std::path::Path;

pub fn run(root: &Path, args: liboci_cli::Run) -> Result<i32> {
    let id = args.container_id.clone();
    let mut container = init::create(
        root,
        &id,
        &args.bundle,
        InitOptions {
            pid_file: args.pid_file,
            console_socket: args.console_socket,
            preserve_fds: args.preserve_fds,
            no_pivot: args.no_pivot,
            detach: args.detach,
        },
    )?;
    container
        .start()
        .with_context(|| format!("starting {id:?}"))?;
    if args.detach {
        return Ok(0);
    }
    let pid = container.pid().context("the container has no pid")?;
    let code = super::wait_exit(pid)?;
    if !args.keep {
        let mut container = super::load(root, &id)?;
        container
            .delete(true)
            .with_context(|| format!("deleting {id:?}"))?;
    }
    Ok(code)
}
