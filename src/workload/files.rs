//! A service's `files`, written by PID 1 (root) before each start, owned by the service's
//! user. Every step goes through a directory descriptor opened component by component from
//! `/`, never by a path the kernel walks again: a service that swaps a parent of its own
//! file for a link between two starts cannot make roost write elsewhere.
//!
//! On the way down, a link is followed only when the service's user could not have planted
//! it: owned by root, in a directory the user cannot write to (or a sticky one). A link the
//! user owns, or one in a directory the user may change, is refused, and so is the start.
//! For a root service the walk follows links freely (root could write anywhere anyway).

use crate::config::typed::ServiceFile;
use crate::workload::Identity;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{fstat, fstatat, Mode, SFlag};
use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

/// Most links one path may pass through (the kernel's own limit).
const MAX_LINKS: usize = 40;

fn refused(why: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::PermissionDenied, why)
}

/// Whether `who` may add, remove or rename entries of the directory `dir` (its write bit for
/// `who`, and no sticky bit, which limits that to one's own entries).
fn may_change_entries(dir: &nix::sys::stat::FileStat, who: &Identity) -> bool {
    let mode = dir.st_mode;
    if mode & libc::S_ISVTX != 0 && dir.st_uid != who.uid {
        return false;
    }
    if dir.st_uid == who.uid {
        return mode & 0o200 != 0;
    }
    if who.gid == dir.st_gid || who.groups.contains(&dir.st_gid) {
        return mode & 0o020 != 0;
    }
    mode & 0o002 != 0
}

fn open_dir(at: &OwnedFd, name: &OsStr) -> nix::Result<OwnedFd> {
    nix::fcntl::openat(
        at,
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
}

/// The directory `dir` (absolute), opened by descriptor from `/`, made (0755, root's) where
/// missing, with the links on the way followed only when `who` could not have planted them.
pub fn open_parent(dir: &Path, who: &Identity) -> std::io::Result<OwnedFd> {
    let root = nix::fcntl::open(
        "/",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let mut at = open_dir(&root, OsStr::new("."))?;
    let mut parts: VecDeque<OsString> = VecDeque::new();
    let push_all = |parts: &mut VecDeque<OsString>, path: &Path, front: bool| {
        let names: Vec<OsString> = path
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_os_string()),
                Component::ParentDir => Some(OsString::from("..")),
                _ => None,
            })
            .collect();
        if front {
            for n in names.into_iter().rev() {
                parts.push_front(n);
            }
        } else {
            parts.extend(names);
        }
    };
    push_all(&mut parts, dir, false);
    let mut links = 0;
    // Where the walk is, for messages.
    let mut here = PathBuf::from("/");
    while let Some(name) = parts.pop_front() {
        if name == ".." {
            at = open_dir(&at, &name)?;
            here.pop();
            continue;
        }
        let next = here.join(&name);
        match fstatat(&at, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK => {
                if who.uid != 0 {
                    let parent = fstat(&at)?;
                    if st.st_uid != 0 || may_change_entries(&parent, who) {
                        return Err(refused(format!(
                            "{} is a link the service's user (uid {}) could have planted: refused",
                            next.display(),
                            who.uid
                        )));
                    }
                }
                links += 1;
                if links > MAX_LINKS {
                    return Err(refused(format!("{}: too many links", dir.display())));
                }
                let target = PathBuf::from(nix::fcntl::readlinkat(&at, name.as_os_str())?);
                if target.is_absolute() {
                    at = open_dir(&root, OsStr::new("."))?;
                    here = PathBuf::from("/");
                }
                push_all(&mut parts, &target, true);
            }
            Ok(st) if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR => {
                at = open_dir(&at, &name)?;
                here = next;
            }
            Ok(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::NotADirectory,
                    format!("{} is not a directory", next.display()),
                ))
            }
            Err(nix::Error::ENOENT) => {
                match nix::sys::stat::mkdirat(
                    &at,
                    name.as_os_str(),
                    Mode::from_bits_truncate(0o755),
                ) {
                    Ok(()) | Err(nix::Error::EEXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                at = open_dir(&at, &name)?;
                here = next;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(at)
}

/// Writes one of a service's files at `path` (absolute), owned by `owner`, with its mode:
/// into the parent's descriptor ([`open_parent`]) by the broker's atomic replacement
/// ([`broker::token_file::replace_in`]: a fresh file, its owner and mode set on the open
/// file, renamed over whatever was there, so a link there is replaced, never written
/// through).
pub fn write_file(path: &Path, file: &ServiceFile, owner: &Identity) -> std::io::Result<()> {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} names no file", path.display()),
        ));
    };
    let dir = open_parent(parent, owner)?;
    broker::token_file::replace_in(
        dir.as_fd(),
        parent,
        name,
        &file.contents,
        (owner.uid, owner.gid, file.mode),
    )
    .map_err(std::io::Error::other)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> ServiceFile {
        ServiceFile {
            path: PathBuf::new(),
            contents: text.as_bytes().to_vec(),
            mode: 0o640,
            secret: false,
        }
    }

    fn user() -> Identity {
        Identity {
            uid: 65534,
            gid: 65534,
            groups: vec![65534],
            home: "/".into(),
        }
    }

    #[test]
    fn a_link_the_user_planted_in_a_parent_is_refused_and_nothing_is_written_through_it() {
        use std::os::unix::fs::MetadataExt;
        let tmp = tempfile::tempdir().expect("tempdir");
        let home = tmp.path().join("home");
        let target = tmp.path().join("target");
        std::fs::create_dir_all(&home).expect("mkdir");
        std::fs::create_dir_all(&target).expect("mkdir");
        // The user's own directory: it may replace `conf` there.
        std::os::unix::fs::chown(&home, Some(65534), Some(65534)).expect("chown");
        let path = home.join("conf/app.conf");
        write_file(&path, &file("one"), &user()).expect("first write");
        let meta = std::fs::metadata(&path).expect("written");
        assert_eq!((meta.uid(), meta.mode() & 0o7777), (65534, 0o640));
        // The user swaps `conf` for a link to a directory of root's (here as root, with the
        // link's owner set to the user's, as the user itself would make it).
        std::fs::remove_dir_all(home.join("conf")).expect("rm");
        std::os::unix::fs::symlink(&target, home.join("conf")).expect("link");
        std::os::unix::fs::lchown(home.join("conf"), Some(65534), Some(65534)).expect("lchown");
        let err = write_file(&path, &file("two"), &user()).expect_err("refused");
        assert!(err.to_string().contains("could have planted"), "{err}");
        assert_eq!(std::fs::read_dir(&target).expect("target").count(), 0);
        // A root-owned link in a directory the user cannot change is followed (/var/run).
        let fixed = tmp.path().join("fixed");
        std::fs::create_dir(&fixed).expect("mkdir");
        std::os::unix::fs::symlink(&target, fixed.join("run")).expect("link");
        write_file(&fixed.join("run/app.conf"), &file("three"), &user())
            .expect("through root's link");
        assert_eq!(
            std::fs::read_to_string(target.join("app.conf")).expect("read"),
            "three"
        );
        // The file itself being a link: replaced, not written through.
        std::os::unix::fs::symlink(tmp.path().join("elsewhere"), home.join("direct"))
            .expect("link");
        write_file(&home.join("direct"), &file("four"), &user()).expect("write");
        assert!(!tmp.path().join("elsewhere").exists());
        assert_eq!(
            std::fs::read_to_string(home.join("direct")).expect("read"),
            "four"
        );
    }
}
