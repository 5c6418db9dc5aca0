//! `GET /v1/sysinfo` with Fly's init's field names and shapes (memory, load, per-CPU times,
//! disk stats, network counters, file descriptors), and roost's own figures beside them under
//! names of their own, read from /proc and statvfs, as control-protocol's [`SysInfo`].

use roost_control_protocol::{
    CpuTimes, DiskStats, FileDescriptors, FileFd, Filesystem, Memory, NetDev, SysInfo,
};
use std::collections::BTreeMap;

/// Parses `/proc/meminfo`: Fly's `mem_*` fields (bytes) and roost's own short names.
pub fn parse_meminfo(text: &str) -> Memory {
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kb| kb.saturating_mul(1024))
    };
    // Fly's init has a number for every field; a kernel without one reads 0 there.
    let fly = |key: &str| get(key).unwrap_or(0);
    Memory {
        mem_total: fly("MemTotal"),
        mem_free: fly("MemFree"),
        mem_available: get("MemAvailable"),
        buffers: fly("Buffers"),
        cached: fly("Cached"),
        swap_cached: fly("SwapCached"),
        active: fly("Active"),
        inactive: fly("Inactive"),
        swap_total: fly("SwapTotal"),
        swap_free: fly("SwapFree"),
        dirty: fly("Dirty"),
        writeback: fly("Writeback"),
        slab: fly("Slab"),
        shmem: get("Shmem"),
        vmalloc_total: fly("VmallocTotal"),
        vmalloc_used: fly("VmallocUsed"),
        vmalloc_chunk: fly("VmallocChunk"),
        // roost's own names.
        total: get("MemTotal"),
        free: get("MemFree"),
        available: get("MemAvailable"),
    }
}

/// Parses `/proc/stat` into Fly's `cpus`: per-CPU times in seconds, keyed by CPU number.
pub fn parse_cpu_times(text: &str, ticks_per_second: f64) -> BTreeMap<String, CpuTimes> {
    let mut cpus = BTreeMap::new();
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let Some(n) = fields
            .next()
            .and_then(|name| name.strip_prefix("cpu"))
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        let t: Vec<f64> = fields
            .filter_map(|v| v.parse::<f64>().ok())
            .map(|ticks| ticks / ticks_per_second)
            .collect();
        let at = |i: usize| t.get(i).copied();
        cpus.insert(
            n.to_string(),
            CpuTimes {
                user: at(0).unwrap_or(0.0),
                nice: at(1).unwrap_or(0.0),
                system: at(2).unwrap_or(0.0),
                idle: at(3).unwrap_or(0.0),
                iowait: at(4),
                irq: at(5),
                softirq: at(6),
                steal: at(7),
                guest: at(8),
                guest_nice: at(9),
            },
        );
    }
    cpus
}

/// Parses `/proc/diskstats` into Fly's `disks`: the virtio disks (`vd*`) and their counters.
pub fn parse_diskstats(text: &str) -> Vec<DiskStats> {
    text.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace().skip(2);
            let name = f.next()?;
            if !name.starts_with("vd") {
                return None;
            }
            let v: Vec<u64> = f.take(11).filter_map(|v| v.parse().ok()).collect();
            let [a, b, c, d, e, g, h, i, j, k, l] = <[u64; 11]>::try_from(v).ok()?;
            Some(DiskStats {
                name: name.to_string(),
                reads_completed: a,
                reads_merged: b,
                sectors_read: c,
                time_reading: d,
                writes_completed: e,
                writes_merged: g,
                sectors_written: h,
                time_writing: i,
                io_in_progress: j,
                time_io: k,
                time_io_weighted: l,
            })
        })
        .collect()
}

/// Parses `/proc/net/dev` into Fly's `net`: every counter of every interface but `lo`.
pub fn parse_net_dev(text: &str) -> Vec<NetDev> {
    text.lines()
        .skip(2)
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let name = name.trim();
            if name == "lo" {
                return None;
            }
            let v: Vec<u64> = rest
                .split_whitespace()
                .take(16)
                .filter_map(|v| v.parse().ok())
                .collect();
            let c = <[u64; 16]>::try_from(v).ok()?;
            Some(NetDev {
                name: name.to_string(),
                recv_bytes: c[0],
                recv_packets: c[1],
                recv_errs: c[2],
                recv_drop: c[3],
                recv_fifo: c[4],
                recv_frame: c[5],
                recv_compressed: c[6],
                recv_multicast: c[7],
                sent_bytes: c[8],
                sent_packets: c[9],
                sent_errs: c[10],
                sent_drop: c[11],
                sent_fifo: c[12],
                sent_colls: c[13],
                sent_carrier: c[14],
                sent_compressed: c[15],
            })
        })
        .collect()
}

