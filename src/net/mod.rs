//! Networking of the VM: planning (pure) and applying it over rtnetlink.

pub mod netlink;
pub mod offload;
pub mod plan;

pub use netlink::{NetError, Netlink};
pub use plan::{left_behind, plan, NetPlan};

/// Configures `iface` from the run config: lo up, MTU, addresses (NODAD), default routes
/// (ONLINK where needed), TX checksum offload off (best effort).
pub async fn configure(
    iface: &str,
    network: &crate::config::typed::Network,
) -> Result<NetPlan, NetError> {
    let p = plan(&network.addresses, network.mtu);
    for w in &p.warnings {
        tracing::warn!("{w}");
    }
    let nl = Netlink::connect()?;
    nl.apply(iface, &p).await?;
    if !p.addrs.is_empty() {
        if let Err(e) = offload::disable_tx_checksum(iface) {
            tracing::warn!("cannot turn off TX checksum offload on {iface}: {e}");
        }
    }
    Ok(p)
}

/// Moves `iface` from the network `from` configured to `to` (a clone's own addresses and
/// routes): what `to` does not keep is removed, then `to` is applied as at boot.
pub async fn reconfigure(
    iface: &str,
    from: &crate::config::typed::Network,
    to: &crate::config::typed::Network,
) -> Result<NetPlan, NetError> {
    let old = plan(&from.addresses, from.mtu);
    let new = plan(&to.addresses, to.mtu);
    let gone = left_behind(&old, &new);
    let nl = Netlink::connect()?;
    if !gone.addrs.is_empty() || !gone.default_routes.is_empty() {
        let index = nl.index(iface).await?;
        for r in &gone.default_routes {
            nl.del_default_route(index, r.gateway).await?;
        }
        for a in &gone.addrs {
            nl.del_address(index, a.addr, a.prefix).await?;
        }
    }
    for w in &new.warnings {
        tracing::warn!("{w}");
    }
    nl.apply(iface, &new).await?;
    Ok(new)
}
