//! Writes the seed corpora under `fuzz/corpus/<target>/`: real queries for the DNS targets,
//! real gossip messages (a foca announcement, a run's signed units as a publisher makes them,
//! an ask for them) as fragment plaintexts and as a sealed datagram, real signed units, and
//! the repository's config files. The files
//! are committed; run this again (`cargo run --example seeds` in `fuzz/`) only to change them.
//! Every seed is built with the fixed keys of `gslbd_fuzz`, so sealed and signed seeds open and
//! verify in the targets.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gslbd::gossip::local_report::LocalReport;
use gslbd::gossip::member::{Member, MemberCodec};
use gslbd::gossip::publish::{Publisher, Stamper};
use gslbd::gossip::report::{ServiceReport, ServiceSpec};
use gslbd::gossip::store::{RunId, Want};
use gslbd::gossip::unit::{self, Kind};
use gslbd::gossip::wire;
use gslbd::model::{AllDownPolicy, Health, Region, StrategyKind};
use gslbd_fuzz::{CLUSTER, CONFIG, Frame, REGIONS, fixed_key, push_frame, signing_key};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
use hickory_proto::rr::{DNSClass, Name, RecordType};

/// The transport's fragment layout: message id (8), index (2), count (2), at most 1200 bytes.
const FRAGMENT_PAYLOAD: usize = 1200;

fn main() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let queries = queries();
    for target in ["udp_fast_path", "hickory_path"] {
        write_all(&corpus.join(target), &queries);
    }
    let units = run_units();
    write_all(&corpus.join("unit_verify"), &unit_seeds(&units));
    write_all(&corpus.join("config_parse"), &configs());
    // Its input is `arbitrary`'s encoding of entries, which nothing writes by hand: the empty
    // input (no annotation) starts it.
    write_all(
        &corpus.join("annotations"),
        &[("empty".to_string(), Vec::new())],
    );
    write_all(
        &corpus.join("gossip_datagram"),
        &datagrams(&messages(&units)),
    );
}

/// Replaces `dir`'s files with `seeds`.
fn write_all(dir: &PathBuf, seeds: &[(String, Vec<u8>)]) {
    if dir.exists() {
        std::fs::remove_dir_all(dir).expect("remove the old seeds");
    }
    std::fs::create_dir_all(dir).expect("create the corpus folder");
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes).expect("write a seed");
    }
    eprintln!("{}: {} seeds", dir.display(), seeds.len());
}

