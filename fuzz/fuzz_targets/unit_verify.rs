//! Gossiped units through `unit::verify` and the body readers, as the store checks every unit
//! it is given. The first byte picks how the rest is used: even, the unit as received (random
//! bytes almost never carry a valid signature); odd, the next byte names a kind and the rest
//! is a body that region eu signs first (a shard's JSON is compressed first), so the body
//! readers see fuzzer-chosen bytes. A shard that reads, signed again from what was read, reads
//! back the same.

#![no_main]

use std::sync::Arc;

use gslbd::gossip::report::Stamp;
use gslbd::gossip::unit::{self, Body, Kind, SLOTS};
use gslbd::model::Region;
use gslbd_fuzz::{CLUSTER, REGIONS, region_keys, signing_key};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let keys = region_keys();
    let bytes: Arc<[u8]> = if mode & 1 == 1 {
        let Some((&kind, body)) = rest.split_first() else {
            return;
        };
        let stamp = Stamp {
            region: Region::new(REGIONS[0]),
            instance: "0".into(),
            epoch: 7,
            seq: 1,
            issued_ms: 42,
        };
        let (kind, slot, body) = match kind % 3 {
            0 => (Kind::Heartbeat, None, body.to_vec()),
            1 => (
                Kind::Shard,
                Some(u16::from(mode >> 1) % SLOTS),
                zstd::bulk::compress(body, 1).unwrap_or_default(),
            ),
            _ => (Kind::Drain, Some(unit::DRAIN_SLOT), body.to_vec()),
        };
        match unit::sign_raw(signing_key(0), CLUSTER, &stamp, kind, slot, &body) {
            Ok(bytes) => bytes,
            Err(_) => return,
        }
    } else {
        Arc::from(rest)
    };
    let Ok(unit) = unit::verify(bytes, CLUSTER, keys) else {
        return;
    };
    assert_eq!(unit.header.stamp.region.as_str(), REGIONS[0]);
    let _ = unit.digest();
    let _ = unit.drain();
    if let Ok(shard) = unit.shard() {
        let again = unit::sign(
            signing_key(0),
            CLUSTER,
            &unit.header.stamp,
            unit.header.slot,
            Body::Shard(&shard),
        );
        // A shard that reads may still be too big to sign again once recompressed.
        if let Ok(again) = again {
            let reread = unit::verify(again, CLUSTER, keys).expect("a unit we signed verifies");
            assert_eq!(reread.shard().expect("a shard we signed reads"), shard);
        }
    }
});
