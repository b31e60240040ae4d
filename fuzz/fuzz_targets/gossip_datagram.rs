//! Gossip datagrams through the sealed transport's receiving step (`Reassembly::accept`: open
//! with the keyring, check the fragment header, reassemble) and chitchat's decoder, as
//! `SealedSocket::recv` runs them. Random bytes never pass the AEAD tag, so frames marked
//! plaintext are sealed with the cluster key first: the fragment parser, reassembly (two
//! peers, time moving on) and `ChitchatMessage::deserialize` then see fuzzer-chosen bytes.
//! Besides no panic: pending messages stay bounded.

#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use chitchat::{ChitchatMessage, Deserializable};
use gslbd::gossip::transport::Reassembly;
use gslbd_fuzz::{frames, keyring};
use libfuzzer_sys::fuzz_target;

/// The transport's bound on incomplete messages (`MAX_PENDING`).
const MAX_PENDING: usize = 256;

/// A fixed start so that time in an input is relative only to the input.
fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

fuzz_target!(|input: &[u8]| {
    let keyring = keyring();
    let peers = [
        SocketAddr::from(([127, 0, 0, 2], 7946)),
        SocketAddr::from(([127, 0, 0, 3], 7946)),
    ];
    let mut reassembly = Reassembly::default();
    let mut now = start();
    let mut datagram = Vec::new();
    for frame in frames(input) {
        now += Duration::from_millis(250 * u64::from(frame.later));
        if frame.is_plaintext {
            keyring.seal(frame.bytes, &mut datagram);
            assert!(!datagram.is_empty(), "sealing works");
        } else {
            datagram.clear();
            datagram.extend_from_slice(frame.bytes);
        }
        let from = peers[usize::from(frame.peer)];
        let accepted = reassembly.accept(keyring, &mut datagram, from, now);
        assert!(reassembly.pending_messages() <= MAX_PENDING);
        let Ok(Some(message)) = accepted else {
            continue;
        };
        // chitchat decodes and applies; it never writes a received message out again (its
        // `Delta::serialize` asserts the length read off the wire, which need not match a
        // re-encoding), so decoding without a panic is the whole property.
        let _ = ChitchatMessage::deserialize(&mut message.as_slice());
    }
});
