//! Layers applied into the root being built: every path resolved inside it by the kernel,
//! whiteouts first, directories removed by descriptor, xattrs kept where they are safe; then
//! the root made into an ext4 disk when asked.

use super::*;

/// A relative path without `.` and leading `/`; a `..` anywhere is refused.
pub(super) fn clean(path: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir | Component::Prefix(_) => {
                return Err(format!(
                    "{}: a path with '..' would escape the root",
                    path.display()
                ))
            }
        }
    }
    Ok(out)
}

pub fn open_root(dir: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(
        dir,
        OFlag::O_DIRECTORY | OFlag::O_PATH | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| format!("{}: {e}", dir.display()))
}

/// Opens `path` inside `root` as the kernel resolves it with `root` as `/`.
fn open_in(root: &OwnedFd, path: &Path, flags: OFlag) -> nix::Result<OwnedFd> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    let path = if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    };
    openat2(root, path, how)
}

/// The directory `dir` inside `root`, made (0755, root's) where missing. A link on the way
/// is followed as the kernel would with `root` as `/` (a missing target is made inside the
/// root, as umoci's secure join does), so a layer that writes through a dangling link still
/// lands inside.
fn dir_in(root: &OwnedFd, dir: &Path) -> Result<OwnedFd> {
    resolve_dir(root, dir, 0).map(|(fd, _)| fd)
}

/// Most links one path may pass through (the kernel's own limit).
const MAX_LINKS: usize = 40;

fn resolve_dir(root: &OwnedFd, dir: &Path, links: usize) -> Result<(OwnedFd, PathBuf)> {
    let mut at = open_in(root, Path::new(""), OFlag::O_DIRECTORY | OFlag::O_PATH)
        .map_err(|e| format!("the root: {e}"))?;
    // Where `at` is, inside the root, with no link in it.
    let mut resolved = PathBuf::new();
    for part in dir.components() {
        let Component::Normal(name) = part else {
            continue;
        };
        let here = resolved.join(name);
        let err = |e: nix::Error| format!("{}: {e}", here.display());
        match nix::sys::stat::fstatat(&at, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
                if kind == SFlag::S_IFLNK {
                    if links >= MAX_LINKS {
                        return Err(format!("{}: too many links", dir.display()));
                    }
                    let target = nix::fcntl::readlinkat(&at, name).map_err(err)?;
                    let target = Path::new(&target);
                    let next = if target.is_absolute() {
                        target.to_path_buf()
                    } else {
                        resolved.join(target)
                    };
                    let (fd, path) = resolve_dir(root, &lexical(&next), links + 1)?;
                    at = fd;
                    resolved = path;
                    continue;
                }
                if kind != SFlag::S_IFDIR {
                    return Err(err(nix::Error::ENOTDIR));
                }
            }
            Err(nix::Error::ENOENT) => {
                mkdirat(&at, name, Mode::from_bits_truncate(0o755)).map_err(err)?;
            }
            Err(e) => return Err(err(e)),
        }
        at = open_in(root, &here, OFlag::O_DIRECTORY | OFlag::O_PATH).map_err(err)?;
        resolved = here;
    }
    Ok((at, resolved))
}

/// `path` with `.` dropped and `..` taken lexically, never above the root (right for a path
/// whose every component is a real directory, which is what [`resolve_dir`] keeps).
fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// Whether `name` names an entry of the directory it is looked up in: not empty, not `.`
/// or `..`, no `/`. A whiteout or removal of anything else would reach another directory.
fn is_entry_name(name: &std::ffi::OsStr) -> bool {
    let bytes = name.as_encoded_bytes();
    !bytes.is_empty() && bytes != b"." && bytes != b".." && !bytes.contains(&b'/')
}

