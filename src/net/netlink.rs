//! Applying network settings over rtnetlink. The only module that knows the rtnetlink API
//! (pre-1.0, with breaking minors every few months).

use super::plan::NetPlan;
use futures_util::TryStreamExt;
use rtnetlink::packet_route::address::{AddressAttribute, AddressFlags, AddressHeaderFlags};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("netlink: {0}")]
    Netlink(String),
    #[error("no network interface named {0}")]
    NoInterface(String),
}

fn nl(e: impl std::fmt::Display) -> NetError {
    NetError::Netlink(e.to_string())
}

/// EEXIST from the kernel: the address or route is there already (a second boot, a retry).
fn exists(e: &rtnetlink::Error) -> bool {
    matches!(e, rtnetlink::Error::NetlinkError(m) if m.raw_code() == -libc::EEXIST)
}

/// A netlink connection on the current runtime.
#[derive(Debug, Clone)]
pub struct Netlink {
    handle: Handle,
}

impl Netlink {
    pub fn connect() -> Result<Self, NetError> {
        let (conn, handle, _) = rtnetlink::new_connection().map_err(nl)?;
        tokio::spawn(conn);
        Ok(Netlink { handle })
    }

    pub async fn index(&self, name: &str) -> Result<u32, NetError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_string())
            .execute();
        match links.try_next().await {
            Ok(Some(link)) => Ok(link.header.index),
            Ok(None) => Err(NetError::NoInterface(name.into())),
            // ENODEV comes back as an error for an unknown name.
            Err(_) => Err(NetError::NoInterface(name.into())),
        }
    }

    /// The VM's first interface: `eth0` when there is one, else the lowest-indexed one that
    /// is not loopback.
    pub async fn first_ethernet(&self) -> Result<String, NetError> {
        let mut links = self.handle.link().get().execute();
        let mut found: Vec<(u32, String)> = Vec::new();
        while let Some(link) = links.try_next().await.map_err(nl)? {
            let name = link.attributes.iter().find_map(|a| match a {
                rtnetlink::packet_route::link::LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            });
            if let Some(name) = name.filter(|n| n != "lo") {
                found.push((link.header.index, name));
            }
        }
        if found.iter().any(|(_, n)| n == "eth0") {
            return Ok("eth0".into());
        }
        found.sort();
        found
            .into_iter()
            .next()
            .map(|(_, n)| n)
            .ok_or_else(|| NetError::NoInterface("(any besides lo)".into()))
    }

    pub async fn up(&self, index: u32, mtu: Option<u32>) -> Result<(), NetError> {
        let mut msg = LinkUnspec::new_with_index(index).up();
        if let Some(mtu) = mtu {
            msg = msg.mtu(mtu);
        }
        self.handle
            .link()
            .set(msg.build())
            .execute()
            .await
            .map_err(nl)
    }

    /// Adds an address without duplicate address detection (IFA_F_NODAD: a VM's address is
    /// its own, and DAD would delay IPv6 by seconds).
    pub async fn add_address(&self, index: u32, addr: IpAddr, prefix: u8) -> Result<(), NetError> {
        let mut req = self.handle.address().add(index, addr, prefix);
        let msg = req.message_mut();
        msg.header.flags |= AddressHeaderFlags::Nodad;
        msg.attributes
            .push(AddressAttribute::Flags(AddressFlags::Nodad));
        match req.execute().await {
            Ok(()) => Ok(()),
            Err(e) if exists(&e) => Ok(()),
            Err(e) => Err(nl(e)),
        }
    }

    pub async fn del_address(&self, index: u32, addr: IpAddr, prefix: u8) -> Result<(), NetError> {
        let mut addrs = self
            .handle
            .address()
            .get()
            .set_link_index_filter(index)
            .set_address_filter(addr)
            .set_prefix_length_filter(prefix)
            .execute();
        while let Some(msg) = addrs.try_next().await.map_err(nl)? {
            self.handle.address().del(msg).execute().await.map_err(nl)?;
        }
        Ok(())
    }

    /// A route to `dest/prefix`, via `gateway` when given, out of `index`.
    pub async fn add_route(
        &self,
        index: u32,
        dest: IpAddr,
        prefix: u8,
        gateway: Option<IpAddr>,
        onlink: bool,
    ) -> Result<(), NetError> {
        let result = match (dest, gateway) {
            (IpAddr::V4(d), gw) => {
                let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
                    .destination_prefix(d, prefix)
                    .output_interface(index);
                if let Some(IpAddr::V4(g)) = gw {
                    b = b.gateway(g);
                }
                if onlink {
                    b = b.onlink();
                }
                self.handle.route().add(b.build()).execute().await
            }
            (IpAddr::V6(d), gw) => {
                let mut b = RouteMessageBuilder::<Ipv6Addr>::new()
                    .destination_prefix(d, prefix)
                    .output_interface(index);
                if let Some(IpAddr::V6(g)) = gw {
                    b = b.gateway(g);
                }
                if onlink {
                    b = b.onlink();
                }
                self.handle.route().add(b.build()).execute().await
            }
        };
        match result {
            Ok(()) => Ok(()),
            Err(e) if exists(&e) => Ok(()),
            Err(e) => Err(nl(e)),
        }
    }

    pub async fn del_route_v4(
        &self,
        index: u32,
        dest: Ipv4Addr,
        prefix: u8,
    ) -> Result<(), NetError> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(dest, prefix)
            .output_interface(index)
            .build();
        self.handle.route().del(msg).execute().await.map_err(nl)
    }

    /// A route that makes `dest` unreachable for every process (`ip route add prohibit`).
    /// Makes `dest` unreachable with a prohibit route, and checks that one is in place. A
    /// route to `dest`/32 already there (a leftover of the MMDS fetch) would make the add
    /// fail with EEXIST while `dest` stays reachable: it is removed and the add retried.
    pub async fn prohibit_v4(&self, dest: Ipv4Addr) -> Result<(), NetError> {
        use rtnetlink::packet_route::route::RouteType;
        let add = || {
            let msg = RouteMessageBuilder::<Ipv4Addr>::new()
                .destination_prefix(dest, 32)
                .kind(RouteType::Prohibit)
                .build();
            self.handle.route().add(msg).execute()
        };
        match add().await {
            Ok(()) => {}
            Err(e) if exists(&e) => {
                for route in self.routes_to_v4(dest).await? {
                    if route.header.kind != RouteType::Prohibit {
                        self.handle.route().del(route).execute().await.map_err(nl)?;
                    }
                }
                match add().await {
                    Ok(()) => {}
                    Err(e) if exists(&e) => {}
                    Err(e) => return Err(nl(e)),
                }
            }
            Err(e) => return Err(nl(e)),
        }
        let in_place = self
            .routes_to_v4(dest)
            .await?
            .iter()
            .any(|r| r.header.kind == RouteType::Prohibit);
        if in_place {
            Ok(())
        } else {
            Err(NetError::Netlink(format!(
                "no prohibit route to {dest} after adding one"
            )))
        }
    }

    /// The IPv4 routes (every table) whose destination is exactly `dest`/32.
    async fn routes_to_v4(
        &self,
        dest: Ipv4Addr,
    ) -> Result<Vec<rtnetlink::packet_route::route::RouteMessage>, NetError> {
        use rtnetlink::packet_route::route::{RouteAddress, RouteAttribute};
        let mut routes = self
            .handle
            .route()
            .get(RouteMessageBuilder::<Ipv4Addr>::new().build())
            .execute();
        let mut found = Vec::new();
        while let Some(route) = routes.try_next().await.map_err(nl)? {
            let to_dest = route.header.destination_prefix_length == 32
                && route.attributes.iter().any(|a| {
                    matches!(a, RouteAttribute::Destination(RouteAddress::Inet(ip)) if *ip == dest)
                });
            if to_dest {
                found.push(route);
            }
        }
        Ok(found)
    }

    pub async fn del_prohibit_v4(&self, dest: Ipv4Addr) -> Result<(), NetError> {
        let msg = RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(dest, 32)
            .kind(rtnetlink::packet_route::route::RouteType::Prohibit)
            .build();
        self.handle.route().del(msg).execute().await.map_err(nl)
    }

    /// lo up; `iface` up with its MTU, addresses and default routes.
    pub async fn apply(&self, iface: &str, plan: &NetPlan) -> Result<(), NetError> {
        let lo = self.index("lo").await?;
        self.up(lo, None).await?;
        if plan.addrs.is_empty() && plan.mtu.is_none() {
            return Ok(());
        }
        let index = self.index(iface).await?;
        self.up(index, plan.mtu).await?;
        for a in &plan.addrs {
            self.add_address(index, a.addr, a.prefix).await?;
        }
        for r in &plan.default_routes {
            let any = if r.gateway.is_ipv4() {
                IpAddr::V4(Ipv4Addr::UNSPECIFIED)
            } else {
                IpAddr::V6(Ipv6Addr::UNSPECIFIED)
            };
            self.add_route(index, any, 0, Some(r.gateway), r.onlink)
                .await?;
        }
        Ok(())
    }
}
