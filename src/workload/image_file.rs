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
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(ImageFileError::NotRegular);
    }
    if meta.len() > MAX_IMAGE_FILE_BYTES {
        return Err(ImageFileError::TooLarge);
    }
    let mut bytes = Vec::new();
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