/// Removes `name` (of any type, a directory with all it holds) in `parent`, never
/// following a link and never walking a path again: each directory below is opened from its
/// parent's descriptor (`O_NOFOLLOW | O_DIRECTORY`) and emptied with `unlinkat` on its own
/// descriptor. The walk is a loop, not a recursion, so a deep tree cannot exhaust the stack.
fn remove(parent: &OwnedFd, name: &std::ffi::OsStr) -> Result<()> {
    let fail = |e: nix::Error| format!("{}: {e}", name.to_string_lossy());
    if !is_entry_name(name) {
        return Err(format!(
            "{:?}: not a name of an entry, refused",
            name.to_string_lossy()
        ));
    }
    match unlinkat(parent, name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(nix::Error::ENOENT) => return Ok(()),
        Err(nix::Error::EISDIR) => {}
        Err(e) => return Err(fail(e)),
    }
    // Each level: its descriptor, the names still to look at, and its name in the level
    // above (the top's parent is `parent`).
    struct Level {
        dir: OwnedFd,
        names: Vec<std::ffi::OsString>,
        name: std::ffi::OsString,
    }
    let open_level = |at: &OwnedFd, name: &std::ffi::OsStr| -> Result<Level> {
        let dir = nix::fcntl::openat(
            at,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(fail)?;
        let names = entry_names(&dir).map_err(fail)?;
        Ok(Level {
            dir,
            names,
            name: name.to_os_string(),
        })
    };
    let mut stack = vec![open_level(parent, name)?];
    while let Some(top) = stack.last_mut() {
        match top.names.pop() {
            Some(child) => {
                match unlinkat(&top.dir, child.as_os_str(), UnlinkatFlags::NoRemoveDir) {
                    Ok(()) | Err(nix::Error::ENOENT) => {}
                    Err(nix::Error::EISDIR) => {
                        let level = open_level(&top.dir, &child)?;
                        stack.push(level);
                    }
                    Err(e) => return Err(fail(e)),
                }
            }
            None => {
                let done = stack.pop();
                let above = stack.last().map_or(parent, |level| &level.dir);
                if let Some(done) = done {
                    drop(done.dir);
                    match unlinkat(above, done.name.as_os_str(), UnlinkatFlags::RemoveDir) {
                        Ok(()) | Err(nix::Error::ENOENT) => {}
                        Err(e) => return Err(fail(e)),
                    }
                }
            }
        }
    }
    Ok(())
}

/// The names in the directory `dir` (without `.` and `..`), read through a duplicate of its
/// descriptor.
fn entry_names(dir: &OwnedFd) -> nix::Result<Vec<std::ffi::OsString>> {
    use std::os::unix::ffi::OsStrExt;
    let dup = dir
        .as_fd()
        .try_clone_to_owned()
        .map_err(|_| nix::Error::EMFILE)?;
    let mut listing = nix::dir::Dir::from_fd(dup)?;
    let mut names = Vec::new();
    for entry in listing.iter() {
        let entry = entry?;
        let name = std::ffi::OsStr::from_bytes(entry.file_name().to_bytes());
        if is_entry_name(name) {
            names.push(name.to_os_string());
        }
    }
    Ok(names)
}

/// Applies one layer (a tar, gzip-compressed or not) to `root`: its whiteouts, then its
/// entries, each pass reading the one open file from its start.
pub fn apply_layer(root: &OwnedFd, layer: &Layer, applied: &mut Applied) -> Result<()> {
    let name = &layer.name;
    let open = || -> Result<Box<dyn Read + '_>> {
        let mut file = &layer.file;
        file.rewind()
            .map_err(|e| format!("{}: {e}", name.display()))?;
        let mut magic = [0u8; 4];
        let n = file.read(&mut magic).map_err(|e| e.to_string())?;
        file.rewind()
            .map_err(|e| format!("{}: {e}", name.display()))?;
        match magic[..n] {
            [0x1f, 0x8b, ..] => Ok(Box::new(GzDecoder::new(file))),
            [0x28, 0xb5, 0x2f, 0xfd] => Err(format!(
                "{}: a zstd layer, which roostctl does not read (convert it with skopeo --dest-compress-format gzip)",
                name.display()
            )),
            _ => Ok(Box::new(file)),
        }
    };
    whiteouts(root, open()?, applied).map_err(|e| format!("{}: {e}", name.display()))?;
    apply_tar(root, open()?, applied).map_err(|e| format!("{}: {e}", name.display()))
}

