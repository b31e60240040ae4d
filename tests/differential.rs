//! The UDP fast path and hickory-server's UDP path send the same answers for the same queries;
//! gslbd's TCP sends what hickory-server's TCP listener sent with gslbd's handler (the TCP
//! transport before gslbd had its own), and the same bytes as UDP when the answer fits.
//! gslbd's own encoding compresses answer names against the question, hickory-server's does
//! not: where the bytes differ, both must parse to the same message (header, question, every
//! record, EDNS), and ours must be the shorter.

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use common::config::{ConfigFile, Tcp};
use common::tcp::{connect_from, framed, read_framed};
use common::*;
use gslbd::dns::handler::Handler;
use gslbd::metrics::Metrics;
use hickory_proto::op::{Message, OpCode};
use hickory_proto::rr::{DNSClass, RecordType};

fn corpus() -> Vec<Vec<u8>> {
    let names = [
        "gslb.example.com",
        "app.gslb.example.com",
        "WEB.gslb.example.com",
        "api.gslb.example.com",
        "geo.gslb.example.com",
        "v4only.deep.gslb.example.com",
        "cname.gslb.example.com",
        "CName.Gslb.example.com",
        "deep.gslb.example.com",
        "nope.gslb.example.com",
        "ns-eu.gslb.example.com",
        "example.org",
    ];
    let types = [
        RecordType::A,
        RecordType::AAAA,
        RecordType::SOA,
        RecordType::NS,
        RecordType::MX,
        RecordType::ANY,
        RecordType::TXT,
    ];
    let mut packets = Vec::new();
    for qname in names {
        for rtype in types {
            packets.push(bytes(&query(qname, rtype)));
            packets.push(bytes(&plain_query(qname, rtype)));
            packets.push(bytes(&ecs_query(qname, rtype, "203.0.113.0", 24)));
            packets.push(bytes(&ecs_query(qname, rtype, "2001:db8:c::", 48)));
        }
        packets.push(bytes(&class_query(qname, RecordType::A, DNSClass::CH)));
        let mut badvers = query(qname, RecordType::A);
        badvers.edns.as_mut().expect("edns").set_version(1);
        packets.push(bytes(&badvers));
        let mut notify = query(qname, RecordType::SOA);
        notify.metadata.op_code = OpCode::Notify;
        packets.push(bytes(&notify));
        let mut two = query(qname, RecordType::A);
        two.add_query(hickory_proto::op::Query::query(
            name("app.gslb.example.com"),
            RecordType::A,
        ));
        packets.push(bytes(&two));
        let mut small = query(qname, RecordType::AAAA);
        small.edns.as_mut().expect("edns").set_max_payload(100);
        packets.push(bytes(&small));
    }
    // Cut and bit-flipped packets (a fixed pseudo-random sequence), never with QR set:
    // hickory-server answers a malformed QR=1 packet with FORMERR, the fast path drops it.
    let seed = bytes(&ecs_query(
        "app.gslb.example.com",
        RecordType::A,
        "198.51.100.0",
        24,
    ));
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..300 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let mut packet = seed.clone();
        let cut = 12 + (state as usize % (packet.len() - 11));
        packet.truncate(cut);
        let at = (state >> 20) as usize % packet.len();
        packet[at] ^= 1 << ((state >> 40) % 8);
        packet[2] &= 0x7f;
        packets.push(packet);
    }
    packets
}

fn exchange(addr: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    udp_raw_wait(addr, packet, Duration::from_millis(300))
}

/// One side's name and how it answers a packet (`None`: no answer).
type Side<'a> = (&'a str, &'a dyn Fn(&[u8]) -> Option<Vec<u8>>);

/// Whether two replies are the same answer: the same bytes, or (one of them compressed where
/// the other is not) two well-formed messages with the same header, question, records and
/// EDNS, the first no longer than the second.
fn same_answer(a: &Option<Vec<u8>>, b: &Option<Vec<u8>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) if a != b => {
            let (Ok(parsed_a), Ok(parsed_b)) = (Message::from_vec(a), Message::from_vec(b)) else {
                return false;
            };
            a.len() <= b.len() && parsed_a == parsed_b
        }
        _ => a == b,
    }
}

/// What [`assert_alike`] saw.
struct Alike {
    /// Packets answered by both sides.
    answered: usize,
    /// Of those, answers whose bytes differ (the first side's shorter).
    shorter: usize,
}

/// Asserts that both sides send the same answer (or both nothing) for every packet
/// ([`same_answer`]). Weighted and round-robin answers change with the second: a pair that
/// straddles one is asked again.
fn assert_alike(packets: &[Vec<u8>], (a_name, a): Side<'_>, (b_name, b): Side<'_>) -> Alike {
    let mut alike = Alike {
        answered: 0,
        shorter: 0,
    };
    for packet in packets {
        let mut same = false;
        let mut last = (None, None);
        for _ in 0..3 {
            let (from_a, from_b) = (a(packet), b(packet));
            if same_answer(&from_a, &from_b) {
                same = true;
                alike.answered += usize::from(from_a.is_some());
                alike.shorter += usize::from(from_a != from_b);
                break;
            }
            last = (from_a, from_b);
        }
        assert!(
            same,
            "packet {packet:02x?}\n{a_name}: {:02x?}\n{b_name}: {:02x?}",
            last.0, last.1
        );
    }
    alike
}

