//! `create --bundle B [--pid-file P] [--console-socket S] ID`: the container's environment,
//! its init waiting for `start` (OCI runtime spec, "create").

use anyhow::{Context, Result};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::oci_spec::runtime::Spec;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::default::DefaultExecutor;
use std::path::Path;

pub fn run(root: &Path, args: liboci_cli::Create) -> Result<()> {
    let bundle = std::fs::canonicalize(&args.bundle)
        .with_context(|| format!("bundle {}", args.bundle.display()))?;
    let spec = Spec::load(bundle.join("config.json"))
        .with_context(|| format!("reading {}/config.json", bundle.display()))?;
    crate::refuse::check(&spec)?;
    std::fs::create_dir_all(root).with_context(|| format!("state directory {}", root.display()))?;
    ContainerBuilder::new(args.container_id.clone(), SyscallType::default())
        .with_executor(DefaultExecutor {})
        .with_pid_file(args.pid_file.as_ref())?
        .with_console_socket(args.console_socket.as_ref())
        .with_root_path(root)?
        .with_preserved_fds(args.preserve_fds)
        .validate_id()?
        .as_init(&bundle)
        .with_systemd(false)
        .with_detach(true)
        .with_no_pivot(args.no_pivot)
        .build()
        .with_context(|| format!("creating {:?}", args.container_id))?;
    Ok(())
}
