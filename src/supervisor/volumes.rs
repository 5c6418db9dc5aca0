//! The machine's volumes: a directory each under the volume directory (a tmpfs for
//! `memory`), bind-mounted at every process service's mount path. A container's mounts are
//! binds in its bundle, inside its own root.

use crate::config::typed::{Service, Volume};
use nix::mount::{umount2, MntFlags, MsFlags};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// Mounts the volumes. Returns what to unmount, innermost last (see [`unmount`]).
pub(super) fn mount(
    volumes: &[Volume],
    volume_dir: &Path,
    services: &[Service],
) -> Result<Vec<PathBuf>, String> {
    let mut mounted = Vec::new();
    let mut dirs = Vec::new();
    for volume in volumes {
        let dir = volume_dir.join(&volume.name);
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create volume {}: {e}", dir.display()))?;
        if volume.memory {
            let size = volume
                .size_mb
                .map(|mb| format!("size={mb}m,"))
                .unwrap_or_default();
            nix::mount::mount(
                Some("tmpfs"),
                &dir,
                Some("tmpfs"),
                MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
                Some(format!("{size}mode=1777").as_str()),
            )
            .map_err(|e| format!("cannot mount volume {} in memory: {e}", volume.name))?;
            mounted.push(dir.clone());
        } else {
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o1777));
        }
        dirs.push(dir);
    }
    for service in services.iter().filter(|s| s.container.is_none()) {
        for m in &service.mounts {
            let Some(source) = dirs.get(m.volume) else {
                continue;
            };
            std::fs::create_dir_all(&m.path)
                .map_err(|e| format!("cannot create mount point {}: {e}", m.path.display()))?;
            nix::mount::mount(
                Some(source.as_path()),
                &m.path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| format!("cannot mount volume at {}: {e}", m.path.display()))?;
            mounted.push(m.path.clone());
        }
    }
    Ok(mounted)
}

/// Unmounts what [`mount`] mounted, innermost first.
pub(super) fn unmount(mut mounted: Vec<PathBuf>) {
    mounted.reverse();
    for path in mounted {
        if let Err(err) = umount2(Path::new(&path), MntFlags::MNT_DETACH) {
            tracing::warn!("cannot unmount {}: {err}", path.display());
        }
    }
}
