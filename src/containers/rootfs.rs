//! A container's root file system: the image mounted read-only (once, shared by every
//! container of that image) under an overlay whose upper layer is a tmpfs of the
//! container's own, so what one container writes no other sees and none of it outlives the
//! container.

use crate::config::typed::ImageRoot;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use std::path::{Path, PathBuf};

/// Why a root could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("cannot create {path}: {source}")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot mount {what} at {path}: {source}")]
    Mount {
        what: String,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
    #[error("the image root {0} has a ',', ':' or '\\' in its path, which overlayfs options cannot carry")]
    UnusablePath(PathBuf),
    #[error("the image root {0} is not a directory")]
    NotADirectory(PathBuf),
}

fn create(path: &Path) -> Result<(), RootfsError> {
    std::fs::create_dir_all(path).map_err(|source| RootfsError::Create {
        path: path.to_path_buf(),
        source,
    })
}

/// Makes `image` available read-only; returns the directory the overlays use as their
/// lower layer. A directory is used where it is (overlayfs never writes to a lower layer);
/// a device is mounted read-only at `mount_point`.
pub fn mount_image(image: &ImageRoot, mount_point: &Path) -> Result<PathBuf, RootfsError> {
    let lower = match image {
        ImageRoot::Directory(dir) => dir.as_path(),
        ImageRoot::Device { .. } => mount_point,
    };
    // Checked before anything is mounted, so a refusal leaves nothing behind.
    if lower.to_string_lossy().contains([',', ':', '\\']) {
        return Err(RootfsError::UnusablePath(lower.to_path_buf()));
    }
    let lower = match image {
        ImageRoot::Directory(dir) => {
            if !dir.is_dir() {
                return Err(RootfsError::NotADirectory(dir.clone()));
            }
            dir.clone()
        }
        ImageRoot::Device { path, fstype } => {
            create(mount_point)?;
            mount(
                Some(path.as_path()),
                mount_point,
                Some(fstype.as_str()),
                MsFlags::MS_RDONLY | MsFlags::MS_NODEV,
                None::<&str>,
            )
            .map_err(|source| RootfsError::Mount {
                what: format!("{} ({fstype}, read-only)", path.display()),
                path: mount_point.to_path_buf(),
                source,
            })?;
            mount_point.to_path_buf()
        }
    };
    Ok(lower)
}

/// The mounts of one container's root, undone by [`Rootfs::tear_down`].
#[derive(Debug)]
pub struct Rootfs {
    /// The overlay: the container's `root.path`.
    pub path: PathBuf,
    /// The tmpfs holding the upper layer.
    upper_mount: PathBuf,
}

impl Rootfs {
    /// Mounts `<bundle>/rw` (a tmpfs with the upper and work directories) and the overlay
    /// of `lower` under it at `<bundle>/rootfs`.
    pub fn assemble(lower: &Path, bundle: &Path) -> Result<Rootfs, RootfsError> {
        let upper_mount = bundle.join("rw");
        let path = bundle.join("rootfs");
        create(&upper_mount)?;
        create(&path)?;
        mount(
            Some("tmpfs"),
            &upper_mount,
            Some("tmpfs"),
            MsFlags::MS_NODEV,
            Some("mode=0700"),
        )
        .map_err(|source| RootfsError::Mount {
            what: "the writable layer (tmpfs)".into(),
            path: upper_mount.clone(),
            source,
        })?;
        let rootfs = Rootfs { path, upper_mount };
        let (upper, work) = (
            rootfs.upper_mount.join("upper"),
            rootfs.upper_mount.join("work"),
        );
        create(&upper)?;
        create(&work)?;
        // The root of the container is the image's root: the upper directory's mode and
        // owner are what `/` shows.
        copy_owner_and_mode(lower, &upper);
        let options = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        );
        if let Err(source) = mount(
            Some("overlay"),
            &rootfs.path,
            Some("overlay"),
            MsFlags::empty(),
            Some(options.as_str()),
        ) {
            rootfs.tear_down();
            return Err(RootfsError::Mount {
                what: format!("the overlay of {}", lower.display()),
                path: bundle.join("rootfs"),
                source,
            });
        }
        Ok(rootfs)
    }

    /// Unmounts the overlay, then its upper layer (lazily: a process still holding a file
    /// keeps it until it lets go, and nothing else can reach it).
    pub fn tear_down(self) {
        for path in [&self.path, &self.upper_mount] {
            match umount2(path.as_path(), MntFlags::MNT_DETACH) {
                Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
                Err(err) => tracing::warn!("cannot unmount {}: {err}", path.display()),
            }
        }
    }
}

/// Undoes what a crashed or killed earlier start under `bundle` left mounted.
pub fn clear_leftovers(bundle: &Path) {
    Rootfs {
        path: bundle.join("rootfs"),
        upper_mount: bundle.join("rw"),
    }
    .tear_down();
}

fn copy_owner_and_mode(from: &Path, to: &Path) {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if let Ok(meta) = std::fs::metadata(from) {
        let _ = std::os::unix::fs::chown(to, Some(meta.uid()), Some(meta.gid()));
        let _ = std::fs::set_permissions(to, std::fs::Permissions::from_mode(meta.mode() & 0o7777));
    }
}
