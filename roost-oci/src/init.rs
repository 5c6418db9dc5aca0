//! What `create` and `run` share: the bundle read and checked, its seccomp profile compiled
//! (a profile roost-oci cannot enforce is refused before anything is made), and
//! libcontainer's init builder with the executor that installs the filters.

use crate::executor::{ConfinedExecutor, Restore};
use anyhow::{Context, Result};
use libcontainer::capabilities::CapabilityExt;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::oci_spec::runtime::{Capability, Spec};
use libcontainer::syscall::syscall::SyscallType;
use std::path::{Path, PathBuf};

/// `create`'s and `run`'s options for the container's init.
pub struct InitOptions {
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub preserve_fds: i32,
    pub no_pivot: bool,
    /// `false` leaves the init a child of this process (`run` without `--detach` waits).
    pub detach: bool,
}

/// Creates container `id` from `bundle` under `root`: its init waits for `start`.
pub fn create(root: &Path, id: &str, bundle: &Path, options: InitOptions) -> Result<Container> {
    let bundle =
        std::fs::canonicalize(bundle).with_context(|| format!("bundle {}", bundle.display()))?;
    let spec = Spec::load(bundle.join("config.json"))
        .with_context(|| format!("reading {}/config.json", bundle.display()))?;
    crate::refuse::check(&spec)?;
    let filters = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(profile) => crate::seccomp::compile(profile)?,
        None => Vec::new(),
    };
    let elevated = if filters.is_empty() {
        None
    } else {
        elevate(&spec, &bundle)?
    };
    std::fs::create_dir_all(root).with_context(|| format!("state directory {}", root.display()))?;

    let builder = ContainerBuilder::new(id.to_string(), SyscallType::default())
        .with_executor(ConfinedExecutor {
            filters,
            restore: elevated.as_ref().map(|(_, restore)| restore.clone()),
            // The container's init outlives `create` by design.
            die_with_caller: false,
        })
        .with_pid_file(options.pid_file.as_ref())?
        .with_console_socket(options.console_socket.as_ref())
        .with_root_path(root)?
        .with_preserved_fds(options.preserve_fds)
        .validate_id()?;

    let device_rules: Vec<_> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| r.devices().clone())
        .unwrap_or_default();
    let Some((elevated, _)) = elevated else {
        let container = builder
            .as_init(&bundle)
            .with_systemd(false)
            .with_detach(options.detach)
            .with_no_pivot(options.no_pivot)
            .build()
            .with_context(|| format!("creating {id:?}"))?;
        return confine_devices(container, &device_rules);
    };
    // libcontainer reads the spec from `<bundle>/config.json` only, so the elevated spec is
    // written to a bundle of its own beside the state ('@' cannot be in an id, so it cannot
    // be a container's directory), removed once the init has it, and the state then names
    // the bundle the caller gave.
    let shadow = root.join(format!("{id}@seccomp"));
    let result = write_shadow(&shadow, &elevated).and_then(|()| {
        builder
            .as_init(&shadow)
            .with_systemd(false)
            .with_detach(options.detach)
            .with_no_pivot(options.no_pivot)
            .build()
            .with_context(|| format!("creating {id:?}"))
    });
    let _ = std::fs::remove_dir_all(&shadow);
    let mut container = result?;
    container.state.bundle = bundle;
    container
        .save()
        .with_context(|| format!("saving the state of {id:?}"))?;
    confine_devices(container, &device_rules)
}

/// The device rules in force before the workload runs (cgroup v2: an eBPF program on the
/// container's cgroup, `devices.rs`). A container that cannot be confined so is deleted:
/// never less confinement than the bundle asks for.
fn confine_devices(
    mut container: Container,
    rules: &[libcontainer::oci_spec::runtime::LinuxDeviceCgroup],
) -> Result<Container> {
    match crate::devices::enforce(rules, container.pid().map(|p| p.as_raw())) {
        Ok(()) => Ok(container),
        Err(err) => {
            let _ = container.delete(true);
            Err(err.context(format!("confining the devices of {:?}", container.id())))
        }
    }
}

fn write_shadow(shadow: &Path, spec: &Spec) -> Result<()> {
    // One left by a create that was killed midway would otherwise block the id for good.
    let _ = std::fs::remove_dir_all(shadow);
    std::fs::create_dir(shadow).with_context(|| format!("creating {}", shadow.display()))?;
    spec.save(shadow.join("config.json"))
        .with_context(|| format!("writing {}/config.json", shadow.display()))
}

/// When the process would lack CAP_SYS_ADMIN without `no_new_privs` by the time the filters
/// are installed: a copy of `spec` that keeps CAP_SYS_ADMIN and CAP_SETPCAP until then (its
/// root made absolute, as it is read from another directory), and the sets to go back to.
fn elevate(spec: &Spec, bundle: &Path) -> Result<Option<(Spec, Restore)>> {
    let Some(process) = spec.process() else {
        return Ok(None);
    };
    if process.no_new_privileges() == Some(true) {
        return Ok(None);
    }
    let Some(caps) = process.capabilities() else {
        return Ok(None); // libcontainer leaves every capability
    };
    let Some(effective) = caps.effective() else {
        return Ok(None); // the effective set stays the (full) permitted one
    };
    if effective.contains(&Capability::SysAdmin) {
        return Ok(None);
    }
    let to_caps = |set: &std::collections::HashSet<Capability>| -> caps::CapsHashSet {
        set.iter().map(|c| c.to_cap()).collect()
    };
    let restore = Restore {
        bounding: caps.bounding().as_ref().map(to_caps).unwrap_or_default(),
        effective: to_caps(effective),
        permitted: caps.permitted().as_ref().map(to_caps),
    };
    let kept = [Capability::SysAdmin, Capability::Setpcap];
    let with_kept = |set: &Option<std::collections::HashSet<Capability>>| {
        let mut set = set.clone().unwrap_or_default();
        set.extend(kept);
        Some(set)
    };
    let mut elevated_caps = caps.clone();
    elevated_caps.set_bounding(with_kept(caps.bounding()));
    elevated_caps.set_effective(with_kept(caps.effective()));
    if caps.permitted().is_some() {
        elevated_caps.set_permitted(with_kept(caps.permitted()));
    }
    let mut elevated_process = process.clone();
    elevated_process.set_capabilities(Some(elevated_caps));
    let mut elevated = spec.clone();
    elevated.set_process(Some(elevated_process));
    elevated
        .canonicalize_rootfs(bundle)
        .with_context(|| format!("the root of bundle {}", bundle.display()))?;
    Ok(Some((elevated, restore)))
}
