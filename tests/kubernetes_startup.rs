//! Kubernetes discovery at start-up, against the stand-in API server: nothing discovered is
//! served (nor, with gossip, reported) before every core watch has listed, so a late
//! EndpointSlice list never makes healthy backends look unready; an API server down at start
//! leaves the config's services serving and `/readyz` passing after the sync timeout, says so
//! in `/state` and a metric, and discovery catches up once the API server is back.

mod common;

use std::time::{Duration, Instant};

use common::backends::{self, Mode};
use common::config::Service;
use common::kube_api::FakeApi;
use common::kube_cluster::{PATIENCE, config, ingress, slice};
use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::Value;

const SHOP: &str = "shop.gslb.example.com";

/// Polls `check` until it holds, within `PATIENCE`.
async fn until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !check() {
        assert!(Instant::now() < deadline, "still not: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn rcode(server: &TestServer, name: &str) -> ResponseCode {
    udp(server.addr, &query(name, RecordType::A))
        .metadata
        .response_code
}

fn state(server: &TestServer) -> Value {
    let admin = server.app.admin_addr().expect("admin");
    serde_json::from_str(&http_get(admin, "/state").1).expect("JSON")
}

/// The state `gslbd_kubernetes_sync_state` says is current.
fn sync_metric(server: &TestServer) -> Vec<String> {
    let admin = server.app.admin_addr().expect("admin");
    let metrics = http_get(admin, "/metrics").1;
    ["listing", "synced", "not_listed"]
        .into_iter()
        .filter(|state| {
            let label = format!("state=\"{state}\"");
            sample(&metrics, "gslbd_kubernetes_sync_state", &[&label]) == 1.0
        })
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_discovered_is_served_before_the_endpointslices_have_listed() {
    let api = FakeApi::start("127.0.0.1").await;
    let backend = backends::http(
        backends::bind("127.0.76.1", 0).await,
        Mode::Status(200, "ok"),
    );
    api.hold_lists("EndpointSlice", true);
    api.apply(ingress(
        "shop",
        &[SHOP],
        &[("gslbd.io/strategy", "round-robin")],
        &["127.0.76.1"],
        "web",
    ));
    api.apply(slice("web", true));
    let server = start_config(&config(&api, backend.addr.port())).await;
    let admin = server.app.admin_addr().expect("admin");

    // Ingresses and Services listed, EndpointSlices not: the host is not served at all (an
    // empty slice store would have made it unhealthy), and the server is not ready.
    until("the Ingress list is taken", || {
        api.requests()
            .iter()
            .any(|r| r == "LIST /apis/networking.k8s.io/v1/ingresses")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(rcode(&server, SHOP), ResponseCode::NXDomain);
    let (status, body) = http_get(admin, "/readyz");
    assert_eq!(
        (status, body.as_str()),
        (503, "waiting for the first Kubernetes discovery\n")
    );
    assert_eq!(state(&server)["kubernetes"], "listing");

    api.hold_lists("EndpointSlice", false);
    wait_for_answer(server.addr, SHOP, PATIENCE, |got| got == ["127.0.76.1"]).await;
    let shop_health = || {
        let services = state(&server)["services"].clone();
        services
            .as_array()
            .and_then(|s| s.iter().find(|s| s["name"] == format!("{SHOP}.")))
            .expect("the discovered service in /state")["regions"][0]["health"]
            .clone()
    };
    // From its first publication on, never unhealthy: unknown until its probe's verdict.
    assert_ne!(shop_health(), "unhealthy");
    until("the probe's verdict", || shop_health() == "healthy").await;
    until("ready", || http_get(admin, "/readyz").0 == 200).await;
    assert_eq!(state(&server)["kubernetes"], "synced");
    server.app.shutdown().await;
    api.stop();
    backend.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn an_api_server_down_at_start_leaves_the_config_serving_and_ready() {
    let api = FakeApi::start("127.0.0.1").await;
    api.set_down(true).await;
    let backend = backends::http(
        backends::bind("127.0.77.1", 0).await,
        Mode::Status(200, "ok"),
    );
    let mut config = config(&api, backend.addr.port());
    config
        .kubernetes
        .as_mut()
        .expect("kubernetes on")
        .sync_timeout_secs = Some(1);
    config.services.push(
        Service::round_robin("static.gslb.example.com")
            .target("us", &["198.51.100.9"])
            .probe(common::config::Probe::none()),
    );
    let server = start_config(&config).await;
    let admin = server.app.admin_addr().expect("admin");

    assert_eq!(
        sorted_answer(server.addr, "static.gslb.example.com"),
        ["198.51.100.9"],
        "the config's services serve from the start"
    );
    until("ready after the sync timeout", || {
        http_get(admin, "/readyz").0 == 200
    })
    .await;
    assert_eq!(state(&server)["kubernetes"], "not_listed");
    assert_eq!(sync_metric(&server), ["not_listed"]);

    // The API server comes back with an annotated Ingress: discovery catches up.
    api.apply(ingress(
        "shop",
        &[SHOP],
        &[("gslbd.io/strategy", "round-robin")],
        &["127.0.77.1"],
        "web",
    ));
    api.apply(slice("web", true));
    api.set_down(false).await;
    wait_for_answer(server.addr, SHOP, PATIENCE, |got| got == ["127.0.77.1"]).await;
    until("synced", || state(&server)["kubernetes"] == "synced").await;
    assert_eq!(sync_metric(&server), ["synced"]);
    server.app.shutdown().await;
    api.stop();
    backend.stop();
}