#[tokio::test(flavor = "multi_thread")]
async fn fast_path_and_hickory_send_the_same_answers() {
    let mut config = ConfigFile::base();
    // And a service answered by a CNAME (its first region's target is a host name).
    config.services.push(
        common::config::Service::failover("cname.gslb.example.com", &["eu", "us"])
            .target_name("eu", "lb-1.eu-west-1.elb.example.net")
            .target("us", &["198.51.100.9"]),
    );
    let fast = start_config(&config).await;
    config.server.udp_workers = Some(1);
    config.server.udp_fast_path = Some(false);
    let hickory = start_config(&config).await;
    let packets = corpus();
    let alike = assert_alike(
        &packets,
        ("fast", &|packet| exchange(fast.addr, packet)),
        ("hickory", &|packet| exchange(hickory.addr, packet)),
    );
    assert!(
        alike.answered > packets.len() / 2,
        "most packets were answered: {}",
        alike.answered
    );
    // Every answer with records names the question's name again: ours points at it.
    assert!(
        alike.shorter > packets.len() / 4,
        "answers compressed: {}",
        alike.shorter
    );
    // The CNAME service was answered with its CNAME (the quick path's, on the fast server).
    let packet = bytes(&query("cname.gslb.example.com", RecordType::A));
    let reply =
        Message::from_vec(&exchange(fast.addr, &packet).expect("answered")).expect("parses");
    assert_eq!(
        reply
            .answers
            .iter()
            .map(|r| r.record_type())
            .collect::<Vec<_>>(),
        [RecordType::CNAME]
    );
    fast.app.shutdown().await;
    hickory.app.shutdown().await;
}

/// Answers too big for the client's UDP size (found by the fuzz target `hickory_path`): both
/// paths send the same minimal response, TC set and the OPT record kept.
#[tokio::test(flavor = "multi_thread")]
async fn answers_too_big_for_udp_are_the_same_minimal_response_on_both_paths() {
    let mut config = ConfigFile::base();
    let addresses: Vec<String> = (1..=40).map(|i| format!("2001:db8:b::{i:x}")).collect();
    config.services.push(
        common::config::Service::round_robin("big.gslb.example.com").target("eu", &addresses),
    );
    let fast = start_config(&config).await;
    config.server.udp_workers = Some(1);
    config.server.udp_fast_path = Some(false);
    let hickory = start_config(&config).await;
    let mut small = query("big.gslb.example.com", RecordType::AAAA);
    small.edns.as_mut().expect("edns").set_max_payload(600);
    let mut small_ecs = ecs_query("big.gslb.example.com", RecordType::AAAA, "192.0.2.0", 24);
    small_ecs.edns.as_mut().expect("edns").set_max_payload(512);
    for packet in [
        bytes(&small),
        bytes(&small_ecs),
        bytes(&plain_query("big.gslb.example.com", RecordType::AAAA)),
    ] {
        let from_fast = exchange(fast.addr, &packet).expect("a reply");
        assert_eq!(Some(&from_fast), exchange(hickory.addr, &packet).as_ref());
        let reply = Message::from_vec(&from_fast).expect("parses");
        assert!(reply.metadata.truncation && reply.answers.is_empty());
    }
    fast.app.shutdown().await;
    hickory.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_and_udp_send_identical_bytes_when_the_answer_fits() {
    let server = start().await;
    for qname in [
        "gslb.example.com",
        "app.gslb.example.com",
        "geo.gslb.example.com",
        "nope.gslb.example.com",
    ] {
        for rtype in [
            RecordType::A,
            RecordType::AAAA,
            RecordType::NS,
            RecordType::SOA,
        ] {
            let packet = bytes(&ecs_query(qname, rtype, "192.0.2.0", 24));
            let over_udp = udp_raw(server.addr, &packet).expect("udp reply");
            let over_tcp = tcp_raw(server.addr, &packet);
            assert_eq!(over_udp, over_tcp, "{qname} {rtype}");
        }
    }
    server.app.shutdown().await;
}

/// One message over a new TCP connection; `None` when no answer comes.
fn tcp_exchange(addr: SocketAddr, packet: &[u8]) -> Option<Vec<u8>> {
    let mut stream = connect_from("127.0.0.1", addr);
    stream
        .set_read_timeout(Some(Duration::from_millis(300)))
        .expect("timeout");
    stream.write_all(&framed(packet)).ok()?;
    read_framed(&mut stream).ok()
}

#[tokio::test(flavor = "multi_thread")]
async fn tcp_sends_the_answers_hickory_servers_tcp_listener_sent() {
    let mut config = ConfigFile::base();
    // A connection per packet, closed by the client: room for the ones not yet seen closed.
    config.server.tcp = Some(Tcp {
        max_connections_per_network: Some(1000),
        max_connections: Some(1000),
        ..Tcp::default()
    });
    let ours = start_config(&config).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the reference");
    let reference_addr = listener.local_addr().expect("bound");
    let store = Arc::new(ArcSwap::new(ours.app.snapshot()));
    let mut reference =
        hickory_server::Server::new(Handler::new(store, Arc::new(Metrics::new()), None));
    reference.register_listener(listener, Duration::from_secs(10), 32);

    let mut packets = corpus();
    // Longer than any query: junk after the question, past the 4096 bytes gslbd keeps.
    let mut padded = bytes(&query("app.gslb.example.com", RecordType::A));
    padded.resize(5000, 0);
    packets.push(padded);
    let alike = assert_alike(
        &packets,
        ("ours", &|packet| tcp_exchange(ours.addr, packet)),
        ("hickory", &|packet| tcp_exchange(reference_addr, packet)),
    );
    assert!(
        alike.answered > packets.len() * 9 / 10,
        "most packets were answered: {} of {}",
        alike.answered,
        packets.len()
    );
    assert!(
        alike.shorter > packets.len() / 4,
        "answers compressed: {}",
        alike.shorter
    );
    reference
        .shutdown_gracefully()
        .await
        .expect("the reference stops");
    ours.app.shutdown().await;
}
