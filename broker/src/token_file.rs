//! A token file that a reader never sees empty, partial or missing once it has been written:
//! the new content goes to a temporary file in the same directory (same filesystem), is
//! fsynced with its final owner and mode, and is renamed over the old one; the directory is
//! fsynced so the rename survives a crash. No trailing newline: SDKs do not trim.
//!
//! roost writes as root into a directory the workload can reach, so the directory is
//! resolved once, component by component from `/` with `O_NOFOLLOW` (a symlink anywhere on
//! the way is refused), must not be writable by the workload (neither its owner, nor
//! group- or world-writable), and every later step (create, chown, chmod, rename, fsync) is
//! relative to that one descriptor: swapping an ancestor for a symlink after the first token
//! cannot redirect a later write.

use nix::fcntl::{openat, renameat, OFlag};
use nix::sys::stat::{fchmod, fstat, mkdirat, Mode};
use nix::unistd::{fchown, unlinkat, Gid, Uid, UnlinkatFlags};
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

/// Where a token goes, and who may read it.
#[derive(Debug, Clone)]
pub struct TokenFile {
    pub path: PathBuf,
    pub uid: u32,
    pub gid: u32,
    /// 0o400, or 0o440 when the workload's group may read too.
    pub mode: u32,
    /// The directory, once resolved (shared by the clones of one file).
    pub dir: Arc<Mutex<Option<Arc<OwnedFd>>>>,
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

fn errno<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(nix::Error) -> WriteError + 'a {
    move |e| WriteError {
        action,
        path: path.to_path_buf(),
        source: e.into(),
    }
}

fn refused(path: &Path, why: &str) -> WriteError {
    WriteError {
        action: "refuse",
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, why.to_string()),
    }
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// Opens `dir` from `/` one component at a time without following a symlink, creating
/// missing components (0755, so the workload can reach its file).
fn open_dir_nofollow(dir: &Path) -> Result<OwnedFd, WriteError> {
    let mut fd = nix::fcntl::open("/", DIR_FLAGS, Mode::empty()).map_err(errno("open", dir))?;
    let mut walked = PathBuf::from("/");
    for component in dir.components() {
        let name = match component {
            Component::RootDir => continue,
            Component::Normal(name) => name,
            // Validation requires an absolute path without dot segments.
            _ => return Err(refused(dir, "has a . or .. component")),
        };
        walked.push(name);
        let next = match openat(&fd, name, DIR_FLAGS, Mode::empty()) {
            Ok(next) => next,
            Err(nix::errno::Errno::ENOENT) => {
                match mkdirat(&fd, name, Mode::from_bits_truncate(0o755)) {
                    Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
                    Err(e) => return Err(errno("create directory", &walked)(e)),
                }
                openat(&fd, name, DIR_FLAGS, Mode::empty()).map_err(errno("open", &walked))?
            }
            // ELOOP: a symlink; ENOTDIR: something else in the way.
            Err(nix::errno::Errno::ELOOP) => {
                return Err(refused(&walked, "is a symlink"));
            }
            Err(e) => return Err(errno("open", &walked)(e)),
        };
        fd = next;
    }
    Ok(fd)
}

impl TokenFile {
    pub fn new(path: PathBuf, uid: u32, gid: u32, mode: u32) -> Self {
        TokenFile {
            path,
            uid,
            gid,
            mode,
            dir: Arc::new(Mutex::new(None)),
        }
    }

    fn dir_path(&self) -> &Path {
        self.path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("/"))
    }

    /// The directory's descriptor: resolved and checked on first use, then kept.
    fn dir_fd(&self) -> Result<Arc<OwnedFd>, WriteError> {
        let mut slot = self.dir.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(fd) = slot.as_ref() {
            return Ok(fd.clone());
        }
        let dir = self.dir_path();
        let fd = open_dir_nofollow(dir)?;
        let st = fstat(&fd).map_err(errno("stat", dir))?;
        let workload_is_root = self.uid == 0;
        if !workload_is_root {
            if st.st_uid == self.uid {
                return Err(refused(dir, "is owned by the workload's user"));
            }
            if st.st_mode & 0o002 != 0 {
                return Err(refused(dir, "is writable by every user"));
            }
            if st.st_mode & 0o020 != 0 && st.st_gid == self.gid {
                return Err(refused(dir, "is writable by the workload's group"));
            }
        }
        let fd = Arc::new(fd);
        *slot = Some(fd.clone());
        Ok(fd)
    }

    /// Replaces the file's content atomically.
    pub fn write(&self, content: &[u8]) -> Result<(), WriteError> {
        let dir_fd = self.dir_fd()?;
        let name = self
            .path
            .file_name()
            .ok_or_else(|| refused(&self.path, "names no file"))?;
        replace_in(
            dir_fd.as_fd(),
            self.dir_path(),
            name,
            content,
            (self.uid, self.gid, self.mode),
        )
    }
}

