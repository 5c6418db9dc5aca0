//! The container process's last step, in libcontainer's `Executor` hook (inside the
//! container, after its namespaces, root, user and capabilities, right before `execve`):
//! install the bundle's seccomp filters, then exec as libcontainer's default executor does.
//!
//! Without `no_new_privs` the kernel lets only a holder of CAP_SYS_ADMIN install a filter,
//! and by this step libcontainer has already dropped the capabilities to the bundle's. When
//! the bundle's effective set lacks CAP_SYS_ADMIN, `init::elevate` has libcontainer keep
//! CAP_SYS_ADMIN and CAP_SETPCAP, and this step, once the filters are in, sets the bounding,
//! effective and permitted sets back to the bundle's before `execve`. This is the order runc
//! uses (seccomp before the last capability change) and keeps `no_new_privs` as the bundle
//! says.

use crate::seccomp;
use caps::{CapSet, CapsHashSet};
use libcontainer::oci_spec::runtime::Spec;
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};
use seccompiler::BpfProgram;

/// The capability sets the bundle asked for, restored after the filters are installed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restore {
    pub bounding: CapsHashSet,
    pub effective: CapsHashSet,
    /// `None` when the bundle left the permitted set alone.
    pub permitted: Option<CapsHashSet>,
}

#[derive(Clone, Default)]
pub struct ConfinedExecutor {
    pub filters: Vec<BpfProgram>,
    pub restore: Option<Restore>,
    /// An `exec` that `roost-oci` waits for: the process gets SIGKILL when `roost-oci` dies,
    /// so a caller that kills a timed-out `exec` (a health check, a control-API exec) does
    /// not leave its command running inside the container.
    pub die_with_caller: bool,
}

impl Executor for ConfinedExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        if self.die_with_caller {
            die_with_caller()?;
        }
        if !self.filters.is_empty() {
            seccomp::install(&self.filters).map_err(|e| {
                ExecutorError::Other(format!("installing the seccomp filters: {e}"))
            })?;
        }
        if let Some(restore) = &self.restore {
            restore_capabilities(restore).map_err(|e| {
                ExecutorError::Other(format!(
                    "restoring the bundle's capabilities after seccomp: {e}"
                ))
            })?;
        }
        DefaultExecutor {}.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }
}

/// PR_SET_PDEATHSIG: SIGKILL when the process that forked this one (`roost-oci exec`, which
/// libcontainer makes the parent) dies. That parent is outside the container's PID
/// namespace, so `getppid` reads 0 while it lives; anything else means it died before the
/// request and the process has been re-parented inside: then it must not run at all.
fn die_with_caller() -> Result<(), ExecutorError> {
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes a signal number and touches no memory.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    if rc != 0 {
        return Err(ExecutorError::Other(format!(
            "PR_SET_PDEATHSIG: {}",
            std::io::Error::last_os_error()
        )));
    }
    if nix::unistd::getppid().as_raw() != 0 {
        return Err(ExecutorError::Other(
            "the exec's caller is gone: not running the command".into(),
        ));
    }
    Ok(())
}

/// Bounding first (dropping from it needs CAP_SETPCAP, still effective), then effective, then
/// permitted (effective must stay within permitted at every step).
fn restore_capabilities(restore: &Restore) -> Result<(), caps::errors::CapsError> {
    for cap in caps::read(None, CapSet::Bounding)?.difference(&restore.bounding) {
        caps::drop(None, CapSet::Bounding, *cap)?;
    }
    caps::set(None, CapSet::Effective, &restore.effective)?;
    if let Some(permitted) = &restore.permitted {
        caps::set(None, CapSet::Permitted, permitted)?;
    }
    Ok(())
}
