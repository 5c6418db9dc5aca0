//! `GET /v1/sysinfo`, as Fly's init answers it: memory, load, cpus, disks, network, file
//! descriptors, read from /proc and statvfs.

/// Parses `/proc/meminfo` into (key, kB) pairs of interest.
pub fn parse_meminfo(text: &str) -> serde_json::Value {
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    };
    serde_json::json!({
        "total": get("MemTotal"), "free": get("MemFree"), "available": get("MemAvailable"),
        "buffers": get("Buffers"), "cached": get("Cached"),
        "swap_total": get("SwapTotal"), "swap_free": get("SwapFree"),
    })
}

/// Parses `/proc/net/dev` into per-interface counters.
pub fn parse_net_dev(text: &str) -> serde_json::Value {
    let ifaces: Vec<serde_json::Value> = text
        .lines()
        .skip(2)
        .filter_map(|line| {
            let (name, rest) = line.split_once(':')?;
            let f: Vec<u64> = rest
                .split_whitespace()
                .filter_map(|v| v.parse().ok())
                .collect();
            (f.len() >= 16).then(|| {
                serde_json::json!({
                    "name": name.trim(), "recv_bytes": f[0], "recv_packets": f[1],
                    "recv_errs": f[2], "recv_drop": f[3], "sent_bytes": f[8],
                    "sent_packets": f[9], "sent_errs": f[10], "sent_drop": f[11],
                })
            })
        })
        .collect();
    serde_json::Value::Array(ifaces)
}

fn disks() -> serde_json::Value {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut seen = std::collections::HashSet::new();
    let list: Vec<serde_json::Value> = mounts
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
            Some(serde_json::json!({
                "device": dev, "mount": path, "fstype": fstype,
                "total": st.blocks() as u64 * frag,
                "free": st.blocks_free() as u64 * frag,
                "available": st.blocks_available() as u64 * frag,
                "inodes_total": st.files() as u64, "inodes_free": st.files_free() as u64,
            }))
        })
        .collect();
    serde_json::Value::Array(list)
}

/// The whole answer.
pub fn collect() -> serde_json::Value {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    let load: Vec<f64> = read("/proc/loadavg")
        .split_whitespace()
        .take(3)
        .filter_map(|v| v.parse().ok())
        .collect();
    let fds: Vec<u64> = read("/proc/sys/fs/file-nr")
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    serde_json::json!({
        "memory": parse_meminfo(&read("/proc/meminfo")),
        "load_average": load,
        "cpus": cpus,
        "disks": disks(),
        "net": parse_net_dev(&read("/proc/net/dev")),
        "file_descriptors": { "allocated": fds.first(), "max": fds.get(2) },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_and_net_dev() {
        let m =
            parse_meminfo("MemTotal:        2048 kB\nMemFree:  1024 kB\nMemAvailable: 1500 kB\n");
        assert_eq!(m["total"], 2048 * 1024);
        assert_eq!(m["available"], 1500 * 1024);
        assert!(m["swap_total"].is_null());
        let net = parse_net_dev(
            "Inter-|   Receive |  Transmit\n face |bytes packets|bytes\n  eth0: 100 2 0 0 0 0 0 0 300 4 0 0 0 0 0 0\n",
        );
        assert_eq!(net[0]["name"], "eth0");
        assert_eq!(net[0]["recv_bytes"], 100);
        assert_eq!(net[0]["sent_bytes"], 300);
    }

    #[test]
    fn collects_something_real() {
        let all = collect();
        assert!(all["memory"]["total"].as_u64() > Some(0));
        assert!(all["cpus"].as_u64() >= Some(1));
    }
}
