//! What the network should look like, from the run config's `IPConfigs` and `MTU`. Pure.
//!
//! Faults of Fly's init and pigeon-init this avoids: a gateway outside the address's subnet needs an ONLINK
//! route (without it the kernel refuses the route), and a second IPConfig of the same family
//! must not add a second default route (EEXIST, fatal in Fly's init).

use crate::config::typed::Address;
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrPlan {
    pub addr: IpAddr,
    pub prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePlan {
    pub gateway: IpAddr,
    /// The gateway is outside every subnet of its family on the interface.
    pub onlink: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetPlan {
    pub mtu: Option<u32>,
    pub addrs: Vec<AddrPlan>,
    /// Default routes, at most one per address family.
    pub default_routes: Vec<RoutePlan>,
    pub warnings: Vec<String>,
}

/// Whether `ip` is inside `net/prefix`.
pub fn in_subnet(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(prefix.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(prefix.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// Plans addresses and routes from the typed addresses validation parsed.
pub fn plan(configs: &[Address], mtu: Option<u32>) -> NetPlan {
    let mut p = NetPlan {
        mtu,
        ..NetPlan::default()
    };
    for c in configs {
        p.addrs.push(AddrPlan {
            addr: c.ip,
            prefix: c.prefix,
        });
    }
    for (i, c) in configs.iter().enumerate() {
        let Some(gateway) = c.gateway else {
            continue;
        };
        if p.default_routes
            .iter()
            .any(|r| r.gateway.is_ipv4() == gateway.is_ipv4())
        {
            p.warnings.push(format!(
                "IPConfigs[{i}].Gateway {gateway}: a default route of this family exists already; not adding a second"
            ));
            continue;
        }
        let onlink = !p.addrs.iter().any(|a| in_subnet(gateway, a.addr, a.prefix));
        p.default_routes.push(RoutePlan { gateway, onlink });
    }
    p
}

/// What must go before `to` is applied over `from` (a clone moving to its own addresses):
/// the addresses `to` does not keep and, when anything changed, every default route of
/// `from` (a route is keyed by its destination, so one via a new gateway cannot be added
/// beside the old one, and a kept route may hang off an address that changed). Empty when
/// nothing changed.
pub fn left_behind(from: &NetPlan, to: &NetPlan) -> NetPlan {
    if from.addrs == to.addrs && from.default_routes == to.default_routes {
        return NetPlan::default();
    }
    NetPlan {
        mtu: None,
        addrs: from
            .addrs
            .iter()
            .filter(|a| !to.addrs.contains(a))
            .cloned()
            .collect(),
        default_routes: from.default_routes.clone(),
        warnings: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(ip: &str, mask: u8, gw: Option<&str>) -> Address {
        Address {
            ip: ip.parse().expect("ip"),
            prefix: mask,
            gateway: gw.map(|g| g.parse().expect("gateway")),
        }
    }

    #[test]
    fn subnets() {
        let ip = |s: &str| s.parse::<IpAddr>().expect("ip");
        assert!(in_subnet(ip("172.16.0.1"), ip("172.16.0.2"), 30));
        assert!(!in_subnet(ip("172.16.0.5"), ip("172.16.0.2"), 30));
        assert!(in_subnet(ip("10.9.9.9"), ip("1.2.3.4"), 0));
        assert!(in_subnet(ip("fdaa::1"), ip("fdaa::2"), 64));
        assert!(!in_subnet(ip("fdab::1"), ip("fdaa::2"), 64));
        assert!(!in_subnet(ip("fdaa::1"), ip("10.0.0.1"), 8));
    }

    #[test]
    fn gateway_outside_the_subnet_is_onlink() {
        let p = plan(&[cfg("172.16.0.2", 32, Some("172.16.0.1"))], Some(1420));
        assert_eq!(p.mtu, Some(1420));
        assert_eq!(
            p.default_routes,
            [RoutePlan {
                gateway: "172.16.0.1".parse().expect("ip"),
                onlink: true
            }]
        );
        let p = plan(&[cfg("172.16.0.2", 30, Some("172.16.0.1"))], None);
        assert!(!p.default_routes[0].onlink);
    }

    #[test]
    fn one_default_route_per_family() {
        let p = plan(
            &[
                cfg("172.16.0.2", 30, Some("172.16.0.1")),
                cfg("fdaa::2", 64, Some("fdaa::1")),
                cfg("10.0.0.2", 24, Some("10.0.0.1")),
                cfg("fdab::2", 64, None),
            ],
            None,
        );
        assert_eq!(p.addrs.len(), 4);
        assert_eq!(p.default_routes.len(), 2);
        assert_eq!(p.warnings.len(), 1);
        assert!(p.warnings[0].contains("IPConfigs[2]"));
    }

    #[test]
    fn a_clone_leaves_its_old_addresses_and_routes_behind() {
        let from = plan(
            &[
                cfg("172.16.0.2", 30, Some("172.16.0.1")),
                cfg("fdaa::2", 64, Some("fdaa::1")),
            ],
            None,
        );
        assert_eq!(left_behind(&from, &from), NetPlan::default());
        let to = plan(
            &[
                cfg("172.16.0.6", 30, Some("172.16.0.5")),
                cfg("fdaa::2", 64, Some("fdaa::1")),
            ],
            None,
        );
        let gone = left_behind(&from, &to);
        assert_eq!(
            gone.addrs,
            [AddrPlan {
                addr: "172.16.0.2".parse().expect("ip"),
                prefix: 30
            }]
        );
        // Both families' routes go and come back: the kept IPv6 route is re-added by the
        // apply that follows.
        assert_eq!(gone.default_routes, from.default_routes);
        // An MTU change alone touches no address or route.
        let mut mtu = from.clone();
        mtu.mtu = Some(1280);
        assert_eq!(left_behind(&from, &mtu), NetPlan::default());
    }
}
