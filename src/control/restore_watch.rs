//! Restores the host does not announce: roost notices them where the kernel lets it, and
//! does what needs no host data ([`super::snapshot::restore_without_the_host`]). One source
//! per machine, so one restore is acted on once:
//!
//! - VMClock's `vm_generation_counter` (`/dev/vmclock0`, when the hypervisor keeps the
//!   counter): it changes on each load from a snapshot, and not on a live migration. A device
//!   that notifies wakes roost through `poll(2)`; one that does not is read every
//!   [`VMCLOCK_READ_EVERY`].
//! - Otherwise the kernel's log (`/dev/kmsg`): a kernel with a VMGenID driver writes
//!   `random: crng reseeded due to virtual machine fork` within milliseconds of a restore.
//!
//! - And, beside either, every vsock connection reset at once ([`super::vsock_resets`]).
//!
//! None is a critical task: a source that cannot be read costs only this, with a warning.

use super::snapshot::restore_without_the_host;
use super::state::ControlState;
use crate::snapshot::{kernel, vmclock, Noticed};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often a VMClock device that does not notify is read.
pub const VMCLOCK_READ_EVERY: Duration = Duration::from_secs(1);

/// Watches `vmclock` when it is a VMClock device with a generation counter, else `kmsg`.
pub fn watch_restores(state: ControlState, kmsg: PathBuf, vmclock: PathBuf) {
    tokio::spawn(async move {
        let device = open_vmclock(&vmclock);
        let watched = match device {
            Ok((file, first)) => {
                tracing::info!(
                    "restores are noticed through {} (generation {}, {})",
                    vmclock.display(),
                    first.vm_generation,
                    if first.notifies {
                        "notified"
                    } else {
                        "read every second"
                    }
                );
                watch_vmclock(&state, &file, first).await
            }
            Err(why) => {
                if vmclock.exists() {
                    tracing::info!("{} is not used: {why}", vmclock.display());
                }
                watch_kmsg(&state, &kmsg).await
            }
        };
        if let Err(e) = watched {
            tracing::warn!("cannot watch for restores the host does not announce: {e}");
        }
    });
}

/// Only the kernel's log (container mode's test stand-in has no VMClock).
pub fn watch_kernel_log(state: ControlState, kmsg: PathBuf) {
    tokio::spawn(async move {
        if let Err(e) = watch_kmsg(&state, &kmsg).await {
            tracing::warn!(
                "cannot watch {} for restores the host does not announce: {e}",
                kmsg.display()
            );
        }
    });
}

fn read_vmclock(file: &std::fs::File) -> std::io::Result<Result<vmclock::Reading, String>> {
    let mut page = [0u8; vmclock::ABI_LEN];
    let n = file.read_at(&mut page, 0)?;
    Ok(vmclock::read_abi(page.get(..n).unwrap_or_default()).map_err(|e| e.to_string()))
}

fn open_vmclock(path: &Path) -> Result<(std::fs::File, vmclock::Reading), String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let first = read_vmclock(&file).map_err(|e| e.to_string())??;
    Ok((file, first))
}

async fn watch_vmclock(
    state: &ControlState,
    file: &std::fs::File,
    first: vmclock::Reading,
) -> std::io::Result<()> {
    let mut seen = first.vm_generation;
    // The device wakes poll(2) after each update until it is read again.
    let notified = if first.notifies {
        let fd = file.try_clone()?;
        // SAFETY: `fd` is a descriptor of our own (a dup), owned by the AsyncFd until it
        // drops it; nothing else closes or reuses it.
        let registered = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
        };
        match registered {
            Ok(fd) => Some(fd),
            Err(e) => {
                tracing::warn!("VMClock cannot be polled ({e}): it is read every second");
                None
            }
        }
    } else {
        None
    };
    loop {
        match &notified {
            Some(fd) => fd.readable().await?.clear_ready(),
            None => tokio::time::sleep(VMCLOCK_READ_EVERY).await,
        }
        match read_vmclock(file)? {
            Ok(now) if now.vm_generation != seen => {
                tracing::info!(
                    "VMClock's generation went from {seen} to {}: this VM was loaded from a snapshot",
                    now.vm_generation
                );
                seen = now.vm_generation;
                restore_without_the_host(state, Noticed::VmClock).await;
            }
            Ok(_) => {}
            // An update in progress: the next reading has it.
            Err(why) => tracing::debug!("VMClock reading skipped: {why}"),
        }
    }
}

async fn watch_kmsg(state: &ControlState, kmsg: &Path) -> std::io::Result<()> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(kmsg)?;
    // Only records from now on: the ones before are of this boot, not of a restore. (A FIFO
    // in the tests cannot seek, and has nothing before.)
    let _ = nix::unistd::lseek(&file, 0, nix::unistd::Whence::SeekEnd);
    // SAFETY: `file` is an open descriptor this AsyncFd owns from here until it drops it;
    // nothing else closes or reuses it.
    let fd = unsafe { tokio::io::unix::AsyncFd::register(file) }?;
    // One record per read on /dev/kmsg; a record is at most 8 KiB there.
    let mut buf = vec![0u8; 8192];
    loop {
        let mut ready = fd.readable().await?;
        match ready.try_io(|f| f.get_ref().read(&mut buf)) {
            Ok(Ok(0)) => {
                tracing::debug!("{} ended: no more restores are noticed", kmsg.display());
                return Ok(());
            }
            Ok(Ok(n)) => {
                let text = String::from_utf8_lossy(&buf[..n]);
                if text.lines().any(kernel::is_vm_fork_record) {
                    restore_without_the_host(state, Noticed::KernelLog).await;
                }
            }
            // EPIPE: records were overwritten before they were read; go on from the next.
            Ok(Err(e)) if e.raw_os_error() == Some(libc::EPIPE) => {}
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Ok(Err(e)) => return Err(e),
            Err(_would_block) => {}
        }
    }
}
