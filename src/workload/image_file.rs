//! Reading a file of the workload's image (`/etc/passwd`, `/etc/group`, `~/.aws/config`):
//! untrusted input that PID 1 must never block on or swallow whole. The file is opened
//! without blocking (a FIFO in its place would otherwise wait for a writer forever), must be
//! a regular file (not a FIFO, a device such as `/dev/zero`, or a directory), and is read up
//! to [`MAX_IMAGE_FILE_BYTES`].

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// Largest image file read: 4 MiB (a passwd file with tens of thousands of users).
pub const MAX_IMAGE_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Why an image file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ImageFileError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("is not a regular file")]
    NotRegular,
    #[error("is larger than {MAX_IMAGE_FILE_BYTES} bytes")]
    TooLarge,
}

/// The file's bytes; `Ok(None)` when it does not exist.
pub fn read(path: &Path) -> Result<Option<Vec<u8>>, ImageFileError> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
    {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    read_open(file)
}

/// The bytes of `relative` in the image whose root is `root`, resolved as the kernel would
/// with `root` as `/` (`openat2` with `RESOLVE_IN_ROOT`): an image's `/etc/passwd` that is an
/// absolute link (`/etc/passwd -> /run/secrets/x`), or a link in a parent, names a file of
/// the image, never one of the VM. `Ok(None)` when it does not exist.
pub fn read_in_root(root: &Path, relative: &Path) -> Result<Option<Vec<u8>>, ImageFileError> {
    use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
    let dir = nix::fcntl::open(
        root,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(std::io::Error::from)?;
    let how = OpenHow::new()
        .flags(OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    match nix::fcntl::openat2(&dir, relative, how) {
        Ok(fd) => read_open(std::fs::File::from(fd)),
        Err(nix::Error::ENOENT) => Ok(None),
        // No openat2 (a kernel before 5.6, or a seccomp filter that answers ENOSYS, as some
        // container runtimes' do): for the machine's own root, resolving inside the root is
        // what a plain open does, so that is safe. An image's root is refused: there only
        // openat2 keeps a link from naming a file outside the image.
        Err(nix::Error::ENOSYS) if root == Path::new("/") => read(&root.join(relative)),
        Err(err) => Err(std::io::Error::from(err).into()),
    }
}

fn read_open(file: std::fs::File) -> Result<Option<Vec<u8>>, ImageFileError> {
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(ImageFileError::NotRegular);
    }
    if meta.len() > MAX_IMAGE_FILE_BYTES {
        return Err(ImageFileError::TooLarge);
    }
    // Sized from the fstat: one read for the file and one for its end (std's growth from
    // nothing reads a 1 KiB passwd in seven).
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0).saturating_add(1));
    // The size can grow between the fstat and the read: the cap holds either way.
    file.take(MAX_IMAGE_FILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_IMAGE_FILE_BYTES {
        return Err(ImageFileError::TooLarge);
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An image whose /etc/passwd is an absolute link, or whose /etc is a link, reads the
    /// image's own files: before, PID 1 followed the link to the VM's file.
    #[test]
    fn links_in_an_image_resolve_inside_the_image() {
        let vm = tempfile::tempdir().expect("tempdir");
        let vm_file = vm.path().join("vm-passwd");
        std::fs::write(&vm_file, "the VM's\n").expect("write");
        let image = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(image.path().join("etc")).expect("mkdir");
        std::os::unix::fs::symlink(&vm_file, image.path().join("etc/passwd")).expect("link");
        // Inside the image the same absolute path names the image's own file.
        let inside = image
            .path()
            .join(vm_file.strip_prefix("/").expect("absolute"));
        std::fs::create_dir_all(inside.parent().expect("parent")).expect("mkdir");
        std::fs::write(&inside, "the image's\n").expect("write");
        assert_eq!(
            read_in_root(image.path(), Path::new("etc/passwd"))
                .expect("read")
                .as_deref(),
            Some(&b"the image's\n"[..])
        );
        // A climbing link stays in the image too; a link to nothing is a missing file.
        std::os::unix::fs::symlink("../../../../../../../..", image.path().join("up"))
            .expect("link");
        let climbed = Path::new("up").join(vm_file.strip_prefix("/").expect("absolute"));
        assert_eq!(
            read_in_root(image.path(), &climbed)
                .expect("read")
                .as_deref(),
            Some(&b"the image's\n"[..])
        );
        std::fs::remove_file(&inside).expect("rm");
        assert!(read_in_root(image.path(), Path::new("etc/passwd"))
            .expect("dangling")
            .is_none());
    }

    #[test]
    fn refuses_fifos_devices_directories_and_huge_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644))
            .expect("mkfifo");
        // Returns at once (no writer ever comes), refused.
        assert!(matches!(read(&fifo), Err(ImageFileError::NotRegular)));
        assert!(matches!(
            read(Path::new("/dev/zero")),
            Err(ImageFileError::NotRegular)
        ));
        assert!(matches!(read(dir.path()), Err(ImageFileError::NotRegular)));
        let big = dir.path().join("big");
        std::fs::write(&big, vec![b'x'; MAX_IMAGE_FILE_BYTES as usize + 1]).expect("write");
        assert!(matches!(read(&big), Err(ImageFileError::TooLarge)));
        let ok = dir.path().join("ok");
        std::fs::write(&ok, b"root:x:0:0::/root:/bin/sh\n").expect("write");
        assert_eq!(
            read(&ok).expect("read").as_deref(),
            Some(&b"root:x:0:0::/root:/bin/sh\n"[..])
        );
        assert!(read(&dir.path().join("missing"))
            .expect("missing")
            .is_none());
    }
}
