//! The workload's own cgroup leaf, and OOM-kill detection from its counters.
//!
//! cgroup v2 first: a leaf next to roost's own cgroup, `memory.max` when a limit is set, OOM
//! kills read from `memory.events` (`oom_kill`), which counts kills by the global OOM killer
//! too (kata reads the same file; Fly's init and pigeon-init grep /dev/kmsg and mistake pid
//! 12 for 123). On hybrid hosts whose memory controller is bound to cgroup v1, the v1 memory
//! hierarchy gives the same counter in `memory.oom_control`. The leaf also gets `pids.max`
//! (v2's pids controller, or the v1 pids hierarchy). Without either, the workload runs
//! anyway, with a warning.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the cgroup hierarchies that matter are mounted.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CgroupMounts {
    /// (mount point, root of the mount inside the hierarchy)
    pub v2: Option<(PathBuf, String)>,
    pub v1_memory: Option<(PathBuf, String)>,
    pub v1_pids: Option<(PathBuf, String)>,
}

/// Finds the cgroup2 mount and the v1 memory mount in /proc/self/mountinfo text.
pub fn parse_mountinfo(text: &str) -> CgroupMounts {
    let mut mounts = CgroupMounts::default();
    for line in text.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let left: Vec<&str> = left.split(' ').collect();
        let right: Vec<&str> = right.split(' ').collect();
        if left.len() < 5 || right.len() < 3 {
            continue;
        }
        let entry = (PathBuf::from(unescape_octal(left[4])), left[3].to_string());
        match right[0] {
            "cgroup2" if mounts.v2.is_none() => mounts.v2 = Some(entry),
            "cgroup"
                if mounts.v1_memory.is_none() && right[2].split(',').any(|opt| opt == "memory") =>
            {
                mounts.v1_memory = Some(entry)
            }
            "cgroup"
                if mounts.v1_pids.is_none() && right[2].split(',').any(|opt| opt == "pids") =>
            {
                mounts.v1_pids = Some(entry)
            }
            _ => {}
        }
    }
    mounts
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
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

