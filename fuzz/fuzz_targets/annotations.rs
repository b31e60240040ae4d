//! Kubernetes annotations through `annotations::parse` against the fuzz config's regions. The
//! input is built with `arbitrary`: a few entries, each one of gslbd's or k8gb's keys (or a
//! stranger) with a fuzzed value. Besides no panic, what parses holds to the rules the
//! discovery relies on: a TTL in range, a weight per region with one positive, a failover order
//! that lists every region once, at least one address when addresses are given, a target name
//! that is fully qualified, lowercase and outside the zone, and never beside addresses.

#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use gslbd::kubernetes::annotations::{self, MAX_TTL, TargetName};
use gslbd::model::Strategy;
use gslbd_fuzz::config;
use libfuzzer_sys::fuzz_target;

/// Every key `annotations` reads, and one it does not.
const KEYS: [&str; 18] = [
    annotations::STRATEGY[0],
    annotations::STRATEGY[1],
    annotations::FAILOVER_ORDER[0],
    annotations::PRIMARY_REGION[0],
    annotations::PRIMARY_REGION[1],
    annotations::WEIGHTS[0],
    annotations::TTL[0],
    annotations::TTL[1],
    annotations::PROBE_PATH[0],
    annotations::PROBE_SCHEME[0],
    annotations::ADDRESSES[0],
    annotations::ADDRESSES[1],
    annotations::HEALTH_POLICY[0],
    annotations::ALL_DOWN[0],
    annotations::HOSTNAME[0],
    annotations::HOSTNAME[1],
    annotations::TARGET_NAME[0],
    "example.com/unrelated",
];

#[derive(Debug, Arbitrary)]
struct Entry {
    key: u8,
    value: String,
}

fuzz_target!(|entries: Vec<Entry>| {
    let annotations: BTreeMap<String, String> = entries
        .into_iter()
        .map(|e| (KEYS[usize::from(e.key) % KEYS.len()].to_string(), e.value))
        .collect();
    let regions = &config().model.regions;
    let zone = &config().model.zone.origin;
    let Ok(Some(settings)) = annotations::parse(&annotations, regions, zone) else {
        return;
    };
    if let Some(ttl) = settings.ttl {
        assert!((1..=MAX_TTL).contains(&ttl));
    }
    match &settings.strategy {
        Strategy::Weighted { weights, pick } => {
            assert_eq!(weights.len(), regions.len());
            assert!(weights.iter().any(|w| *w > 0));
            assert!(*pick >= 1);
        }
        Strategy::Failover { order } => {
            let mut sorted: Vec<usize> = order.iter().map(|r| r.get()).collect();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..regions.len()).collect::<Vec<_>>());
        }
        Strategy::RoundRobin | Strategy::Geo => {}
    }
    if let Some(addresses) = &settings.addresses {
        assert!(!addresses.is_empty());
    }
    if let Some(target) = &settings.target_name {
        assert!(settings.addresses.is_none());
        if let TargetName::Fixed(name) = target {
            assert!(name.is_fqdn() && !name.is_root());
            assert_eq!(*name, name.to_lowercase());
            assert!(!zone.zone_of(name), "{name} is inside the zone");
        }
    }
});
