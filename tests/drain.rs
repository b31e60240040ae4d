//! Drain and undrain at run time (`gslbd drain`): the real binary asks a region's admin
//! endpoint, the region's own answers and its signed report carry it, and every region's
//! server follows; a service drains alone; what is not the node's to drain is refused.

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::cluster::*;
use common::*;

const APP: &str = "app.gslb.example.com";
const API: &str = "api.gslb.example.com";

async fn cluster(net: u8) -> Cluster {
    let cluster = Cluster::start_with(net, |config| {
        config.server.admin = Some("127.0.0.1:0".into());
    })
    .await;
    for i in 0..3 {
        wait_for_answer(cluster.node(i).dns, APP, PATIENCE, |got| {
            got == [cluster.addr(0)]
        })
        .await;
    }
    cluster
}

fn admin(cluster: &Cluster, i: usize) -> SocketAddr {
    cluster.node(i).app.admin_addr().expect("admin endpoint")
}

/// `gslbd drain|undrain ARGS --admin ADMIN`: exit success and what it printed.
fn gslbd(verb: &str, args: &[&str], admin: SocketAddr) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_gslbd"))
        .arg(verb)
        .args(args)
        .args(["--admin", &admin.to_string()])
        .output()
        .expect("run gslbd");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Waits until every server's answer for `qname` satisfies `want`.
async fn everywhere(cluster: &Cluster, qname: &str, want: impl Fn(&[String]) -> bool + Copy) {
    for i in 0..3 {
        wait_for_answer(cluster.node(i).dns, qname, PATIENCE, want).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drained_region_leaves_every_region_s_answers_until_undrained() {
    let cluster = cluster(74).await;
    let (eu, us) = (cluster.addr(0), cluster.addr(1));

    let (ok, said) = gslbd("drain", &["eu"], admin(&cluster, 0));
    assert!(ok, "{said}");
    assert!(said.contains("drained region eu"), "{said}");
    everywhere(&cluster, APP, |got| got == [us.clone()]).await;
    everywhere(&cluster, API, |got| !got.contains(&eu)).await;
    // Said as such: on eu's own /state, on us's from eu's report, and in eu's metrics.
    for i in [0, 1] {
        let (_, state) = http_get(admin(&cluster, i), "/state");
        assert!(state.contains(r#""source":"drained""#), "node {i}: {state}");
    }
    let metrics = cluster.node(0).app.metrics().encode();
    assert_eq!(sample(&metrics, "gslbd_drained", &[r#"service="*""#]), 1.0);

    let (ok, said) = gslbd("undrain", &["eu"], admin(&cluster, 0));
    assert!(ok, "{said}");
    everywhere(&cluster, APP, |got| got == [eu.clone()]).await;
    everywhere(&cluster, API, |got| got.contains(&eu)).await;
    let metrics = cluster.node(0).app.metrics().encode();
    assert_eq!(sample(&metrics, "gslbd_drained", &[]), 0.0);
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_drained_service_leaves_only_its_own_answers() {
    let cluster = cluster(75).await;
    let (eu, us) = (cluster.addr(0), cluster.addr(1));

    let (ok, said) = gslbd("drain", &["eu", "--service", "app"], admin(&cluster, 0));
    assert!(ok, "{said}");
    everywhere(&cluster, APP, |got| got == [us.clone()]).await;
    for i in 0..3 {
        assert!(sorted_answer(cluster.node(i).dns, API).contains(&eu));
    }
    let (ok, said) = gslbd("undrain", &["eu", "--service", APP], admin(&cluster, 0));
    assert!(ok, "{said}");
    everywhere(&cluster, APP, |got| got == [eu.clone()]).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn what_is_not_the_node_s_to_drain_is_refused_and_nothing_changes() {
    let cluster = cluster(76).await;
    let eu = cluster.addr(0);

    // Another region: each region drains at its own gslbd.
    let (ok, said) = gslbd("drain", &["us"], admin(&cluster, 0));
    assert!(!ok);
    assert!(said.contains("speaks for region eu, not us"), "{said}");
    // A service the region does not have.
    let (ok, said) = gslbd("drain", &["eu", "--service", "nope"], admin(&cluster, 0));
    assert!(!ok);
    assert!(said.contains("404"), "{said}");
    // Not a name.
    let (ok, said) = gslbd("drain", &["eu", "--service", "a b"], admin(&cluster, 0));
    assert!(!ok);
    assert!(said.contains("not a region or service name"), "{said}");
    // Without the control header (a web page posting through a browser), or as a GET.
    let (status, body) = http(admin(&cluster, 0), "POST", "/drain?region=eu");
    assert_eq!(status, 403, "{body}");
    let (status, _) = http_get(admin(&cluster, 0), "/drain?region=eu");
    assert_eq!(status, 405);

    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for i in 0..3 {
        assert_eq!(
            sorted_answer(cluster.node(i).dns, APP),
            std::slice::from_ref(&eu)
        );
    }
    cluster.shutdown().await;
}
