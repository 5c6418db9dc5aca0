//! Filesystems of the VM: the system mounts (each fatal or best-effort), the switch to the
//! root device, volumes, and unmounting them at shutdown.

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One mount of the boot sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountStep {
    pub fstype: &'static str,
    pub target: &'static str,
    pub data: Option<&'static str>,
    pub flags: u64,
    /// A failure stops the boot (a reported boot failure, never a kernel panic).
    pub fatal: bool,
}

const NOSUID_NODEV_NOEXEC: u64 = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

/// Before the config: what reading it needs.
pub fn early_mounts() -> Vec<MountStep> {
    vec![
        MountStep {
            fstype: "devtmpfs",
            target: "/dev",
            data: Some("mode=0755"),
            flags: libc::MS_NOSUID,
            fatal: true,
        },
        MountStep {
            fstype: "proc",
            target: "/proc",
            data: None,
            flags: NOSUID_NODEV_NOEXEC,
            fatal: true,
        },
        MountStep {
            fstype: "sysfs",
            target: "/sys",
            data: None,
            flags: NOSUID_NODEV_NOEXEC,
            fatal: true,
        },
    ]
}

/// After the root switch. hugetlbfs, binfmt_misc and mqueue are best-effort: a kernel without
/// them must still boot (Fly's init and pigeon-init die on them).
pub fn system_mounts() -> Vec<MountStep> {
    vec![
        MountStep {
            fstype: "devpts",
            target: "/dev/pts",
            data: Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
            flags: libc::MS_NOSUID | libc::MS_NOEXEC,
            fatal: true,
        },
        MountStep {
            fstype: "tmpfs",
            target: "/dev/shm",
            data: Some("mode=1777"),
            flags: libc::MS_NOSUID | libc::MS_NODEV,
            fatal: false,
        },
        MountStep {
            fstype: "mqueue",
            target: "/dev/mqueue",
            data: None,
            flags: NOSUID_NODEV_NOEXEC,
            fatal: false,
        },
        MountStep {
            fstype: "tmpfs",
            target: "/run",
            data: Some("mode=0755"),
            flags: libc::MS_NOSUID | libc::MS_NODEV,
            fatal: false,
        },
        // favordynmods (Linux 6.0): the cgroup threadgroup lock stays in its slow-reader mode,
        // so moving a process between cgroups (an exec's, a restart's) waits for no RCU grace
        // period. An older kernel refuses the option; `perform` mounts without it then.
        MountStep {
            fstype: "cgroup2",
            target: "/sys/fs/cgroup",
            data: Some(CGROUP2_FAVOR_DYNMODS),
            flags: NOSUID_NODEV_NOEXEC,
            fatal: false,
        },
        MountStep {
            fstype: "hugetlbfs",
            target: "/dev/hugepages",
            data: None,
            flags: libc::MS_NOSUID | libc::MS_NODEV,
            fatal: false,
        },
        MountStep {
            fstype: "binfmt_misc",
            target: "/proc/sys/fs/binfmt_misc",
            data: None,
            flags: NOSUID_NODEV_NOEXEC,
            fatal: false,
        },
    ]
}

/// What failed in a mount step or the root switch.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("mkdir {path}: {source}")]
    Mkdir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("mount {fstype} on {target}: {errno}")]
    Mount {
        fstype: &'static str,
        target: &'static str,
        errno: nix::errno::Errno,
    },
    #[error("cannot mount {device} on {target} ({tried})")]
    Block {
        device: PathBuf,
        target: PathBuf,
        /// The last filesystem tried and its error.
        tried: String,
    },
    #[error("{what}: {errno}")]
    Switch {
        what: &'static str,
        errno: nix::errno::Errno,
    },
    #[error("move {dir}: {errno}")]
    Move {
        dir: &'static str,
        errno: nix::errno::Errno,
    },
    #[error("{what}: {source}")]
    Chdir {
        what: &'static str,
        source: std::io::Error,
    },
}

fn mkdir(path: &Path) -> Result<(), MountError> {
    std::fs::create_dir_all(path).map_err(|source| MountError::Mkdir {
        path: path.to_path_buf(),
        source,
    })
}

/// The cgroup2 mount option that makes cgroup migrations cheap (see `system_mounts`).
pub const CGROUP2_FAVOR_DYNMODS: &str = "favordynmods";

/// Performs one step; a target that is already mounted (EBUSY) counts as done. A cgroup2
/// mount whose kernel does not know `favordynmods` (EINVAL) is retried without it.
pub fn perform(step: &MountStep) -> Result<(), MountError> {
    mkdir(Path::new(step.target))?;
    let attempt = |data: Option<&str>| {
        mount(
            Some(step.fstype),
            step.target,
            Some(step.fstype),
            MsFlags::from_bits_truncate(step.flags),
            data,
        )
    };
    let mut result = attempt(step.data);
    if result == Err(nix::errno::Errno::EINVAL) && step.data == Some(CGROUP2_FAVOR_DYNMODS) {
        tracing::info!("cgroup2 without favordynmods (this kernel does not have it)");
        result = attempt(None);
    }
    match result {
        Ok(()) | Err(nix::errno::Errno::EBUSY) => Ok(()),
        Err(errno) => Err(MountError::Mount {
            fstype: step.fstype,
            target: step.target,
            errno,
        }),
    }
}

/// Filesystems tried, in order, for a block device.
const BLOCK_FSTYPES: &[&str] = &["ext4", "xfs", "btrfs", "vfat"];

