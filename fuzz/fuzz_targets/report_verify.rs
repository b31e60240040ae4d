//! Gossiped values through `report::verify`, as the gossip node checks every value it learns:
//! as a service report (`svc:` keys) and as a heartbeat (`alive`). The first byte picks how the
//! rest is used: even, the value as published (random text almost never carries a valid
//! signature); odd, JSON that region eu signs first, so the envelope and report parsing see
//! fuzzer-chosen JSON. A value that verifies, signed again from what was read, verifies to the
//! same report.

#![no_main]

use gslbd::gossip::report::{self, ServiceReport, Verified};
use gslbd_fuzz::{CLUSTER, REGIONS, SERVICE_KEY, region_keys, signing_key};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| {
    let Some((&mode, rest)) = input.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(rest);
    let value = if mode & 1 == 1 {
        report::sign_json(signing_key(0), CLUSTER, &text)
    } else {
        text.into_owned()
    };
    // The gossip node of instance 0 of the first region.
    let publisher = &format!("{}/0", REGIONS[0]);
    let keys = region_keys();
    if let Ok(verified) =
        report::verify::<ServiceReport>(&value, CLUSTER, publisher, SERVICE_KEY, keys)
    {
        assert_eq!(verified.stamp.region.as_str(), REGIONS[0]);
        let again = report::sign(
            signing_key(0),
            CLUSTER,
            &verified.stamp,
            SERVICE_KEY,
            &verified.value,
        );
        let reread: Verified<ServiceReport> =
            match report::verify(&again, CLUSTER, publisher, SERVICE_KEY, keys) {
                Ok(reread) => reread,
                Err(error) => panic!("a report we signed does not verify: {error}\n{again}"),
            };
        assert_eq!(reread, verified);
    }
    if let Ok(verified) = report::verify::<()>(&value, CLUSTER, publisher, report::ALIVE_KEY, keys)
    {
        assert_eq!(verified.stamp.region.as_str(), REGIONS[0]);
    }
    // Published by a region that has no key: refused whatever the value.
    assert!(report::verify::<()>(&value, CLUSTER, "mars/0", report::ALIVE_KEY, keys).is_err());
});
