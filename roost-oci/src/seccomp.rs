//! OCI seccomp profiles (`linux.seccomp`) compiled to classic BPF with rust-vmm's
//! seccompiler, in pure Rust, so roost-oci stays a static binary without the C libseccomp.
//!
//! seccompiler builds a filter with one action on a match and one on a mismatch; an OCI
//! profile has a default action and rules with actions of their own. The kernel runs every
//! installed filter and takes the most restrictive answer (KILL_PROCESS, KILL_THREAD, TRAP,
//! ERRNO, TRACE, LOG, ALLOW, in that order), so a profile becomes a stack of filters:
//!
//! - one *default* filter: every syscall named by any rule, with that rule's argument
//!   conditions, is ALLOW; anything else gets the profile's default action;
//! - one filter per other action (ERRNO with each errno value counts as its own): the
//!   syscalls of that action's rules, with their conditions, get it; anything else is ALLOW.
//!
//! A call that matches a rule of action A gets ALLOW from the default filter and A from A's
//! filter, so A; a call that matches no rule gets the default action. That is the profile's
//! meaning whenever a call matches rules of one action only (the usual case, and the only one
//! the OCI runtime spec defines); where a call matches rules of two actions, the most
//! restrictive wins.
//!
//! Only the native architecture is compiled: a syscall made under another one (a 32-bit call
//! on x86_64 through `int 0x80`) kills the process, as seccompiler's architecture check does,
//! and on x86_64 an x32 call (its number carries bit 30) gets ENOSYS from a guard filter, so
//! it cannot slip past a deny list by its other number. Names the native architecture does
//! not have are skipped, as runc does with libseccomp. `SCMP_ACT_NOTIFY` (a listener
//! process) is refused.

use anyhow::{bail, Context, Result};
use libcontainer::oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompOperator, LinuxSyscall,
};
use seccompiler::{
    sock_filter, BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition,
    SeccompFilter, SeccompRule, TargetArch,
};
use std::collections::BTreeMap;
use std::str::FromStr;

/// The errno of an `SCMP_ACT_ERRNO` without `errnoRet` (runc's and libseccomp's default).
const DEFAULT_ERRNO: u32 = libc::EPERM as u32;

/// The filters to install for `profile`, in order; empty when the profile allows everything.
pub fn compile(profile: &LinuxSeccomp) -> Result<Vec<BpfProgram>> {
    if profile.listener_path().is_some() {
        bail!("linux.seccomp.listenerPath: seccomp user notification is not supported");
    }
    let arch = native_arch()?;
    let default_action = action(
        profile.default_action(),
        profile.default_errno_ret(),
        "linux.seccomp.defaultAction",
    )?;

    // Every rule as (action, syscall number, rule); names this architecture lacks are skipped.
    let mut allowed: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    let mut by_action: Vec<(SeccompAction, BTreeMap<i64, Vec<SeccompRule>>)> = Vec::new();
    for (i, syscall) in profile.syscalls().iter().flatten().enumerate() {
        let field = format!("linux.seccomp.syscalls[{i}]");
        let rule_action = action(syscall.action(), syscall.errno_ret(), &field)?;
        let conditions = conditions(syscall, &field)?;
        for name in syscall.names() {
            let Ok(number) = syscalls::Sysno::from_str(name) else {
                continue;
            };
            let number = number.id() as i64;
            let rule = if conditions.is_empty() {
                None
            } else {
                Some(
                    SeccompRule::new(conditions.clone())
                        .with_context(|| format!("{field}: {name}"))?,
                )
            };
            add(&mut allowed, number, rule.clone());
            if rule_action != SeccompAction::Allow {
                let slot = match by_action.iter_mut().find(|(a, _)| *a == rule_action) {
                    Some((_, rules)) => rules,
                    None => {
                        by_action.push((rule_action.clone(), BTreeMap::new()));
                        let last = by_action.len() - 1;
                        &mut by_action[last].1
                    }
                };
                add(slot, number, rule);
            }
        }
    }

    if default_action == SeccompAction::Allow && by_action.is_empty() {
        // A profile that allows everything asks for no confinement.
        return Ok(Vec::new());
    }
    let mut filters = Vec::new();
    if arch == TargetArch::x86_64 {
        filters.push(x32_guard());
    }
    if default_action != SeccompAction::Allow {
        filters.push(build(allowed, default_action, SeccompAction::Allow, arch)?);
    }
    for (rule_action, rules) in by_action {
        filters.push(build(rules, SeccompAction::Allow, rule_action, arch)?);
    }
    Ok(filters)
}

