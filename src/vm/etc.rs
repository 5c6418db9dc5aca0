//! /etc/hosts and /etc/resolv.conf of the VM. Rendering is pure; writing is atomic.
//!
//! /etc/hosts keeps whatever the image had and replaces roost's own block between markers, so
//! a reboot does not append the same lines again (Fly's init and pigeon-init append on every boot).

use crate::config::typed::Network;
use std::path::Path;

const BEGIN: &str = "# roost: begin (managed, rewritten at boot)";
const END: &str = "# roost: end";

/// The new /etc/hosts from the old content and the config.
pub fn render_hosts(old: &str, hostname: Option<&str>, network: &Network) -> String {
    let mut kept = String::new();
    let mut inside = false;
    for line in old.lines() {
        if line == BEGIN {
            inside = true;
        } else if line == END {
            inside = false;
        } else if !inside {
            kept.push_str(line);
            kept.push('\n');
        }
    }
    let mut block = vec![BEGIN.to_string()];
    if !kept
        .lines()
        .any(|l| l.split_whitespace().skip(1).any(|n| n == "localhost"))
    {
        block.push("127.0.0.1\tlocalhost".into());
        block.push("::1\tlocalhost ip6-localhost ip6-loopback".into());
    }
    if let Some(name) = hostname {
        let own = network
            .addresses
            .first()
            .map_or_else(|| "127.0.1.1".to_string(), |a| a.ip.to_string());
        block.push(format!("{own}\t{name}"));
    }
    for h in &network.hosts {
        match &h.desc {
            Some(desc) if !desc.contains('\n') => {
                block.push(format!("{}\t{}\t# {desc}", h.ip, h.host))
            }
            _ => block.push(format!("{}\t{}", h.ip, h.host)),
        }
    }
    block.push(END.into());
    format!("{kept}{}\n", block.join("\n"))
}

/// /etc/resolv.conf from `EtcResolv.Nameservers`, or None to leave the image's file alone.
pub fn render_resolv(network: &Network) -> Option<String> {
    let nameservers = network.nameservers.as_ref()?;
    if nameservers.is_empty() {
        return None;
    }
    let mut out = String::from("# written by roost from the run config\n");
    for ns in nameservers {
        out.push_str(&format!("nameserver {ns}\n"));
    }
    Some(out)
}

/// Writes `content` to `path` by temp file and rename, mode 0644.
pub fn write_atomic(path: &Path, content: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("roost-tmp");
    std::fs::write(&tmp, content)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644))?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Network {
        crate::config::parse(
            br#"{"IPConfigs": [{"IP": "172.16.0.2", "Mask": 30}],
                 "EtcHosts": [{"Host": "db", "IP": "10.0.0.9", "Desc": "database"}],
                 "EtcResolv": {"Nameservers": ["10.0.0.3", "fdaa::3"]}}"#,
        )
        .expect("config")
        .network
    }

    #[test]
    fn hosts_is_idempotent_and_keeps_the_image_lines() {
        let old = "127.0.0.1 localhost\n10.1.1.1 custom\n";
        let once = render_hosts(old, Some("app-1"), &config());
        let twice = render_hosts(&once, Some("app-1"), &config());
        assert_eq!(once, twice);
        assert!(once.starts_with("127.0.0.1 localhost\n10.1.1.1 custom\n"));
        assert!(once.contains("172.16.0.2\tapp-1\n"));
        assert!(once.contains("10.0.0.9\tdb\t# database\n"));
        assert_eq!(once.matches("localhost").count(), 1);
        let fresh = render_hosts("", Some("h"), &config());
        assert!(fresh.contains("127.0.0.1\tlocalhost"));
    }

    #[test]
    fn resolv() {
        assert_eq!(
            render_resolv(&config()).expect("resolv"),
            "# written by roost from the run config\nnameserver 10.0.0.3\nnameserver fdaa::3\n"
        );
        assert_eq!(render_resolv(&Network::default()), None);
    }
}
