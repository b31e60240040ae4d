//! A region coming back is let in again slowly (README, "When a region fails"): failover
//! returns to it only after `zone.failback_delay_ms`, whether it was unhealthy or drained, and
//! round-robin answers include it for a growing share of clients over `zone.slow_start_ms`.
//! Three in-process regions gossiping, real HTTP backends and probes, real DNS queries.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::backends::Mode;
use common::cluster::*;
use common::*;
use hickory_proto::rr::RecordType;

const APP: &str = "app.gslb.example.com";
const API: &str = "api.gslb.example.com";
const EU: usize = 0;
const US: usize = 1;

/// Waits until every server's snapshot has region `region` of `service` available again and
/// marked as coming back; returns at once after.
async fn until_back(cluster: &Cluster, service: &str, region: usize) {
    let deadline = Instant::now() + PATIENCE;
    for i in 0..3 {
        loop {
            let snapshot = cluster.node(i).app.snapshot();
            let answer = snapshot
                .services
                .iter()
                .find(|s| s.name().to_ascii() == format!("{service}."))
                .map(|s| s.regions[region].clone())
                .expect("service served");
            if answer.health.is_available() && answer.back_since_ms().is_some() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {i}: region {region} not back"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn everywhere(cluster: &Cluster, qname: &str, want: &[String]) {
    for i in 0..3 {
        wait_for_answer(cluster.node(i).dns, qname, PATIENCE, |got| got == want).await;
    }
}

fn admin(cluster: &Cluster) -> SocketAddr {
    cluster.node(EU).app.admin_addr().expect("admin endpoint")
}

/// POST /drain or /undrain of eu at eu's admin endpoint, as `gslbd drain` sends it.
fn drain(cluster: &Cluster, verb: &str) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_gslbd"))
        .args([verb, "eu", "--admin", &admin(cluster).to_string()])
        .output()
        .expect("run gslbd");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failover_returns_to_a_recovered_or_undrained_region_after_the_failback_delay() {
    let cluster = Cluster::start_with(97, |config| {
        config.server.admin = Some("127.0.0.1:0".into());
        config.zone.failback_delay_ms = Some(4_000);
    })
    .await;
    let (eu, us) = (vec![cluster.addr(EU)], vec![cluster.addr(US)]);
    everywhere(&cluster, APP, &eu).await;

    for (fail, recover) in [("backend", "backend"), ("drain", "undrain")] {
        if fail == "backend" {
            cluster.backends[EU].set(Mode::Status(500, "down"));
        } else {
            drain(&cluster, fail);
        }
        everywhere(&cluster, APP, &us).await;
        if recover == "backend" {
            cluster.backends[EU].set(Mode::Status(200, "ok"));
        } else {
            drain(&cluster, recover);
        }
        // eu is healthy again everywhere, and every server still answers us: held off.
        until_back(&cluster, APP, EU).await;
        for i in 0..3 {
            assert_eq!(
                sorted_answer(cluster.node(i).dns, APP),
                us,
                "{recover}, node {i}"
            );
        }
        everywhere(&cluster, APP, &eu).await;
    }
    cluster.shutdown().await;
}

/// Of `clients` client networks (ECS), how many get `addr` from `server` for `api`.
fn clients_with(server: SocketAddr, addr: &str, clients: u32) -> u32 {
    (0..clients)
        .filter(|i| {
            // Distinct /24s: answers are keyed by the client network.
            let subnet = format!("10.{}.{}.0", i / 250, i % 250);
            let reply = udp(server, &ecs_query(API, RecordType::A, &subnet, 24));
            addresses(&reply).iter().any(|a| a == addr)
        })
        .count() as u32
}

#[tokio::test(flavor = "multi_thread")]
async fn a_recovered_region_joins_round_robin_answers_for_a_growing_share_of_clients() {
    let cluster = Cluster::start_with(98, |config| {
        config.zone.slow_start_ms = Some(8_000);
    })
    .await;
    let us = cluster.addr(US);
    let all: Vec<String> = (0..3).map(|r| cluster.addr(r)).collect();
    everywhere(&cluster, API, &all).await;
    cluster.backends[US].set(Mode::Status(500, "down"));
    let without_us: Vec<String> = all.iter().filter(|a| **a != us).cloned().collect();
    everywhere(&cluster, API, &without_us).await;

    cluster.backends[US].set(Mode::Status(200, "ok"));
    until_back(&cluster, API, US).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let clients = 400;
    let some = clients_with(cluster.node(EU).dns, &us, clients);
    assert!(
        0 < some && some < clients,
        "a share of clients gets us during its slow start: {some} of {clients}"
    );
    let deadline = Instant::now() + PATIENCE;
    while clients_with(cluster.node(EU).dns, &us, clients) < clients {
        assert!(Instant::now() < deadline, "us never back for every client");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    cluster.shutdown().await;
}
