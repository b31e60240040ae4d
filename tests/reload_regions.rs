//! Reloads that add, remove or reorder regions, with gossip and Kubernetes discovery on: they
//! apply to every subsystem at once (remote reports and discovered services follow their
//! regions by name), or, when they touch a setting the running node was started with (the
//! gossip keys of the regions), are refused whole with the setting named; never a panic,
//! never a false "unhealthy".

mod common;

use std::path::Path;
use std::time::Duration;

use common::backends::{self, Mode};
use common::cluster::{Cluster, PATIENCE, REGIONS, keys, region_config};
use common::config::{ConfigFile, Region};
use common::kube_api::FakeApi;
use common::kube_cluster::{config as kube_config, ingress, slice, start};
use common::*;
use gslbd::app::{App, ReloadError};
use gslbd::model::Health;
use gslbd::region_health::Why;
use serde_json::Value;

const SHOP: &str = "shop.gslb.example.com";

/// Writes `config` next to `dir` and reloads `app` from it.
async fn reload(app: &App, dir: &Path, config: &ConfigFile) -> Result<(), ReloadError> {
    let path = dir.join("gslbd.toml");
    std::fs::write(&path, config.to_toml()).expect("write config");
    app.reload_from(&path).await
}

/// `config` with its regions in the order of `names`.
fn regions_in_order(mut config: ConfigFile, names: &[&str]) -> ConfigFile {
    config.regions = names
        .iter()
        .map(|name| {
            config
                .regions
                .iter()
                .find(|r| r.name == *name)
                .cloned()
                .unwrap_or_else(|| Region::new(name))
        })
        .collect();
    config
}

/// How `app` sees each region of the service `name`: (region, health, why).
fn seen(app: &App, name: &str) -> Vec<(String, Health, Why)> {
    let snapshot = app.snapshot();
    let service = snapshot
        .services
        .iter()
        .find(|s| s.name().to_string() == format!("{name}."))
        .expect("the service is served");
    service
        .regions
        .iter()
        .map(|r| (snapshot.regions[r.region].to_string(), r.health, r.why))
        .collect()
}

