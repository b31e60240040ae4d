//! Any bytes give a reply or a drop, never a panic (property tests on the answer path).

mod common;

use std::net::SocketAddr;

use common::config::{ConfigFile, Service};
use gslbd::dns::udp::answer_packet;
use gslbd::snapshot::Snapshot;
use hickory_proto::op::Message;
use hickory_proto::rr::RecordType;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder};
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

/// The fuzz target `udp_fast_path`'s first crash (`fuzz/regressions/udp_fast_path/`): AAAA of a
/// service with 40 addresses, EDNS size 600. hickory-proto cut the answer at 600 bytes, dropped
/// the OPT record (RFC 6891 §7 requires it in a truncated reply) and left the cut record's first
/// bytes after the message. Now: the minimal response, TC set, the OPT kept, nothing after it;
/// without EDNS the same within 512 bytes.
#[test]
fn an_answer_too_big_for_the_udp_size_is_the_minimal_truncated_response() {
    let mut config = ConfigFile::base();
    let addresses: Vec<String> = (1..=40).map(|i| format!("2001:db8:b::{i:x}")).collect();
    config
        .services
        .push(Service::round_robin("big.gslb.example.com").target("eu", &addresses));
    let snapshot = Snapshot::from_model(&config.parse().model, 1232);
    let found_by_fuzzing =
        include_bytes!("../fuzz/regressions/udp_fast_path/oversized-answer-edns-600");
    let without_edns = common::bytes(&common::plain_query(
        "big.gslb.example.com",
        RecordType::AAAA,
    ));
    for (packet, size, has_opt) in [
        (&found_by_fuzzing[..], 600, true),
        (&without_edns, 512, false),
    ] {
        let mut out = Vec::new();
        assert!(answer_packet(&snapshot, packet, source(), 0, &mut out));
        assert!(out.len() <= size, "{} bytes", out.len());
        let mut decoder = BinDecoder::new(&out);
        let reply = Message::read(&mut decoder).expect("our reply parses");
        assert!(
            decoder.is_empty(),
            "{} bytes after the message",
            decoder.len()
        );
        assert!(reply.metadata.truncation, "TC set");
        assert!(reply.answers.is_empty() && reply.authorities.is_empty());
        assert_eq!(reply.queries.len(), 1, "the question is kept");
        assert_eq!(
            reply.edns.is_some(),
            has_opt,
            "an OPT record exactly when asked"
        );
    }
}

/// The fuzz target `udp_fast_path`'s second crash (`fuzz/regressions/udp_fast_path/`): ten
/// questions, names compressed against the header. The reply echoed them as sent, so their
/// pointers landed in the reply's header and the reply did not parse. Such a question (no
/// resolver sends one) now gets no reply; the smallest case is a name at the header's flags.
#[test]
fn a_question_name_compressed_against_the_header_gets_no_reply() {
    let snapshot = snapshot();
    let found_by_fuzzing =
        include_bytes!("../fuzz/regressions/udp_fast_path/question-name-points-into-header");
    let pointer_at_flags = [
        0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, // header: RD, one question
        0xC0, 0x02, 0, 1, 0, 1, // the name at offset 2, A, IN
    ];
    assert!(
        Message::from_vec(&pointer_at_flags).is_ok(),
        "a query hickory parses"
    );
    for packet in [&found_by_fuzzing[..], &pointer_at_flags] {
        let mut out = Vec::new();
        assert!(!answer_packet(&snapshot, packet, source(), 0, &mut out));
    }
}