fn query(qname: &str, rtype: RecordType, payload: Option<u16>) -> Message {
    let mut message = Message::new(0x1234, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = true;
    message.add_query(Query::query(
        Name::from_ascii(qname).expect("a valid name"),
        rtype,
    ));
    if let Some(payload) = payload {
        let mut edns = Edns::new();
        edns.set_max_payload(payload);
        message.edns = Some(edns);
    }
    message
}

fn with_subnet(mut message: Message, subnet: &str, source_prefix: u8) -> Message {
    let address = subnet.parse().expect("an address");
    let option = EdnsOption::Subnet(ClientSubnet::new(address, source_prefix, 0));
    if let Some(edns) = message.edns.as_mut() {
        edns.options_mut().insert(option);
    }
    message
}

fn bytes(message: &Message) -> Vec<u8> {
    message.to_vec().expect("a query encodes")
}

/// Plain queries as (seed name, name, type, EDNS size): one of each kind the README's DNS
/// behaviour table lists. A table, one query a line.
#[rustfmt::skip]
const ASKED: [(&str, &str, RecordType, Option<u16>); 20] = [
    ("a-failover-edns", "app.gslb.example.com", RecordType::A, Some(1232)),
    ("aaaa-weighted-plain", "web.gslb.example.com", RecordType::AAAA, None),
    ("a-pick-two", "two.gslb.example.com", RecordType::A, Some(4096)),
    ("a-round-robin-mixed-case", "API.gslb.Example.com", RecordType::A, None),
    ("a-big-truncated", "big.gslb.example.com", RecordType::A, None),
    ("aaaa-big-edns-small", "big.gslb.example.com", RecordType::AAAA, Some(600)),
    ("a-all-down-open", "open.gslb.example.com", RecordType::A, Some(1232)),
    ("a-all-down-empty", "closed.gslb.example.com", RecordType::A, Some(1232)),
    ("soa-apex", "gslb.example.com", RecordType::SOA, Some(1232)),
    ("ns-apex", "gslb.example.com", RecordType::NS, None),
    ("any-service", "app.gslb.example.com", RecordType::ANY, Some(1232)),
    ("a-nameserver", "ns-eu.gslb.example.com", RecordType::A, None),
    ("txt-empty-non-terminal", "deep.gslb.example.com", RecordType::TXT, None),
    ("a-nxdomain", "nope.gslb.example.com", RecordType::A, Some(1232)),
    ("a-out-of-zone", "example.org", RecordType::A, None),
    ("axfr", "gslb.example.com", RecordType::AXFR, None),
    ("a-geo", "geo.gslb.example.com", RecordType::A, None),
    ("aaaa-geo", "geo.gslb.example.com", RecordType::AAAA, Some(1232)),
    ("a-cname-target", "cname.gslb.example.com", RecordType::A, Some(1232)),
    ("txt-cname-target", "cname.gslb.example.com", RecordType::TXT, None),
];

/// Those, and the ones a plain query cannot say.
fn queries() -> Vec<(String, Vec<u8>)> {
    let mut notify = query("gslb.example.com", RecordType::SOA, Some(1232));
    notify.metadata.op_code = OpCode::Notify;
    let mut chaos = query("app.gslb.example.com", RecordType::A, Some(1232));
    chaos.queries[0].set_query_class(DNSClass::CH);
    let mut badvers = query("app.gslb.example.com", RecordType::A, Some(1232));
    badvers.edns.as_mut().expect("edns").set_version(1);
    let mut two = query("app.gslb.example.com", RecordType::A, None);
    two.add_query(Query::query(
        Name::from_ascii("web.gslb.example.com").expect("a valid name"),
        RecordType::AAAA,
    ));
    let cut = {
        let mut packet = bytes(&query("geo.gslb.example.com", RecordType::A, Some(1232)));
        packet.truncate(packet.len() - 5);
        packet
    };
    let geo_v4 = query("geo.gslb.example.com", RecordType::A, Some(1232));
    let geo_v6 = query("geo.gslb.example.com", RecordType::AAAA, Some(1232));
    ASKED
        .into_iter()
        .map(|(name, qname, rtype, payload)| (name, bytes(&query(qname, rtype, payload))))
        .chain([
            (
                "a-geo-ecs-v4",
                bytes(&with_subnet(geo_v4, "198.51.100.0", 24)),
            ),
            (
                "aaaa-geo-ecs-v6",
                bytes(&with_subnet(geo_v6, "2001:db8:c000::", 48)),
            ),
            ("chaos-class", bytes(&chaos)),
            ("notify", bytes(&notify)),
            ("badvers", bytes(&badvers)),
            ("two-questions", bytes(&two)),
            ("cut-short", cut),
        ])
        .map(|(name, bytes)| (name.to_string(), bytes))
        .collect()
}

fn service_report() -> ServiceReport {
    ServiceReport {
        health: Health::Unhealthy,
        addresses: vec![
            "192.0.2.1".parse().expect("an address"),
            "2001:db8::1".parse().expect("an address"),
        ],
        down: vec!["192.0.2.1".parse().expect("an address")],
        name: None,
        changed_ms: 1_700_000_000_000,
        failing_since_ms: Some(1_699_999_999_000),
        drained: false,
        weight: Some(30),
        spec: Some(ServiceSpec {
            strategy: StrategyKind::Weighted,
            order: vec!["eu".into(), "us".into()],
            weights: BTreeMap::from([("eu".to_string(), 30), ("us".to_string(), 70)]),
            pick: Some(1),
            ttl: 30,
            all_down: AllDownPolicy::FailOpen,
        }),
    }
}

/// One run of region eu as its publisher signs it: a shard per service (twelve services), the
/// drain state, a heartbeat.
fn run_units() -> Vec<Arc<[u8]>> {
    let signing = Arc::new(
        gslbd::gossip::keys::SigningKey::from_base64(&fixed_key(1)).expect("the fixed key"),
    );
    assert_eq!(signing.public_base64(), signing_key(0).public_base64());
    let mut publisher = Publisher::new(
        Stamper::new(Region::new(REGIONS[0]), "0".into()),
        signing,
        CLUSTER.to_string(),
    );
    let mut report = LocalReport::default();
    for n in 0..12 {
        report.set_service(
            &hickory_proto::rr::Name::from_ascii(format!("s{n}.gslb.example.com."))
                .expect("a name"),
            Some(service_report()),
        );
    }
    report.drain.region = true;
    report.drain.version = 1;
    report.drain.by = "0".into();
    publisher.round(Some(&report), std::time::Duration::from_secs(1))
}

/// Units as the target reads them: mode byte 0 (verify as is) with each kind of signed unit,
/// and mode byte 1 (sign first), the kind byte, then the body alone.
fn unit_seeds(units: &[Arc<[u8]>]) -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    let keys = gslbd_fuzz::region_keys();
    for bytes in units {
        let unit = unit::verify(bytes.clone(), CLUSTER, keys).expect("our own unit verifies");
        let kind = unit.header.kind;
        let name = format!("{kind:?}").to_lowercase();
        if seeds
            .iter()
            .any(|(n, _): &(String, Vec<u8>)| *n == format!("signed-{name}"))
        {
            continue;
        }
        seeds.push((format!("signed-{name}"), [&[0u8][..], bytes].concat()));
        let body = match kind {
            // The shard's JSON, uncompressed: the target compresses what it signs.
            Kind::Shard => zstd::bulk::decompress(unit.body(), 1 << 20).expect("a shard body"),
            _ => unit.body().to_vec(),
        };
        seeds.push((
            format!("body-{name}"),
            [&[1u8, kind as u8][..], &body].concat(),
        ));
    }
    seeds
}

