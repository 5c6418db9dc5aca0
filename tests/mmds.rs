//! MmdsClient against the devplatform's MMDS V2 emulation on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::*;
use roost::vm::mmds::{MmdsClient, MmdsError};
use serde_json::json;
use std::time::Duration;

fn platform() -> (Scratch, DevPlatform, std::net::SocketAddr) {
    let scratch = Scratch::new();
    let platform = DevPlatform::start(
        scratch.dir.path(),
        &json!({}),
        &["--mmds-listen", "127.0.0.1:0"],
    );
    let ready: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(scratch.path("platform.ready")).expect("ready"),
    )
    .expect("json");
    let addr = ready["mmds"]
        .as_str()
        .expect("mmds address")
        .parse()
        .expect("addr");
    (scratch, platform, addr)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn waits_through_404_until_the_host_puts_the_config() {
    let (_s, platform, addr) = platform();
    let doc = json!({"ImageConfig": {"Cmd": ["/bin/true"]}, "Hostname": "from-mmds"});
    let got = rt().block_on(async {
        let fetch = async {
            let mut client = MmdsClient::new(addr);
            client
                .fetch(tokio::time::Instant::now() + Duration::from_secs(20))
                .await
        };
        let put = async {
            tokio::time::sleep(Duration::from_millis(800)).await;
            platform.put_mmds(doc.to_string().as_bytes());
        };
        let (got, ()) = tokio::join!(fetch, put);
        got
    });
    assert_eq!(got.expect("config"), doc);
}

#[test]
fn a_snapshot_restore_401_leads_to_a_fresh_token() {
    let (_s, platform, addr) = platform();
    platform.put_mmds(json!({"Hostname": "before"}).to_string().as_bytes());
    rt().block_on(async {
        let mut client = MmdsClient::new(addr);
        let deadline = || tokio::time::Instant::now() + Duration::from_secs(10);
        assert_eq!(
            client.fetch(deadline()).await.expect("first")["Hostname"],
            "before"
        );
        // A restore forgets every token and the data; the host puts new data.
        assert_eq!(
            http(&platform.socket, "POST", "/_dev/mmds/restore", &[], b"").status,
            204
        );
        platform.put_mmds(json!({"Hostname": "after"}).to_string().as_bytes());
        assert_eq!(
            client.fetch(deadline()).await.expect("after restore")["Hostname"],
            "after"
        );
    });
}

#[test]
fn gives_up_at_the_deadline_with_the_reason() {
    let (_s, _platform, addr) = platform();
    let err = rt()
        .block_on(async {
            MmdsClient::new(addr)
                .fetch(tokio::time::Instant::now() + Duration::from_secs(1))
                .await
        })
        .expect_err("no data");
    assert!(
        matches!(&err, MmdsError::Deadline(why) if why.to_string().contains("404")),
        "{err}"
    );
    // Nothing listening: a connect error, also bounded.
    let err = rt()
        .block_on(async {
            MmdsClient::new("127.0.0.1:9".parse().expect("addr"))
                .fetch(tokio::time::Instant::now() + Duration::from_millis(500))
                .await
        })
        .expect_err("nothing there");
    assert!(err.to_string().contains("connect"), "{err}");
}