/// Mounts a block device, trying the common filesystems.
pub fn mount_block(device: &Path, target: &Path) -> Result<&'static str, MountError> {
    mkdir(target)?;
    let mut last = String::new();
    for fstype in BLOCK_FSTYPES {
        match mount(
            Some(device),
            target,
            Some(*fstype),
            MsFlags::MS_RELATIME,
            None::<&str>,
        ) {
            Ok(()) => return Ok(fstype),
            Err(e) => last = format!("{fstype}: {e}"),
        }
    }
    Err(MountError::Block {
        device: device.to_path_buf(),
        target: target.to_path_buf(),
        tried: last,
    })
}

/// Deletes the initramfs's files (as switch_root does) so their memory is freed: everything
/// on the root filesystem, not crossing into other mounts.
fn free_initramfs(keep: &Path) {
    let Ok(root_dev) = std::fs::metadata("/").map(|m| m.dev()) else {
        return;
    };
    fn remove(path: &Path, dev: u64, keep: &Path) {
        if path == keep {
            return;
        }
        let Ok(meta) = std::fs::symlink_metadata(path) else {
            return;
        };
        if meta.dev() != dev {
            return;
        }
        if meta.is_dir() {
            if let Ok(entries) = std::fs::read_dir(path) {
                for e in entries.flatten() {
                    remove(&e.path(), dev, keep);
                }
            }
            let _ = std::fs::remove_dir(path);
        } else {
            let _ = std::fs::remove_file(path);
        }
    }
    if let Ok(entries) = std::fs::read_dir("/") {
        for e in entries.flatten() {
            remove(&e.path(), root_dev, keep);
        }
    }
}

/// Whether `/` is the initramfs (ramfs or tmpfs).
fn root_is_initramfs() -> bool {
    nix::sys::statfs::statfs("/")
        .map(|s| {
            // RAMFS_MAGIC (0x858458f6) has no nix constant.
            let t = s.filesystem_type();
            t == nix::sys::statfs::FsType(0x8584_58f6) || t == nix::sys::statfs::TMPFS_MAGIC
        })
        .unwrap_or(false)
}

/// Mounts `device` as the new root, moves /dev, /proc, /sys and /run into it, frees the
/// initramfs and chroots (MS_MOVE then chroot: pivot_root does not work from an initramfs).
pub fn switch_root(device: &Path) -> Result<&'static str, MountError> {
    let new_root = Path::new("/newroot");
    let fstype = mount_block(device, new_root)?;
    for dir in ["/dev", "/proc", "/sys", "/run"] {
        let target = new_root.join(dir.trim_start_matches('/'));
        let _ = std::fs::create_dir_all(&target);
        match mount(
            Some(dir),
            &target,
            None::<&str>,
            MsFlags::MS_MOVE,
            None::<&str>,
        ) {
            // EINVAL: not a mount point; ENOENT: not there at all (the initramfs has no /run).
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(errno) => return Err(MountError::Move { dir, errno }),
        }
    }
    if root_is_initramfs() {
        free_initramfs(new_root);
    }
    let chdir = |what, path: &Path| {
        std::env::set_current_dir(path).map_err(|source| MountError::Chdir { what, source })
    };
    chdir("chdir to the new root", new_root)?;
    mount(Some("."), "/", None::<&str>, MsFlags::MS_MOVE, None::<&str>).map_err(|errno| {
        MountError::Switch {
            what: "move the new root",
            errno,
        }
    })?;
    nix::unistd::chroot(".").map_err(|errno| MountError::Switch {
        what: "chroot",
        errno,
    })?;
    chdir("chdir /", Path::new("/"))?;
    Ok(fstype)
}

/// Mounts the config's volumes, owned by the workload's user. Returns what was mounted, in
/// order, for the shutdown.
pub fn mount_volumes(disks: &[crate::config::typed::Disk], uid: u32, gid: u32) -> Vec<PathBuf> {
    let mut done = Vec::new();
    for disk in disks {
        let target = disk.mount_path.clone();
        match mount_block(&disk.device, &target) {
            Ok(fstype) => {
                if let Err(e) = std::os::unix::fs::chown(&target, Some(uid), Some(gid)) {
                    tracing::warn!("cannot chown {} to {uid}:{gid}: {e}", target.display());
                }
                tracing::info!(
                    "volume {} ({fstype}) mounted on {}",
                    disk.device.display(),
                    target.display()
                );
                done.push(target);
            }
            Err(e) => tracing::error!("volume: {e}"),
        }
    }
    done
}

/// Unmounts volumes in reverse order: a few tries (a process may still be exiting), then a
/// lazy unmount as the last resort.
pub async fn unmount_volumes(volumes: &[PathBuf]) {
    for v in volumes.iter().rev() {
        let mut done = false;
        for _ in 0..10 {
            match umount2(v, MntFlags::empty()) {
                Ok(()) => {
                    done = true;
                    break;
                }
                Err(nix::errno::Errno::EBUSY) => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                Err(e) => {
                    tracing::warn!("unmount {}: {e}", v.display());
                    break;
                }
            }
        }
        if !done {
            tracing::warn!("{} is busy: lazy unmount", v.display());
            let _ = umount2(v, MntFlags::MNT_DETACH);
        }
    }
}

/// Remounts `/` read-only so the filesystem is clean before the reboot.
pub fn remount_root_readonly() {
    if let Err(e) = mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        None::<&str>,
    ) {
        tracing::warn!("cannot remount / read-only: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_essentials_are_fatal() {
        let fatal: Vec<&str> = early_mounts()
            .iter()
            .chain(system_mounts().iter())
            .filter(|m| m.fatal)
            .map(|m| m.target)
            .collect();
        assert_eq!(fatal, ["/dev", "/proc", "/sys", "/dev/pts"]);
        for best_effort in ["/dev/hugepages", "/proc/sys/fs/binfmt_misc", "/dev/mqueue"] {
            assert!(system_mounts()
                .iter()
                .any(|m| m.target == best_effort && !m.fatal));
        }
    }
}
