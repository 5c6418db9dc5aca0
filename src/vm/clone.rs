//! A VM restored as a clone takes an identity of its own: the host's restore gives the copy
//! a new MMDS document (a new machine id, host name and macaroon), and Firecracker's MMDS
//! forgets its tokens. roost lifts its own block on MMDS, reads the document with a new
//! token, moves to the clone's addresses and routes, applies the host name, /etc/hosts and
//! /etc/resolv.conf, hands the new macaroon to the platform
//! client, and blocks MMDS again with the same read-back check as at boot, whatever the read
//! did.

use crate::config::typed::Network;
use crate::control::state::{NewIdentity, Reidentify};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// How a clone of this VM reads and applies its identity (`iface` and `wait` as at boot;
/// `network` is what the boot configured, which a clone moves away from).
pub fn reidentify(iface: Option<String>, wait: Duration, network: Network) -> Reidentify {
    let applied = Arc::new(tokio::sync::Mutex::new(network));
    Reidentify(Arc::new(move || {
        let iface = iface.clone();
        let applied = applied.clone();
        Box::pin(async move {
            // One identity change at a time: each starts from the network the last one left.
            let mut network = applied.lock().await;
            take_identity(iface.as_deref(), wait, &mut network).await
        })
    }))
}

async fn take_identity(
    iface: Option<&str>,
    wait: Duration,
    network: &mut Network,
) -> Result<NewIdentity, String> {
    let nl = crate::net::netlink::Netlink::connect().map_err(|e| format!("netlink: {e}"))?;
    nl.unprohibit_v4(super::mmds::MMDS_IP)
        .await
        .map_err(|e| format!("cannot lift the MMDS block: {e}"))?;
    let fetched = super::mmds::fetch_over_link_local(iface, wait).await;
    // Blocked again before anything else, also when the read failed.
    super::mmds::block_after_boot().await;
    let document = fetched.map_err(|e| format!("the clone's MMDS document: {e}"))?;
    let bytes = serde_json::to_vec(&document).map_err(|e| e.to_string())?;
    let config = crate::config::parse(&bytes)
        .map_err(|e| format!("the clone's MMDS document is not a valid config: {e}"))?;
    // The addresses first: the step most likely to fail, and a failure leaves the rest of
    // the original's identity whole rather than half replaced.
    let link = iface.unwrap_or("eth0");
    crate::net::reconfigure(link, network, &config.network)
        .await
        .map_err(|e| format!("the clone's addresses and routes on {link}: {e}"))?;
    *network = config.network.clone();
    let hostname = config.machine.vm_hostname().map(str::to_string);
    if let Some(name) = &hostname {
        nix::unistd::sethostname(name).map_err(|e| format!("hostname {name}: {e}"))?;
    }
    let hosts = Path::new("/etc/hosts");
    let old = std::fs::read_to_string(hosts).unwrap_or_default();
    super::etc::write_atomic(
        hosts,
        &super::etc::render_hosts(&old, hostname.as_deref(), &config.network),
    )
    .map_err(|e| format!("/etc/hosts: {e}"))?;
    if let Some(resolv) = super::etc::render_resolv(&config.network) {
        super::etc::write_atomic(Path::new("/etc/resolv.conf"), &resolv)
            .map_err(|e| format!("/etc/resolv.conf: {e}"))?;
    }
    let credentials = config.api.as_ref().map(|api| {
        roost_platform::Credentials::new(
            api.token.clone(),
            &api.scheme,
            api.attenuate,
            config.machine.id.as_deref(),
        )
    });
    tracing::info!(
        machine_id = config.machine.id.as_deref().unwrap_or(""),
        hostname = hostname.as_deref().unwrap_or(""),
        addresses = ?config.network.addresses.iter().map(|a| format!("{}/{}", a.ip, a.prefix)).collect::<Vec<_>>(),
        "a clone's own identity from MMDS: addresses, routes, host name and /etc/hosts set, the new macaroon in use, MMDS blocked again"
    );
    Ok(NewIdentity {
        machine_id: config.machine.id.clone(),
        hostname,
        credentials,
    })
}
