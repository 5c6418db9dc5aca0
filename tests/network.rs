//! The VM's networking over rtnetlink, in network namespaces of the test's own (a thread that
//! unshares its network namespace; the namespace goes away with the thread). Results are read
//! back with `ip -j`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use roost::config::typed::Address;
use roost::net::{plan, Netlink};
use std::process::Command;

/// Runs `f` on a thread in a fresh network namespace.
fn in_netns<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare net");
        f()
    })
    .join()
    .expect("netns thread")
}

fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().expect("sh");
    assert!(
        out.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn json(cmd: &str) -> serde_json::Value {
    serde_json::from_str(&sh(cmd)).expect("ip -j output")
}

fn cfg(ip: &str, mask: u8, gw: Option<&str>) -> Address {
    Address {
        ip: ip.parse().expect("ip"),
        prefix: mask,
        gateway: gw.map(|g| g.parse().expect("gateway")),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn addresses_routes_mtu_and_offload_like_fly_ipconfigs() {
    in_netns(|| {
        sh("ip link add eth0 type veth peer name peer0");
        let configs = [
            // A /32 with a gateway outside it: needs ONLINK.
            cfg("172.19.0.2", 32, Some("172.19.0.1")),
            cfg("fdaa:0:1::2", 112, Some("fdaa:0:1::1")),
            // A second IPv4 config with a gateway: no second default route.
            cfg("10.20.0.2", 24, Some("10.20.0.1")),
        ];
        let p = plan(&configs, Some(1420));
        runtime().block_on(async {
            let nl = Netlink::connect().expect("netlink");
            nl.apply("eth0", &p).await.expect("apply");
            // Idempotent: a second apply changes nothing and does not fail.
            nl.apply("eth0", &p).await.expect("apply again");
        });
        roost::net::offload::disable_tx_checksum("eth0").expect("tx csum off");

        let link = json("ip -j link show eth0");
        assert_eq!(link[0]["mtu"], 1420);
        assert!(link[0]["flags"]
            .as_array()
            .expect("flags")
            .iter()
            .any(|f| f == "UP"));
        let lo = json("ip -j link show lo");
        assert!(lo[0]["flags"]
            .as_array()
            .expect("flags")
            .iter()
            .any(|f| f == "UP"));

        let addrs = json("ip -j addr show eth0");
        let infos = addrs[0]["addr_info"].as_array().expect("addr_info");
        let find = |ip: &str| infos.iter().find(|a| a["local"] == ip).cloned();
        let v6 = find("fdaa:0:1::2").expect("ipv6 address");
        assert_eq!(v6["prefixlen"], 112);
        assert_eq!(v6["nodad"], true, "{v6}");
        assert!(v6.get("tentative").is_none(), "DAD must not run: {v6}");
        assert_eq!(find("172.19.0.2").expect("v4")["prefixlen"], 32);
        assert!(find("10.20.0.2").is_some());

        let routes = json("ip -j route show default");
        assert_eq!(routes.as_array().expect("routes").len(), 1, "{routes}");
        assert_eq!(routes[0]["gateway"], "172.19.0.1");
        assert!(
            routes[0]["flags"]
                .as_array()
                .expect("flags")
                .iter()
                .any(|f| f == "onlink"),
            "{routes}"
        );
        let routes6 = json("ip -6 -j route show default");
        assert_eq!(routes6[0]["gateway"], "fdaa:0:1::1");

        let features = sh("ethtool -k eth0");
        assert!(features.contains("tx-checksumming: off"), "{features}");
    });
}

#[test]
fn a_missing_interface_is_an_error_not_a_panic() {
    in_netns(|| {
        let p = plan(&[cfg("10.0.0.2", 24, None)], None);
        let err = runtime()
            .block_on(async { Netlink::connect().expect("netlink").apply("eth0", &p).await })
            .expect_err("no eth0");
        assert!(err.to_string().contains("eth0"), "{err}");
    });
}

#[test]
fn mmds_route_is_added_removed_and_blocked() {
    in_netns(|| {
        sh("ip link add eth0 type veth peer name peer0");
        runtime().block_on(async {
            let nl = Netlink::connect().expect("netlink");
            let idx = nl.index("eth0").await.expect("index");
            assert_eq!(nl.first_ethernet().await.expect("first"), "eth0");
            nl.up(idx, None).await.expect("up");
            let tmp: std::net::IpAddr = "169.254.0.15".parse().expect("ip");
            nl.add_address(idx, tmp, 16).await.expect("temp address");
            nl.add_route(idx, "169.254.169.254".parse().expect("ip"), 32, None, false)
                .await
                .expect("mmds route");
            let r = json("ip -j route get 169.254.169.254");
            assert_eq!(r[0]["dev"], "eth0");
            nl.del_route_v4(idx, "169.254.169.254".parse().expect("ip"), 32)
                .await
                .expect("del route");
            nl.del_address(idx, tmp, 16).await.expect("del address");
            nl.prohibit_v4("169.254.169.254".parse().expect("ip"))
                .await
                .expect("prohibit");
        });
        let addrs = json("ip -j addr show eth0");
        assert!(addrs[0]["addr_info"]
            .as_array()
            .expect("info")
            .iter()
            .all(|a| a["local"] != "169.254.0.15"));
        let out = Command::new("ip")
            .args(["route", "get", "169.254.169.254"])
            .output()
            .expect("ip");
        assert!(!out.status.success(), "MMDS still routable");
        let routes = sh("ip route show");
        assert!(routes.contains("prohibit 169.254.169.254"), "{routes}");
    });
}

#[test]
fn a_leftover_route_to_mmds_does_not_hide_a_missing_prohibit_route() {
    in_netns(|| {
        sh("ip link add eth0 type veth peer name peer0");
        sh("ip link set eth0 up");
        sh("ip addr add 169.254.0.15/16 dev eth0");
        // The fetch's temporary route, left behind (its removal failed): the prohibit route's
        // add meets EEXIST, and MMDS would stay reachable although "blocked" was reported.
        sh("ip route add 169.254.169.254/32 dev eth0");
        runtime().block_on(async {
            let nl = Netlink::connect().expect("netlink");
            nl.prohibit_v4("169.254.169.254".parse().expect("ip"))
                .await
                .expect("prohibit");
        });
        let out = Command::new("ip")
            .args(["route", "get", "169.254.169.254"])
            .output()
            .expect("ip");
        assert!(
            !out.status.success(),
            "MMDS still routable: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let routes = sh("ip route show");
        assert!(routes.contains("prohibit 169.254.169.254"), "{routes}");
    });
}

#[test]
fn a_clone_lifts_the_mmds_block_and_puts_it_back() {
    in_netns(|| {
        sh("ip link add eth0 type veth peer name peer0");
        sh("ip link set eth0 up");
        runtime().block_on(async {
            let nl = Netlink::connect().expect("netlink");
            let mmds: std::net::Ipv4Addr = "169.254.169.254".parse().expect("ip");
            nl.prohibit_v4(mmds).await.expect("prohibit");
            nl.unprohibit_v4(mmds).await.expect("lift");
            assert!(!sh("ip route show").contains("prohibit"), "still blocked");
            // Lifting twice finds nothing to remove, and says so by succeeding.
            nl.unprohibit_v4(mmds).await.expect("lift again");
            nl.prohibit_v4(mmds).await.expect("block again");
        });
        assert!(sh("ip route show").contains("prohibit 169.254.169.254"));
    });
}

#[test]
fn a_clone_moves_to_its_own_addresses_and_routes() {
    use roost::config::typed::Network;
    in_netns(|| {
        sh("ip link add eth0 type veth peer name peer0");
        let original = Network {
            mtu: Some(1420),
            addresses: vec![
                cfg("172.19.0.2", 32, Some("172.19.0.1")),
                cfg("fdaa:0:1::2", 112, Some("fdaa:0:1::1")),
            ],
            ..Network::default()
        };
        let clone = Network {
            mtu: Some(1420),
            addresses: vec![
                // A new IPv4 address behind a new gateway; the IPv6 one kept.
                cfg("172.19.0.6", 30, Some("172.19.0.5")),
                cfg("fdaa:0:1::2", 112, Some("fdaa:0:1::1")),
            ],
            ..Network::default()
        };
        runtime().block_on(async {
            roost::net::configure("eth0", &original)
                .await
                .expect("boot");
            roost::net::reconfigure("eth0", &original, &clone)
                .await
                .expect("clone");
            // Twice is harmless (a repeated restored call with a new generation).
            roost::net::reconfigure("eth0", &clone, &clone)
                .await
                .expect("again");
        });
        let addrs = json("ip -j addr show eth0");
        let locals: Vec<String> = addrs[0]["addr_info"]
            .as_array()
            .expect("addr_info")
            .iter()
            .filter(|a| a["scope"] == "global")
            .map(|a| format!("{}/{}", a["local"].as_str().unwrap_or(""), a["prefixlen"]))
            .collect();
        assert_eq!(locals, ["172.19.0.6/30", "fdaa:0:1::2/112"], "{addrs}");
        let routes = json("ip -j route show default");
        assert_eq!(routes.as_array().expect("routes").len(), 1, "{routes}");
        assert_eq!(routes[0]["gateway"], "172.19.0.5");
        let routes6 = json("ip -6 -j route show default");
        assert_eq!(routes6.as_array().expect("routes").len(), 1, "{routes6}");
        assert_eq!(routes6[0]["gateway"], "fdaa:0:1::1");
    });
}
