//! What roost-oci will not run: never less confinement than a bundle asks for. An AppArmor
//! profile or an SELinux label, which this runtime does not apply, is refused rather than
//! ignored (libcontainer itself would only warn). A seccomp profile is enforced
//! (`seccomp.rs`); one it cannot enforce is refused there.

use anyhow::{bail, Result};
use libcontainer::oci_spec::runtime::Spec;

pub fn check(spec: &Spec) -> Result<()> {
    if let Some(linux) = spec.linux() {
        if linux.mount_label().as_ref().is_some_and(|l| !l.is_empty()) {
            bail!("the bundle asks for an SELinux mount label (linux.mountLabel), which roost-oci does not apply");
        }
    }
    if let Some(process) = spec.process() {
        if process
            .apparmor_profile()
            .as_ref()
            .is_some_and(|p| !p.is_empty())
        {
            bail!("the bundle asks for an AppArmor profile (process.apparmorProfile), which roost-oci does not apply");
        }
        if process
            .selinux_label()
            .as_ref()
            .is_some_and(|l| !l.is_empty())
        {
            bail!("the bundle asks for an SELinux label (process.selinuxLabel), which roost-oci does not apply");
        }
    }
    Ok(())
}