/// A file holding one number (`max` and anything else that is not one: None).
fn read_number(path: &std::path::Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The smallest `pids.max` from `dir` up to `mount` (a number, or `max` for none).
fn ancestors_pids_max(mount: &std::path::Path, dir: &std::path::Path) -> Option<u64> {
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
fn default_pids_under(mount: &std::path::Path, parent: &std::path::Path) -> u64 {
    let kernel = kernel_pids();
    let available = ancestors_pids_max(mount, parent).map_or(kernel, |n| n.min(kernel));
    default_pids_max(available)
}

fn kernel_pids() -> u64 {
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
fn own_dir(mount: &(PathBuf, String), own_path: &str) -> PathBuf {
    let (point, root) = mount;
    let relative = own_path
        .strip_prefix(root.as_str())
        .unwrap_or(own_path)
        .trim_start_matches('/');
    point.join(relative)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hierarchy {
    V2,
    V1Memory,
    V1Pids,
}

/// A cgroup leaf created for the workload.
#[derive(Debug)]
struct Leaf {
    dir: PathBuf,
    hierarchy: Hierarchy,
}

/// The workload's cgroup(s), removed again by [`WorkloadCgroup::remove`].
#[derive(Debug, Default)]
pub struct WorkloadCgroup {
    leaves: Vec<Leaf>,
    /// The file whose `oom_kill` counter tells of OOM kills, and its value at creation.
    oom_counter: Option<PathBuf>,
    oom_base: u64,
    pids_max: Option<u64>,
}

impl WorkloadCgroup {
    /// Creates the workload's leaf (named `name`) in cgroup v2 and, when v2 has no memory
    /// controller, in the v1 memory hierarchy. Never fails: what cannot be done is returned
    /// as warnings and the workload runs without it.
    pub fn create(
        name: &str,
        memory_limit_mib: Option<u64>,
        pids_max: Option<u64>,
    ) -> (Self, Vec<String>) {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let mounts = parse_mountinfo(&mountinfo);
        if mounts == CgroupMounts::default() {
            // No cgroup file system at all: roost runs inside a container whose runtime's
            // cgroup (and limits) already hold everything; nothing here to warn about.
            tracing::info!("no cgroup file system is mounted: the enclosing cgroup applies");
            return (Self::default(), Vec::new());
        }
        let own_paths = parse_proc_cgroup(&own);
        let (mut cg, mut warnings) = Self::create_in(&mounts, &own_paths, name, memory_limit_mib);
        let own_pids = parse_proc_cgroup_v1(&own, "pids");
        cg.limit_pids(
            &mounts,
            (own_paths.0.as_deref(), own_pids.as_deref()),
            name,
            pids_max,
            &mut warnings,
        );
        (cg, warnings)
    }

    /// Gives the workload a `pids.max`: in its v2 leaf when v2 has the pids controller, else
    /// in a leaf of the v1 pids hierarchy.
    fn limit_pids(
        &mut self,
        mounts: &CgroupMounts,
        (own_v2, own_pids): (Option<&str>, Option<&str>),
        name: &str,
        pids_max: Option<u64>,
        warnings: &mut Vec<String>,
    ) {
        let v2_parent = match (&mounts.v2, own_v2) {
            (Some(mount), Some(path)) => Some((mount.0.clone(), own_dir(mount, path))),
            _ => None,
        };
        let v2_has_pids = v2_parent.as_ref().is_some_and(|(_, parent)| {
            std::fs::read_to_string(parent.join("cgroup.controllers"))
                .map(|c| c.split_whitespace().any(|c| c == "pids"))
                .unwrap_or(false)
        });
        let (mount_point, parent, hierarchy) = if v2_has_pids {
            let Some((point, parent)) = v2_parent else {
                return;
            };
            // Best effort, like +memory: the leaf's pids.max then exists.
            let _ = std::fs::write(parent.join("cgroup.subtree_control"), "+pids");
            (point, parent, Hierarchy::V2)
        } else if let (Some(mount), Some(path)) = (&mounts.v1_pids, own_pids) {
            (mount.0.clone(), own_dir(mount, path), Hierarchy::V1Pids)
        } else {
            warnings.push("no pids controller: the workload's processes are not limited".into());
            return;
        };
        let max = pids_max.unwrap_or_else(|| default_pids_under(&mount_point, &parent));
        let dir = parent.join(name);
        if hierarchy == Hierarchy::V1Pids {
            if let Err(err) = std::fs::create_dir(&dir) {
                warnings.push(format!(
                    "cannot create the v1 pids cgroup {}: {err}",
                    dir.display()
                ));
                return;
            }
            self.leaves.push(Leaf {
                dir: dir.clone(),
                hierarchy,
            });
        }
        match std::fs::write(dir.join("pids.max"), max.to_string()) {
            Ok(()) => self.pids_max = Some(max),
            Err(err) => warnings.push(format!("cannot set pids.max in {}: {err}", dir.display())),
        }
    }

    /// The workload's `pids.max`, when one is set.
    pub fn pids_max(&self) -> Option<u64> {
        self.pids_max
    }

    fn create_in(
        mounts: &CgroupMounts,
        own: &(Option<String>, Option<String>),
        name: &str,
        memory_limit_mib: Option<u64>,
    ) -> (Self, Vec<String>) {
        let mut cg = WorkloadCgroup::default();
        let mut warnings = Vec::new();
        let limit_bytes = memory_limit_mib.map(|mib| mib.saturating_mul(1024 * 1024));

        if let (Some(mount), Some(path)) = (&mounts.v2, &own.0) {
            let parent = own_dir(mount, path);
            // Delegate the memory controller to our children; refused when roost's cgroup has
            // other processes in it and is not the root (the "no internal processes" rule).
            let has_memory = std::fs::read_to_string(parent.join("cgroup.controllers"))
                .map(|c| c.split_whitespace().any(|c| c == "memory"))
                .unwrap_or(false);
            if has_memory {
                if let Err(err) = std::fs::write(parent.join("cgroup.subtree_control"), "+memory") {
                    warnings.push(format!(
                        "cannot enable the memory controller in {}: {err}",
                        parent.display()
                    ));
                }
            }
            let dir = parent.join(name);
            match std::fs::create_dir(&dir) {
                Ok(()) => {
                    let events = dir.join("memory.events");
                    if events.exists() {
                        if let Some(bytes) = limit_bytes {
                            if let Err(err) =
                                std::fs::write(dir.join("memory.max"), bytes.to_string())
                            {
                                warnings.push(format!("cannot set memory.max: {err}"));
                            }
                        }
                        cg.oom_counter = Some(events);
                    }
                    cg.leaves.push(Leaf {
                        dir,
                        hierarchy: Hierarchy::V2,
                    });
                }
                Err(err) => warnings.push(format!(
                    "cgroup v2 is not writable ({}: {err}); running without a workload cgroup",
                    dir.display()
                )),
            }
        }

        if cg.oom_counter.is_none() {
            if let (Some(mount), Some(path)) = (&mounts.v1_memory, &own.1) {
                let dir = own_dir(mount, path).join(name);
                match std::fs::create_dir(&dir) {
                    Ok(()) => {
                        if let Some(bytes) = limit_bytes {
                            if let Err(err) =
                                std::fs::write(dir.join("memory.limit_in_bytes"), bytes.to_string())
                            {
                                warnings.push(format!("cannot set memory.limit_in_bytes: {err}"));
                            }
                        }
                        cg.oom_counter = Some(dir.join("memory.oom_control"));
                        cg.leaves.push(Leaf {
                            dir,
                            hierarchy: Hierarchy::V1Memory,
                        });
                    }
                    Err(err) => warnings.push(format!(
                        "cannot create the v1 memory cgroup {}: {err}",
                        dir.display()
                    )),
                }
            }
        }

        if cg.oom_counter.is_none() {
            warnings.push("no memory cgroup available: OOM kills will not be detected".into());
            if memory_limit_mib.is_some() {
                warnings.push("MemoryLimitMiB is ignored: no memory controller".into());
            }
        }
        cg.oom_base = cg.read_oom_kills().unwrap_or(0);
        (cg, warnings)
    }

    /// Where a new child is born: the v2 leaf's directory (opened for `CLONE_INTO_CGROUP`),
    /// the v1 leaves' `cgroup.procs` files, and every leaf's, for the std path.
    pub fn placement(&self) -> super::spawn::Placement {
        let v2_dir = self
            .leaves
            .iter()
            .find(|leaf| leaf.hierarchy == Hierarchy::V2)
            .and_then(|leaf| {
                std::fs::File::open(&leaf.dir)
                    .ok()
                    .map(std::os::fd::OwnedFd::from)
            });
        let procs_of =
            |leaf: &Leaf| CString::new(leaf.dir.join("cgroup.procs").as_os_str().as_bytes()).ok();
        super::spawn::Placement {
            v2_dir,
            v1_procs: self
                .leaves
                .iter()
                .filter(|leaf| leaf.hierarchy != Hierarchy::V2)
                .filter_map(procs_of)
                .collect(),
            all_procs: self.procs_files(),
        }
    }

    /// The `cgroup.procs` files a new child writes `0` to, to join every leaf before exec.
    pub fn procs_files(&self) -> Vec<CString> {
        self.leaves
            .iter()
            .filter_map(|leaf| {
                CString::new(leaf.dir.join("cgroup.procs").as_os_str().as_bytes()).ok()
            })
            .collect()
    }

    /// Moves `pid` into every leaf from the parent side (idempotent; covers a child whose own
    /// join failed).
    pub fn join(&self, pid: i32) -> Vec<String> {
        let mut warnings = Vec::new();
        for leaf in &self.leaves {
            let procs = leaf.dir.join("cgroup.procs");
            // ESRCH: the child already exited, which is no reason to warn.
            if let Err(err) = std::fs::write(&procs, pid.to_string()) {
                if err.raw_os_error() != Some(libc::ESRCH) {
                    warnings.push(format!(
                        "cannot move pid {pid} into {}: {err}",
                        procs.display()
                    ));
                }
            }
        }
        warnings
    }

    fn read_oom_kills(&self) -> Option<u64> {
        let text = std::fs::read_to_string(self.oom_counter.as_ref()?).ok()?;
        parse_keyed(&text, "oom_kill")
    }

    /// The v2 leaf's path inside the hierarchy (`/roost-...-web`) when cgroup v2 is the only
    /// hierarchy (at /sys/fs/cgroup, as in a VM): what an OCI runtime's `cgroupsPath` names,
    /// so a container and every exec into it land in the service's leaf. None on a hybrid
    /// host, where the runtime uses v1 and roost moves the init into its leaves itself.
    pub fn v2_path(&self) -> Option<String> {
        let leaf = self.leaves.iter().find(|l| l.hierarchy == Hierarchy::V2)?;
        let inside = leaf.dir.strip_prefix("/sys/fs/cgroup").ok()?;
        if !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
            return None;
        }
        Some(format!("/{}", inside.display()))
    }

    /// The leaf directories, for the log.
    pub fn describe(&self) -> String {
        let dirs: Vec<String> = self
            .leaves
            .iter()
            .map(|l| l.dir.display().to_string())
            .collect();
        dirs.join(", ")
    }

    /// Whether OOM detection is available at all.
    pub fn detects_oom(&self) -> bool {
        self.oom_counter.is_some()
    }

    /// How many processes of the workload the OOM killer has killed since creation.
    pub fn oom_kills(&self) -> u64 {
        self.read_oom_kills()
            .map(|n| n.saturating_sub(self.oom_base))
            .unwrap_or(0)
    }

    /// Sets `cpu.weight` (1..=10000) in the v2 leaf, enabling the cpu controller below the
    /// parent first. Best effort: what fails is a warning.
    pub fn set_cpu_weight(&self, weight: u64) -> Vec<String> {
        let mut warnings = Vec::new();
        for leaf in self.leaves.iter().filter(|l| l.hierarchy == Hierarchy::V2) {
            if let Some(parent) = leaf.dir.parent() {
                let _ = std::fs::write(parent.join("cgroup.subtree_control"), "+cpu");
            }
            if let Err(err) = std::fs::write(leaf.dir.join("cpu.weight"), weight.to_string()) {
                warnings.push(format!(
                    "cannot set cpu.weight in {}: {err}",
                    leaf.dir.display()
                ));
            }
        }
        if self.leaves.iter().all(|l| l.hierarchy != Hierarchy::V2) {
            warnings.push("no cgroup v2 leaf: cpu.weight is not set".into());
        }
        warnings
    }

    /// Kills everything in the v2 leaf at once (`cgroup.kill`, Linux 5.14+), which also
    /// catches processes that left the workload's process group.
    pub fn kill_all(&self) {
        for leaf in self.leaves.iter().filter(|l| l.hierarchy == Hierarchy::V2) {
            let _ = std::fs::write(leaf.dir.join("cgroup.kill"), "1");
        }
    }

    /// Removes the leaves once they are empty. The kernel may take a moment to let go of a
    /// cgroup whose last process was just reaped, hence the short retry.
    pub async fn remove(self) {
        for leaf in self.leaves.iter().rev() {
            for attempt in 0..50 {
                match std::fs::remove_dir(&leaf.dir) {
                    Ok(()) => break,
                    Err(err) if err.raw_os_error() == Some(libc::EBUSY) && attempt < 49 => {
                        tokio::time::sleep(Duration::from_millis(20)).await
                    }
                    Err(err) => {
                        tracing::warn!("cannot remove cgroup {}: {err}", leaf.dir.display());
                        break;
                    }
                }
            }
        }
    }
}

/// The parent of every service's leaves with `Containers`, in each hierarchy roost uses: its
/// `pids.max` keeps roost's reserve once for all the services together. (Each leaf of its
/// own under roost's cgroup kept the reserve per service, so two services together could
/// take PID 1's pids.) A service's own `pids` limit applies in its leaf, below it.
#[derive(Debug, Default)]
pub struct ServicesGroup {
    /// The group's directories, one per hierarchy.
    dirs: Vec<PathBuf>,
    pids_max: Option<u64>,
}

impl ServicesGroup {
    /// Creates `name` beside roost's own cgroup in the v2, v1 memory and v1 pids hierarchies
    /// (those mounted), with the controllers its leaves use enabled below it, and its
    /// `pids.max` set to what roost may use less the reserve. Best effort: what cannot be
    /// done is a warning, and the leaves then fail as they would without it.
    pub fn create(name: &str) -> (Self, Vec<String>) {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let mounts = parse_mountinfo(&mountinfo);
        let (own_v2, own_memory) = parse_proc_cgroup(&own);
        let own_pids = parse_proc_cgroup_v1(&own, "pids");
        let mut group = ServicesGroup::default();
        let mut warnings = Vec::new();
        let hierarchies = [
            (&mounts.v2, own_v2.as_deref(), true),
            (&mounts.v1_memory, own_memory.as_deref(), false),
            (&mounts.v1_pids, own_pids.as_deref(), false),
        ];
        for (mount, path, is_v2) in hierarchies {
            let (Some(mount), Some(path)) = (mount, path) else {
                continue;
            };
            let parent = own_dir(mount, path);
            let dir = parent.join(name);
            if is_v2 {
                // What the leaves below use, enabled on the way down, one controller at a
                // time (a write naming one the parent lacks would enable none). Best effort,
                // as for a single leaf: refused where roost's own cgroup has processes.
                for controller in ["+memory", "+pids", "+cpu"] {
                    let _ = std::fs::write(parent.join("cgroup.subtree_control"), controller);
                }
            }
            if let Err(err) = std::fs::create_dir(&dir) {
                warnings.push(format!(
                    "cannot create the services' cgroup {}: {err}",
                    dir.display()
                ));
                continue;
            }
            if is_v2 {
                for controller in ["+memory", "+pids", "+cpu"] {
                    let _ = std::fs::write(dir.join("cgroup.subtree_control"), controller);
                }
            }
            let limits = dir.join("pids.max");
            if group.pids_max.is_none() && limits.exists() {
                let max = default_pids_under(&mount.0, &parent);
                match std::fs::write(&limits, max.to_string()) {
                    Ok(()) => group.pids_max = Some(max),
                    Err(err) => warnings.push(format!("cannot set {}: {err}", limits.display())),
                }
            }
            group.dirs.push(dir);
        }
        (group, warnings)
    }

    /// The `pids.max` of all the services together, when one is set.
    pub fn pids_max(&self) -> Option<u64> {
        self.pids_max
    }

    /// Removes the group once its leaves are gone (they are removed as each service ends,
    /// a moment after its last process is reaped: hence the retries).
    pub async fn remove(self) {
        for dir in self.dirs.iter().rev() {
            for attempt in 0..100 {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(err)
                        if matches!(err.raw_os_error(), Some(libc::EBUSY | libc::ENOTEMPTY))
                            && attempt < 99 =>
                    {
                        tokio::time::sleep(Duration::from_millis(20)).await
                    }
                    Err(err) => {
                        tracing::warn!("cannot remove cgroup {}: {err}", dir.display());
                        break;
                    }
                }
            }
        }
    }
}

/// The index in `names` (the config's services) of the service whose leaf
/// (`roost-workload-<8 hex>-<name>`, as [`leaf_name`] and the services loop name it) holds a
/// process, from its `/proc/PID/cgroup` text. A process in no service's leaf (an exec on the
/// VM's root, a daemon that left) has none.
pub fn service_of_cgroup(proc_cgroup: &str, names: &[String]) -> Option<usize> {
    for line in proc_cgroup.lines() {
        let path = line.splitn(3, ':').nth(2).unwrap_or_default();
        for part in path.split('/') {
            let Some(rest) = part.strip_prefix("roost-workload-") else {
                continue;
            };
            let (hex, name) = (rest.get(..8), rest.get(9..));
            let is_leaf = hex.is_some_and(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
                && rest.as_bytes().get(8) == Some(&b'-');
            if let (true, Some(name)) = (is_leaf, name) {
                if let Some(i) = names.iter().position(|n| n == name) {
                    return Some(i);
                }
            }
        }
    }
    None
}

/// A name for the leaf that two roosts on one host cannot share.
pub fn leaf_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded from the OS's random source: no extra dependency for a nonce.
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    format!("roost-workload-{:08x}", hasher.finish() as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
25 1 254:0 / / rw,relatime - ext4 /dev/vda rw
30 25 0:26 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
35 30 0:31 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 30 0:32 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 30 0:35 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
41 25 0:36 / /mnt/with\\040space rw - cgroup2 cgroup2 rw
";

    #[test]
    fn finds_hybrid_mounts() {
        let m = parse_mountinfo(MOUNTINFO);
        assert_eq!(
            m.v2,
            Some((PathBuf::from("/sys/fs/cgroup/unified"), "/".to_string()))
        );
        assert_eq!(
            m.v1_memory,
            Some((PathBuf::from("/sys/fs/cgroup/memory"), "/".to_string()))
        );
        assert_eq!(unescape_octal("/mnt/with\\040space"), "/mnt/with space");
    }

    #[test]
    fn own_paths() {
        let text = "9:name=systemd:/\n4:memory:/process_api/abc\n1:cpu,cpuacct:/\n0::/user.slice\n";
        assert_eq!(
            parse_proc_cgroup(text),
            (Some("/user.slice".into()), Some("/process_api/abc".into()))
        );
        assert_eq!(parse_proc_cgroup("0::/\n"), (Some("/".into()), None));
    }

    #[test]
    fn own_dir_inside_a_mount_with_a_root() {
        let mount = (PathBuf::from("/sys/fs/cgroup"), "/".to_string());
        assert_eq!(own_dir(&mount, "/"), PathBuf::from("/sys/fs/cgroup"));
        assert_eq!(own_dir(&mount, "/a/b"), PathBuf::from("/sys/fs/cgroup/a/b"));
        // A cgroup namespace or bind mount shows a sub-tree as the mount's root.
        let nested = (PathBuf::from("/sys/fs/cgroup"), "/ctr".to_string());
        assert_eq!(
            own_dir(&nested, "/ctr/x"),
            PathBuf::from("/sys/fs/cgroup/x")
        );
    }

    #[test]
    fn oom_counters() {
        let v2 = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(parse_keyed(v2, "oom_kill"), Some(2));
        assert_eq!(parse_keyed(v2, "oom"), Some(3));
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n";
        assert_eq!(parse_keyed(v1, "oom_kill"), Some(1));
        assert_eq!(parse_keyed("", "oom_kill"), None);
    }

    #[test]
    fn nothing_mounted_means_warnings_not_failure() {
        let (cg, warnings) =
            WorkloadCgroup::create_in(&CgroupMounts::default(), &(None, None), "x", Some(64));
        assert!(!cg.detects_oom());
        assert!(cg.procs_files().is_empty());
        assert_eq!(cg.oom_kills(), 0);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
    }

    #[test]
    fn pids_defaults_keep_a_reserve_for_roost() {
        assert_eq!(default_pids_max(32_768), 28_672);
        assert_eq!(default_pids_max(400), 336);
        assert_eq!(default_pids_max(100), 36);
        assert_eq!(default_pids_max(10), crate::config::limits::MIN_PIDS_MAX);
        let text = "12:pids:/user.slice/x\n4:memory:/m\n0::/\n";
        assert_eq!(
            parse_proc_cgroup_v1(text, "pids"),
            Some("/user.slice/x".into())
        );
        let m = parse_mountinfo(
            "36 30 0:33 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids\n",
        );
        assert_eq!(
            m.v1_pids,
            Some((PathBuf::from("/sys/fs/cgroup/pids"), "/".into()))
        );
    }

    #[test]
    fn a_process_s_service_is_read_from_its_leaf() {
        let names = vec!["web".to_string(), "web-admin".to_string()];
        let v2 = "0::/roost-workload-0a1b2c3d/roost-workload-0a1b2c3d-web-admin\n";
        assert_eq!(service_of_cgroup(v2, &names), Some(1));
        let hybrid = "4:memory:/x/roost-workload-0a1b2c3d/roost-workload-0a1b2c3d-web\n0::/\n";
        assert_eq!(service_of_cgroup(hybrid, &names), Some(0));
        // The group alone, another name, a lookalike: no service.
        for text in [
            "0::/roost-workload-0a1b2c3d\n",
            "0::/roost-workload-0a1b2c3d-db\n",
            "0::/roost-workload-zzzzzzzz-web\n",
            "0::/\n",
        ] {
            assert_eq!(service_of_cgroup(text, &names), None, "{text}");
        }
    }

    #[test]
    fn leaf_names_are_distinct() {
        assert_ne!(leaf_name(), leaf_name());
        assert!(leaf_name().starts_with("roost-workload-"));
    }
}
