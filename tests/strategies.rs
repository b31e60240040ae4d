//! The four strategies, seen through real UDP queries.

mod common;

use std::collections::{HashMap, HashSet};

use common::config::ConfigFile;
use common::*;
use hickory_proto::rr::RecordType;
use hickory_proto::rr::rdata::opt::{EdnsCode, EdnsOption};

/// The base config where `service` carries the static health table `health` (region, state).
fn base_with(service: &str, health: &[(&str, &str)]) -> ConfigFile {
    let mut config = ConfigFile::base();
    let service = config.service_mut(service);
    for (region, state) in health {
        service.health.insert(region.to_string(), state.to_string());
    }
    config
}

#[tokio::test(flavor = "multi_thread")]
async fn failover_moves_down_the_order_as_regions_fail() {
    for (health, expected) in [
        (&[("eu", "healthy")][..], "192.0.2.1"),
        (&[("eu", "unhealthy")], "198.51.100.1"),
        (&[("eu", "unhealthy"), ("us", "unhealthy")], "203.0.113.1"),
        (&[("eu", "unknown")], "192.0.2.1"),
    ] {
        // The row as the file writes it: `eu = "unhealthy", us = "unhealthy"`.
        let health_line = health
            .iter()
            .map(|(region, state)| format!("{region} = \"{state}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let server = start_config(&base_with("app.gslb.example.com", health)).await;
        let reply = udp(server.addr, &query("app.gslb.example.com", RecordType::A));
        assert_eq!(addresses(&reply), vec![expected], "{health_line}");
        server.app.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn all_regions_down_fails_open_or_answers_nodata() {
    let down = [
        ("eu", "unhealthy"),
        ("us", "unhealthy"),
        ("ap", "unhealthy"),
    ];
    let server = start_config(&base_with("app.gslb.example.com", &down)).await;
    let mut got = addresses(&udp(
        server.addr,
        &query("app.gslb.example.com", RecordType::A),
    ));
    got.sort();
    assert_eq!(got, vec!["192.0.2.1", "198.51.100.1", "203.0.113.1"]);
    server.app.shutdown().await;

    let mut config = base_with("app.gslb.example.com", &down);
    config.zone.all_down = Some("empty".into());
    let server = start_config(&config).await;
    let reply = udp(server.addr, &query("app.gslb.example.com", RecordType::A));
    assert!(reply.answers.is_empty());
    assert_eq!(reply.authorities.len(), 1, "NODATA with SOA");
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn round_robin_answers_every_healthy_address_rotated() {
    let server = start_config(&base_with("api.gslb.example.com", &[("us", "unhealthy")])).await;
    let mut firsts = HashSet::new();
    for i in 0..200u32 {
        let subnet = format!("100.{}.{}.0", 64 + i / 256, i % 256);
        let reply = udp(
            server.addr,
            &ecs_query("api.gslb.example.com", RecordType::A, &subnet, 24),
        );
        let got = addresses(&reply);
        firsts.insert(got[0].clone());
        let mut sorted = got.clone();
        sorted.sort();
        assert_eq!(sorted, vec!["192.0.2.3", "192.0.2.4", "203.0.113.3"]);
    }
    assert_eq!(firsts.len(), 3, "every address leads for some clients");
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn weighted_picks_one_address_in_proportion_and_skips_unhealthy_regions() {
    let server = start().await;
    let mut counts: HashMap<String, u32> = HashMap::new();
    let n = 3000u32;
    for i in 0..n {
        let subnet = format!("{}.{}.{}.0", 11 + i / 65536, (i / 256) % 256, i % 256);
        let reply = udp(
            server.addr,
            &ecs_query("web.gslb.example.com", RecordType::A, &subnet, 24),
        );
        let got = addresses(&reply);
        assert_eq!(got.len(), 1);
        *counts.entry(got[0].clone()).or_default() += 1;
    }
    // Loose bounds here (3000 samples); the ±2% check over 100k clients is a unit test.
    for (addr, weight) in [
        ("192.0.2.2", 0.5),
        ("198.51.100.2", 0.3),
        ("203.0.113.2", 0.2),
    ] {
        let share = f64::from(counts[addr]) / f64::from(n);
        assert!((share - weight).abs() < 0.05, "{addr}: {share} vs {weight}");
    }
    server.app.shutdown().await;

    let server = start_config(&base_with("web.gslb.example.com", &[("eu", "unhealthy")])).await;
    for i in 0..300u32 {
        let subnet = format!("10.{}.{}.0", i / 256, i % 256);
        let reply = udp(
            server.addr,
            &ecs_query("web.gslb.example.com", RecordType::A, &subnet, 24),
        );
        assert_ne!(addresses(&reply), vec!["192.0.2.2"]);
    }
    server.app.shutdown().await;
}

fn scope_of(reply: &hickory_proto::op::Message) -> u8 {
    match reply.edns.as_ref().and_then(|e| e.option(EdnsCode::Subnet)) {
        Some(EdnsOption::Subnet(subnet)) => subnet.scope_prefix(),
        other => panic!("no ECS echoed: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn geo_answers_the_nearest_healthy_region_to_the_client_subnet() {
    let server = start().await;
    // The scope is the matched network's prefix (RFC 7871 §7.2.1): the answer holds for every
    // address sharing those bits.
    for (subnet, expected, scope) in [
        ("192.0.2.0", "192.0.2.5", 24),
        ("198.51.100.0", "198.51.100.5", 24),
        ("203.0.113.0", "203.0.113.5", 24),
        // Unknown networks go to the default region (us): for all of 96.0.0.0/4, where no
        // network placing elsewhere lies (127.0.0.0/8, ap, differs at the 4th bit).
        ("100.64.1.0", "198.51.100.5", 4),
    ] {
        let reply = udp(
            server.addr,
            &ecs_query("geo.gslb.example.com", RecordType::A, subnet, 24),
        );
        assert_eq!(addresses(&reply), vec![expected], "{subnet}");
        assert_eq!(scope_of(&reply), scope, "{subnet}");
    }
    // Without ECS the source address decides: 127.0.0.0/8 is mapped to ap.
    let reply = udp(server.addr, &query("geo.gslb.example.com", RecordType::A));
    assert_eq!(addresses(&reply), vec!["203.0.113.5"]);
    // Source prefix 0: the client asks not to be located by subnet; scope 0.
    let reply = udp(
        server.addr,
        &ecs_query("geo.gslb.example.com", RecordType::A, "0.0.0.0", 0),
    );
    assert_eq!(scope_of(&reply), 0);
    server.app.shutdown().await;

    // ap down: Singapore clients go to the nearer of eu and us (eu).
    let server = start_config(&base_with("geo.gslb.example.com", &[("ap", "unhealthy")])).await;
    let reply = udp(
        server.addr,
        &ecs_query("geo.gslb.example.com", RecordType::A, "203.0.113.0", 24),
    );
    assert_eq!(addresses(&reply), vec!["192.0.2.5"]);
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_servers_of_the_zone_give_the_same_answers() {
    let a = start().await;
    let b = start().await;
    let mut compared = 0;
    for i in 0..300u32 {
        let subnet = format!("10.{}.{}.0", i / 256, i % 256);
        for qname in [
            "web.gslb.example.com",
            "api.gslb.example.com",
            "geo.gslb.example.com",
            "app.gslb.example.com",
        ] {
            let message = ecs_query(qname, RecordType::A, &subnet, 24);
            // Answers depend on the second they are asked in: retry a pair that straddled one.
            for attempt in 0..3 {
                let (x, y) = (udp(a.addr, &message), udp(b.addr, &message));
                if addresses(&x) == addresses(&y) {
                    compared += 1;
                    break;
                }
                assert!(
                    attempt < 2,
                    "{qname} for {subnet}: {:?} vs {:?}",
                    addresses(&x),
                    addresses(&y)
                );
            }
        }
    }
    assert_eq!(compared, 1200);
    a.app.shutdown().await;
    b.app.shutdown().await;
}
