//! Any datagram through the UDP fast path's pure step (`udp::answer_packet`): no panic, and
//! whatever it sends is a response that parses, echoes the ID, has QR set and fits the size
//! the client allows (512 without EDNS; never more than `server.max_udp_payload`). The
//! receive loop reuses answer buffers, so a buffer left full of junk must give the same bytes.
//! Where the quick path (`dns::quick`) answers, the general path sends the same bytes. The same
//! datagram to the zone signed (`signed_snapshot`) holds to the same rules (quick and general
//! paths alike), and its answer has DNSSEC records only when the query set DO.

#![no_main]

use gslbd::dns::message::{Outcome, answer_general};
use gslbd::dns::udp::answer_packet;
use gslbd::dns::{Transport, quick};
use gslbd::snapshot::Snapshot;
use gslbd_fuzz::{BUCKET, signed_snapshot, snapshot, source};
use hickory_proto::op::Message;
use hickory_proto::rr::{RData, RecordType};
use libfuzzer_sys::fuzz_target;

/// `packet` answered from `snapshot` on the fast path, checked against every rule above but
/// DO's; the reply, when one is sent.
fn checked_reply(snapshot: &Snapshot, packet: &[u8]) -> Option<Message> {
    let mut out = Vec::new();
    let answered = answer_packet(snapshot, packet, source(), BUCKET, &mut out);
    let mut reused = vec![0xA5; 1500];
    let answered_again = answer_packet(snapshot, packet, source(), BUCKET, &mut reused);
    assert_eq!(answered, answered_again, "same datagram, same decision");
    if !answered {
        return None;
    }
    assert_eq!(out, reused, "a reused buffer changes nothing");
    let mut quick_out = Vec::new();
    if let Some(outcome) = quick::answer(snapshot, packet, source(), BUCKET, &mut quick_out) {
        let mut general_out = Vec::new();
        let general = answer_general(
            snapshot,
            packet,
            source(),
            BUCKET,
            Transport::Udp,
            &mut general_out,
        );
        assert_eq!(
            outcome, general,
            "the quick path's outcome is the general path's"
        );
        assert!(outcome != Outcome::Dropped);
        assert_eq!(
            quick_out, general_out,
            "the quick path's bytes are the general path's"
        );
    }
    let reply = match Message::from_vec(&out) {
        Ok(reply) => reply,
        Err(error) => panic!("our reply does not parse: {error}\n{out:02x?}"),
    };
    assert_eq!(
        reply.metadata.id,
        u16::from_be_bytes([packet[0], packet[1]])
    );
    assert_eq!(out[2] & 0x80, 0x80, "QR set in replies");
    assert!(
        out.len() <= 512 || reply.edns.is_some(),
        "512 bytes without EDNS"
    );
    assert!(
        out.len() <= usize::from(snapshot.max_udp_payload),
        "never above our size"
    );
    Some(reply)
}

fuzz_target!(|packet: &[u8]| {
    if checked_reply(snapshot(), packet).is_none() {
        return;
    }
    // Signed: the same rules; DNSSEC records only for a query with DO.
    let Some(reply) = checked_reply(signed_snapshot(), packet) else {
        return;
    };
    let dnssec_ok = Message::from_vec(packet)
        .ok()
        .and_then(|query| query.edns)
        .is_some_and(|edns| edns.flags().dnssec_ok);
    let has_dnssec = reply
        .answers
        .iter()
        .chain(&reply.authorities)
        .chain(&reply.additionals)
        .any(|r| matches!(r.data, RData::DNSSEC(_)) && r.record_type() != RecordType::DNSKEY);
    assert!(
        dnssec_ok || !has_dnssec,
        "DNSSEC records without DO: {reply:?}"
    );
});
