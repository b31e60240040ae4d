//! The UDP fast path and hickory-server's UDP path send the same bytes for the same queries,
//! and TCP (always hickory-server) the same as UDP when the answer fits.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::config::ConfigFile;
use common::*;
use hickory_proto::op::OpCode;
use hickory_proto::rr::{DNSClass, RecordType};

fn corpus() -> Vec<Vec<u8>> {
    let names = [
        "gslb.example.com",
        "app.gslb.example.com",
        "WEB.gslb.example.com",
        "api.gslb.example.com",
        "geo.gslb.example.com",
        "v4only.deep.gslb.example.com",
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

#[tokio::test(flavor = "multi_thread")]
async fn fast_path_and_hickory_send_identical_bytes() {
    let fast = start().await;
    let mut config = ConfigFile::base();
    config.server.udp_workers = Some(1);
    config.server.udp_fast_path = Some(false);
    let hickory = start_config(&config).await;
    let packets = corpus();
    let mut answered = 0;
    for packet in &packets {
        // Weighted and round-robin answers change with the second: retry a straddling pair.
        let mut same = false;
        let mut last = (None, None);
        for _ in 0..3 {
            let a = exchange(fast.addr, packet);
            let b = exchange(hickory.addr, packet);
            if a == b {
                same = true;
                answered += usize::from(a.is_some());
                break;
            }
            last = (a, b);
        }
        assert!(
            same,
            "packet {packet:02x?}\nfast:    {:02x?}\nhickory: {:02x?}",
            last.0, last.1
        );
    }
    assert!(
        answered > packets.len() / 2,
        "most packets were answered: {answered}"
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
        let reply = hickory_proto::op::Message::from_vec(&from_fast).expect("parses");
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
