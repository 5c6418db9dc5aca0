//! VMClock (`/dev/vmclock0`, Linux's `ptp_vmclock` driver; Firecracker 1.15 and later): a
//! page the hypervisor keeps up to date, whose `vm_generation_counter` changes each time the
//! VM is loaded from a snapshot (and not on a live migration). The layout is `struct
//! vmclock_abi` of the kernel's `include/uapi/linux/vmclock-abi.h`, little-endian; only the
//! fields roost reads are decoded here. Pure: the bytes come from a `pread` of the device.

/// Where the driver puts the first VMClock device.
pub const DEVICE: &str = "/dev/vmclock0";
/// `VMCLOCK_MAGIC`: "VCLK".
const MAGIC: u32 = 0x4b4c_4356;
/// `VMCLOCK_FLAG_VM_GEN_COUNTER_PRESENT`.
const FLAG_VM_GEN_COUNTER_PRESENT: u64 = 1 << 8;
/// `VMCLOCK_FLAG_NOTIFICATION_PRESENT`: the device wakes `poll(2)` on each update.
const FLAG_NOTIFICATION_PRESENT: u64 = 1 << 9;
/// The structure's bytes up to and with `vm_generation_counter` (its last field).
pub const ABI_LEN: usize = 112;
const SEQ_COUNT_AT: usize = 12;
const FLAGS_AT: usize = 24;
const VM_GENERATION_AT: usize = 104;

/// What one reading of the device says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    /// Changes to another value, never seen before, on each load from a snapshot.
    pub vm_generation: u64,
    /// The device wakes `poll(2)` on an update (else it must be read again from time to time).
    pub notifies: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VmClockError {
    #[error("{0} bytes, fewer than the {ABI_LEN} of vmclock_abi with its generation counter")]
    Short(usize),
    #[error("magic {0:#x} is not VMClock's")]
    Magic(u32),
    #[error("the hypervisor does not keep vm_generation_counter (no VM_GEN_COUNTER_PRESENT flag)")]
    NoGenerationCounter,
    #[error("read during an update (odd seq_count)")]
    Updating,
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

/// Decodes a reading of the device.
pub fn read_abi(bytes: &[u8]) -> Result<Reading, VmClockError> {
    let short = || VmClockError::Short(bytes.len());
    if bytes.len() < ABI_LEN {
        return Err(short());
    }
    let magic = u32_at(bytes, 0).ok_or_else(short)?;
    if magic != MAGIC {
        return Err(VmClockError::Magic(magic));
    }
    let flags = u64_at(bytes, FLAGS_AT).ok_or_else(short)?;
    if flags & FLAG_VM_GEN_COUNTER_PRESENT == 0 {
        return Err(VmClockError::NoGenerationCounter);
    }
    if u32_at(bytes, SEQ_COUNT_AT).ok_or_else(short)? % 2 == 1 {
        return Err(VmClockError::Updating);
    }
    Ok(Reading {
        vm_generation: u64_at(bytes, VM_GENERATION_AT).ok_or_else(short)?,
        notifies: flags & FLAG_NOTIFICATION_PRESENT != 0,
    })
}

/// The bytes of a device page with these values (tests, and the container-mode stand-in).
pub fn encode(seq_count: u32, flags_present: (bool, bool), vm_generation: u64) -> Vec<u8> {
    let mut page = vec![0u8; ABI_LEN];
    page[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    page[4..8].copy_from_slice(&(ABI_LEN as u32).to_le_bytes());
    page[8..10].copy_from_slice(&1u16.to_le_bytes());
    page[SEQ_COUNT_AT..SEQ_COUNT_AT + 4].copy_from_slice(&seq_count.to_le_bytes());
    let mut flags = 0u64;
    if flags_present.0 {
        flags |= FLAG_VM_GEN_COUNTER_PRESENT;
    }
    if flags_present.1 {
        flags |= FLAG_NOTIFICATION_PRESENT;
    }
    page[FLAGS_AT..FLAGS_AT + 8].copy_from_slice(&flags.to_le_bytes());
    page[VM_GENERATION_AT..VM_GENERATION_AT + 8].copy_from_slice(&vm_generation.to_le_bytes());
    page
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_with_the_counter_is_read_and_others_are_refused_with_the_reason() {
        assert_eq!(
            read_abi(&encode(2, (true, true), 7)),
            Ok(Reading {
                vm_generation: 7,
                notifies: true
            })
        );
        assert_eq!(
            read_abi(&encode(4, (true, false), u64::MAX)),
            Ok(Reading {
                vm_generation: u64::MAX,
                notifies: false
            })
        );
        assert_eq!(
            read_abi(&encode(2, (false, true), 7)),
            Err(VmClockError::NoGenerationCounter)
        );
        assert_eq!(
            read_abi(&encode(3, (true, true), 7)),
            Err(VmClockError::Updating)
        );
        // A page of an older hypervisor, without the last field, and one that is not VMClock.
        assert_eq!(
            read_abi(&encode(2, (true, true), 7)[..104]),
            Err(VmClockError::Short(104))
        );
        let mut other = encode(2, (true, true), 7);
        other[0] = 0;
        assert!(matches!(read_abi(&other), Err(VmClockError::Magic(_))));
        assert_eq!(read_abi(&[]), Err(VmClockError::Short(0)));
    }

    /// The offsets of `struct vmclock_abi` (include/uapi/linux/vmclock-abi.h): magic u32,
    /// size u32, version u16, counter_id u8, time_type u8, seq_count u32 (12),
    /// disruption_marker u64 (16), flags u64 (24), then 2 + 1 + 1 + 2 + 1 + 1 bytes (to 40)
    /// and eight u64 (40..104): vm_generation_counter is at 104.
    #[test]
    fn the_offsets_follow_the_kernels_structure() {
        assert_eq!(SEQ_COUNT_AT, 4 + 4 + 2 + 1 + 1);
        assert_eq!(FLAGS_AT, SEQ_COUNT_AT + 4 + 8);
        assert_eq!(VM_GENERATION_AT, FLAGS_AT + 8 + 8 + 8 * 8);
        assert_eq!(ABI_LEN, VM_GENERATION_AT + 8);
    }
}