/// Installs `filters` on the calling thread, in order, without setting `no_new_privs` (the
/// bundle decides that; seccompiler's own `apply_filter` always sets it). Without
/// `no_new_privs` the caller needs CAP_SYS_ADMIN.
pub fn install(filters: &[BpfProgram]) -> std::io::Result<()> {
    for filter in filters {
        let len = u16::try_from(filter.len()).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "seccomp filter too long")
        })?;
        let program = libc::sock_fprog {
            len,
            // seccompiler's sock_filter is #[repr(C)] with the kernel's layout, as libc's is.
            filter: filter.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `program` points at `len` valid instructions that outlive the call; the
        // kernel copies them and keeps no pointer.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &program as *const libc::sock_fprog,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// A syscall's rule chain: `None` is "any arguments", which absorbs every other rule for it.
fn add(map: &mut BTreeMap<i64, Vec<SeccompRule>>, number: i64, rule: Option<SeccompRule>) {
    match (map.get_mut(&number), rule) {
        // Already unconditional: stays so.
        (Some(chain), _) if chain.is_empty() => {}
        (Some(chain), Some(rule)) => chain.push(rule),
        (Some(chain), None) => chain.clear(),
        (None, Some(rule)) => {
            map.insert(number, vec![rule]);
        }
        (None, None) => {
            map.insert(number, Vec::new());
        }
    }
}

fn build(
    rules: BTreeMap<i64, Vec<SeccompRule>>,
    mismatch: SeccompAction,
    on_match: SeccompAction,
    arch: TargetArch,
) -> Result<BpfProgram> {
    let filter = SeccompFilter::new(rules, mismatch, on_match, arch)
        .context("linux.seccomp: building the filter")?;
    BpfProgram::try_from(filter).context("linux.seccomp: compiling the filter")
}

fn native_arch() -> Result<TargetArch> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(|e| {
        anyhow::anyhow!("linux.seccomp: no seccomp compiler for this architecture: {e}")
    })
}

fn action(action: LinuxSeccompAction, errno: Option<u32>, field: &str) -> Result<SeccompAction> {
    Ok(match action {
        LinuxSeccompAction::ScmpActAllow => SeccompAction::Allow,
        LinuxSeccompAction::ScmpActErrno => SeccompAction::Errno(errno.unwrap_or(DEFAULT_ERRNO)),
        // libseccomp's SCMP_ACT_KILL is SECCOMP_RET_KILL_THREAD.
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            SeccompAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => SeccompAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => SeccompAction::Trap,
        LinuxSeccompAction::ScmpActLog => SeccompAction::Log,
        LinuxSeccompAction::ScmpActTrace => SeccompAction::Trace(errno.unwrap_or(DEFAULT_ERRNO)),
        LinuxSeccompAction::ScmpActNotify => {
            bail!("{field}: SCMP_ACT_NOTIFY (seccomp user notification) is not supported")
        }
    })
}

fn conditions(syscall: &LinuxSyscall, field: &str) -> Result<Vec<SeccompCondition>> {
    syscall
        .args()
        .iter()
        .flatten()
        .enumerate()
        .map(|(j, arg)| condition(arg).with_context(|| format!("{field}.args[{j}]")))
        .collect()
}

fn condition(arg: &LinuxSeccompArg) -> Result<SeccompCondition> {
    let index = u8::try_from(arg.index())
        .ok()
        .filter(|i| *i < 6)
        .with_context(|| format!("index {} is not an argument (0 to 5)", arg.index()))?;
    let (op, value) = match arg.op() {
        LinuxSeccompOperator::ScmpCmpEq => (SeccompCmpOp::Eq, arg.value()),
        LinuxSeccompOperator::ScmpCmpNe => (SeccompCmpOp::Ne, arg.value()),
        LinuxSeccompOperator::ScmpCmpLt => (SeccompCmpOp::Lt, arg.value()),
        LinuxSeccompOperator::ScmpCmpLe => (SeccompCmpOp::Le, arg.value()),
        LinuxSeccompOperator::ScmpCmpGt => (SeccompCmpOp::Gt, arg.value()),
        LinuxSeccompOperator::ScmpCmpGe => (SeccompCmpOp::Ge, arg.value()),
        // OCI (libseccomp): `value` is the mask, `valueTwo` what the masked argument equals.
        LinuxSeccompOperator::ScmpCmpMaskedEq => (
            SeccompCmpOp::MaskedEq(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    };
    SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value)
        .map_err(|e| anyhow::anyhow!("{e}"))
}

/// x86_64 only: a syscall number with the x32 bit (`__X32_SYSCALL_BIT`) gets ENOSYS. The
/// other filters see x32 calls under AUDIT_ARCH_X86_64 with numbers no rule names, so without
/// this a deny list would not cover them.
fn x32_guard() -> BpfProgram {
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    const NR_OFFSET: u32 = 0; // offsetof(struct seccomp_data, nr)
    let stmt = |code: u32, k: u32| sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    vec![
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, NR_OFFSET),
        sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: X32_SYSCALL_BIT,
        },
        stmt(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        ),
        stmt(libc::BPF_RET | libc::BPF_K, libc::SECCOMP_RET_ALLOW),
    ]
}

#[cfg(test)]
mod tests;
