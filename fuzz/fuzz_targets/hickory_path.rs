//! Any datagram through hickory-server's UDP path as gslbd's handler runs it (parse as
//! hickory-server does, `answer::respond`, `encode::message`, hickory's UDP encoding): no
//! panic, a well-formed reply; and the UDP fast path sends the very same bytes, or nothing
//! when hickory sends nothing (tests/differential.rs's property, over any input). The one
//! documented difference: a QR=1 packet that does not parse gets FORMERR from hickory-server
//! and nothing from the fast path (no reflection).

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
        assert_eq!(
            Some(&fast),
            hickory.as_ref(),
            "packet {packet:02x?}: the fast path and hickory differ"
        );
    } else if packet.len() >= 12 && packet[2] & 0x80 == 0 {
        assert_eq!(hickory, None, "packet {packet:02x?}: only hickory answers");
    }
});
