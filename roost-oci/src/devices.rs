//! `linux.resources.devices` on cgroup v2, where there is no devices controller: the rules
//! become an eBPF program of type `BPF_PROG_TYPE_CGROUP_DEVICE`, attached to the container's
//! cgroup between `create` and `start`, so every open and mknod of a device by the workload
//! (and by every exec into it, which joins the same cgroup) is asked of it. On cgroup v1
//! libcontainer writes the rules to the devices controller itself.
//!
//! libcontainer has this behind its `cgroupsv2_devices` feature, which links the C libbpf
//! (and libelf and zlib) into what must stay a static binary; the program is a few dozen
//! instructions, so roost-oci writes them itself and loads them with the `bpf(2)` call, as
//! runc's `devicefilter` does.
//!
//! The program's meaning is that of the v1 controller: the last rule that matches a device
//! decides (an allow rule only when it grants every access asked for, a deny rule when it
//! denies any of them); a device no rule matches is allowed. The bundle's usual first rule,
//! deny all, makes that default a denial.

use anyhow::{bail, Context, Result};
use libcontainer::oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

/// One eBPF instruction, as the kernel reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    code: u8,
    /// dst in the low nibble, src in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

// Opcodes (linux/bpf.h, linux/bpf_common.h).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU64_AND_K: u8 = 0x57; // BPF_ALU64 | BPF_AND | BPF_K
const ALU64_RSH_K: u8 = 0x77; // BPF_ALU64 | BPF_RSH | BPF_K
const ALU64_MOV_K: u8 = 0xb7; // BPF_ALU64 | BPF_MOV | BPF_K
const ALU64_MOV_X: u8 = 0xbf; // BPF_ALU64 | BPF_MOV | BPF_X
const JMP_JNE_K: u8 = 0x55; // BPF_JMP | BPF_JNE | BPF_K
const JMP_JEQ_K: u8 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

// struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }: access_type is
// (access << 16) | type.
const DEV_BLOCK: i32 = 1; // BPF_DEVCG_DEV_BLOCK
const DEV_CHAR: i32 = 2; // BPF_DEVCG_DEV_CHAR
const ACC_MKNOD: i32 = 1; // BPF_DEVCG_ACC_MKNOD
const ACC_READ: i32 = 2; // BPF_DEVCG_ACC_READ
const ACC_WRITE: i32 = 4; // BPF_DEVCG_ACC_WRITE

// Registers: r1 the context; r2 the device type, r3 the access asked, r4 major, r5 minor,
// r6 scratch, r0 the answer (1 allow, 0 deny).
fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        regs: (src << 4) | (dst & 0x0f),
        off,
        imm,
    }
}

fn access_bits(access: Option<&str>) -> Result<i32> {
    let mut bits = 0;
    for c in access.unwrap_or("rwm").chars() {
        bits |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            other => bail!("linux.resources.devices: access {other:?} is not r, w or m"),
        };
    }
    Ok(bits)
}

