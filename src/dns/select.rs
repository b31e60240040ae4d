//! The four strategies as pure functions: (service, question type, client, time bucket) →
//! records. No I/O, no clock, no randomness: every server of the zone computes the same answer
//! for the same client in the same time bucket.

use std::net::IpAddr;

use hickory_proto::rr::{Record, RecordType};
use smallvec::SmallVec;

use crate::geo::GeoIndex;
use crate::label_enum::label_enum;
use crate::model::{AllDownPolicy, Strategy};
use crate::snapshot::ServiceAnswer;

/// Records chosen for an answer, in answer order.
pub type Records<'s> = SmallVec<[&'s Record; 8]>;

/// Who is asking, as far as the answer may depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Client {
    /// The address the answer is tailored to: the EDNS Client Subnet address, else the source.
    pub addr: IpAddr,
    /// Leading bits of `addr` that are meaningful (the ECS source prefix, or the full address).
    pub prefix_len: u8,
}

impl Client {
    /// A client known only by its packet's source address.
    pub fn from_source(addr: IpAddr) -> Self {
        let prefix_len = if addr.is_ipv4() { 32 } else { 128 };
        Self { addr, prefix_len }
    }

    /// A stable key for the client's network: /24 for IPv4 and /56 for IPv6 at most, so that
    /// clients of one network (and one resolver's ECS views of it) are spread alike.
    pub fn key(&self) -> u64 {
        match self.addr {
            IpAddr::V4(v4) => {
                let bits = self.prefix_len.min(24);
                let masked = u32::from(v4) & mask32(bits);
                (4 << 56) | (u64::from(bits) << 40) | u64::from(masked)
            }
            IpAddr::V6(v6) => {
                let bits = self.prefix_len.min(56);
                let top = (u128::from(v6) >> 64) as u64;
                let masked = top & mask64(bits);
                mix(masked ^ (u64::from(bits) << 1) ^ 6)
            }
        }
    }
}

fn mask32(bits: u8) -> u32 {
    if bits == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(bits))
    }
}

fn mask64(bits: u8) -> u64 {
    if bits == 0 {
        0
    } else {
        u64::MAX << (64 - u32::from(bits))
    }
}

/// The selection and how far it depends on the client's address.
#[derive(Debug)]
pub struct Selection<'s> {
    pub records: Records<'s>,
    /// RFC 7871 scope prefix to return: `Some(0)` means the answer holds for every client.
    pub scope: Option<u8>,
    /// From available regions, failing open, or nothing.
    pub result: AnswerResult,
}

label_enum! {
    /// How a service's A/AAAA question was answered; the names are metric label values.
    pub enum AnswerResult {
        /// From the available regions.
        Healthy = "healthy",
        /// No region available: every known address (the service's `all_down = fail-open`).
        FailOpen = "fail_open",
        /// No address to give.
        None = "none",
    }
}

/// splitmix64's finaliser: a cheap, well-mixed 64-bit hash.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn draw(client: u64, salt: u64, bucket: u64, round: u64) -> u64 {
    mix(client ^ mix(salt ^ mix(bucket ^ mix(round))))
}