/// Replaces `name` in the directory `d` (whose path is `dir`, for messages) with `content`,
/// owned by `owner` (uid, gid, mode), atomically and never through anything planted there:
/// a temporary file made with `O_EXCL | O_NOFOLLOW` beside it, its owner and mode set on the
/// open file, fsynced, renamed over `name` (a link there is replaced, not followed), and the
/// directory fsynced. Every step is relative to `d`. Also what roost writes a service's
/// `files` with.
pub fn replace_in(
    d: std::os::fd::BorrowedFd<'_>,
    dir: &Path,
    name: &std::ffi::OsStr,
    content: &[u8],
    (uid, gid, mode): (u32, u32, u32),
) -> Result<(), WriteError> {
    let path = dir.join(name);
    let tmp_name = format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id());
    let tmp = dir.join(&tmp_name);
    // A leftover from a crash: ours to remove (O_EXCL below refuses anything in the way).
    let _ = unlinkat(d, tmp_name.as_str(), UnlinkatFlags::NoRemoveDir);
    let result = (|| {
        // O_NOFOLLOW | O_EXCL: never write through anything planted at the temporary name.
        let fd = openat(
            d,
            tmp_name.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(errno("create", &tmp))?;
        let mut file = std::fs::File::from(fd);
        file.write_all(content).map_err(err("write", &tmp))?;
        fchown(&file, Some(Uid::from_raw(uid)), Some(Gid::from_raw(gid)))
            .map_err(errno("chown", &tmp))?;
        // After the chown, which would clear set-id bits.
        fchmod(&file, Mode::from_bits_truncate(mode)).map_err(errno("chmod", &tmp))?;
        file.sync_all().map_err(err("fsync", &tmp))?;
        renameat(d, tmp_name.as_str(), d, name).map_err(errno("rename into", &path))?;
        nix::unistd::fsync(d).map_err(errno("fsync", dir))
    })();
    if result.is_err() {
        let _ = unlinkat(d, tmp_name.as_str(), UnlinkatFlags::NoRemoveDir);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    fn file(path: PathBuf, uid: u32) -> TokenFile {
        TokenFile::new(path, uid, uid, 0o400)
    }

    #[test]
    fn writes_atomically_with_owner_and_mode() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub/oidc_token");
        let file = file(path.clone(), 65534);
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
    fn refuses_a_symlinked_directory_or_ancestor() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink("/tmp", dir.path().join("link")).expect("symlink");
        assert!(file(dir.path().join("link/token"), 0).write(b"x").is_err());
        assert!(file(dir.path().join("link/deeper/token"), 0)
            .write(b"x")
            .is_err());
    }

    #[test]
    fn refuses_a_directory_the_workload_could_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let own = dir.path().join("own");
        std::fs::create_dir(&own).expect("mkdir");
        std::os::unix::fs::chown(&own, Some(1000), Some(1000)).expect("chown");
        assert!(file(own.join("token"), 1000).write(b"x").is_err());
        let world = dir.path().join("world");
        std::fs::create_dir(&world).expect("mkdir");
        std::fs::set_permissions(&world, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
        assert!(file(world.join("token"), 1000).write(b"x").is_err());
        // Root's own directory, for a workload that is not root: fine.
        assert!(file(dir.path().join("ok/token"), 1000).write(b"x").is_ok());
    }

    #[test]
    fn an_ancestor_swapped_for_a_symlink_after_the_first_write_redirects_nothing() {
        // The workload owns `home` (so it can rename what is in it), roost owns `home/.fly`.
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        std::fs::create_dir(&home).expect("mkdir");
        let token_dir = home.join(".fly");
        let file = file(token_dir.join("oidc_token"), 1000);
        file.write(b"first").expect("first write");
        // The swap: the real directory moves away, a symlink to a victim directory takes its
        // name.
        let victim = dir.path().join("victim");
        std::fs::create_dir(&victim).expect("victim");
        std::fs::rename(&token_dir, home.join("moved")).expect("move");
        std::os::unix::fs::symlink(&victim, &token_dir).expect("symlink");
        file.write(b"second").expect("second write");
        assert!(
            std::fs::read_dir(&victim).expect("ls").next().is_none(),
            "a file was written through the symlink"
        );
        assert_eq!(
            std::fs::read(home.join("moved/oidc_token")).expect("read"),
            b"second"
        );
    }
}
