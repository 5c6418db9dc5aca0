//! The services' group (the parent of every service's leaf), which service a process is of,
//! and the name every leaf of one roost is made from.

use super::*;
use std::path::PathBuf;

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
        let mountinfo = read_kernel_file("/proc/self/mountinfo").unwrap_or_default();
        let own = read_kernel_file("/proc/self/cgroup").unwrap_or_default();
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
