//! Any datagram through hickory-server's UDP path as gslbd's handler runs it (parse as
//! hickory-server does, `answer::respond`, `encode::message`, hickory's UDP encoding): no
//! panic, a well-formed reply; and the UDP fast path sends the same answer (the same bytes, or
//! the same message compressed against the question, never longer), or nothing when hickory
//! sends nothing (tests/differential.rs's property, over any input). Two documented
//! differences: a QR=1 packet that does not parse gets FORMERR from hickory-server and nothing
//! from the fast path (no reflection); an answer that fits the client's size only compressed
//! is sent whole by the fast path and as the minimal TC response by hickory-server.

#![no_main]

use gslbd::dns::udp::answer_packet;
use gslbd_fuzz::{BUCKET, hickory_udp, snapshot, source};
use hickory_proto::op::Message;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|packet: &[u8]| {
    let snapshot = snapshot();
    let hickory = hickory_udp(snapshot, packet, source(), BUCKET);
    if let Some(reply) = &hickory {
        let message = match Message::from_vec(reply) {
            Ok(message) => message,
            Err(error) => panic!("hickory's reply does not parse: {error}\n{reply:02x?}"),
        };
        assert_eq!(
            message.metadata.id,
            u16::from_be_bytes([packet[0], packet[1]])
        );
        assert!(reply.len() <= 512 || message.edns.is_some());
    }
    let mut fast = Vec::new();
    if answer_packet(snapshot, packet, source(), BUCKET, &mut fast) {
        let Some(reply) = &hickory else {
            panic!("packet {packet:02x?}: only the fast path answers");
        };
        if &fast != reply {
            let ours = Message::from_vec(&fast).expect("the fast path's reply parses");
            let theirs = Message::from_vec(reply).expect("parsed above");
            if theirs.metadata.truncation && theirs.answers.is_empty() && !ours.metadata.truncation
            {
                // An answer that fits the client's size only compressed: hickory-server sends
                // its minimal response, TC set, and the client asks again over TCP.
                return;
            }
            assert_eq!(
                ours, theirs,
                "packet {packet:02x?}: the fast path and hickory differ"
            );
            assert!(fast.len() < reply.len(), "compression never lengthens");
        }
    } else if packet.len() >= 12 && packet[2] & 0x80 == 0 {
        assert_eq!(hickory, None, "packet {packet:02x?}: only hickory answers");
    }
});