/// Chooses the records answering `rtype` (A or AAAA) for `service`.
pub fn select<'s>(
    service: &'s ServiceAnswer,
    rtype: RecordType,
    client: &Client,
    bucket: u64,
    geo: &GeoIndex,
) -> Selection<'s> {
    let key = client.key();
    let has_records = |i: usize| !service.regions[i].addresses.of(rtype).is_empty();
    let available: SmallVec<[usize; 8]> = (0..service.regions.len())
        .filter(|&i| service.regions[i].health.is_available() && has_records(i))
        .collect();
    let mut selection = Selection {
        records: Records::new(),
        scope: Some(0),
        result: AnswerResult::Healthy,
    };

    if available.is_empty() {
        selection.result = AnswerResult::None;
        if service.all_down == AllDownPolicy::FailOpen {
            // Fail open: every known address, the ones probes found down included, rotated.
            selection.result = AnswerResult::FailOpen;
            let every: SmallVec<[usize; 8]> = (0..service.regions.len()).collect();
            push_rotated(
                &mut selection.records,
                service,
                &every,
                Pool::All,
                rtype,
                draw(key, service.salt, bucket, 0),
            );
        }
        return selection;
    }

    match &service.strategy {
        Strategy::RoundRobin => {
            push_rotated(
                &mut selection.records,
                service,
                &available,
                Pool::Answerable,
                rtype,
                draw(key, service.salt, bucket, 0),
            );
        }
        Strategy::Weighted { pick, .. } => {
            let mut candidates = available;
            for round in 0..*pick as u64 {
                let total: u64 = candidates
                    .iter()
                    .map(|&i| u64::from(service.regions[i].weight))
                    .sum();
                if total == 0 {
                    break;
                }
                let roll = draw(key, service.salt, bucket, round);
                let mut point = roll % total;
                let mut chosen = 0;
                for (slot, &i) in candidates.iter().enumerate() {
                    let weight = u64::from(service.regions[i].weight);
                    if point < weight {
                        chosen = slot;
                        break;
                    }
                    point -= weight;
                }
                let region = candidates.remove(chosen);
                let records = service.regions[region].addresses.of(rtype);
                // One address per drawn region, spread by a second, independent roll.
                let which = (mix(roll) % records.len() as u64) as usize;
                selection.records.push(&records[which]);
                if candidates.is_empty() {
                    break;
                }
            }
        }
        Strategy::Failover { order } => {
            if let Some(position) = order
                .iter()
                .filter_map(|&region| service.position(region))
                .find(|i| available.contains(i))
            {
                push_rotated(
                    &mut selection.records,
                    service,
                    &[position],
                    Pool::Answerable,
                    rtype,
                    draw(key, service.salt, bucket, 0),
                );
            }
        }
        Strategy::Geo => {
            let placement = geo.place(client.addr);
            selection.scope = Some(placement.scope.unwrap_or(client.prefix_len));
            if let Some(position) = placement
                .order
                .iter()
                .filter_map(|&region| service.position(region))
                .find(|i| available.contains(i))
            {
                push_rotated(
                    &mut selection.records,
                    service,
                    &[position],
                    Pool::Answerable,
                    rtype,
                    draw(key, service.salt, bucket, 0),
                );
            }
        }
    }
    if selection.records.is_empty() {
        selection.result = AnswerResult::None;
    }
    selection
}

/// Which address list of a region an answer draws from.
#[derive(Clone, Copy)]
enum Pool {
    /// Those not found down (the normal case).
    Answerable,
    /// Every address (fail-open).
    All,
}

