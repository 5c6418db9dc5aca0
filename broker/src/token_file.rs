//! A token file that a reader never sees empty, partial or missing once it has been written:
//! the new content goes to a temporary file in the same directory (same filesystem), is
//! fsynced with its final owner and mode, and is renamed over the old one; the directory is
//! fsynced so the rename survives a crash. No trailing newline: SDKs do not trim.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where a token goes, and who may read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFile {
    pub path: PathBuf,
    pub uid: u32,
    pub gid: u32,
    /// 0o400, or 0o440 when the workload's group may read too.
    pub mode: u32,
}

#[derive(Debug, thiserror::Error)]
#[error("{action} {path}: {source}")]
pub struct WriteError {
    action: &'static str,
    path: PathBuf,
    #[source]
    source: std::io::Error,
}

fn err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> WriteError + 'a {
    move |source| WriteError {
        action,
        path: path.to_path_buf(),
        source,
    }
}

impl TokenFile {
    /// Replaces the file's content atomically.
    pub fn write(&self, content: &[u8]) -> Result<(), WriteError> {
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("/"));
        ensure_dir(dir)?;
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "token".into());
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        // A leftover from a crash: ours to remove (O_EXCL below refuses anything in the way).
        let _ = std::fs::remove_file(&tmp);
        let result = (|| {
            // O_NOFOLLOW: never write through a symlink planted at the temporary name.
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)
                .map_err(err("create", &tmp))?;
            file.write_all(content).map_err(err("write", &tmp))?;
            std::os::unix::fs::fchown(&file, Some(self.uid), Some(self.gid))
                .map_err(err("chown", &tmp))?;
            file.set_permissions(std::fs::Permissions::from_mode(self.mode))
                .map_err(err("chmod", &tmp))?;
            file.sync_all().map_err(err("fsync", &tmp))?;
            std::fs::rename(&tmp, &self.path).map_err(err("rename into", &self.path))?;
            File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(err("fsync", dir))
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

/// Creates the directory (0755, so the workload can reach its file) if it is missing, and
/// refuses a symlink or a non-directory in its place.
fn ensure_dir(dir: &Path) -> Result<(), WriteError> {
    match std::fs::symlink_metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(WriteError {
            action: "use",
            path: dir.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "not a directory (or a symlink)",
            ),
        }),
        Err(_) => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(dir)
            .map_err(err("create directory", dir)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn writes_atomically_with_owner_and_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/oidc_token");
        let file = TokenFile {
            path: path.clone(),
            uid: 65534,
            gid: 65534,
            mode: 0o400,
        };
        file.write(b"a.b.c").expect("first write");
        file.write(b"d.e.f").expect("second write");
        assert_eq!(std::fs::read(&path).expect("read"), b"d.e.f");
        let meta = std::fs::metadata(&path).expect("meta");
        assert_eq!(meta.mode() & 0o777, 0o400);
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
        let dir_meta = std::fs::metadata(dir.path().join("sub")).expect("dir");
        assert_eq!(dir_meta.mode() & 0o777, 0o755);
        // Nothing left behind but the file.
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .expect("ls")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["oidc_token"]);
    }

    #[test]
    fn refuses_a_symlinked_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink("/tmp", dir.path().join("link")).expect("symlink");
        let file = TokenFile {
            path: dir.path().join("link/token"),
            uid: 0,
            gid: 0,
            mode: 0o400,
        };
        assert!(file.write(b"x").is_err());
    }
}
