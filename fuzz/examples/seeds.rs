//! Writes the seed corpora under `fuzz/corpus/<target>/`: real queries for the DNS targets,
//! real chitchat traffic (two in-memory nodes exchanging signed reports) as fragment plaintexts
//! and as a sealed datagram, real signed values, and the repository's config files. The files
//! are committed; run this again (`cargo run --example seeds` in `fuzz/`) only to change them.
//! Every seed is built with the fixed keys of `gslbd_fuzz`, so sealed and signed seeds open and
//! verify in the targets.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chitchat::transport::{ChannelTransport, Socket, Transport};
use chitchat::{ChitchatConfig, ChitchatId, ChitchatMessage, FailureDetectorConfig, Serializable};
use gslbd::gossip::report::{self, ServiceReport, ServiceSpec};
use gslbd::model::{AllDownPolicy, Health, Region, StrategyKind};
use gslbd_fuzz::{
    CLUSTER, CONFIG, Frame, REGIONS, SERVICE_KEY, fixed_key, push_frame, signing_key,
};
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
    write_all(&corpus.join("report_verify"), &reports());
    write_all(&corpus.join("config_parse"), &configs());
    // Its input is `arbitrary`'s encoding of entries, which nothing writes by hand: the empty
    // input (no annotation) starts it.
    write_all(
        &corpus.join("annotations"),
        &[("empty".to_string(), Vec::new())],
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let traffic = runtime.block_on(chitchat_traffic());
    write_all(&corpus.join("gossip_datagram"), &datagrams(&traffic));
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
const ASKED: [(&str, &str, RecordType, Option<u16>); 18] = [
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

/// Instance 0 of `region`, run 7, value `seq`, issued at `issued_ms`.
fn stamp(region: &str, seq: u64, issued_ms: u64) -> report::Stamp {
    report::Stamp {
        region: Region::new(region),
        instance: "0".to_string(),
        epoch: 7,
        seq,
        issued_ms,
    }
}

/// Values as region eu publishes them: mode byte 0 (verify as is) with the signed value, and
/// mode byte 1 (sign first) with the JSON alone.
fn reports() -> Vec<(String, Vec<u8>)> {
    let service = report::sign(
        signing_key(0),
        CLUSTER,
        &stamp("eu", 1, 42),
        SERVICE_KEY,
        &service_report(),
    );
    let alive = report::sign(
        signing_key(0),
        CLUSTER,
        &stamp("eu", 2, 43),
        report::ALIVE_KEY,
        &(),
    );
    let mut seeds = Vec::new();
    for (name, value) in [("service", service), ("alive", alive)] {
        let json = value.split_once('.').expect("signature.json").1;
        seeds.push((
            format!("signed-{name}"),
            [&[0u8][..], value.as_bytes()].concat(),
        ));
        seeds.push((
            format!("json-{name}"),
            [&[1u8][..], json.as_bytes()].concat(),
        ));
    }
    seeds
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

/// Records every message a node sends, serialized as the sealed transport serializes it.
struct Recording {
    inner: ChannelTransport,
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
}

struct RecordingSocket {
    inner: Box<dyn Socket>,
    sent: Arc<Mutex<Vec<Vec<u8>>>>,
}

#[async_trait]
impl Transport for Recording {
    async fn open(&self, listen_addr: SocketAddr) -> anyhow::Result<Box<dyn Socket>> {
        Ok(Box::new(RecordingSocket {
            inner: self.inner.open(listen_addr).await?,
            sent: self.sent.clone(),
        }))
    }
}

#[async_trait]
impl Socket for RecordingSocket {
    async fn send(&mut self, to: SocketAddr, message: ChitchatMessage) -> anyhow::Result<()> {
        let mut bytes = Vec::new();
        message.serialize(&mut bytes);
        self.sent.lock().expect("not poisoned").push(bytes);
        self.inner.send(to, message).await
    }

    async fn recv(&mut self) -> anyhow::Result<(SocketAddr, ChitchatMessage)> {
        self.inner.recv().await
    }
}

/// Two nodes, eu and us, gossiping signed heartbeats and enough service values that a
/// message needs several fragments; every message either sends, in order.
async fn chitchat_traffic() -> Vec<Vec<u8>> {
    let transport = Recording {
        inner: ChannelTransport::with_mtu(65_507),
        sent: Arc::default(),
    };
    let addresses: [SocketAddr; 2] = [([127, 0, 0, 2], 7946).into(), ([127, 0, 0, 3], 7946).into()];
    let mut handles = Vec::new();
    for (i, region) in ["eu", "us"].into_iter().enumerate() {
        let mut values = vec![(
            report::ALIVE_KEY.to_string(),
            report::sign(
                signing_key(i),
                CLUSTER,
                &stamp(region, 1, 1),
                report::ALIVE_KEY,
                &(),
            ),
        )];
        for n in 0..12 {
            let key = format!("svc:s{n}.gslb.example.com.");
            let value = report::sign(
                signing_key(i),
                CLUSTER,
                &stamp(region, 2 + n, 1),
                &key,
                &service_report(),
            );
            values.push((key, value));
        }
        let config = ChitchatConfig {
            chitchat_id: ChitchatId::new(format!("{region}/0"), 1, addresses[i]),
            cluster_id: CLUSTER.to_string(),
            gossip_interval: Duration::from_millis(50),
            listen_addr: addresses[i],
            seed_nodes: vec![addresses[1 - i].to_string()],
            failure_detector_config: FailureDetectorConfig::default(),
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
        };
        let handle = chitchat::spawn_chitchat(config, values, &transport)
            .await
            .expect("chitchat starts");
        handles.push(handle);
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    for handle in handles {
        handle.shutdown().await.expect("chitchat stops");
    }
    let mut sent = transport.sent.lock().expect("not poisoned").clone();
    // Nodes of one cluster never refuse each other: the refusal is added by hand.
    let mut bad_cluster = Vec::new();
    ChitchatMessage::BadCluster.serialize(&mut bad_cluster);
    sent.push(bad_cluster);
    sent
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

/// One seed per kind of message seen (the largest of each, so several fragments appear), its
/// fragments as plaintext frames, the last first (reassembly out of order); plus the smallest
/// message sealed with the cluster key, as a datagram on the wire.
fn datagrams(traffic: &[Vec<u8>]) -> Vec<(String, Vec<u8>)> {
    let mut largest: BTreeMap<u8, &Vec<u8>> = BTreeMap::new();
    for message in traffic {
        // chitchat's magic number (2 bytes), protocol version (1), then the message tag (Syn,
        // SynAck, Ack, BadCluster).
        let Some(&tag) = message.get(3) else { continue };
        let entry = largest.entry(tag).or_insert(message);
        if message.len() > entry.len() {
            *entry = message;
        }
    }
    let mut seeds = Vec::new();
    for (tag, message) in &largest {
        let mut input = Vec::new();
        for fragment in fragments(u64::from(*tag), message).iter().rev() {
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
        eprintln!("chitchat message tag {tag}: {} bytes", message.len());
        seeds.push((format!("plaintext-tag{tag}"), input));
    }
    if let Some(smallest) = traffic.iter().min_by_key(|m| m.len()) {
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
