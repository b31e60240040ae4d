//! Attacks on replicated state by a member holding the cluster key (docs/gossip.md, "Threat
//! model"), each against three real gossip nodes over loopback sockets: the intruder
//! (`common::intruder`) speaks the wire protocol itself. Each scenario asserts that answers stay
//! right everywhere and that the refusal is counted under its reason.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::cluster::*;
use common::intruder::Intruder;
use common::*;
use foca::Codec;
use gslbd::gossip::keys::SigningKey;
use gslbd::gossip::member::{Member, MemberCodec};
use gslbd::gossip::report::Stamp;
use gslbd::gossip::unit::{self, Body, Kind};
use gslbd::gossip::wire;
use gslbd::model::Region;

const API: &str = "api.gslb.example.com";
/// How long answers must stay right under attack: several of the test cluster's
/// `peer_timeout` (1.6 s).
const HOLD: Duration = Duration::from_secs(5);

fn with_admin(config: &mut config::ConfigFile) {
    config.server.admin = Some("127.0.0.1:0".into());
}

fn keyring(cluster: &Cluster) -> Arc<gslbd::gossip::keys::Keyring> {
    let config = region_config(0, cluster.net, cluster.port, &cluster.keys, &[]).parse();
    config.gossip.expect("gossip settings").keyring.clone()
}

fn gossip_addr(cluster: &Cluster, i: usize) -> SocketAddr {
    cluster.node(i).app.gossip().expect("gossip").local_addr
}

fn refused(cluster: &Cluster, i: usize, reason: &str) -> f64 {
    let metrics = cluster.node(i).app.metrics().encode();
    sample(
        &metrics,
        "gslbd_gossip_reports_rejected_total",
        &[&format!("reason=\"{reason}\"")],
    )
}

