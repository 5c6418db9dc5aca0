//! Networking of the VM: planning (pure) and applying it over rtnetlink.

pub mod netlink;
pub mod offload;
pub mod plan;

pub use netlink::{NetError, Netlink};
pub use plan::{plan, NetPlan};

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
