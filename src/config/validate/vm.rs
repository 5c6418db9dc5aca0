//! What only a VM reads: `Mounts` (its disks), `RootDevice`, `Mmds`.

use super::super::checks::*;
use super::super::schema::{MmdsAfterBoot, MmdsOnRestore, RunConfig};
use super::super::typed;
use super::super::ConfigError;
use std::path::PathBuf;

pub(super) fn vm(config: &RunConfig) -> Result<typed::Vm, ConfigError> {
    for (i, m) in config.mounts.iter().enumerate() {
        check_absolute(&format!("Mounts[{i}].DevicePath"), &m.device_path)?;
        check_absolute(&format!("Mounts[{i}].MountPath"), &m.mount_path)?;
    }
    if let Some(dev) = &config.root_device {
        check_absolute("RootDevice", dev)?;
    }
    let vm = typed::Vm {
        root_device: PathBuf::from(config.root_device.as_deref().unwrap_or("/dev/vda")),
        disks: config
            .mounts
            .iter()
            .map(|m| typed::Disk {
                device: PathBuf::from(&m.device_path),
                mount_path: PathBuf::from(&m.mount_path),
            })
            .collect(),
        mmds_reachable_after_boot: config.mmds.after_boot == MmdsAfterBoot::Keep,
        reread_identity_on_unannounced_restore: config.mmds.on_restore == MmdsOnRestore::Reread,
    };
    Ok(vm)
}
