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

mod discovery;
mod group;
#[cfg(test)]
mod tests;

pub use discovery::*;
use discovery::{default_pids_under, own_dir};
pub use group::*;

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

impl Leaf {
    /// The file a new child writes `0` to, to join this leaf itself before its exec.
    ///
    /// v2: `cgroup.procs`. v1: `tasks`, which moves the writing thread alone. The child is
    /// one thread, so the two move the same thing, but only a `cgroup.procs` write takes the
    /// kernel's global threadgroup lock, whose first writer waits for an RCU grace period:
    /// a single thread moving itself skips it (the kernel's single-thread migration path).
    /// On a hybrid host, a start after 50 ms idle took 15 ms to the workload's exec with
    /// `cgroup.procs` joins and 3.4 ms with `tasks` joins (docs/performance.md).
    fn join_file(&self) -> Option<CString> {
        let file = match self.hierarchy {
            Hierarchy::V2 => "cgroup.procs",
            Hierarchy::V1Memory | Hierarchy::V1Pids => "tasks",
        };
        CString::new(self.dir.join(file).as_os_str().as_bytes()).ok()
    }
}

/// The workload's cgroup(s), removed again by [`WorkloadCgroup::remove`].
#[derive(Debug, Default)]
pub struct WorkloadCgroup {
    leaves: Vec<Leaf>,
    /// The file whose `oom_kill` counter tells of OOM kills: 0 at creation, as the leaf is
    /// new (`create_dir` fails on one that exists), so it is not read then.
    oom_counter: Option<PathBuf>,
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
        let mountinfo = read_kernel_file("/proc/self/mountinfo").unwrap_or_default();
        let own = read_kernel_file("/proc/self/cgroup").unwrap_or_default();
        let mounts = parse_mountinfo(&mountinfo);
        if mounts == CgroupMounts::default() {
            // No cgroup file system at all: roost runs inside a container whose runtime's
            // cgroup (and limits) already hold everything; nothing here to warn about.
            tracing::info!("no cgroup file system is mounted: the enclosing cgroup applies");
            return (Self::default(), Vec::new());
        }
        let own_paths = parse_proc_cgroup(&own);
        // The controllers v2 offers below roost's own cgroup, read once for both limits.
        let v2_controllers = match (&mounts.v2, &own_paths.0) {
            (Some(mount), Some(path)) => {
                read_kernel_file(own_dir(mount, path).join("cgroup.controllers"))
                    .unwrap_or_default()
            }
            _ => String::new(),
        };
        let offers = |controller: &str| v2_controllers.split_whitespace().any(|c| c == controller);
        let (mut cg, mut warnings) = Self::create_in(
            &mounts,
            &own_paths,
            name,
            (memory_limit_mib, offers("memory")),
        );
        let own_pids = parse_proc_cgroup_v1(&own, "pids");
        cg.limit_pids(
            &mounts,
            (own_paths.0.as_deref(), own_pids.as_deref()),
            name,
            (pids_max, offers("pids")),
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
        (pids_max, v2_has_pids): (Option<u64>, bool),
        warnings: &mut Vec<String>,
    ) {
        let v2_parent = match (&mounts.v2, own_v2) {
            (Some(mount), Some(path)) => Some((mount.0.clone(), own_dir(mount, path))),
            _ => None,
        };
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
        (memory_limit_mib, has_memory): (Option<u64>, bool),
    ) -> (Self, Vec<String>) {
        let mut cg = WorkloadCgroup::default();
        let mut warnings = Vec::new();
        let limit_bytes = memory_limit_mib.map(|mib| mib.saturating_mul(1024 * 1024));

        if let (Some(mount), Some(path)) = (&mounts.v2, &own.0) {
            let parent = own_dir(mount, path);
            // Delegate the memory controller to our children; refused when roost's cgroup has
            // other processes in it and is not the root (the "no internal processes" rule).
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
        (cg, warnings)
    }

    /// Where a new child is born: the v2 leaf's directory (opened for `CLONE_INTO_CGROUP`),
    /// the v1 leaves' join files, and every leaf's, for the std path.
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
        super::spawn::Placement {
            v2_dir,
            v1_joins: self
                .leaves
                .iter()
                .filter(|leaf| leaf.hierarchy != Hierarchy::V2)
                .filter_map(Leaf::join_file)
                .collect(),
            all_joins: self.join_files(),
        }
    }

    /// The files a new child writes `0` to, to join every leaf before exec
    /// ([`Leaf::join_file`]).
    pub fn join_files(&self) -> Vec<CString> {
        self.leaves.iter().filter_map(Leaf::join_file).collect()
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
        let text = read_kernel_file(self.oom_counter.as_ref()?).ok()?;
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
        self.read_oom_kills().unwrap_or(0)
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

    /// The `cgroup.procs` file that lists every process of the workload: the v2 leaf's (where
    /// the workload is born), else the first leaf's.
    pub fn members_file(&self) -> Option<PathBuf> {
        self.leaves
            .iter()
            .find(|l| l.hierarchy == Hierarchy::V2)
            .or_else(|| self.leaves.first())
            .map(|l| l.dir.join("cgroup.procs"))
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
