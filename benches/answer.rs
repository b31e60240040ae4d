//! Criterion benches of the answer path (query bytes → response bytes, per strategy) with 1k
//! and 100k services, signed answers (cached signatures) and the signing of an RRset not seen
//! before (a cache miss), and of snapshot building: whole, and rebuilt for one service.

use std::hint::black_box;
use std::net::SocketAddr;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, criterion_group, criterion_main};
use std::sync::Arc;

use gslbd::config;
use gslbd::dns::udp::answer_packet;
use gslbd::dnssec::{Policy, Rdatas, Role, Signer, ZoneKey};
use gslbd::model::Model;
use gslbd::snapshot::Snapshot;
use hickory_proto::dnssec::Algorithm;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

const STRATEGIES: [&str; 4] = ["failover", "weighted", "round-robin", "geo"];

/// A zone of `n` services cycling through the four strategies, three regions each, and one
/// whose answer is a CNAME.
fn model(n: usize) -> Model {
    let mut text = String::from(
        r#"
[zone]
name = "gslb.example.com"
[[regions]]
name = "eu"
nameserver = "ns-eu.gslb.example.com"
glue = ["127.0.10.1"]
location = [50.1, 8.7]
[[regions]]
name = "us"
nameserver = "ns-us.gslb.example.com"
glue = ["127.0.20.1"]
location = [39.0, -77.5]
[[regions]]
name = "ap"
nameserver = "ns-ap.gslb.example.com"
glue = ["127.0.30.1"]
location = [1.35, 103.8]
[geo]
networks = { "192.0.2.0/24" = "eu", "198.51.100.0/24" = "us", "203.0.113.0/24" = "ap" }
"#,
    );
    for i in 0..n {
        let (x, y) = (i / 250, i % 250 + 1);
        let strategy = STRATEGIES[i % 4];
        let extra = match strategy {
            "failover" => "failover_order = [\"eu\", \"us\", \"ap\"]\n",
            "weighted" => "weights = { eu = 50, us = 30, ap = 20 }\n",
            _ => "",
        };
        text.push_str(&format!(
            "[[services]]\nname = \"svc-{i}.gslb.example.com\"\nstrategy = \"{strategy}\"\n{extra}\
             targets = {{ eu = [\"127.1.{x}.{y}\"], us = [\"127.2.{x}.{y}\"], ap = [\"127.3.{x}.{y}\"] }}\n",
            x = x % 256,
        ));
    }
    // And one whose first region's target is a host name: answered by its CNAME.
    text.push_str(
        "[[services]]\nname = \"cname.gslb.example.com\"\nstrategy = \"failover\"\n\
         failover_order = [\"eu\", \"us\"]\n\
         targets = { eu = \"lb-1.eu-west-1.elb.example.net\", us = [\"127.2.0.1\"] }\n",
    );
    config::parse(&text).expect("bench config is valid").model
}

fn query(name: &str) -> Vec<u8> {
    query_with(name, false)
}

/// A query for `name`'s A record with EDNS, DO set when `dnssec_ok`.
fn query_with(name: &str, dnssec_ok: bool) -> Vec<u8> {
    let mut message = Message::new(7, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(
        Name::from_ascii(name).expect("valid name"),
        RecordType::A,
    ));
    let mut edns = Edns::new();
    edns.set_max_payload(1232);
    edns.set_dnssec_ok(dnssec_ok);
    message.edns = Some(edns);
    message.to_bytes().expect("query encodes")
}

/// Benches `snapshot` answering `packet` from `source` (query bytes → response bytes) as `id`.
fn answering(
    group: &mut BenchmarkGroup<'_, WallTime>,
    id: &str,
    snapshot: &Snapshot,
    packet: &[u8],
    source: SocketAddr,
) {
    let mut out = Vec::with_capacity(1232);
    group.bench_function(id, |b| {
        b.iter(|| {
            answer_packet(snapshot, black_box(packet), source, 1_700_000_000, &mut out);
            black_box(out.len())
        })
    });
}

fn answer(c: &mut Criterion) {
    let source = SocketAddr::from(([198, 51, 100, 7], 5300));
    for n in [1_000, 100_000] {
        let snapshot = Snapshot::from_model(&model(n), 1232);
        let mut group = c.benchmark_group(format!("answer/{n}_services"));
        for (i, strategy) in STRATEGIES.iter().enumerate() {
            // A service in the middle of the table, of this strategy.
            let packet = query(&format!("svc-{}.gslb.example.com", n / 2 + i));
            answering(&mut group, strategy, &snapshot, &packet, source);
        }
        let packet = query("nope.gslb.example.com");
        answering(&mut group, "nxdomain", &snapshot, &packet, source);
        let packet = query("cname.gslb.example.com");
        answering(&mut group, "cname", &snapshot, &packet, source);
        group.finish();
    }
}

fn snapshot_build(c: &mut Criterion) {
    let mut group = c.benchmark_group("snapshot_build");
    group.sample_size(10);
    for n in [1_000, 100_000] {
        let model = model(n);
        group.bench_with_input(BenchmarkId::from_parameter(n), &model, |b, model| {
            b.iter(|| Snapshot::from_model(black_box(model), 1232))
        });
    }
    group.finish();
}

/// A snapshot rebuilt for one service's new inputs (what a probe verdict or a drain costs):
/// that service built again, the others shared.
fn snapshot_rebuilt(c: &mut Criterion) {
    let mut group = c.benchmark_group("snapshot_rebuilt_one_service");
    for n in [1_000, 100_000] {
        let model = model(n);
        let snapshot = Snapshot::from_model(&model, 1232);
        let verdicts = gslbd::health::Verdicts::new();
        let inputs = gslbd::region_health::Inputs {
            verdicts: &verdicts,
            remote: None,
        };
        group.bench_with_input(BenchmarkId::from_parameter(n), &model, |b, model| {
            b.iter(|| snapshot.rebuilt(black_box(model), &inputs, &[n / 2]))
        });
    }
    group.finish();
}