/// A layer's whiteouts: `.wh.NAME` removes NAME, `.wh..wh..opq` empties its directory.
fn whiteouts(root: &OwnedFd, reader: impl Read, applied: &mut Applied) -> Result<()> {
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let entry = entry.map_err(|e| e.to_string())?;
        let path = clean(&entry.path().map_err(|e| e.to_string())?)?;
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(hidden) = name.strip_prefix(".wh.") else {
            continue;
        };
        // `.wh.`, `.wh..` and `.wh...` hide no entry of this directory: `..` would be the
        // directory around it (and everything beside it).
        if !is_entry_name(std::ffi::OsStr::new(hidden)) {
            return Err(format!(
                "{}: a whiteout of {hidden:?}, which names no entry, refused",
                path.display()
            ));
        }
        applied.whiteouts += 1;
        let parent = path.parent().unwrap_or(Path::new(""));
        let Ok(dir) = open_in(root, parent, OFlag::O_DIRECTORY | OFlag::O_RDONLY) else {
            continue; // Nothing below to hide.
        };
        if hidden == ".wh..opq" {
            let listing = entry_names(&dir).map_err(|e| format!("{}: {e}", parent.display()))?;
            for child in listing {
                remove(&dir, &child)?;
            }
        } else {
            remove(&dir, std::ffi::OsStr::new(hidden))?;
        }
    }
    Ok(())
}