/// roost's own: the mounted filesystems with their space and inodes (statvfs).
fn filesystems() -> Vec<Filesystem> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    mounts
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            let (dev, path, fstype) = (*f.first()?, *f.get(1)?, *f.get(2)?);
            let real = dev.starts_with('/') || matches!(fstype, "overlay" | "tmpfs" | "virtiofs");
            if !real || !seen.insert(path.to_string()) {
                return None;
            }
            let st = nix::sys::statvfs::statvfs(path).ok()?;
            let frag = st.fragment_size() as u64;
            Some(Filesystem {
                device: dev.to_string(),
                mount: path.to_string(),
                fstype: fstype.to_string(),
                total: (st.blocks() as u64).saturating_mul(frag),
                free: (st.blocks_free() as u64).saturating_mul(frag),
                available: (st.blocks_available() as u64).saturating_mul(frag),
                inodes_total: st.files() as u64,
                inodes_free: st.files_free() as u64,
            })
        })
        .collect()
}

/// The whole answer.
pub fn collect() -> SysInfo {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let load_average: Vec<f64> = read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .filter_map(|v| v.parse().ok())
        .collect();
    let fds: Vec<u64> = read("/proc/sys/fs/file-nr")
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let cpu_count = std::thread::available_parallelism().map_or(1, |n| n.get());
    // USER_HZ: what /proc/stat counts in.
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .map_or(100.0, |t| t as f64);
    SysInfo {
        memory: parse_meminfo(&read("/proc/meminfo")),
        load_average,
        cpus: parse_cpu_times(&read("/proc/stat"), ticks),
        disks: parse_diskstats(&read("/proc/diskstats")),
        net: parse_net_dev(&read("/proc/net/dev")),
        filefd: FileFd {
            allocated: fds.first().copied().unwrap_or(0),
            maximum: fds.get(2).copied().unwrap_or(0),
        },
        cpu_count,
        filesystems: filesystems(),
        file_descriptors: FileDescriptors {
            allocated: fds.first().copied(),
            max: fds.get(2).copied(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_has_flys_fields_and_roosts() {
        let m =
            parse_meminfo("MemTotal:        2048 kB\nMemFree:  1024 kB\nMemAvailable: 1500 kB\n");
        assert_eq!(m.mem_total, 2048 * 1024);
        assert_eq!(m.mem_available, Some(1500 * 1024));
        assert_eq!(m.swap_cached, 0);
        assert_eq!(m.total, Some(2048 * 1024));
        assert_eq!(m.available, Some(1500 * 1024));
    }

    #[test]
    fn cpus_disks_and_net_in_flys_shape() {
        let cpus = parse_cpu_times(
            "cpu  10 0 20 300 4 0 1 0 0 0\ncpu0 100 1 200 3000 40 0 10 0 0 0\ncpu1 50 0 50 100\nintr 1\n",
            100.0,
        );
        assert_eq!(cpus["0"].user, 1.0);
        assert_eq!(cpus["0"].idle, 30.0);
        assert!(cpus["1"].iowait.is_none());
        assert!(!cpus.contains_key("") && cpus.len() == 2);
        let disks = parse_diskstats(
            " 254       0 vda 100 0 800 50 10 0 80 5 0 60 55 0 0 0 0\n   7       0 loop0 1 2 3 4 5 6 7 8 9 10 11\n",
        );
        assert_eq!(disks.len(), 1);
        assert_eq!(disks[0].name, "vda");
        assert_eq!(disks[0].sectors_read, 800);
        assert_eq!(disks[0].time_io_weighted, 55);
        let net = parse_net_dev(
            "Inter-|   Receive |  Transmit\n face |bytes packets|bytes\n    lo: 1 1 0 0 0 0 0 0 1 1 0 0 0 0 0 0\n  eth0: 100 2 0 0 0 0 0 7 300 4 0 0 0 0 0 0\n",
        );
        assert_eq!(net.len(), 1);
        assert_eq!(net[0].name, "eth0");
        assert_eq!(net[0].recv_multicast, 7);
        assert_eq!(net[0].sent_bytes, 300);
    }

    #[test]
    fn collects_something_real() {
        let all = collect();
        assert!(all.memory.mem_total > 0);
        assert!(all.cpu_count >= 1);
        assert!(all.cpus.contains_key("0"));
        assert!(all.filefd.maximum > 0);
    }
}
