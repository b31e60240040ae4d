//! Gossip datagrams through the sealed socket's receiving step (`Reassembly::accept`: open
//! with the keyring, check the fragment header, reassemble), then `wire::decode` and what the
//! node does with each message: units into a store (verify, order, bound), asks served from
//! it, foca packets through our member codec. Random bytes never pass the AEAD tag, so frames
//! marked plaintext are sealed with the cluster key first. Besides no panic: pending messages
//! and the store stay bounded, and an answer never exceeds its budget by more than one unit.

#![no_main]

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use foca::Codec;
use gslbd::gossip::member::{Member, MemberCodec};
use gslbd::gossip::store::{MAX_REGION_BYTES, Store};
use gslbd::gossip::transport::Reassembly;
use gslbd::gossip::unit::MAX_UNIT;
use gslbd::gossip::wire::{self, Message};
use gslbd::model::Region;
use gslbd_fuzz::{CLUSTER, REGIONS, frames, keyring, region_keys};
use libfuzzer_sys::fuzz_target;

/// The transport's bound on incomplete messages (`MAX_PENDING`).
const MAX_PENDING: usize = 256;
const BUDGET: usize = 32 * 1024;

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
    let mut store = Store::new(
        CLUSTER.to_string(),
        Arc::new(region_keys().clone()),
        Region::new(REGIONS[2]),
        "fuzz".into(),
    );
    let mut codec = MemberCodec::new(CLUSTER.to_string(), Arc::new(region_keys().clone()));
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
        match wire::decode(&message) {
            Ok(Message::Units { units, .. }) => {
                for unit in units {
                    let _ = store.accept(unit, now);
                }
                assert!(store.bytes() <= MAX_REGION_BYTES * REGIONS.len());
            }
            Ok(Message::Want(want)) => {
                let (units, _) = store.serve(&want, BUDGET);
                let size: usize = units.iter().map(|u| u.len()).sum();
                assert!(size <= BUDGET + MAX_UNIT);
            }
            Ok(Message::Foca(packet)) => {
                let _: Result<foca::Header<Member>, _> = codec.decode_header(packet);
            }
            Err(_) => {}
        }
    }
});
