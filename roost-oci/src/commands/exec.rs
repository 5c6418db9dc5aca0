//! `exec ID -- CMD...`: a process inside a running container (its namespaces, cgroup and
//! root); without `--detach`, waits and exits with its code.

use anyhow::{bail, Context, Result};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;
use libcontainer::workload::default::DefaultExecutor;
use std::path::Path;

pub fn run(root: &Path, args: liboci_cli::Exec) -> Result<i32> {
    let container = super::load(root, &args.container_id)?;
    if !container.can_exec() {
        bail!(
            "cannot exec in {:?}: it is {:?}",
            args.container_id,
            container.status()
        );
    }
    let pid = ContainerBuilder::new(args.container_id.clone(), SyscallType::default())
        .with_executor(DefaultExecutor {})
        .with_root_path(root)?
        .with_console_socket(args.console_socket.as_ref())
        .with_pid_file(args.pid_file.as_ref())?
        .validate_id()?
        .as_tenant()
        .with_detach(args.detach)
        .with_cwd(args.cwd.as_ref())
        .with_env(args.env.clone().into_iter().collect())
        .with_process(args.process.as_ref())
        .with_no_new_privs(args.no_new_privs)
        .with_capabilities(args.cap.clone())
        .with_user(args.user.map(|(u, _)| u))
        .with_group(args.user.and_then(|(_, g)| g))
        .with_additional_gids(args.additional_gids.clone())
        .with_container_args(args.command.clone())
        .build()
        .with_context(|| format!("exec in {:?}", args.container_id))?;
    if args.detach {
        return Ok(0);
    }
    super::wait_exit(pid)
}
