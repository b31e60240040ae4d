//! Three regions gossiping on loopback, each with a real HTTP backend it probes: reports
//! converge, forged and wrong-key traffic is rejected, dead regions expire, partitions behave as
//! documented and restarted nodes rejoin. Asserts answers and states, not timings.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::backends::Mode;
use common::cluster::*;
use common::config::{ConfigFile, Gossip as GossipTable, Probe, Service};
use common::*;
use gslbd::gossip::Gossip;
use gslbd::gossip::keys::generate;
use gslbd::gossip::local_report::LocalReport;
use gslbd::gossip::report::{ServiceReport, ServiceSpec};
use gslbd::metrics::Metrics;
use gslbd::model::{AllDownPolicy, Health, StrategyKind};
use gslbd::tasks::Tasks;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, RecordType};
use tokio::sync::{mpsc, watch};

async fn answers(dns: std::net::SocketAddr, qname: &str) -> Vec<String> {
    sorted_answer(dns, qname)
}

async fn eventually(dns: std::net::SocketAddr, qname: &str, want: &[String]) {
    wait_for_answer(dns, qname, PATIENCE, |got| got == want).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn remote_health_converges_and_failover_follows_it_everywhere() {
    let cluster = Cluster::start(60).await;
    let eu = vec![cluster.addr(0)];
    let us = vec![cluster.addr(1)];
    for i in 0..3 {
        eventually(cluster.node(i).dns, "app.gslb.example.com", &eu).await;
    }
    // eu's backend fails: eu's node sees it by probe, us and ap learn it by gossip.
    cluster.backends[0].set(Mode::Status(503, "down"));
    for i in 0..3 {
        eventually(cluster.node(i).dns, "app.gslb.example.com", &us).await;
    }
    // Every node timed the failover from eu's first failing probe (carried in eu's report)
    // to its own first snapshot without eu.
    for i in 0..3 {
        let metrics = cluster.node(i).app.metrics().encode();
        let count = metrics
            .lines()
            .find(|l| l.starts_with("gslbd_failover_seconds_count{region=\"eu\"}"))
            .and_then(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()));
        assert!(count.is_some_and(|c| c >= 1.0), "node {i}: {metrics}");
        assert!(
            metrics.contains(
                "gslbd_service_region_health{region=\"eu\",service=\"app.gslb.example.com\"} 0\n"
            ),
            "node {i}: {metrics}"
        );
    }
    cluster.backends[0].set(Mode::Status(200, "ok"));
    for i in 0..3 {
        eventually(cluster.node(i).dns, "app.gslb.example.com", &eu).await;
    }
    let metrics = cluster.node(0).app.metrics().encode();
    assert!(metrics.contains("gslbd_gossip_members 3"), "{metrics}");
    // Three regions' units: each at least a heartbeat and a shard.
    assert!(
        sample(&metrics, "gslbd_gossip_held_bytes", &[]) > 3.0 * 200.0,
        "{metrics}"
    );
    for region in ["us", "ap"] {
        let age: f64 = metrics
            .lines()
            .find(|l| {
                l.starts_with("gslbd_gossip_region_last_seen_seconds")
                    && l.contains(&format!("region=\"{region}\""))
            })
            .and_then(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse().ok()))
            .expect("last-seen gauge per remote region");
        assert!(age < 1.6, "{region} heard recently: {age}");
    }
    assert!(!metrics.contains("gslbd_gossip_sent_bytes_total 0\n"));
    cluster.shutdown().await;
}

