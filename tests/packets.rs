//! Any bytes give a reply or a drop, never a panic (property tests on the answer path).

mod common;

use std::net::SocketAddr;

use gslbd::dns::udp::answer_packet;
use gslbd::snapshot::Snapshot;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use proptest::prelude::*;

fn snapshot() -> Snapshot {
    let config = common::config::ConfigFile::base().parse();
    Snapshot::from_model(&config.model, 1232)
}

fn source() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5300))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn arbitrary_bytes_never_panic(packet in proptest::collection::vec(any::<u8>(), 0..600)) {
        let snapshot = snapshot();
        let mut out = Vec::new();
        if answer_packet(&snapshot, &packet, source(), 0, &mut out) {
            // Whatever we send is a well-formed response to the same ID.
            let reply = Message::from_vec(&out).expect("our reply parses");
            prop_assert_eq!(reply.metadata.id, u16::from_be_bytes([packet[0], packet[1]]));
            prop_assert!(out.len() <= 512 || reply.edns.is_some());
        }
    }

    #[test]
    fn mutated_queries_never_panic(
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let snapshot = snapshot();
        let mut packet = common::bytes(&common::ecs_query("geo.gslb.example.com", RecordType::A, "203.0.113.0", 24));
        for (at, value) in edits {
            let len = packet.len();
            packet[at % len] = value;
        }
        packet.truncate(cut % (packet.len() + 1));
        let mut out = Vec::new();
        if answer_packet(&snapshot, &packet, source(), 0, &mut out) {
            prop_assert!(Message::from_vec(&out).is_ok());
            prop_assert_eq!(out[2] & 0x80, 0x80, "QR set in replies");
        }
    }
}
