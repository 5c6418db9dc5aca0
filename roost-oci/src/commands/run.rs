//! `run --bundle B ID`: create and start; without `--detach`, wait for the process and exit
//! with its code, then delete (unless `--keep`).

use anyhow::{Context, Result};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::oci_spec::runtime::Spec;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::default::DefaultExecutor;
use std::path::Path;

pub fn run(root: &Path, args: liboci_cli::Run) -> Result<i32> {
    let bundle = std::fs::canonicalize(&args.bundle)
        .with_context(|| format!("bundle {}", args.bundle.display()))?;
    let spec = Spec::load(bundle.join("config.json"))
        .with_context(|| format!("reading {}/config.json", bundle.display()))?;
    crate::refuse::check(&spec)?;
    std::fs::create_dir_all(root).with_context(|| format!("state directory {}", root.display()))?;
    let id = args.container_id.clone();
    let mut container = ContainerBuilder::new(id.clone(), SyscallType::default())
        .with_executor(DefaultExecutor {})
        .with_pid_file(args.pid_file.as_ref())?
        .with_console_socket(args.console_socket.as_ref())
        .with_root_path(root)?
        .with_preserved_fds(args.preserve_fds)
        .validate_id()?
        .as_init(&bundle)
        .with_systemd(false)
        .with_detach(args.detach)
        .with_no_pivot(args.no_pivot)
        .build()
        .with_context(|| format!("creating {id:?}"))?;
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
