//! What a restore asks of the kernel: fresh randomness (credit the host's bytes and force the
//! CRNG to reseed, so two clones of one snapshot stop returning the same `getrandom()` output)
//! and the wall clock stepped to the host's time (a restored VM's clocks continue from their
//! saved values).

use std::os::fd::AsRawFd;

/// `RNDADDENTROPY` (`_IOW('R', 0x03, int[2])`): mixes bytes in and credits their entropy.
const RNDADDENTROPY: libc::c_ulong = 0x4008_5203;
/// `RNDRESEEDCRNG` (`_IO('R', 0x07)`): reseeds the CRNG from the pool now.
const RNDRESEEDCRNG: libc::c_ulong = 0x5207;

/// Credits `bytes` (from the host's random source) to the kernel's pool, eight bits each, and
/// forces a CRNG reseed. Needs `CAP_SYS_ADMIN`.
pub fn reseed(bytes: &[u8]) -> std::io::Result<()> {
    let urandom = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/urandom")?;
    // struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
    let len = i32::try_from(bytes.len())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    let mut info = Vec::with_capacity(8 + bytes.len());
    info.extend_from_slice(&len.saturating_mul(8).to_ne_bytes());
    info.extend_from_slice(&len.to_ne_bytes());
    info.extend_from_slice(bytes);
    // SAFETY: `info` is a valid rand_pool_info of `8 + buf_size` bytes that outlives the
    // call; the kernel only reads it.
    let added = unsafe { libc::ioctl(urandom.as_raw_fd(), RNDADDENTROPY as _, info.as_ptr()) };
    for byte in info.iter_mut() {
        // SAFETY: an exclusive pointer to a byte of our own buffer; volatile so the
        // zeroing of the copied entropy is not dropped as a dead store.
        unsafe { std::ptr::write_volatile(byte, 0) };
    }
    if added != 0 {
        return Err(std::io::Error::last_os_error());
    }
    force_reseed(&urandom)
}

/// Forces a CRNG reseed from what the kernel's pool holds, with no bytes from the host (a
/// restore noticed without the host's call). Needs `CAP_SYS_ADMIN`.
pub fn reseed_from_the_kernel() -> std::io::Result<()> {
    force_reseed(
        &std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/urandom")?,
    )
}

fn force_reseed(urandom: &std::fs::File) -> std::io::Result<()> {
    // SAFETY: an ioctl without an argument on a descriptor we own.
    if unsafe { libc::ioctl(urandom.as_raw_fd(), RNDRESEEDCRNG as _) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Whether a `/dev/kmsg` record (`PRIO,SEQ,TIME,FLAGS;TEXT`) is the kernel's VMGenID driver
/// telling of a VM fork: the VM was restored from a snapshot (Linux 5.20+ with a VMGenID
/// device; no uevent reaches userspace, so this line is what there is).
pub fn is_vm_fork_record(record: &str) -> bool {
    let text = record.split_once(';').map_or(record, |(_, text)| text);
    text.trim_end()
        .ends_with("crng reseeded due to virtual machine fork")
}

/// The wall clock, as the restore reads and steps it (a fake one in tests: stepping the
/// machine's own clock is not a test's to do).
pub trait WallClock {
    /// `CLOCK_REALTIME` in ns since 1970.
    fn now_unix_ns(&self) -> i128;
    fn set_unix_ns(&mut self, ns: i128) -> std::io::Result<()>;
}

/// The kernel's `CLOCK_REALTIME`.
#[derive(Debug)]
pub struct KernelClock;

impl WallClock for KernelClock {
    fn now_unix_ns(&self) -> i128 {
        match nix::time::clock_gettime(nix::time::ClockId::CLOCK_REALTIME) {
            Ok(t) => i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec()),
            Err(_) => 0,
        }
    }

    fn set_unix_ns(&mut self, ns: i128) -> std::io::Result<()> {
        let secs = i64::try_from(ns.div_euclid(1_000_000_000))
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        let nanos = i64::try_from(ns.rem_euclid(1_000_000_000)).unwrap_or(0);
        let spec = nix::sys::time::TimeSpec::new(secs, nanos);
        nix::time::clock_settime(nix::time::ClockId::CLOCK_REALTIME, spec)
            .map_err(std::io::Error::from)
    }
}

/// Steps `clock` to the host's `host_unix_ns` plus the request's age since it arrived, and
/// returns the step in ms (positive: the clock was behind).
pub fn step_clock(
    clock: &mut dyn WallClock,
    host_unix_ns: u64,
    age: std::time::Duration,
) -> std::io::Result<f64> {
    let target = i128::from(host_unix_ns) + i128::try_from(age.as_nanos()).unwrap_or(0);
    let before = clock.now_unix_ns();
    clock.set_unix_ns(target)?;
    Ok((target - before) as f64 / 1e6)
}

/// When this machine booted, by the wall clock: now less `CLOCK_BOOTTIME` (a host time
/// before it cannot be now).
pub fn boot_unix_ns(clock: &dyn WallClock) -> u64 {
    let up = nix::time::clock_gettime(nix::time::ClockId::CLOCK_BOOTTIME)
        .map(|t| i128::from(t.tv_sec()) * 1_000_000_000 + i128::from(t.tv_nsec()))
        .unwrap_or(0);
    u64::try_from((clock.now_unix_ns() - up).max(0)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    struct FakeClock(i128);

    impl WallClock for FakeClock {
        fn now_unix_ns(&self) -> i128 {
            self.0
        }
        fn set_unix_ns(&mut self, ns: i128) -> std::io::Result<()> {
            self.0 = ns;
            Ok(())
        }
    }

    #[test]
    fn the_clock_is_stepped_to_the_host_time_plus_the_request_age() {
        // A clock 16 s behind, as after a 16 s save.
        let host = 1_800_000_000_000_000_000u64;
        let mut clock = FakeClock(i128::from(host) - 16_000_000_000);
        let step = step_clock(&mut clock, host, Duration::from_millis(3)).expect("step");
        assert_eq!(clock.0, i128::from(host) + 3_000_000);
        assert!((step - 16_003.0).abs() < 1e-6, "{step}");
    }

    #[test]
    fn the_vm_fork_record_is_recognised() {
        assert!(is_vm_fork_record(
            "6,1234,5678901,-;random: crng reseeded due to virtual machine fork\n"
        ));
        assert!(is_vm_fork_record(
            "random: crng reseeded due to virtual machine fork"
        ));
        assert!(!is_vm_fork_record("6,1,2,-;random: crng init done"));
        assert!(!is_vm_fork_record(
            "6,1,2,-;echo crng reseeded due to virtual machine fork and more"
        ));
    }

    #[test]
    fn the_boot_time_is_before_now() {
        let boot = boot_unix_ns(&KernelClock);
        let now = KernelClock.now_unix_ns();
        assert!(boot > 0 && i128::from(boot) <= now);
    }

    #[test]
    fn host_entropy_is_credited_on_the_real_device() {
        // Root on these machines: the ioctls need CAP_SYS_ADMIN, and they only add to the
        // pool. A short count the kernel refuses is an error, not a silent success.
        let entropy: Vec<u8> = (0..32u8).collect();
        reseed(&entropy).expect("RNDADDENTROPY and RNDRESEEDCRNG on /dev/urandom");
    }
}
