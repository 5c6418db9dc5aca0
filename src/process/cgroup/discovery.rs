//! Where the cgroup hierarchies are and what they allow: mountinfo and `/proc/PID/cgroup`
//! parsed, roost's own cgroup directory found, and the `pids.max` a workload may have while
//! roost keeps its reserve.

use std::path::PathBuf;

/// Where the cgroup hierarchies that matter are mounted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CgroupMounts {
    /// (mount point, root of the mount inside the hierarchy)
    pub v2: Option<(PathBuf, String)>,
    pub v1_memory: Option<(PathBuf, String)>,
    pub v1_pids: Option<(PathBuf, String)>,
}

/// Finds the cgroup2 mount and the v1 memory and pids mounts in /proc/self/mountinfo text.
pub fn parse_mountinfo(text: &str) -> CgroupMounts {
    // Which of the three a line fills, decided from its file system type and options before
    // anything is copied: most lines are not cgroup mounts.
    enum Slot {
        V2,
        V1Memory,
        V1Pids,
    }
    let has_option = |options: &str, name: &str| options.split(',').any(|opt| opt == name);
    let mut mounts = CgroupMounts::default();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let mut right = right.split(' ');
        let (Some(fs_type), Some(_source), Some(options)) =
            (right.next(), right.next(), right.next())
        else {
            continue;
        };
        let slot = match fs_type {
            "cgroup2" if mounts.v2.is_none() => Slot::V2,
            "cgroup" if mounts.v1_memory.is_none() && has_option(options, "memory") => {
                Slot::V1Memory
            }
            "cgroup" if mounts.v1_pids.is_none() && has_option(options, "pids") => Slot::V1Pids,
            _ => continue,
        };
        // id, parent, major:minor, root, mount point.
        let mut left = left.split(' ');
        let (Some(root), Some(point)) = (left.nth(3), left.next()) else {
            continue;
        };
        let entry = Some((PathBuf::from(unescape_octal(point)), root.to_string()));
        match slot {
            Slot::V2 => mounts.v2 = entry,
            Slot::V1Memory => mounts.v1_memory = entry,
            Slot::V1Pids => mounts.v1_pids = entry,
        }
    }
    mounts
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
pub(super) fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        if let (b'\\', Some(d)) = (bytes[i], octal) {
            let value = d.iter().fold(0u32, |acc, b| acc * 8 + u32::from(b - b'0'));
            if let Ok(v) = u8::try_from(value) {
                out.push(v);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// roost's own cgroup paths from /proc/self/cgroup text: (v2 path, v1 memory path).
pub fn parse_proc_cgroup(text: &str) -> (Option<String>, Option<String>) {
    let v2 = text
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .map(str::to_string);
    (v2, parse_proc_cgroup_v1(text, "memory"))
}

/// roost's own path in the v1 hierarchy of `controller`, from /proc/self/cgroup text.
pub fn parse_proc_cgroup_v1(text: &str, controller: &str) -> Option<String> {
    text.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
        controllers
            .split(',')
            .any(|c| c == controller)
            .then(|| path.to_string())
    })
}

/// Pids kept for roost itself (execs, its threads) when the workload's `pids.max` is left to
/// the default: an eighth of what is available, at least 64.
pub const PIDS_RESERVE_MIN: u64 = 64;

/// The default `pids.max` of the workload's cgroup: what is available to roost (the smallest
/// of the kernel's `pid_max` and `threads-max` and every `pids.max` above roost's own cgroup)
/// less a reserve, so a fork bomb in the workload cannot take the pids PID 1 needs.
pub fn default_pids_max(available: u64) -> u64 {
    let reserve = (available / 8).max(PIDS_RESERVE_MIN);
    available
        .saturating_sub(reserve)
        .max(crate::config::limits::MIN_PIDS_MAX)
}

/// A small kernel file (procfs, cgroupfs) whole. Their size is 0 to `fstat`, so std's
/// `read_to_string` would grow its buffer from 32 bytes, one `read` per doubling (seven for
/// `/proc/self/mountinfo`, each regenerating the text up to its offset). A page on the stack
/// takes most of them in one read and their end in another, with no `fstat` or `lseek` for a
/// size hint and no large heap buffer (musl maps and unmaps one for each): this runs on every
/// service start.
pub fn read_kernel_file(path: impl AsRef<std::path::Path>) -> std::io::Result<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut page = [0u8; 4096];
    let mut bytes = Vec::new();
    loop {
        match file.read(&mut page) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&page[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    String::from_utf8(bytes)
        .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidData, err))
}

/// A file holding one number (`max` and anything else that is not one: None).
pub(super) fn read_number(path: &std::path::Path) -> Option<u64> {
    read_kernel_file(path).ok()?.trim().parse().ok()
}

/// The smallest `pids.max` from `dir` up to `mount` (a number, or `max` for none).
pub(super) fn ancestors_pids_max(mount: &std::path::Path, dir: &std::path::Path) -> Option<u64> {
    let mut best: Option<u64> = None;
    let mut current = Some(dir);
    while let Some(d) = current {
        if let Some(n) = read_number(&d.join("pids.max")) {
            best = Some(best.map_or(n, |b| b.min(n)));
        }
        if d == mount {
            break;
        }
        current = d.parent().filter(|p| p.starts_with(mount));
    }
    best
}

/// [`default_pids_max`] for a cgroup made in `parent` (of the hierarchy mounted at `mount`):
/// what roost may use there is the smallest of the kernel's limits and every `pids.max` from
/// `parent` up.
pub(super) fn default_pids_under(mount: &std::path::Path, parent: &std::path::Path) -> u64 {
    let kernel = kernel_pids();
    let available = ancestors_pids_max(mount, parent).map_or(kernel, |n| n.min(kernel));
    default_pids_max(available)
}

pub(super) fn kernel_pids() -> u64 {
    let pid_max = read_number(std::path::Path::new("/proc/sys/kernel/pid_max")).unwrap_or(32_768);
    let threads =
        read_number(std::path::Path::new("/proc/sys/kernel/threads-max")).unwrap_or(u64::MAX);
    pid_max.min(threads)
}

/// Reads one counter from a flat keyed file (`memory.events`, `memory.oom_control`).
pub fn parse_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// The directory of roost's own cgroup in a hierarchy mounted at `mount` (whose root inside
/// the hierarchy is `mount_root`).
pub(super) fn own_dir(mount: &(PathBuf, String), own_path: &str) -> PathBuf {
    let (point, root) = mount;
    let relative = own_path
        .strip_prefix(root.as_str())
        .unwrap_or(own_path)
        .trim_start_matches('/');
    point.join(relative)
}