fn needs_restart(result: Result<(), ReloadError>) -> Vec<&'static str> {
    match result {
        Err(ReloadError::NeedsRestart(settings)) => settings,
        other => panic!("expected a refusal naming settings, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn reordered_regions_keep_every_remote_region_s_reports() {
    let cluster = Cluster::start(81).await;
    let eu = &cluster.node(0).app;
    let all: Vec<String> = (0..3).map(|i| cluster.addr(i)).collect();
    // Until eu holds us's and ap's reports and its own probe's verdict.
    let settled = || {
        seen(eu, "api.gslb.example.com")
            .iter()
            .all(|(_, health, _)| *health == Health::Healthy)
    };
    let deadline = std::time::Instant::now() + PATIENCE;
    while !settled() {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            seen(eu, "api.gslb.example.com")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    // eu's own config as it started (the first node has no seeds), regions reordered.
    let started = region_config(0, cluster.net, cluster.port, &cluster.keys, &[]);
    let reordered = regions_in_order(started.clone(), &["ap", "us", "eu"]);
    reload(eu, dir.path(), &reordered)
        .await
        .expect("a reorder changes no restart setting");

    let api = seen(eu, "api.gslb.example.com");
    for (region, health, why) in &api {
        if region != "eu" {
            assert_eq!(
                (*health, *why),
                (Health::Healthy, Why::Reported),
                "{region}: its reports are held by name: {api:?}"
            );
        }
    }
    assert_eq!(
        sorted_answer(cluster.node(0).dns, "api.gslb.example.com"),
        all
    );
    assert_eq!(
        sorted_answer(cluster.node(0).dns, "app.gslb.example.com"),
        [cluster.addr(0)],
        "failover eu > us > ap by name"
    );

    // A region added needs its gossip key: [gossip] changes, which needs a restart.
    let mut added = regions_in_order(started.clone(), &["eu", "us", "ap", "sa"]);
    let gossip = added.gossip_mut();
    gossip
        .region_keys
        .insert("sa".into(), cluster.keys.publics[2].clone());
    assert_eq!(
        needs_restart(reload(eu, dir.path(), &added).await),
        ["[gossip]"]
    );
    // A region removed with its key: likewise; without its key the file is invalid.
    let mut removed = regions_in_order(started.clone(), &["eu", "us"]);
    removed.gossip_mut().region_keys.remove("ap");
    for service in &mut removed.services {
        service.targets.remove("ap");
        service.failover_order.retain(|r| r != "ap");
    }
    assert_eq!(
        needs_restart(reload(eu, dir.path(), &removed).await),
        ["[gossip]"]
    );
    removed.gossip_mut().region_keys = started.gossip.clone().expect("gossip").region_keys;
    assert!(matches!(
        reload(eu, dir.path(), &removed).await,
        Err(ReloadError::Config(_))
    ));
    // Nothing of the refused files applied.
    assert_eq!(eu.snapshot().regions.len(), 3);
    assert_eq!(
        sorted_answer(cluster.node(0).dns, "api.gslb.example.com"),
        all
    );
    cluster.shutdown().await;
}

/// The discovered service `SHOP` as `/state` shows it: region → health.
fn discovered(admin: std::net::SocketAddr) -> Vec<(String, String)> {
    let state: Value = serde_json::from_str(&http_get(admin, "/state").1).expect("JSON");
    state["services"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == format!("{SHOP}.")))
        .map(|shop| {
            shop["regions"]
                .as_array()
                .expect("regions")
                .iter()
                .map(|r| {
                    (
                        r["region"].as_str().unwrap_or_default().to_string(),
                        r["health"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn discovered_services_follow_regions_added_removed_and_reordered() {
    let annotations = [("gslbd.io/strategy", "round-robin")];
    let cluster = start(
        ["127.0.82.1"],
        vec![
            ingress("shop", &[SHOP], &annotations, &["127.0.82.1"], "web"),
            slice("web", true),
        ],
    )
    .await;
    let app = &cluster.server.app;
    let port = cluster.backends[0].addr.port();
    let healthy_in_eu = || discovered(cluster.admin).contains(&("eu".into(), "healthy".into()));
    wait_for_answer(cluster.server.addr, SHOP, PATIENCE, |got| {
        got == ["127.0.82.1"]
    })
    .await;
    let deadline = std::time::Instant::now() + PATIENCE;
    while !healthy_in_eu() {
        assert!(
            std::time::Instant::now() < deadline,
            "{:?}",
            discovered(cluster.admin)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let base = kube_config(&cluster.api, port);

    for (step, names) in [
        ("reordered", &["us", "eu"][..]),
        ("us removed", &["eu"][..]),
        ("ap added", &["eu", "ap"][..]),
    ] {
        reload(app, dir.path(), &regions_in_order(base.clone(), names))
            .await
            .unwrap_or_else(|error| panic!("{step}: {error}"));
        // Still answered from eu's ingress, still healthy in eu: never a false unhealthy.
        assert_eq!(
            sorted_answer(cluster.server.addr, SHOP),
            ["127.0.82.1"],
            "{step}"
        );
        let seen = discovered(cluster.admin);
        assert!(
            seen.contains(&("eu".into(), "healthy".into())),
            "{step}: {seen:?}"
        );
        assert_eq!(
            seen.len(),
            names.len(),
            "{step}: one entry per region: {seen:?}"
        );
    }
    cluster.stop().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn with_kubernetes_and_gossip_on_a_reorder_applies_and_new_regions_wait_for_a_restart() {
    let api = FakeApi::start("127.0.0.1").await;
    let backend = backends::http(
        backends::bind("127.0.83.1", 0).await,
        Mode::Status(200, "ok"),
    );
    api.apply(ingress(
        "shop",
        &[SHOP],
        &[("gslbd.io/strategy", "round-robin")],
        &["127.0.83.1"],
        "web",
    ));
    api.apply(slice("web", true));
    // Gossip on too, with its own region only (no peers needed for what a reload does).
    let keys = keys();
    let mut base = kube_config(&api, backend.addr.port());
    base.gossip = Some(keys.gossip(0, &["eu", "us"], "127.0.0.1:0", &[]));
    let server = start_config(&base).await;
    let app = &server.app;
    wait_for_answer(server.addr, SHOP, PATIENCE, |got| got == ["127.0.83.1"]).await;
    let dir = tempfile::tempdir().expect("temp dir");

    reload(
        app,
        dir.path(),
        &regions_in_order(base.clone(), &["us", "eu"]),
    )
    .await
    .expect("a reorder keeps the gossip keys");
    assert_eq!(sorted_answer(server.addr, SHOP), ["127.0.83.1"]);

    let mut added = regions_in_order(base.clone(), &["eu", "us", "ap"]);
    added
        .gossip_mut()
        .region_keys
        .insert("ap".into(), keys.publics[REGIONS.len() - 1].clone());
    assert_eq!(
        needs_restart(reload(app, dir.path(), &added).await),
        ["[gossip]"]
    );
    assert_eq!(app.snapshot().regions.len(), 2, "nothing of it applied");
    assert_eq!(sorted_answer(server.addr, SHOP), ["127.0.83.1"]);
    server.app.shutdown().await;
    api.stop();
    backend.stop();
}