/// Regions observing each other (the default): ap's gslbd dies but its backend serves, so
/// eu and us keep answering it on their own probes' word; its backend dies too and it leaves;
/// restarted, it is answered again.
#[tokio::test(flavor = "multi_thread")]
async fn a_region_whose_gslbd_dies_stays_while_observers_see_its_backend_serve() {
    let mut cluster = Cluster::start(61).await;
    let all: Vec<String> = (0..3).map(|r| cluster.addr(r)).collect();
    for i in 0..3 {
        eventually(cluster.node(i).dns, "api.gslb.example.com", &all).await;
    }
    let ap = cluster.nodes[2].take().expect("ap running");
    ap.app.shutdown().await;
    for i in 0..2 {
        until_why(&cluster, i, 2, "observed", "healthy").await;
        eventually(cluster.node(i).dns, "api.gslb.example.com", &all).await;
    }
    // Its backend fails too: the observers take it out.
    cluster.backends[2].set(Mode::Status(500, "down"));
    let without_ap = vec![cluster.addr(0), cluster.addr(1)];
    for i in 0..2 {
        eventually(cluster.node(i).dns, "api.gslb.example.com", &without_ap).await;
        until_why(&cluster, i, 2, "observed", "unhealthy").await;
    }
    // Restarted with its backend: answered again, on its own report.
    cluster.backends[2].set(Mode::Status(200, "ok"));
    let restarted = cluster.start_region(2).await;
    cluster.nodes[2] = Some(restarted);
    for i in 0..3 {
        eventually(cluster.node(i).dns, "api.gslb.example.com", &all).await;
    }
    until_why(&cluster, 0, 2, "reported", "healthy").await;
    cluster.shutdown().await;
}