/// Appends the `pool` records of `regions` (positions in `service.regions`), rotated by `roll`.
fn push_rotated<'s>(
    out: &mut Records<'s>,
    service: &'s ServiceAnswer,
    regions: &[usize],
    pool: Pool,
    rtype: RecordType,
    roll: u64,
) {
    let records = |i: usize| -> &'s [Record] {
        let region = &service.regions[i];
        match pool {
            Pool::Answerable => region.addresses.of(rtype),
            Pool::All => region.all.of(rtype),
        }
    };
    let total: usize = regions.iter().map(|&i| records(i).len()).sum();
    if total == 0 {
        return;
    }
    let all = regions.iter().flat_map(|&i| records(i).iter());
    let start = (roll % total as u64) as usize;
    out.extend(all.clone().skip(start));
    out.extend(all.take(start));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::snapshot::Snapshot;
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    fn snapshot(services: &str) -> Snapshot {
        Snapshot::from_model(&fixtures::config(services).model, 1232)
    }

    fn addrs(selection: &Selection<'_>) -> Vec<String> {
        selection
            .records
            .iter()
            .map(|r| r.data.to_string())
            .collect()
    }

    fn client(i: u32) -> Client {
        // Distinct /24s spread over the IPv4 space.
        Client::from_source(IpAddr::V4(Ipv4Addr::from(
            i.wrapping_mul(2_654_435_761) & 0xffff_ff00,
        )))
    }

    const TARGETS: &str =
        r#"targets = { eu = ["192.0.2.1"], us = ["198.51.100.1"], ap = ["203.0.113.1"] }"#;

    #[test]
    fn weighted_follows_weights_within_two_percent_over_100k_clients() {
        let snap = snapshot(&format!(
            "[[services]]\nname = \"web.gslb.example.com\"\nstrategy = \"weighted\"\nweights = {{ eu = 50, us = 30, ap = 20 }}\n{TARGETS}"
        ));
        let service = &snap.services[0];
        let mut counts: HashMap<String, u32> = HashMap::new();
        let n = 100_000;
        for i in 0..n {
            let selection = select(
                service,
                RecordType::A,
                &client(i),
                1_700_000_000 + u64::from(i % 7),
                &snap.geo,
            );
            assert_eq!(selection.records.len(), 1);
            *counts.entry(addrs(&selection)[0].clone()).or_default() += 1;
        }
        for (addr, weight) in [
            ("192.0.2.1", 0.5),
            ("198.51.100.1", 0.3),
            ("203.0.113.1", 0.2),
        ] {
            let share = f64::from(counts[addr]) / f64::from(n);
            assert!(
                (share - weight).abs() < 0.02,
                "{addr}: share {share}, weight {weight}"
            );
        }
    }

    #[test]
    fn weighted_pick_two_gives_distinct_regions() {
        let snap = snapshot(&format!(
            "[[services]]\nname = \"web.gslb.example.com\"\nstrategy = \"weighted\"\npick = 2\nweights = {{ eu = 50, us = 30, ap = 20 }}\n{TARGETS}"
        ));
        for i in 0..1000 {
            let a = addrs(&select(
                &snap.services[0],
                RecordType::A,
                &client(i),
                7,
                &snap.geo,
            ));
            assert_eq!(a.len(), 2);
            assert_ne!(a[0], a[1]);
        }
    }

    #[test]
    fn failover_answers_first_healthy_region_in_order() {
        let snap = snapshot(&format!(
            "[[services]]\nname = \"app.gslb.example.com\"\nstrategy = \"failover\"\nfailover_order = [\"us\", \"eu\", \"ap\"]\nhealth = {{ us = \"unhealthy\" }}\n{TARGETS}"
        ));
        let a = addrs(&select(
            &snap.services[0],
            RecordType::A,
            &client(1),
            0,
            &snap.geo,
        ));
        assert_eq!(a, vec!["192.0.2.1"]);
    }

    #[test]
    fn round_robin_rotates_all_available_addresses() {
        let snap = snapshot(&format!(
            "[[services]]\nname = \"api.gslb.example.com\"\nstrategy = \"round-robin\"\nhealth = {{ ap = \"unhealthy\" }}\n{TARGETS}"
        ));
        let mut firsts = std::collections::HashSet::new();
        for i in 0..100 {
            let mut a = addrs(&select(
                &snap.services[0],
                RecordType::A,
                &client(i),
                0,
                &snap.geo,
            ));
            firsts.insert(a[0].clone());
            a.sort();
            assert_eq!(a, vec!["192.0.2.1", "198.51.100.1"]);
        }
        assert_eq!(firsts.len(), 2);
    }

    #[test]
    fn all_down_fails_open_or_answers_nothing() {
        let open = snapshot(&format!(
            "[[services]]\nname = \"api.gslb.example.com\"\nstrategy = \"failover\"\nfailover_order = [\"eu\", \"us\", \"ap\"]\nhealth = {{ eu = \"unhealthy\", us = \"unhealthy\", ap = \"unhealthy\" }}\n{TARGETS}"
        ));
        assert_eq!(
            select(&open.services[0], RecordType::A, &client(1), 0, &open.geo)
                .records
                .len(),
            3
        );
        let empty = snapshot(&format!(
            "[[services]]\nname = \"api.gslb.example.com\"\nstrategy = \"round-robin\"\nall_down = \"empty\"\nhealth = {{ eu = \"unhealthy\", us = \"unhealthy\", ap = \"unhealthy\" }}\n{TARGETS}"
        ));
        assert!(
            select(&empty.services[0], RecordType::A, &client(1), 0, &empty.geo)
                .records
                .is_empty()
        );
    }

    #[test]
    fn geo_picks_nearest_available_region_and_reports_scope() {
        let snap = snapshot(&format!(
            "[[services]]\nname = \"geo.gslb.example.com\"\nstrategy = \"geo\"\nhealth = {{ ap = \"unhealthy\" }}\n{TARGETS}"
        ));
        let ap_client = Client {
            addr: "203.0.113.0".parse().unwrap(),
            prefix_len: 24,
        };
        let selection = select(&snap.services[0], RecordType::A, &ap_client, 0, &snap.geo);
        // ap is down; eu (Frankfurt) is nearer to Singapore than us (Virginia).
        assert_eq!(addrs(&selection), vec!["192.0.2.1"]);
        assert_eq!(selection.scope, Some(24));
        let eu_client = Client::from_source("192.0.2.77".parse().unwrap());
        assert_eq!(
            addrs(&select(
                &snap.services[0],
                RecordType::A,
                &eu_client,
                0,
                &snap.geo
            )),
            vec!["192.0.2.1"]
        );
        let unknown = Client {
            addr: "100.64.0.0".parse().unwrap(),
            prefix_len: 16,
        };
        let selection = select(&snap.services[0], RecordType::A, &unknown, 0, &snap.geo);
        assert_eq!(addrs(&selection), vec!["198.51.100.1"]);
        assert_eq!(selection.scope, Some(16));
    }

    #[test]
    fn same_client_same_bucket_same_answer() {
        let snap = snapshot(&format!(
            "[[services]]\nname = \"web.gslb.example.com\"\nstrategy = \"weighted\"\nweights = {{ eu = 50, us = 30, ap = 20 }}\n{TARGETS}"
        ));
        for i in 0..100 {
            let a = addrs(&select(
                &snap.services[0],
                RecordType::A,
                &client(i),
                42,
                &snap.geo,
            ));
            let b = addrs(&select(
                &snap.services[0],
                RecordType::A,
                &client(i),
                42,
                &snap.geo,
            ));
            assert_eq!(a, b);
        }
    }

    fn health_name(code: u8) -> &'static str {
        match code % 3 {
            0 => "healthy",
            1 => "unhealthy",
            _ => "unknown",
        }
    }

    proptest::proptest! {
        /// An answer never holds an unhealthy region's address unless every region is down
        /// (fail-open), and never is empty while a region is available.
        #[test]
        fn answers_avoid_unhealthy_regions_unless_all_are_down(
            strategy in 0usize..4,
            health in proptest::array::uniform3(0u8..3),
            client_bits in proptest::num::u32::ANY,
            bucket in 0u64..1000,
        ) {
            let params = [
                "strategy = \"failover\"\nfailover_order = [\"ap\", \"eu\", \"us\"]",
                "strategy = \"weighted\"\nweights = { eu = 5, us = 3, ap = 2 }",
                "strategy = \"round-robin\"",
                "strategy = \"geo\"",
            ][strategy];
            let snap = snapshot(&format!(
                "[[services]]\nname = \"s.gslb.example.com\"\n{params}\nhealth = {{ eu = \"{}\", us = \"{}\", ap = \"{}\" }}\n{TARGETS}",
                health_name(health[0]), health_name(health[1]), health_name(health[2]),
            ));
            let unhealthy: Vec<&str> = ["192.0.2.1", "198.51.100.1", "203.0.113.1"]
                .into_iter()
                .zip(health)
                .filter(|(_, h)| h % 3 == 1)
                .map(|(a, _)| a)
                .collect();
            let client = Client::from_source(IpAddr::V4(Ipv4Addr::from(client_bits)));
            let got = addrs(&select(&snap.services[0], RecordType::A, &client, bucket, &snap.geo));
            if unhealthy.len() == 3 {
                proptest::prop_assert_eq!(got.len(), 3, "fail-open answers every address");
            } else {
                proptest::prop_assert!(!got.is_empty());
                for addr in &got {
                    proptest::prop_assert!(!unhealthy.contains(&addr.as_str()), "{} is unhealthy", addr);
                }
            }
        }
    }
}