/// Real messages: the run's units as pushed, an ask for them, and foca's announcement.
fn messages(units: &[Arc<[u8]>]) -> Vec<(String, Vec<u8>)> {
    let mut pushed = Vec::new();
    wire::units(units, false, &mut pushed);
    let mut ask = Vec::new();
    let first = unit::verify(units[0].clone(), CLUSTER, gslbd_fuzz::region_keys())
        .expect("our own unit verifies");
    wire::want(
        &Want {
            run: RunId::of(&first.header.stamp),
            heartbeat: 1,
            held: vec![(3, 2), (256, 1)],
        },
        &mut ask,
    );
    let mut announce = Vec::new();
    {
        use foca::Codec;
        let header = foca::Header {
            src: Member::signed(
                SocketAddr::from(([127, 0, 0, 2], 7946)),
                REGIONS[0],
                "0",
                1,
                signing_key(0),
                CLUSTER,
            ),
            src_incarnation: 0,
            dst: Member::seed(SocketAddr::from(([127, 0, 0, 3], 7946))),
            message: foca::Message::Announce,
        };
        let mut packet = Vec::new();
        MemberCodec::new(
            CLUSTER.to_string(),
            Arc::new(gslbd_fuzz::region_keys().clone()),
        )
        .encode_header(&header, &mut packet)
        .expect("encodes");
        wire::foca(&packet, &mut announce);
    }
    vec![
        ("units".to_string(), pushed),
        ("want".to_string(), ask),
        ("foca-announce".to_string(), announce),
    ]
}

/// The repository's config files, the fuzz config, and one with gossip (inline keys) and
/// Kubernetes tables.
fn configs() -> Vec<(String, Vec<u8>)> {
    let repository = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("config");
    let mut seeds: Vec<(String, Vec<u8>)> = ["example.toml", "probes.toml"]
        .into_iter()
        .map(|file| {
            let text = std::fs::read(repository.join(file)).expect("read a config file");
            (file.to_string(), text)
        })
        .collect();
    seeds.push(("fuzz.toml".into(), CONFIG.as_bytes().to_vec()));
    let region_keys: Vec<String> = (0..3)
        .map(|i| format!("{} = \"{}\"", REGIONS[i], signing_key(i).public_base64()))
        .collect();
    let gossip = format!(
        "{CONFIG}\n[gossip]\nlisten = \"127.0.0.1:7946\"\nseeds = [\"127.0.0.2:7946\"]\n\
         keys = [\"{}\"]\nsigning_key = \"{}\"\nregion_keys = {{ {} }}\n\n\
         [kubernetes]\nnamespaces = [\"shop\"]\n",
        fixed_key(7),
        fixed_key(1),
        region_keys.join(", "),
    );
    seeds.push(("gossip-kubernetes.toml".into(), gossip.into_bytes()));
    seeds
}

/// Cuts `message` into the transport's plaintext fragments.
fn fragments(id: u64, message: &[u8]) -> Vec<Vec<u8>> {
    let count = message.len().div_ceil(FRAGMENT_PAYLOAD).max(1);
    message
        .chunks(FRAGMENT_PAYLOAD)
        .enumerate()
        .map(|(index, chunk)| {
            let mut fragment = id.to_be_bytes().to_vec();
            fragment.extend_from_slice(&(index as u16).to_be_bytes());
            fragment.extend_from_slice(&(count as u16).to_be_bytes());
            fragment.extend_from_slice(chunk);
            fragment
        })
        .collect()
}

/// Each message's fragments as plaintext frames, the last first (reassembly out of order);
/// plus the smallest message sealed with the cluster key, as a datagram on the wire.
fn datagrams(messages: &[(String, Vec<u8>)]) -> Vec<(String, Vec<u8>)> {
    let mut seeds = Vec::new();
    for (i, (name, message)) in messages.iter().enumerate() {
        let mut input = Vec::new();
        for fragment in fragments(i as u64, message).iter().rev() {
            push_frame(
                &mut input,
                &Frame {
                    is_plaintext: true,
                    peer: 0,
                    later: 0,
                    bytes: fragment,
                },
            );
        }
        eprintln!("{name}: {} bytes", message.len());
        seeds.push((format!("plaintext-{name}"), input));
    }
    if let Some((_, smallest)) = messages.iter().min_by_key(|(_, m)| m.len()) {
        let fragment = &fragments(99, smallest)[0];
        let mut sealed = Vec::new();
        gslbd_fuzz::keyring().seal(fragment, &mut sealed);
        let mut input = Vec::new();
        push_frame(
            &mut input,
            &Frame {
                is_plaintext: false,
                peer: 1,
                later: 0,
                bytes: &sealed,
            },
        );
        seeds.push(("sealed".to_string(), input));
    }
    seeds
}