/// Waits until node `i`'s snapshot says region `region` of `api` is `health` for reason
/// `source` (`Why`'s serialized tag).
async fn until_why(cluster: &Cluster, i: usize, region: usize, source: &str, health: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let snapshot = cluster.node(i).app.snapshot();
        let api = snapshot
            .services
            .iter()
            .find(|s| s.name().to_ascii() == "api.gslb.example.com.")
            .expect("api served");
        let answer = &api.regions[region];
        let why = serde_json::to_value(answer.why).expect("why serializes");
        let got = serde_json::to_value(answer.health).expect("health serializes");
        if why["source"] == source && got == health {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "node {i}: region {region} is {got} by {why}, not {health} by {source}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// With observing off, the owner alone speaks: ap's gslbd dies (its backend is fine) and after
/// `peer_timeout` eu and us drop ap's address; restarted, it rejoins and is re-admitted.
#[tokio::test(flavor = "multi_thread")]
async fn without_observers_a_dead_region_leaves_answers_after_the_timeout_and_rejoins() {
    let mut cluster = Cluster::start_with(60, no_observers).await;
    let all: Vec<String> = (0..3).map(|r| cluster.addr(r)).collect();
    for i in 0..3 {
        eventually(cluster.node(i).dns, "api.gslb.example.com", &all).await;
    }
    let ap = cluster.nodes[2].take().expect("ap running");
    ap.app.shutdown().await;
    let without_ap = vec![cluster.addr(0), cluster.addr(1)];
    eventually(cluster.node(0).dns, "api.gslb.example.com", &without_ap).await;
    eventually(cluster.node(1).dns, "api.gslb.example.com", &without_ap).await;
    let restarted = cluster.start_region(2).await;
    cluster.nodes[2] = Some(restarted);
    for i in 0..3 {
        eventually(cluster.node(i).dns, "api.gslb.example.com", &all).await;
    }
    cluster.shutdown().await;
}

/// Gossip alone is cut (the `PeerFilter` seam; probes still pass), observing off: the owner's
/// rule. A partition that cuts probes too is `tests/region_loss.rs`.
#[tokio::test(flavor = "multi_thread")]
async fn an_isolated_region_keeps_the_last_known_state_while_the_others_drop_it() {
    let cluster = Cluster::start_with(62, no_observers).await;
    let all: Vec<String> = (0..3).map(|r| cluster.addr(r)).collect();
    for i in 0..3 {
        eventually(cluster.node(i).dns, "api.gslb.example.com", &all).await;
    }
    // Cut ap off from eu and us (both directions).
    let ap_gossip = cluster.node(2).app.gossip().expect("gossip").local_addr;
    for i in 0..2 {
        let peer = cluster.node(i).app.gossip().expect("gossip").local_addr;
        cluster.node(i).partition.block(ap_gossip);
        cluster.node(2).partition.block(peer);
    }
    let without_ap = vec![cluster.addr(0), cluster.addr(1)];
    eventually(cluster.node(0).dns, "api.gslb.example.com", &without_ap).await;
    eventually(cluster.node(1).dns, "api.gslb.example.com", &without_ap).await;
    // ap hears nobody: every other region is stale, so it keeps answering what it last knew.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        answers(cluster.node(2).dns, "api.gslb.example.com").await,
        all
    );
    // Healed: everyone is back.
    for i in 0..3 {
        cluster.node(i).partition.heal();
    }
    for i in 0..3 {
        eventually(cluster.node(i).dns, "api.gslb.example.com", &all).await;
    }
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partition_between_two_regions_is_bridged_by_the_third() {
    let cluster = Cluster::start(63).await;
    let all: Vec<String> = (0..3).map(|r| cluster.addr(r)).collect();
    let eu_gossip = cluster.node(0).app.gossip().expect("gossip").local_addr;
    let us_gossip = cluster.node(1).app.gossip().expect("gossip").local_addr;
    cluster.node(0).partition.block(us_gossip);
    cluster.node(1).partition.block(eu_gossip);
    for i in 0..3 {
        eventually(cluster.node(i).dns, "api.gslb.example.com", &all).await;
    }
    // Reports relay through ap: us still learns when eu's backend fails.
    cluster.backends[0].set(Mode::Status(500, "down"));
    let us = vec![cluster.addr(1)];
    eventually(cluster.node(1).dns, "app.gslb.example.com", &us).await;
    tokio::time::sleep(Duration::from_millis(2000)).await;
    // And nobody went stale meanwhile.
    let without_eu = vec![cluster.addr(1), cluster.addr(2)];
    assert_eq!(
        answers(cluster.node(1).dns, "api.gslb.example.com").await,
        without_eu
    );
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wrong_key_packets_and_forged_reports_are_rejected() {
    let cluster = Cluster::start(64).await;
    let eu = vec![cluster.addr(0)];
    for i in 0..3 {
        eventually(cluster.node(i).dns, "app.gslb.example.com", &eu).await;
    }
    let seeds = cluster.seeds();

    // An intruder with another cluster key: every datagram it sends is dropped.
    let (other_key, _, _) = generate().expect("keys");
    let mut outsider = region_config(1, 64, cluster.port, &cluster.keys, &seeds);
    outsider.gossip_mut().keys = vec![other_key];
    let outsider = start_node(&outsider).await;

    // A member with the cluster key claiming to be eu, signing with its own key, and whose
    // eu backend is down: it would publish "eu unhealthy" for eu.
    let (_, rogue_seed, rogue_public) = generate().expect("keys");
    let mut rogue = region_config(0, 65, cluster.port, &cluster.keys, &seeds);
    let gossip = rogue.gossip_mut();
    gossip.instance = Some("rogue".into());
    gossip.signing_key = Some(rogue_seed);
    gossip.region_keys.insert("eu".into(), rogue_public);
    let rogue = start_node(&rogue).await;

    let deadline = Instant::now() + PATIENCE;
    loop {
        let eu_stats = cluster.node(0).app.gossip().expect("gossip");
        let us_stats = cluster.node(1).app.gossip().expect("gossip");
        let wrong_key =
            eu_stats.transport_stats.rejected_auth() + us_stats.transport_stats.rejected_auth();
        let forged = eu_stats
            .report_stats
            .rejected_signature
            .load(std::sync::atomic::Ordering::Relaxed)
            + us_stats
                .report_stats
                .rejected_signature
                .load(std::sync::atomic::Ordering::Relaxed);
        if wrong_key > 0 && forged > 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "wrong-key rejected {wrong_key}, forged rejected {forged}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Nothing of either got in: everyone still answers eu.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for i in 0..3 {
        assert_eq!(
            answers(cluster.node(i).dns, "app.gslb.example.com").await,
            eu
        );
    }
    outsider.app.shutdown().await;
    rogue.app.shutdown().await;
    cluster.shutdown().await;
}

/// A region that reports services named after the zone's own names (a misconfigured or
/// compromised member speaking, validly signed, for itself): eu refuses those reports, counts
/// them by reason and keeps answering its SOA, NS and glue; the region's other service applies.
#[tokio::test(flavor = "multi_thread")]
async fn reports_about_names_the_zone_owns_are_refused_and_the_rest_applies() {
    let keys = keys();
    let mut eu = ConfigFile::minimal(&REGIONS).seen_from("eu");
    eu.probe = Probe::none();
    eu.gossip = Some(GossipTable {
        peer_suspect_ms: Some(800),
        peer_timeout_ms: Some(1600),
        ..keys.gossip(0, &REGIONS, "127.0.0.1:0", &[])
    });
    eu.services = vec![Service::round_robin("app.gslb.example.com").target("eu", &["192.0.2.10"])];
    let eu = start_node(&eu).await;
    let eu_gossip = eu.app.gossip().expect("gossip").local_addr.to_string();

    // us: no daemon, only its gossip node, publishing through the real path (sign, shard, push and pull,
    // sealed transport) the report a state owner would hand it.
    let mut us = ConfigFile::minimal(&REGIONS).seen_from("us");
    us.gossip = Some(keys.gossip(1, &REGIONS, "127.0.0.1:0", &[eu_gossip]));
    let settings = us.parse().gossip.expect("us gossips");
    let report = ServiceReport {
        health: Health::Healthy,
        addresses: vec!["198.51.100.66".parse().expect("an address")],
        down: Vec::new(),
        name: None,
        changed_ms: 0,
        failing_since_ms: None,
        drained: false,
        weight: None,
        spec: Some(ServiceSpec {
            strategy: StrategyKind::RoundRobin,
            order: Vec::new(),
            weights: Default::default(),
            pick: None,
            ttl: 30,
            all_down: AllDownPolicy::FailOpen,
        }),
    };
    let names = [
        "gslb.example.com.",
        "ns-eu.gslb.example.com.",
        "ns-us.gslb.example.com.",
        "*.gslb.example.com.",
        "app.example.org.",
        "only-us.gslb.example.com.",
    ];
    let mut published = LocalReport::default();
    for name in names {
        published.set_service(
            &Name::from_ascii(name).expect("a name"),
            Some(report.clone()),
        );
    }
    let (_report_tx, reports) = watch::channel(Some(Arc::new(published)));
    let (events, mut heard) = mpsc::channel(64);
    let tasks = Tasks::new();
    tasks.spawn(async move { while heard.recv().await.is_some() {} });
    let _us = Gossip::start(
        &tasks,
        &settings,
        reports,
        events,
        Arc::new(Partition::default()),
        Arc::new(Metrics::new()),
    )
    .await
    .expect("us's gossip starts");

    // The legitimate service applies; every refusal is counted under its reason.
    eventually(
        eu.dns,
        "only-us.gslb.example.com",
        &["198.51.100.66".to_string()],
    )
    .await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let metrics = eu.app.metrics().encode();
        let refused = |reason: &str| {
            sample(
                &metrics,
                "gslbd_gossip_reports_rejected_total",
                &[&format!("reason=\"{reason}\"")],
            )
        };
        if refused("apex") >= 1.0
            && refused("nameserver") >= 2.0
            && refused("wildcard") >= 1.0
            && refused("outside_zone") >= 1.0
        {
            break;
        }
        assert!(Instant::now() < deadline, "{metrics}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The zone's own records, unchanged, over real DNS.
    assert_eq!(
        answers(eu.dns, "ns-eu.gslb.example.com").await,
        ["127.0.10.1"]
    );
    assert_eq!(
        answers(eu.dns, "ns-us.gslb.example.com").await,
        ["127.0.20.1"]
    );
    let (rcode, soa, _) = records(eu.dns, "gslb.example.com", RecordType::SOA);
    assert_eq!(rcode, ResponseCode::NoError);
    assert_eq!(soa.len(), 1, "{soa:?}");
    assert!(soa[0].starts_with("ns-eu.gslb.example.com. "), "{soa:?}");
    let (rcode, ns, glue) = records(eu.dns, "gslb.example.com", RecordType::NS);
    assert_eq!(rcode, ResponseCode::NoError);
    assert_eq!(
        ns,
        [
            "ns-ap.gslb.example.com.",
            "ns-eu.gslb.example.com.",
            "ns-us.gslb.example.com."
        ]
    );
    assert_eq!(
        glue,
        [
            "ns-ap.gslb.example.com. 127.0.30.1",
            "ns-eu.gslb.example.com. 127.0.10.1",
            "ns-us.gslb.example.com. 127.0.20.1"
        ]
    );
    assert!(answers(eu.dns, "gslb.example.com").await.is_empty());
    let (rcode, _, _) = records(eu.dns, "anything.gslb.example.com", RecordType::A);
    assert_eq!(rcode, ResponseCode::NXDomain, "no wildcard");
    let (rcode, _, _) = records(eu.dns, "app.example.org", RecordType::A);
    assert_eq!(rcode, ResponseCode::Refused, "not our zone");

    tasks.shutdown().await;
    eu.app.shutdown().await;
}