/// Every node answers all three regions for [`HOLD`], while the intruder sends `attack` (each
/// message to its address) every 100 ms.
async fn all_answer_throughout(
    cluster: &Cluster,
    intruder: &mut Intruder,
    attack: &[(SocketAddr, Vec<u8>)],
) {
    let all: Vec<String> = (0..3).map(|r| cluster.addr(r)).collect();
    let until = Instant::now() + HOLD;
    while Instant::now() < until {
        for (target, message) in attack {
            intruder.send_raw(*target, message).await;
        }
        for i in 0..3 {
            assert_eq!(sorted_answer(cluster.node(i).dns, API), all, "node {i}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A `Units` message carrying `units`.
fn units_message(units: &[Arc<[u8]>]) -> Vec<u8> {
    let mut out = Vec::new();
    wire::units(units, false, &mut out);
    out
}

/// The epoch of the run speaking for `region`'s instance 0, as node `at` shows it.
async fn epoch_of(cluster: &Cluster, at: usize, region: &str) -> u64 {
    let admin = cluster.node(at).app.admin_addr().expect("admin endpoint");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, body) = http_get(admin, "/state");
        let state: serde_json::Value = serde_json::from_str(&body).expect("/state is JSON");
        let epoch = state["regions"].as_array().and_then(|regions| {
            regions
                .iter()
                .find(|r| r["name"] == region)?
                .get("runs")?
                .as_array()?
                .iter()
                .find(|run| run["instance"] == "0")?
                .get("epoch")?
                .as_str()
                .map(str::to_string)
        });
        if let Some(epoch) = epoch {
            return u64::from_str_radix(&epoch, 16).expect("hex epoch");
        }
        assert!(Instant::now() < deadline, "{region}'s run never showed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn settled(cluster: &Cluster) {
    let all: Vec<String> = (0..3).map(|r| cluster.addr(r)).collect();
    for i in 0..3 {
        wait_for_answer(cluster.node(i).dns, API, PATIENCE, |got| got == all).await;
    }
}

/// Forged versions: units claiming eu's current run with a sequence far ahead, signed with a
/// key that is not eu's, and eu's genuine units with their sequence rewritten. Had either been
/// taken, eu's genuine units would be "old" from then on and eu silenced. Both are refused as
/// bad signatures; eu's next health change still applies everywhere.
#[tokio::test(flavor = "multi_thread")]
async fn forged_versions_neither_silence_nor_impersonate_a_region() {
    let cluster = Cluster::start_with(82, with_admin).await;
    settled(&cluster).await;
    let epoch = epoch_of(&cluster, 1, "eu").await;
    let (_, rogue_seed, _) = gslbd::gossip::keys::generate().expect("keys");
    let rogue = SigningKey::from_base64(&rogue_seed).expect("a key");
    let stamp = Stamp {
        region: Region::new("eu"),
        instance: "0".into(),
        epoch,
        seq: u64::MAX - 1,
        issued_ms: 0,
    };
    let forged_beat = unit::sign(
        &rogue,
        "gslb.example.com",
        &stamp,
        None,
        Body::Heartbeat([0; 8]),
    )
    .expect("signs");
    let mut intruder = Intruder::new(keyring(&cluster));
    // eu's genuine units, as any node serves them, with the sequence rewritten.
    let run = gslbd::gossip::store::RunId {
        region: Region::new("eu"),
        instance: "0".into(),
        epoch,
    };
    let genuine = intruder.fetch(gossip_addr(&cluster, 1), &run).await;
    let rewritten: Vec<Arc<[u8]>> = genuine
        .iter()
        .map(|unit| {
            let mut bytes = unit.to_vec();
            // format, kind, region (len + "eu"), instance (len + "0"), epoch (8): the seq.
            let seq = 2 + 3 + 2 + 8;
            bytes[seq..seq + 8].copy_from_slice(&(u64::MAX - 1).to_be_bytes());
            Arc::from(bytes)
        })
        .collect();
    let mut attack_units = rewritten;
    attack_units.push(forged_beat);
    let message = units_message(&attack_units);
    let attack = [
        (gossip_addr(&cluster, 1), message.clone()),
        (gossip_addr(&cluster, 2), message),
    ];
    all_answer_throughout(&cluster, &mut intruder, &attack).await;
    for i in [1, 2] {
        assert!(refused(&cluster, i, "bad_signature") >= 10.0, "node {i}");
    }
    // eu is not silenced: its backend fails, every node follows.
    cluster.backends[0].set(common::backends::Mode::Status(503, "down"));
    let rest = vec![cluster.addr(1), cluster.addr(2)];
    for i in 0..3 {
        wait_for_answer(cluster.node(i).dns, API, PATIENCE, |got| got == rest).await;
    }
    cluster.shutdown().await;
}

/// Membership lies and floods: foca identities not signed by their region (of a region that
/// does not exist, and ghosts of eu), eu's genuine identity declared down by a member whose
/// identity is genuine (ap's key signed it: a replayed or leaked identity), asks faster than
/// the rate, garbage units. Answers stay, eu stays fresh (its heartbeats do not depend on
/// foca's verdict, and a node declared down rejoins under a new identity), every refusal is
/// counted, and membership stays bounded.
#[tokio::test(flavor = "multi_thread")]
async fn membership_lies_and_floods_change_no_answer_and_are_counted() {
    let cluster = Cluster::start_with(83, with_admin).await;
    settled(&cluster).await;
    let mut intruder = Intruder::new(keyring(&cluster));
    let me = intruder.addr();
    let region_keys = region_keys(&cluster);
    let zone = "gslb.example.com";
    let ap_key = SigningKey::from_base64(&cluster.keys.seeds[2]).expect("ap's key");
    let liar = Member::signed(me, "ap", "liar", 1, &ap_key, zone);
    let targets = [gossip_addr(&cluster, 1), gossip_addr(&cluster, 2)];

    // The exact foca identities of eu, us and ap, from their replies to an announcement.
    let mut identities = Vec::new();
    for target in [gossip_addr(&cluster, 0), targets[0], targets[1]] {
        let announce = foca_packet(
            &region_keys,
            liar.clone(),
            Member::seed(target),
            foca::Message::Announce,
            &[],
        );
        let deadline = Instant::now() + PATIENCE;
        let identity = loop {
            intruder.send_raw(target, &announce).await;
            let reply =
                tokio::time::timeout(Duration::from_millis(500), intruder.socket.recv()).await;
            if let Ok(Ok((from, bytes))) = reply
                && from == target
                && let Ok(wire::Message::Foca(packet)) = wire::decode(&bytes)
                && let Ok(header) =
                    MemberCodec::new(zone.into(), region_keys.clone()).decode_header(packet)
            {
                break header.src;
            }
            assert!(Instant::now() < deadline, "{target} never answered");
        };
        identities.push(identity);
    }
    let eu = identities.remove(0);

    let (_, stranger_seed, _) = gslbd::gossip::keys::generate().expect("keys");
    let stranger_key = SigningKey::from_base64(&stranger_seed).expect("a key");
    let mut packets: Vec<(SocketAddr, Vec<u8>)> = Vec::new();
    // eu declared down; a region that does not exist, and 40 ghosts of eu, signed with a key of
    // no region. Each in a packet of its own.
    let mut updates = vec![
        foca::Member::down(eu.clone()),
        foca::Member::alive(Member::signed(
            "127.0.0.9:9".parse().expect("an address"),
            "mars",
            "0",
            1,
            &stranger_key,
            zone,
        )),
    ];
    for i in 0..40u16 {
        updates.push(foca::Member::alive(Member::signed(
            SocketAddr::from(([127, 0, 0, 9], 1000 + i)),
            "eu",
            &format!("ghost-{i}"),
            1,
            &stranger_key,
            zone,
        )));
    }
    for (target, identity) in targets.iter().zip(&identities) {
        for update in &updates {
            packets.push((
                *target,
                foca_packet(
                    &region_keys,
                    liar.clone(),
                    identity.clone(),
                    foca::Message::Gossip,
                    std::slice::from_ref(update),
                ),
            ));
        }
        // Garbage units, and asks beyond any rate.
        packets.push((
            *target,
            units_message(&[Arc::from(&b"\x01\x02not a unit"[..])]),
        ));
        let mut ask = Vec::new();
        wire::want(
            &gslbd::gossip::store::Want {
                run: gslbd::gossip::store::RunId {
                    region: Region::new("eu"),
                    instance: "0".into(),
                    epoch: 1,
                },
                heartbeat: 0,
                held: Vec::new(),
            },
            &mut ask,
        );
        for _ in 0..600 {
            packets.push((*target, ask.clone()));
        }
    }
    all_answer_throughout(&cluster, &mut intruder, &packets).await;

    for i in [1, 2] {
        assert!(refused(&cluster, i, "unknown_member") >= 1.0, "node {i}");
        assert!(refused(&cluster, i, "rate_limited") >= 1.0, "node {i}");
        assert!(refused(&cluster, i, "malformed_report") >= 1.0, "node {i}");
        let metrics = cluster.node(i).app.metrics().encode();
        let members = sample(&metrics, "gslbd_gossip_members", &[]);
        // The three nodes and the liar: no stranger, no ghost.
        assert!(members <= 4.0, "node {i}: {members} members\n{metrics}");
    }
    // eu was fresh throughout on every node.
    for i in [1, 2] {
        let admin = cluster.node(i).app.admin_addr().expect("admin endpoint");
        let (_, body) = http_get(admin, "/state");
        let state: serde_json::Value = serde_json::from_str(&body).expect("JSON");
        let eu = state["regions"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["name"] == "eu"))
            .cloned()
            .expect("eu in /state");
        assert_eq!(eu["status"]["remote"], "fresh", "node {i}: {eu}");
    }
    cluster.shutdown().await;
}

/// Every region's public key, as the nodes hold them.
fn region_keys(cluster: &Cluster) -> Arc<gslbd::gossip::keys::RegionKeys> {
    let config = region_config(0, cluster.net, cluster.port, &cluster.keys, &[]).parse();
    config.gossip.expect("gossip settings").region_keys.clone()
}

/// A foca packet as our nodes write them, wrapped for the wire.
fn foca_packet(
    region_keys: &Arc<gslbd::gossip::keys::RegionKeys>,
    src: Member,
    dst: Member,
    message: foca::Message<Member>,
    updates: &[foca::Member<Member>],
) -> Vec<u8> {
    let mut codec = MemberCodec::new("gslb.example.com".into(), region_keys.clone());
    let mut packet = Vec::new();
    codec
        .encode_header(
            &foca::Header {
                src,
                src_incarnation: 0,
                dst,
                message,
            },
            &mut packet,
        )
        .expect("encodes");
    if !updates.is_empty() {
        packet.extend_from_slice(&(updates.len() as u16).to_be_bytes());
        for update in updates {
            codec.encode_member(update, &mut packet).expect("encodes");
        }
    }
    let mut out = Vec::new();
    wire::foca(&packet, &mut out);
    out
}

/// A region's own key holder (a compromised region) sends a shard that inflates without end:
/// refused without inflating it, counted, and the region's other units still apply.
#[tokio::test(flavor = "multi_thread")]
async fn a_compressed_bomb_signed_by_a_region_is_refused() {
    let cluster = Cluster::start_with(84, with_admin).await;
    settled(&cluster).await;
    let epoch = epoch_of(&cluster, 1, "eu").await;
    let eu_key = SigningKey::from_base64(&cluster.keys.seeds[0]).expect("eu's key");
    let bomb = zstd::bulk::compress(&vec![b' '; 64 << 20], 19).expect("compresses");
    let stamp = Stamp {
        region: Region::new("eu"),
        instance: "0".into(),
        epoch,
        seq: u64::MAX / 2,
        issued_ms: 0,
    };
    let unit = unit::sign_raw(
        &eu_key,
        "gslb.example.com",
        &stamp,
        Kind::Shard,
        Some(3),
        &bomb,
    )
    .expect("fits a unit");
    let mut intruder = Intruder::new(keyring(&cluster));
    let target = gossip_addr(&cluster, 1);
    let deadline = Instant::now() + PATIENCE;
    while refused(&cluster, 1, "decompress_limit") < 1.0 {
        intruder
            .send_units(target, std::slice::from_ref(&unit))
            .await;
        assert!(Instant::now() < deadline, "the bomb was never refused");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    all_answer_throughout(&cluster, &mut intruder, &[]).await;
    cluster.shutdown().await;
}
