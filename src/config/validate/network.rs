//! The network: `MTU`, `IPConfigs`, `Hostname`, `EtcResolv`, `EtcHosts`.

use super::super::checks::*;
use super::super::limits::*;
use super::super::schema::RunConfig;
use super::super::typed::{Address, HostEntry, Network};
use super::super::ConfigError;
use std::net::IpAddr;

pub(super) fn network(config: &RunConfig) -> Result<Network, ConfigError> {
    check_range("MTU", config.mtu.map(u64::from), MIN_MTU, MAX_MTU)?;
    let mut network = Network {
        mtu: config.mtu,
        ..Network::default()
    };
    for (i, ip) in config.ip_configs.iter().enumerate() {
        let addr: IpAddr = ip.ip.parse().map_err(|_| {
            f(
                format!("IPConfigs[{i}].IP"),
                format!("{:?} is not an IP address", ip.ip),
            )
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        if ip.mask > max {
            return Err(f(
                format!("IPConfigs[{i}].Mask"),
                format!("prefix length {} is longer than {max}", ip.mask),
            ));
        }
        let mut gateway = None;
        if let Some(gw) = &ip.gateway {
            let gw_addr: IpAddr = gw.parse().map_err(|_| {
                f(
                    format!("IPConfigs[{i}].Gateway"),
                    format!("{gw:?} is not an IP address"),
                )
            })?;
            if gw_addr.is_ipv4() != addr.is_ipv4() {
                return Err(f(
                    format!("IPConfigs[{i}].Gateway"),
                    "is not of the same address family as IP",
                ));
            }
            gateway = Some(gw_addr);
        }
        network.addresses.push(Address {
            ip: addr,
            prefix: ip.mask,
            gateway,
        });
    }
    if let Some(name) = &config.hostname {
        check_hostname(name).map_err(|problem| f("Hostname", problem))?;
    }
    if let Some(resolv) = &config.etc_resolv {
        let mut nameservers = Vec::new();
        for (i, ns) in resolv.nameservers.iter().enumerate() {
            nameservers.push(ns.parse::<IpAddr>().map_err(|_| {
                f(
                    format!("EtcResolv.Nameservers[{i}]"),
                    format!("{ns:?} is not an IP address"),
                )
            })?);
        }
        network.nameservers = Some(nameservers);
    }
    for (i, host) in config.etc_hosts.iter().enumerate() {
        let ip = host.ip.parse::<IpAddr>().map_err(|_| {
            f(
                format!("EtcHosts[{i}].IP"),
                format!("{:?} is not an IP address", host.ip),
            )
        })?;
        check_hostname(&host.host).map_err(|problem| f(format!("EtcHosts[{i}].Host"), problem))?;
        network.hosts.push(HostEntry {
            ip,
            host: host.host.clone(),
            desc: host.desc.clone(),
        });
    }

    Ok(network)
}