/// The program for `rules` (in the bundle's order).
pub fn program(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>> {
    let mut out = vec![
        insn(LDX_MEM_W, 2, 1, 0, 0),
        insn(ALU64_AND_K, 2, 0, 0, 0xffff),
        insn(LDX_MEM_W, 3, 1, 0, 0),
        insn(ALU64_RSH_K, 3, 0, 0, 16),
        insn(LDX_MEM_W, 4, 1, 4, 0),
        insn(LDX_MEM_W, 5, 1, 8, 0),
    ];
    // The last matching rule decides: test them from the last.
    for rule in rules.iter().rev() {
        let kind = match rule.typ() {
            None | Some(LinuxDeviceType::A) => None,
            Some(LinuxDeviceType::C | LinuxDeviceType::U) => Some(DEV_CHAR),
            Some(LinuxDeviceType::B) => Some(DEV_BLOCK),
            // A FIFO is no device: the kernel never asks about one.
            Some(LinuxDeviceType::P) => continue,
        };
        let number = |n: Option<i64>, what: &str| -> Result<Option<i32>> {
            match n {
                None | Some(-1) => Ok(None),
                Some(n) => i32::try_from(n)
                    .ok()
                    .filter(|n| *n >= 0)
                    .map(Some)
                    .with_context(|| format!("linux.resources.devices: {what} {n}")),
            }
        };
        let major = number(rule.major(), "major")?;
        let minor = number(rule.minor(), "minor")?;
        let access = access_bits(rule.access().as_deref())?;
        // The block's tests, each jumping past the rest of the block on a mismatch.
        let mut tests: Vec<(u8, u8, i32)> = Vec::new();
        if let Some(kind) = kind {
            tests.push((JMP_JNE_K, 2, kind));
        }
        if let Some(major) = major {
            tests.push((JMP_JNE_K, 4, major));
        }
        if let Some(minor) = minor {
            tests.push((JMP_JNE_K, 5, minor));
        }
        let (mask, skip_if, answer) = if rule.allow() {
            // Allowed only when nothing beyond the rule's access is asked: r6 = asked & !access.
            (!access, JMP_JNE_K, 1)
        } else {
            // Denied when any of the rule's access is asked: r6 = asked & access.
            (access, JMP_JEQ_K, 0)
        };
        // After the tests: mov r6, r3; and r6, mask; (skip_if r6, 0); mov r0, answer; exit.
        let tail = 5;
        let len = tests.len() + tail;
        for (i, (code, reg, imm)) in tests.iter().enumerate() {
            let remaining = i16::try_from(len - i - 1).context("a device rule too long")?;
            out.push(insn(*code, *reg, 0, remaining, *imm));
        }
        out.push(insn(ALU64_MOV_X, 6, 3, 0, 0));
        out.push(insn(ALU64_AND_K, 6, 0, 0, mask));
        out.push(insn(skip_if, 6, 0, 2, 0));
        out.push(insn(ALU64_MOV_K, 0, 0, 0, answer));
        out.push(insn(JMP_EXIT, 0, 0, 0, 0));
    }
    out.push(insn(ALU64_MOV_K, 0, 0, 0, 1));
    out.push(insn(JMP_EXIT, 0, 0, 0, 0));
    Ok(out)
}

// bpf(2) commands and the attach type (linux/bpf.h).
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;

/// The head of `union bpf_attr` for BPF_PROG_LOAD, up to `expected_attach_type`; the kernel
/// takes a shorter attr as if the rest were zero.
#[repr(C)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for BPF_PROG_ATTACH, up to `replace_bpf_fd`.
#[repr(C)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// Loads `insns` and attaches the program to the cgroup directory `cgroup`. Attached without
/// `BPF_F_ALLOW_MULTI` or `BPF_F_ALLOW_OVERRIDE`: it replaces the one an earlier start of
/// the same cgroup attached, and no cgroup below can attach one of its own.
pub fn attach(cgroup: &Path, insns: &[Insn]) -> Result<()> {
    let license = c"Apache-2.0";
    let mut name = [0u8; 16];
    name[..10].copy_from_slice(b"roost_devs");
    let load = ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: u32::try_from(insns.len()).context("device program too long")?,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 0,
        log_size: 0,
        log_buf: 0,
        kern_version: 0,
        prog_flags: 0,
        prog_name: name,
        prog_ifindex: 0,
        expected_attach_type: 0,
    };
    // SAFETY: `load` is a valid bpf_attr head of the size passed; the instruction and license
    // pointers it carries point at live memory that outlives the call, and the kernel copies
    // both before returning.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &load as *const ProgLoadAttr,
            std::mem::size_of::<ProgLoadAttr>(),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error())
            .context("loading the cgroup v2 device program (bpf BPF_PROG_LOAD)");
    }
    let fd = i32::try_from(fd).context("bpf returned no descriptor")?;
    // SAFETY: the kernel just returned `fd` as a new descriptor that nothing else owns.
    let program = unsafe { OwnedFd::from_raw_fd(fd) };
    let dir =
        std::fs::File::open(cgroup).with_context(|| format!("opening {}", cgroup.display()))?;
    let attach = ProgAttachAttr {
        target_fd: u32::try_from(dir.as_raw_fd()).context("a negative descriptor")?,
        attach_bpf_fd: u32::try_from(program.as_raw_fd()).context("a negative descriptor")?,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: 0,
        replace_bpf_fd: 0,
    };
    // SAFETY: `attach` is a valid bpf_attr head of the size passed; both descriptors in it
    // are open for the duration of the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &attach as *const ProgAttachAttr,
            std::mem::size_of::<ProgAttachAttr>(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| {
            format!(
                "attaching the device program to {} (bpf BPF_PROG_ATTACH)",
                cgroup.display()
            )
        });
    }
    // The cgroup holds the program now; our descriptor of it can go.
    Ok(())
}

/// Whether cgroup v2 is the only hierarchy (as in a VM): then no devices controller exists
/// and the rules need the program.
fn pure_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The cgroup v2 directory of `pid` (`0::/path` in /proc/PID/cgroup).
fn v2_dir_of(pid: i32) -> Result<std::path::PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .with_context(|| format!("reading /proc/{pid}/cgroup"))?;
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .with_context(|| format!("pid {pid} is in no cgroup v2"))?;
    Ok(Path::new("/sys/fs/cgroup").join(path.trim_start_matches('/')))
}

/// On pure cgroup v2, puts `rules` in force for the cgroup of the container's init `pid`
/// (created, not started). Nothing to do without rules or on v1, where libcontainer wrote
/// them to the devices controller.
pub fn enforce(rules: &[LinuxDeviceCgroup], pid: Option<i32>) -> Result<()> {
    if rules.is_empty() || !pure_v2() {
        return Ok(());
    }
    let pid = pid.context("the container has no init to confine")?;
    let insns = program(rules)?;
    attach(&v2_dir_of(pid)?, &insns)
}

#[cfg(test)]
mod tests;
