//! The proxy's socket on disk: its directory (refused when others could tamper with it), its
//! owner and mode (the coarse gate in front of SO_PEERCRED), and a bind that never leaves
//! the socket at its path with the umask's mode. The control API's Unix socket uses the same
//! bind.

use crate::error::ProxyError;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::Path;
use tokio::net::UnixListener;

/// Who owns the socket and with which mode: the coarse gate in front of SO_PEERCRED.
/// Returns (uid, gid, mode).
pub fn socket_access(allow_uids: &[u32], allow_gids: &[u32]) -> (u32, u32, u32) {
    let others: Vec<u32> = allow_uids.iter().copied().filter(|&u| u != 0).collect();
    match (others.as_slice(), allow_gids) {
        ([], []) => (0, 0, 0o600),
        ([uid], []) => (*uid, 0, 0o600),
        ([], [gid]) => (0, *gid, 0o660),
        // No single owner or group expresses the list: the peer check alone decides.
        _ => (0, 0, 0o666),
    }
}

/// Creates the socket's directory if needed, and refuses one that others could tamper with.
pub(crate) fn prepare_dir(dir: &Path) -> Result<(), ProxyError> {
    let unsafe_dir = |why| ProxyError::UnsafeDir {
        path: dir.to_path_buf(),
        why,
    };
    match std::fs::symlink_metadata(dir) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(dir)
                .map_err(|source| ProxyError::Socket {
                    path: dir.to_path_buf(),
                    source,
                })?;
            Ok(())
        }
        Err(source) => Err(ProxyError::Socket {
            path: dir.to_path_buf(),
            source,
        }),
        Ok(meta) if meta.file_type().is_symlink() => Err(unsafe_dir("it is a symlink")),
        Ok(meta) if !meta.is_dir() => Err(unsafe_dir("it is not a directory")),
        Ok(meta) if meta.uid() != nix::unistd::geteuid().as_raw() && meta.uid() != 0 => {
            Err(unsafe_dir("it is owned by another user"))
        }
        Ok(meta) if meta.mode() & 0o002 != 0 && meta.mode() & 0o1000 == 0 => {
            Err(unsafe_dir("it is world-writable without the sticky bit"))
        }
        Ok(_) => Ok(()),
    }
}

/// Binds a Unix socket at `path` owned by `uid:gid` with `mode`: bound under a temporary name
/// and renamed into place once its owner and mode are set. A stale socket at `path` is
/// replaced; any other file there is refused. Needs a tokio runtime.
pub fn bind_in_place(path: &Path, uid: u32, gid: u32, mode: u32) -> std::io::Result<UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) => {
            std::fs::remove_file(path)?
        }
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a file that is not a socket is in the way",
            ))
        }
        Err(_) => {}
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "socket".into());
    let staging = path.with_file_name(format!(".{file_name}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&staging);
    let listener = UnixListener::bind(&staging)?;
    let placed = std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(mode))
        .and_then(|()| {
            nix::unistd::chown(
                &staging,
                Some(nix::unistd::Uid::from_raw(uid)),
                Some(nix::unistd::Gid::from_raw(gid)),
            )
            .map_err(std::io::Error::from)
        })
        .and_then(|()| std::fs::rename(&staging, path));
    if let Err(err) = placed {
        let _ = std::fs::remove_file(&staging);
        return Err(err);
    }
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_modes_follow_the_allow_lists() {
        assert_eq!(socket_access(&[0], &[]), (0, 0, 0o600));
        assert_eq!(socket_access(&[0, 1000], &[]), (1000, 0, 0o600));
        assert_eq!(socket_access(&[0], &[50]), (0, 50, 0o660));
        assert_eq!(socket_access(&[0, 1000, 1001], &[]), (0, 0, 0o666));
        assert_eq!(socket_access(&[1000], &[50]), (0, 0, 0o666));
    }
}
