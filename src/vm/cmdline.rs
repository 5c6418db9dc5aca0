//! roost's options on the kernel command line. Pure.
//!
//! - `roost.config=PATH`: the config file to use when MMDS has none (default
//!   `/roost/config.json`, baked into the initramfs);
//! - `roost.mmds=off`: do not ask MMDS, go straight to the file;
//! - `roost.mmds_wait=SECONDS`: how long to wait for MMDS (default 30);
//! - `roost.iface=NAME`: the interface MMDS and IPConfigs use (default: eth0, else the first);
//! - `roost.shutdown=reboot|poweroff`: how the VM ends (default reboot: Firecracker exits on
//!   a reboot with `reboot=k`; QEMU's microvm sometimes resets instead, so its tests power off).

use std::path::PathBuf;
use std::time::Duration;

pub const DEFAULT_CONFIG_FILE: &str = "/roost/config.json";
pub const DEFAULT_MMDS_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootOptions {
    pub config_file: PathBuf,
    pub mmds: bool,
    pub mmds_wait: Duration,
    pub iface: Option<String>,
    pub power_off: bool,
    /// Options roost did not understand, for one warning.
    pub unknown: Vec<String>,
}

impl Default for BootOptions {
    fn default() -> Self {
        BootOptions {
            config_file: PathBuf::from(DEFAULT_CONFIG_FILE),
            mmds: true,
            mmds_wait: DEFAULT_MMDS_WAIT,
            iface: None,
            power_off: false,
            unknown: Vec::new(),
        }
    }
}

pub fn parse(cmdline: &str) -> BootOptions {
    let mut o = BootOptions::default();
    for word in cmdline.split_whitespace() {
        let Some(opt) = word.strip_prefix("roost.") else {
            continue;
        };
        let (key, value) = opt.split_once('=').unwrap_or((opt, ""));
        match key {
            "config" if value.starts_with('/') => o.config_file = PathBuf::from(value),
            "mmds" if matches!(value, "off" | "0" | "no") => o.mmds = false,
            "mmds" if matches!(value, "on" | "1" | "yes") => o.mmds = true,
            "mmds_wait" if value.parse::<u64>().is_ok_and(|s| s <= 3600) => {
                o.mmds_wait = Duration::from_secs(value.parse().unwrap_or(30))
            }
            "iface" if !value.is_empty() && value.len() < 16 => o.iface = Some(value.to_string()),
            "shutdown" if value == "poweroff" => o.power_off = true,
            "shutdown" if value == "reboot" => o.power_off = false,
            _ => o.unknown.push(word.to_string()),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_options() {
        assert_eq!(
            parse("console=ttyS0 reboot=k panic=-1"),
            BootOptions::default()
        );
        let o = parse("console=ttyS0 roost.mmds=off roost.config=/etc/roost.json roost.mmds_wait=5 roost.iface=ens3 roost.shutdown=poweroff");
        assert!(o.power_off);
        assert!(!o.mmds);
        assert_eq!(o.config_file, PathBuf::from("/etc/roost.json"));
        assert_eq!(o.mmds_wait, Duration::from_secs(5));
        assert_eq!(o.iface.as_deref(), Some("ens3"));
        assert!(o.unknown.is_empty());
    }

    #[test]
    fn bad_values_are_reported_not_applied() {
        let o = parse("roost.config=relative roost.mmds=maybe roost.mmds_wait=-1 roost.bogus");
        assert_eq!(
            o,
            BootOptions {
                unknown: vec![
                    "roost.config=relative".into(),
                    "roost.mmds=maybe".into(),
                    "roost.mmds_wait=-1".into(),
                    "roost.bogus".into()
                ],
                ..BootOptions::default()
            }
        );
    }
}
