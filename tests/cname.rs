//! Targets that are host names (k8gb issue 1800: a cloud load balancer publishes a name, not
//! an address): answered as a CNAME, alone, to the clients the strategy sends to their region;
//! probed through what the name resolves to; carried to the other regions by gossip. Real
//! UDP/TCP queries parsed by hickory-proto, a real HTTP backend behind `localhost` (resolved
//! from /etc/hosts: no DNS query leaves the machine), real gossip between two servers.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::backends::{self, Mode};
use common::cluster::{PATIENCE, REGIONS, keys, start_node_text};
use common::config::{ConfigFile, Gossip, Probe};
use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::RecordType;

/// The rcode and the answer section as `TYPE rdata`, in order.
fn answer_of(reply: &Message) -> (ResponseCode, Vec<String>) {
    let records = reply
        .answers
        .iter()
        .map(|r| format!("{} {}", r.record_type(), r.data))
        .collect();
    (reply.metadata.response_code, records)
}

fn ask(server: SocketAddr, qname: &str, rtype: RecordType) -> (ResponseCode, Vec<String>) {
    answer_of(&udp(server, &query(qname, rtype)))
}

/// Polls until `qname`'s A answer is `want`; tests assert the state reached, not how fast.
async fn until(server: SocketAddr, qname: &str, want: &[&str]) {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let (_, got) = ask(server, qname, RecordType::A);
        if got == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{qname}: still {got:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
}

const SERVICES: &str = r#"
[[services]]
name = "app.gslb.example.com"
strategy = "failover"
failover_order = ["us", "eu"]
ttl = 45
targets = { eu = ["192.0.2.1", "2001:db8::1"], us = "LB-1.us-east-1.elb.example.net" }

[[services]]
name = "down.gslb.example.com"
strategy = "failover"
failover_order = ["us", "eu"]
health = { us = "unhealthy" }
targets = { eu = ["192.0.2.2"], us = "lb-2.us-east-1.elb.example.net" }

[[services]]
name = "api.gslb.example.com"
strategy = "round-robin"
targets = { eu = ["192.0.2.3"], us = "lb-3.us-east-1.elb.example.net" }
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_host_name_target_is_answered_by_its_cname_alone_for_every_type() {
    let text = format!("{}{SERVICES}", ConfigFile::minimal(&["eu", "us"]).to_toml());
    let server = start_text(&text).await;
    let cname = "CNAME lb-1.us-east-1.elb.example.net.".to_string();
    for rtype in [
        RecordType::A,
        RecordType::AAAA,
        RecordType::ANY,
        RecordType::CNAME,
        RecordType::TXT,
        RecordType::MX,
    ] {
        for reply in [
            udp(server.addr, &query("app.gslb.example.com", rtype)),
            tcp(server.addr, &query("App.GSLB.example.com", rtype)),
        ] {
            assert_eq!(
                answer_of(&reply),
                (ResponseCode::NoError, vec![cname.clone()]),
                "{rtype}"
            );
            assert!(reply.metadata.authoritative);
            assert_eq!(reply.answers[0].ttl, 45);
            // Not chased: the target is outside the zone, and nothing else comes with it.
            assert!(reply.authorities.is_empty() && reply.additionals.is_empty());
        }
    }
    // us out: eu's addresses, and no CNAME for any type.
    assert_eq!(
        ask(server.addr, "down.gslb.example.com", RecordType::A),
        (ResponseCode::NoError, vec!["A 192.0.2.2".to_string()])
    );
    let reply = udp(
        server.addr,
        &query("down.gslb.example.com", RecordType::TXT),
    );
    assert_eq!(answer_of(&reply), (ResponseCode::NoError, vec![]));
    assert_eq!(reply.authorities.len(), 1, "NODATA carries the SOA");

    // Round-robin: the name is one place of the rotation; a client gets it alone, or the
    // addresses without it, never both.
    let (mut named, mut addressed) = (0, 0);
    for i in 0..200u32 {
        let subnet = format!("10.{}.{}.0", i / 256, i % 256);
        let reply = udp(
            server.addr,
            &ecs_query("api.gslb.example.com", RecordType::A, &subnet, 24),
        );
        match answer_of(&reply).1.as_slice() {
            [one] if one == "CNAME lb-3.us-east-1.elb.example.net." => named += 1,
            [one] if one == "A 192.0.2.3" => addressed += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(named > 40 && addressed > 40, "{named} {addressed}");
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_name_target_is_probed_through_what_it_resolves_to() {
    let backend = backends::http(
        backends::bind("127.0.0.1", 0).await,
        Mode::Status(200, "ok"),
    );
    let mut config = ConfigFile::minimal(&["eu", "us"]).seen_from("eu");
    config.probe = Probe::http(backend.addr.port(), 100, 80);
    let text = format!(
        "{}\n[[services]]\nname = \"app.gslb.example.com\"\nstrategy = \"failover\"\n\
         failover_order = [\"eu\", \"us\"]\ntargets = {{ eu = \"localhost\", us = [\"198.51.100.1\"] }}\n",
        config.to_toml()
    );
    let server = start_text(&text).await;
    until(server.addr, "app.gslb.example.com", &["CNAME localhost."]).await;
    // The probe went to what localhost resolves to, with the service's Host header.
    let deadline = std::time::Instant::now() + PATIENCE;
    while backend.requests() == 0 {
        assert!(std::time::Instant::now() < deadline, "never probed");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(
        backend
            .hosts()
            .iter()
            .all(|h| h.starts_with("app.gslb.example.com")),
        "{:?}",
        backend.hosts()
    );
    backend.set(Mode::Status(503, "down"));
    until(server.addr, "app.gslb.example.com", &["A 198.51.100.1"]).await;
    // The name is one target, found down with its region.
    let metrics = server.app.metrics().encode();
    let eu = ["region=\"eu\"", "service=\"app.gslb.example.com\""];
    assert_eq!(sample(&metrics, "gslbd_service_region_targets", &eu), 1.0);
    assert_eq!(
        sample(&metrics, "gslbd_service_region_healthy_targets", &eu),
        0.0
    );
    assert_eq!(sample(&metrics, "gslbd_service_region_health", &eu), 0.0);
    backend.set(Mode::Status(200, "ok"));
    until(server.addr, "app.gslb.example.com", &["CNAME localhost."]).await;
    server.app.shutdown().await;
}

/// eu serves a service whose eu target is a host name; us's config does not have it: us learns
/// the service, the name and its health from eu's report alone.
#[tokio::test(flavor = "multi_thread")]
async fn another_region_answers_the_cname_it_learns_by_gossip() {
    let backend = backends::http(
        backends::bind("127.0.0.1", 0).await,
        Mode::Status(200, "ok"),
    );
    let keys = keys();
    let region = |me: usize, seeds: &[String]| {
        let mut config = ConfigFile::minimal(&REGIONS).seen_from(REGIONS[me]);
        config.probe = Probe::http(backend.addr.port(), 100, 80);
        config.gossip = Some(Gossip {
            peer_suspect_ms: Some(800),
            peer_timeout_ms: Some(1600),
            ..keys.gossip(me, &REGIONS, "127.0.0.1:0", seeds)
        });
        config.to_toml()
    };
    let eu = start_node_text(&format!(
        "{}\n[[services]]\nname = \"lb.gslb.example.com\"\nstrategy = \"round-robin\"\n\
         all_down = \"empty\"\ntargets = {{ eu = \"localhost\" }}\n",
        region(0, &[])
    ))
    .await;
    let seeds = vec![eu.app.gossip().expect("gossip").local_addr.to_string()];
    let us = start_node_text(&region(1, &seeds)).await;
    until(us.dns, "lb.gslb.example.com", &["CNAME localhost."]).await;
    backend.set(Mode::Status(503, "down"));
    for node in [&eu, &us] {
        until(node.dns, "lb.gslb.example.com", &[]).await;
    }
    backend.set(Mode::Status(200, "ok"));
    until(us.dns, "lb.gslb.example.com", &["CNAME localhost."]).await;
    us.app.shutdown().await;
    eu.app.shutdown().await;
}
