//! `exec ID -- CMD...`: a process inside a running container (its namespaces, cgroup and
//! root); without `--detach`, waits and exits with its code.

use crate::executor::ConfinedExecutor;
use anyhow::{bail, Context, Result};
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::oci_spec::runtime::Spec;
use libcontainer::syscall::syscall::SyscallType;
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
    // The container's seccomp profile confines what is run in it too. The filters go in after
    // the capabilities are dropped, so without CAP_SYS_ADMIN the process needs no_new_privs;
    // an exec into a container with a profile always runs with it (stricter than the init,
    // whose capabilities `init::elevate` can keep until then; an exec's come from libcontainer).
    let spec = Spec::load(container.bundle().join("config.json"))
        .with_context(|| format!("reading the bundle of {:?}", args.container_id))?;
    let filters = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(profile) => crate::seccomp::compile(profile)?,
        None => Vec::new(),
    };
    let no_new_privs = args.no_new_privs || !filters.is_empty();
    let pid = ContainerBuilder::new(args.container_id.clone(), SyscallType::default())
        .with_executor(ConfinedExecutor {
            filters,
            restore: None,
            die_with_caller: !args.detach,
        })
        .with_root_path(root)?
        .with_console_socket(args.console_socket.as_ref())
        .with_pid_file(args.pid_file.as_ref())?
        .validate_id()?
        .as_tenant()
        .with_detach(args.detach)
        .with_cwd(args.cwd.as_ref())
        .with_env(args.env.clone().into_iter().collect())
        .with_process(args.process.as_ref())
        .with_no_new_privs(no_new_privs)
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