/// A key pair for the zone written under `dir`; its base name.
fn key(dir: &std::path::Path, algorithm: Algorithm) -> std::path::PathBuf {
    let origin = Name::from_ascii("gslb.example.com.").expect("name");
    let key =
        gslbd::dnssec::key::generate(&origin, algorithm, Role::Csk, 1_700_000_000).expect("key");
    let base = dir.join(&key.base_name);
    std::fs::write(format!("{}.key", base.display()), key.key_file).expect("write");
    std::fs::write(format!("{}.private", base.display()), key.private_file).expect("write");
    base
}

/// Answers with DO from a signed zone of 1000 services, once their signatures are cached (the
/// common case), and the signing of an RRset not seen before with each algorithm (a miss).
fn signed(c: &mut Criterion) {
    let source = SocketAddr::from(([198, 51, 100, 7], 5300));
    let dir = tempfile::tempdir().expect("temp dir");
    let mut model = model(1_000);
    let origin = model.zone.origin.clone();
    let zone_key =
        |algorithm| ZoneKey::read(&key(dir.path(), algorithm), &origin).expect("key reads");
    let signer = |algorithm| {
        Arc::new(
            Signer::new(
                &origin,
                vec![zone_key(algorithm)],
                Vec::new(),
                Policy::default(),
            )
            .expect("signer"),
        )
    };
    model.zone.signer = Some(signer(Algorithm::ECDSAP256SHA256));
    let snapshot = Snapshot::from_model(&model, 1232);
    let mut group = c.benchmark_group("signed/1000_services");
    for (name, qname, dnssec_ok) in [
        ("failover_do", "svc-500.gslb.example.com", true),
        ("failover_no_do", "svc-500.gslb.example.com", false),
        ("round-robin_do", "svc-502.gslb.example.com", true),
        ("nxdomain_do", "nope.gslb.example.com", true),
    ] {
        answering(
            &mut group,
            name,
            &snapshot,
            &query_with(qname, dnssec_ok),
            source,
        );
    }
    group.finish();

    let mut group = c.benchmark_group("signed/cache_miss");
    let owner = Name::from_ascii("svc-1.gslb.example.com.").expect("name");
    for (name, algorithm) in [
        ("ecdsa_p256", Algorithm::ECDSAP256SHA256),
        ("ed25519", Algorithm::ED25519),
    ] {
        let signer = signer(algorithm);
        let mut n = 0u32;
        group.bench_function(name, |b| {
            b.iter(|| {
                // A new address each time: an RRset never signed before.
                n = n.wrapping_add(1);
                let rdatas = Rdatas::of_addresses(&[std::net::IpAddr::from(n.to_be_bytes())]);
                let made = signer
                    .sign(&owner, RecordType::A, 30, &rdatas, 1_700_000_000)
                    .expect("signs");
                black_box(made.len())
            })
        });
    }
    group.finish();
}

/// What one health change costs gossip at the state owner and the publisher: this region's
/// report (eu local, every service with an eu target) built whole (at start and after a
/// reload), updated for one service (a health change), and the publisher's round on a report
/// where one service changed (the changed shard found, compared and signed).
fn gossip_report(c: &mut Criterion) {
    let mut group = c.benchmark_group("gossip_report");
    group.sample_size(10);
    for n in [1_000, 100_000] {
        let mut model = model(n);
        model.local_region = Some(gslbd::model::RegionIndex::new(0));
        let verdicts = gslbd::health::Verdicts::new();
        let inputs = gslbd::region_health::Inputs {
            verdicts: &verdicts,
            remote: None,
        };
        group.bench_with_input(BenchmarkId::new("build", n), &model, |b, model| {
            b.iter(|| gslbd::gossip::local_report::build(black_box(model), &inputs))
        });
        let report = gslbd::gossip::local_report::build(&model, &inputs);
        group.bench_with_input(BenchmarkId::new("update_one", n), &model, |b, model| {
            b.iter(|| {
                let mut updated = report.clone();
                updated.update(black_box(model), &inputs, &[n / 2]);
                updated
            })
        });
        // Two reports that differ in one service, published in turn.
        let name = Name::from_ascii(format!("svc-{}.gslb.example.com.", n / 2)).expect("name");
        let mut changed = report.clone();
        let drained = gslbd::gossip::report::ServiceReport {
            drained: true,
            ..report.service(&name).expect("reported").clone()
        };
        changed.set_service(&name, Some(drained));
        let seed = gslbd::gossip::keys::generate().expect("keys").1;
        let signing = Arc::new(gslbd::gossip::keys::SigningKey::from_base64(&seed).expect("key"));
        let stamper =
            gslbd::gossip::publish::Stamper::new(gslbd::model::Region::new("eu"), "0".into());
        let mut publisher =
            gslbd::gossip::publish::Publisher::new(stamper, signing, "bench".into());
        let beat = std::time::Duration::from_secs(1);
        publisher.round(Some(&report), beat);
        let mut turn = false;
        group.bench_function(BenchmarkId::new("publish_one_change", n), |b| {
            b.iter(|| {
                turn = !turn;
                let next = if turn { &changed } else { &report };
                publisher.round(Some(black_box(next)), beat)
            })
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    answer,
    signed,
    snapshot_build,
    snapshot_rebuilt,
    gossip_report
);
criterion_main!(benches);