/// Extracts a tar's entries (whiteouts skipped) inside `root`.
pub(super) fn apply_tar(root: &OwnedFd, reader: impl Read, applied: &mut Applied) -> Result<()> {
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let path = clean(&entry.path().map_err(|e| e.to_string())?)?;
        let Some(name) = path.file_name().map(|n| n.to_os_string()) else {
            continue; // The root itself.
        };
        if name.to_string_lossy().starts_with(".wh.") {
            continue;
        }
        let parent = dir_in(root, path.parent().unwrap_or(Path::new("")))?;
        let xattrs = kept_xattrs(&mut entry)?;
        let header = entry.header();
        let mtime = header.mtime().unwrap_or(0);
        let mode = Mode::from_bits_truncate(header.mode().map_err(|e| e.to_string())? & 0o7777);
        let uid = Uid::from_raw(header.uid().map_err(|e| e.to_string())? as u32);
        let gid = Gid::from_raw(header.gid().map_err(|e| e.to_string())? as u32);
        let kind = header.entry_type();
        let at = |e: nix::Error| format!("{}: {e}", path.display());
        if kind.is_dir() {
            match open_in(
                &parent,
                Path::new(&name),
                OFlag::O_DIRECTORY | OFlag::O_PATH,
            ) {
                Ok(_) => {}
                Err(_) => {
                    remove(&parent, &name)?;
                    mkdirat(&parent, name.as_os_str(), mode).map_err(at)?;
                }
            }
        } else {
            remove(&parent, &name)?;
            if kind.is_file() || kind == tar::EntryType::Continuous {
                let fd = nix::fcntl::openat(
                    &parent,
                    name.as_os_str(),
                    OFlag::O_WRONLY
                        | OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(at)?;
                let mut file = std::fs::File::from(fd);
                std::io::copy(&mut entry, &mut file)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            } else if kind.is_symlink() {
                let target = entry
                    .link_name()
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("{}: a link with no target", path.display()))?;
                symlinkat(target.as_ref(), &parent, name.as_os_str()).map_err(at)?;
            } else if kind.is_hard_link() {
                let target = entry
                    .link_name()
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| format!("{}: a link with no target", path.display()))?;
                let target = clean(&target)?;
                let target_dir = dir_in(root, target.parent().unwrap_or(Path::new("")))?;
                let target_name = target
                    .file_name()
                    .ok_or_else(|| format!("{}: a link to the root", path.display()))?;
                linkat(
                    &target_dir,
                    target_name,
                    &parent,
                    name.as_os_str(),
                    AtFlags::empty(),
                )
                .map_err(at)?;
                applied.entries += 1;
                continue;
            } else if kind.is_fifo() {
                mknodat(&parent, name.as_os_str(), SFlag::S_IFIFO, mode, 0).map_err(at)?;
            } else if kind.is_character_special() || kind.is_block_special() {
                applied.devices_skipped += 1;
                continue;
            } else {
                continue; // pax and GNU headers are the tar reader's; nothing else is a file.
            }
        }
        // Owner first: a chown clears the set-id bits the mode then puts back.
        fchownat(
            &parent,
            name.as_os_str(),
            Some(uid),
            Some(gid),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(at)?;
        // By name, never through a link: what is there is what was just made, or a
        // directory a lower layer made (a link to one keeps its own mode).
        let stat = nix::sys::stat::fstatat(&parent, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(at)?;
        if SFlag::from_bits_truncate(stat.st_mode) & SFlag::S_IFMT != SFlag::S_IFLNK {
            nix::sys::stat::fchmodat(
                &parent,
                name.as_os_str(),
                mode,
                nix::sys::stat::FchmodatFlags::FollowSymlink,
            )
            .map_err(at)?;
        }
        // After the chown, which clears a file's capabilities.
        if kind.is_file() && !xattrs.is_empty() {
            set_xattrs(&parent, &name, &xattrs).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        // A directory's time changes with every entry made in it later; a file's is its own.
        if !kind.is_dir() {
            let t = nix::sys::time::TimeSpec::new(i64::try_from(mtime).unwrap_or(0), 0);
            nix::sys::stat::utimensat(
                &parent,
                name.as_os_str(),
                &t,
                &t,
                nix::sys::stat::UtimensatFlags::NoFollowSymlink,
            )
            .map_err(at)?;
        }
        applied.entries += 1;
    }
    Ok(())
}

/// The extended attributes of an entry that roostctl keeps: file capabilities (a `ping` that
/// needs no setuid bit) and `user.*`. Others (`security.selinux`, `trusted.*`) belong to the
/// host that made the image.
fn kept_xattrs<R: Read>(
    entry: &mut tar::Entry<'_, R>,
) -> Result<Vec<(std::ffi::CString, Vec<u8>)>> {
    let mut kept = Vec::new();
    let Some(extensions) = entry.pax_extensions().map_err(|e| e.to_string())? else {
        return Ok(kept);
    };
    for extension in extensions {
        let extension = extension.map_err(|e| e.to_string())?;
        let Some(name) = extension
            .key_bytes()
            .strip_prefix(b"SCHILY.xattr.".as_slice())
        else {
            continue;
        };
        if name == b"security.capability" || name.starts_with(b"user.") {
            if let Ok(name) = std::ffi::CString::new(name) {
                kept.push((name, extension.value_bytes().to_vec()));
            }
        }
    }
    Ok(kept)
}

/// Sets `xattrs` on the regular file `name` in `parent`, through a descriptor of it.
fn set_xattrs(
    parent: &OwnedFd,
    name: &std::ffi::OsStr,
    xattrs: &[(std::ffi::CString, Vec<u8>)],
) -> Result<()> {
    let fd = nix::fcntl::openat(
        parent,
        name,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| e.to_string())?;
    for (key, value) in xattrs {
        // SAFETY: fd is an open descriptor; key is NUL-terminated; value is a live slice
        // whose length is passed with it.
        let rc = unsafe {
            libc::fsetxattr(
                fd.as_raw_fd(),
                key.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        if rc != 0 {
            return Err(format!(
                "setting {}: {}",
                key.to_string_lossy(),
                std::io::Error::last_os_error()
            ));
        }
    }
    Ok(())
}

/// Applies every layer of `image` to the empty directory `dir`.
pub fn unpack(image: &Image, dir: &Path) -> Result<Applied> {
    let root = open_root(dir)?;
    let mut applied = Applied::default();
    for layer in &image.layers {
        apply_layer(&root, layer, &mut applied)?;
    }
    Ok(applied)
}

/// `mke2fs -t ext4 -d DIR FILE SIZE`: an ext4 disk holding `dir`, its size the tree's plus
/// room for the file system's own structures.
pub fn make_ext4(dir: &Path, out: &Path) -> Result<()> {
    let bytes = tree_size(dir);
    let mib = (bytes / (1 << 20)) * 13 / 10 + 16;
    let status = std::process::Command::new("mke2fs")
        .stdout(std::process::Stdio::null())
        .args(["-q", "-F", "-t", "ext4", "-E", "root_owner=0:0", "-d"])
        .arg(dir)
        .arg(out)
        .arg(format!("{mib}M"))
        .status()
        .map_err(|e| format!("cannot run mke2fs (apt-get install e2fsprogs): {e}"))?;
    if !status.success() {
        return Err(format!("mke2fs failed ({status}) for {}", out.display()));
    }
    Ok(())
}

fn tree_size(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.metadata() else { continue };
            total += meta.blocks() * 512 + 4096;
            if meta.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    total
}
