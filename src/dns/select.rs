//! The four strategies as pure functions: (service, question type, client, time bucket) →
//! records. No I/O, no clock, no randomness: every server of the zone computes the same answer
//! for the same client in the same time bucket.

use std::net::IpAddr;

use hickory_proto::rr::RecordType;
use smallvec::SmallVec;

use crate::geo::GeoIndex;
use crate::label_enum::label_enum;
use crate::model::{AllDownPolicy, Returning, Strategy};
use crate::snapshot::{RegionAnswer, ServiceAnswer, Snapshot};

/// When an answer is given, as far as it depends on it: the time bucket (rotation, weighted
/// draws) and the bucket's start (regions coming back, `Returning`). Every server computes
/// the same for the same bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct At {
    pub bucket: u64,
    /// The bucket's start, Unix ms.
    pub now_ms: u64,
    pub returning: Returning,
}

impl At {
    /// Time bucket `bucket` of `snapshot`.
    pub fn of(snapshot: &Snapshot, bucket: u64) -> Self {
        Self {
            bucket,
            now_ms: bucket.saturating_mul(snapshot.time_bucket_ms),
            returning: snapshot.returning,
        }
    }

    /// Time bucket `bucket`, regions coming back let in at once (tests).
    pub fn bucket(bucket: u64) -> Self {
        Self {
            bucket,
            now_ms: 0,
            returning: Returning::default(),
        }
    }

    /// How far `region` is let in, in thousandths: its slow start's progress.
    fn share(&self, region: &RegionAnswer) -> u64 {
        let slow = self.returning.slow_start_ms;
        match region.back_since_ms() {
            Some(since) if slow > 0 => (self.now_ms.saturating_sub(since) * 1000 / slow).min(1000),
            _ => 1000,
        }
    }

    /// Whether an ordered strategy still holds off `region` (its failback delay runs).
    fn holds_off(&self, region: &RegionAnswer) -> bool {
        region.back_since_ms().is_some_and(|since| {
            self.now_ms.saturating_sub(since) < self.returning.failback_delay_ms
        })
    }
}

/// Addresses chosen for an answer, in answer order.
pub type Picked = SmallVec<[IpAddr; 8]>;

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
pub struct Selection {
    pub addresses: Picked,
    /// The region (position in the service's regions) whose host name answers, as a CNAME in
    /// place of addresses (`addresses` is then empty).
    pub cname: Option<usize>,
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

/// Chooses the addresses answering `rtype` (A or AAAA) for `service`.
///
/// A region coming back (`RegionAnswer::back_since_ms`) is let in slowly: round-robin answers
/// include it for a share of clients and weighted ones draw it with a share of its weight, the
/// share growing from 0 to all over the slow start; failover and geo skip it for the failback
/// delay while another region can answer. When only regions coming back can answer, they do.
pub fn select(
    service: &ServiceAnswer,
    rtype: RecordType,
    client: &Client,
    at: &At,
    geo: &GeoIndex,
) -> Selection {
    let mut addresses = Picked::new();
    let chosen = select_into(service, rtype, client, at, geo, &mut addresses);
    Selection {
        addresses,
        cname: chosen.cname,
        scope: chosen.scope,
        result: chosen.result,
    }
}

/// How [`select_into`] chose: [`Selection`] without the addresses.
#[derive(Clone, Copy, Debug)]
pub struct Chosen {
    /// The region whose host name answers (a CNAME), when the first region chosen is one.
    pub cname: Option<usize>,
    pub scope: Option<u8>,
    pub result: AnswerResult,
}

/// [`select`], appending the addresses to `out` (empty) rather than returning them: the
/// answer path fills its response in place.
pub fn select_into(
    service: &ServiceAnswer,
    rtype: RecordType,
    client: &Client,
    at: &At,
    geo: &GeoIndex,
    out: &mut Picked,
) -> Chosen {
    let bucket = at.bucket;
    let key = client.key();
    // A target that is a host name answers every type, with its CNAME.
    let has_records = |i: usize| {
        let region = &service.regions[i];
        region.cname.is_some() || !region.addresses.of(rtype).is_empty()
    };
    let available: SmallVec<[usize; 8]> = (0..service.regions.len())
        .filter(|&i| service.regions[i].health.is_available() && has_records(i))
        .collect();
    let mut chosen = Chosen {
        cname: None,
        scope: Some(0),
        result: AnswerResult::Healthy,
    };

    if available.is_empty() {
        chosen.result = AnswerResult::None;
        if service.all_down() == AllDownPolicy::FailOpen {
            // Fail open: every known address, the ones probes found down included, rotated.
            chosen.result = AnswerResult::FailOpen;
            let every: SmallVec<[usize; 8]> = (0..service.regions.len()).collect();
            chosen.cname = push_rotated(
                out,
                service,
                &every,
                Pool::All,
                rtype,
                draw(key, service.salt, bucket, 0),
            );
        }
        return chosen;
    }

    match &service.strategy() {
        Strategy::RoundRobin if !service.returning => {
            chosen.cname = push_rotated(
                out,
                service,
                &available,
                Pool::Answerable,
                rtype,
                draw(key, service.salt, bucket, 0),
            )
        }
        Strategy::RoundRobin => {
            // A region in its slow start is in this client's answer with the share it has.
            let admitted: SmallVec<[usize; 8]> = available
                .iter()
                .copied()
                .filter(|&i| {
                    let share = at.share(&service.regions[i]);
                    share >= 1000
                        || draw(key, service.salt, bucket, SLOW_START_ROUND + i as u64) % 1000
                            < share
                })
                .collect();
            let regions = if admitted.is_empty() {
                &available
            } else {
                &admitted
            };
            chosen.cname = push_rotated(
                out,
                service,
                regions,
                Pool::Answerable,
                rtype,
                draw(key, service.salt, bucket, 0),
            );
        }
        Strategy::Weighted { pick, .. } => {
            // A region in its slow start weighs its share of its weight; if only such regions
            // are left with nothing to weigh, they weigh in full.
            let ramped = |i: usize| {
                let region = &service.regions[i];
                u64::from(region.weight) * at.share(region) / 1000
            };
            let full = |i: usize| u64::from(service.regions[i].weight);
            let mut candidates = available;
            let mut cname = None;
            for round in 0..*pick as u64 {
                let ramping = service.returning && candidates.iter().any(|&i| ramped(i) > 0);
                let weight: &dyn Fn(usize) -> u64 = if ramping { &ramped } else { &full };
                let total: u64 = candidates.iter().map(|&i| weight(i)).sum();
                if total == 0 {
                    break;
                }
                let roll = draw(key, service.salt, bucket, round);
                let mut point = roll % total;
                let mut chosen = 0;
                for (slot, &i) in candidates.iter().enumerate() {
                    let weight = weight(i);
                    if point < weight {
                        chosen = slot;
                        break;
                    }
                    point -= weight;
                }
                let region = candidates.remove(chosen);
                if service.regions[region].cname.is_some() {
                    // A host name answers alone (a CNAME has no other records beside it):
                    // when drawn first; later draws of one are passed over.
                    if out.is_empty() {
                        cname = Some(region);
                        break;
                    }
                } else {
                    let addresses = service.regions[region].addresses.of(rtype);
                    // One address per drawn region, spread by a second, independent roll.
                    let which = (mix(roll) % addresses.len() as u64) as usize;
                    out.push(addresses[which]);
                }
                if candidates.is_empty() {
                    break;
                }
            }
            chosen.cname = cname;
        }
        Strategy::Failover { order } => {
            let order: SmallVec<[usize; 8]> = order
                .iter()
                .filter_map(|&region| service.position(region))
                .collect();
            if let Some(position) = first_settled(service, &order, &available, at) {
                chosen.cname = push_rotated(
                    out,
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
            chosen.scope = Some(placement.scope);
            let order: SmallVec<[usize; 8]> = placement
                .order
                .iter()
                .filter_map(|&region| service.position(region))
                .collect();
            if let Some(position) = first_settled(service, &order, &available, at) {
                chosen.cname = push_rotated(
                    out,
                    service,
                    &[position],
                    Pool::Answerable,
                    rtype,
                    draw(key, service.salt, bucket, 0),
                );
            }
        }
    }
    if out.is_empty() && chosen.cname.is_none() {
        chosen.result = AnswerResult::None;
    }
    chosen
}

/// Draw rounds of the slow-start admissions, apart from the weighted draws' rounds.
const SLOW_START_ROUND: u64 = 1 << 32;

/// The first of `order` (positions in `service.regions`) that is available and not held off
/// by its failback delay; the first available one when every one is held off.
fn first_settled(
    service: &ServiceAnswer,
    order: &[usize],
    available: &[usize],
    at: &At,
) -> Option<usize> {
    let mut candidates = order.iter().copied().filter(|i| available.contains(i));
    let first = candidates.clone().next();
    if !service.returning {
        return first;
    }
    candidates
        .find(|&i| !at.holds_off(&service.regions[i]))
        .or(first)
}

/// Which address list of a region an answer draws from.
#[derive(Clone, Copy)]
enum Pool {
    /// Those not found down (the normal case).
    Answerable,
    /// Every address (fail-open).
    All,
}

/// Appends the `pool` addresses of `regions` (positions in `service.regions`), rotated by
/// `roll`. A region whose target is a host name counts as one element of the rotation: when
/// the rotation starts at it, its position is returned and nothing is appended (its CNAME
/// answers alone); otherwise the addresses are, the host names passed over.
fn push_rotated(
    out: &mut Picked,
    service: &ServiceAnswer,
    regions: &[usize],
    pool: Pool,
    rtype: RecordType,
    roll: u64,
) -> Option<usize> {
    let addresses = |i: usize| -> &[IpAddr] {
        let region = &service.regions[i];
        match pool {
            Pool::Answerable => region.addresses.of(rtype),
            Pool::All => region.all.of(rtype),
        }
    };
    let named = |i: usize| service.named && service.regions[i].cname.is_some();
    let elements = |i: usize| if named(i) { 1 } else { addresses(i).len() };
    let total: usize = regions.iter().map(|&i| elements(i)).sum();
    if total == 0 {
        return None;
    }
    let mut start = (roll % total as u64) as usize;
    if service.named && regions.iter().any(|&i| named(i)) {
        // Where the rotation starts: a host name answers alone; an address starts the
        // addresses' rotation at its place among them.
        let mut before = 0;
        for &i in regions {
            if start < elements(i) {
                if named(i) {
                    return Some(i);
                }
                start += before;
                break;
            }
            start -= elements(i);
            if !named(i) {
                before += elements(i);
            }
        }
    }
    let all = regions.iter().flat_map(|&i| addresses(i).iter());
    out.extend(all.clone().skip(start).copied());
    out.extend(all.take(start).copied());
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::snapshot::Snapshot;
    use std::collections::HashMap;
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    fn snapshot(services: &str) -> Snapshot {
        Snapshot::from_model(&fixtures::config(services).model, 1232)
    }

    fn addrs(selection: &Selection) -> Vec<String> {
        selection.addresses.iter().map(IpAddr::to_string).collect()
    }

    fn client(i: u32) -> Client {
        // Distinct /24s spread over the IPv4 space.
        Client::from_source(IpAddr::V4(Ipv4Addr::from(
            i.wrapping_mul(2_654_435_761) & 0xffff_ff00,
        )))
    }

    const TARGETS: &str =
        r#"targets = { eu = ["192.0.2.1"], us = ["198.51.100.1"], ap = ["203.0.113.1"] }"#;

    /// Time `now_ms` with a slow start of 10 s and a failback delay of 30 s.
    fn at(now_ms: u64) -> At {
        At {
            bucket: now_ms / 1000,
            now_ms,
            returning: Returning {
                slow_start_ms: 10_000,
                failback_delay_ms: 30_000,
            },
        }
    }

    /// The share of 20 000 clients whose answer holds `addr`, us back since 0.
    fn share_with(strategy: &str, addr: &str, now_ms: u64) -> f64 {
        let mut snap = snapshot(&format!(
            "[[services]]\nname = \"web.gslb.example.com\"\n{strategy}\n{TARGETS}"
        ));
        {
            let service = Arc::make_mut(&mut snap.services[0]);
            service.regions[1].set_back_since_ms(Some(0));
            service.returning = true;
        }
        let n = 20_000;
        let with = (0..n)
            .filter(|&i| {
                let selection = select(
                    &snap.services[0],
                    RecordType::A,
                    &client(i),
                    &at(now_ms),
                    &snap.geo,
                );
                addrs(&selection).iter().any(|a| a == addr)
            })
            .count();
        with as f64 / f64::from(n)
    }

    #[test]
    fn a_region_coming_back_ramps_up_over_the_slow_start() {
        let us = "198.51.100.1";
        let round_robin = "strategy = \"round-robin\"";
        for (now_ms, expected) in [(0, 0.0), (1_000, 0.1), (5_000, 0.5), (10_000, 1.0)] {
            let share = share_with(round_robin, us, now_ms);
            assert!((share - expected).abs() < 0.02, "at {now_ms} ms: {share}");
        }
        // Weighted 50/30/20: at 25 % of the slow start us weighs 7 of 77.
        let weighted = "strategy = \"weighted\"\nweights = { eu = 50, us = 30, ap = 20 }";
        let share = share_with(weighted, us, 2_500);
        assert!((share - 7.0 / 77.0).abs() < 0.02, "{share}");
        let share = share_with(weighted, us, 20_000);
        assert!((share - 0.3).abs() < 0.02, "{share}");
    }

    #[test]
    fn ordered_strategies_return_to_a_region_after_the_failback_delay() {
        let mut snap = snapshot(&format!(
            "[[services]]\nname = \"app.gslb.example.com\"\nstrategy = \"failover\"\nfailover_order = [\"eu\", \"us\", \"ap\"]\n{TARGETS}"
        ));
        {
            let service = Arc::make_mut(&mut snap.services[0]);
            service.regions[0].set_back_since_ms(Some(0));
            service.returning = true;
        }
        let answer = |snap: &Snapshot, now_ms| {
            addrs(&select(
                &snap.services[0],
                RecordType::A,
                &client(1),
                &at(now_ms),
                &snap.geo,
            ))
        };
        assert_eq!(answer(&snap, 29_999), ["198.51.100.1"], "eu held off");
        assert_eq!(answer(&snap, 30_000), ["192.0.2.1"], "back to eu");
        // When every other region is out, the one coming back answers at once.
        for region in [1, 2] {
            Arc::make_mut(&mut snap.services[0]).regions[region].health =
                crate::model::Health::Unhealthy;
        }
        assert_eq!(answer(&snap, 1), ["192.0.2.1"]);
    }

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
                &At::bucket(1_700_000_000 + u64::from(i % 7)),
                &snap.geo,
            );
            assert_eq!(selection.addresses.len(), 1);
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
                &At::bucket(7),
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
            &At::bucket(0),
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
                &At::bucket(0),
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
            select(
                &open.services[0],
                RecordType::A,
                &client(1),
                &At::bucket(0),
                &open.geo
            )
            .addresses
            .len(),
            3
        );
        let empty = snapshot(&format!(
            "[[services]]\nname = \"api.gslb.example.com\"\nstrategy = \"round-robin\"\nall_down = \"empty\"\nhealth = {{ eu = \"unhealthy\", us = \"unhealthy\", ap = \"unhealthy\" }}\n{TARGETS}"
        ));
        assert!(
            select(
                &empty.services[0],
                RecordType::A,
                &client(1),
                &At::bucket(0),
                &empty.geo
            )
            .addresses
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
        let selection = select(
            &snap.services[0],
            RecordType::A,
            &ap_client,
            &At::bucket(0),
            &snap.geo,
        );
        // ap is down; eu (Frankfurt) is nearer to Singapore than us (Virginia).
        assert_eq!(addrs(&selection), vec!["192.0.2.1"]);
        assert_eq!(selection.scope, Some(24));
        let eu_client = Client::from_source("192.0.2.77".parse().unwrap());
        assert_eq!(
            addrs(&select(
                &snap.services[0],
                RecordType::A,
                &eu_client,
                &At::bucket(0),
                &snap.geo
            )),
            vec!["192.0.2.1"]
        );
        let unknown = Client {
            addr: "100.64.0.0".parse().unwrap(),
            prefix_len: 16,
        };
        let selection = select(
            &snap.services[0],
            RecordType::A,
            &unknown,
            &At::bucket(0),
            &snap.geo,
        );
        assert_eq!(addrs(&selection), vec!["198.51.100.1"]);
        // The default region (us) holds for all of 0.0.0.0/1: the networks placing elsewhere
        // (192.0.2.0/24 eu, 203.0.113.0/24 ap) differ from it at the first bit.
        assert_eq!(selection.scope, Some(1));
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
                &At::bucket(42),
                &snap.geo,
            ));
            let b = addrs(&select(
                &snap.services[0],
                RecordType::A,
                &client(i),
                &At::bucket(42),
                &snap.geo,
            ));
            assert_eq!(a, b);
        }
    }

    /// Targets with ap a host name.
    const NAMED: &str =
        r#"targets = { eu = ["192.0.2.1"], us = ["198.51.100.1"], ap = "lb.ap.example.net" }"#;

    #[test]
    fn a_host_name_target_answers_alone_for_its_share_of_clients() {
        let snap = snapshot(&format!(
            "[[services]]\nname = \"web.gslb.example.com\"\nstrategy = \"round-robin\"\n{NAMED}"
        ));
        let ap = snap.services[0].position(crate::fixtures::AP);
        let n = 3000;
        let mut named = 0;
        for i in 0..n {
            let selection = select(
                &snap.services[0],
                RecordType::A,
                &client(i),
                &At::bucket(3),
                &snap.geo,
            );
            if selection.cname.is_some() {
                assert_eq!(selection.cname, ap);
                assert!(selection.addresses.is_empty(), "a CNAME answers alone");
                named += 1;
            } else {
                let mut got = addrs(&selection);
                got.sort();
                assert_eq!(got, ["192.0.2.1", "198.51.100.1"]);
            }
            // AAAA: the name is the only record of that type, so it always answers.
            let v6 = select(
                &snap.services[0],
                RecordType::AAAA,
                &client(i),
                &At::bucket(3),
                &snap.geo,
            );
            assert_eq!(v6.cname, ap);
        }
        // One of three rotation places.
        let share = f64::from(named) / f64::from(n);
        assert!((share - 1.0 / 3.0).abs() < 0.04, "{share}");
    }

    #[test]
    fn ordered_and_weighted_strategies_answer_a_host_name_region_by_its_cname() {
        let failover = snapshot(&format!(
            "[[services]]\nname = \"app.gslb.example.com\"\nstrategy = \"failover\"\nfailover_order = [\"ap\", \"eu\", \"us\"]\n{NAMED}"
        ));
        let pick = |snap: &Snapshot| {
            select(
                &snap.services[0],
                RecordType::A,
                &client(1),
                &At::bucket(0),
                &snap.geo,
            )
        };
        let selection = pick(&failover);
        assert_eq!(selection.cname, Some(2));
        assert!(selection.addresses.is_empty());
        assert_eq!(selection.result, AnswerResult::Healthy);
        let down = snapshot(&format!(
            "[[services]]\nname = \"app.gslb.example.com\"\nstrategy = \"failover\"\nfailover_order = [\"ap\", \"eu\", \"us\"]\nhealth = {{ ap = \"unhealthy\" }}\n{NAMED}"
        ));
        let selection = pick(&down);
        assert_eq!(
            (selection.cname, addrs(&selection)),
            (None, vec!["192.0.2.1".to_string()])
        );
        // Every region down, failing open: the name is one of the rotation's places.
        let all_down = snapshot(&format!(
            "[[services]]\nname = \"app.gslb.example.com\"\nstrategy = \"round-robin\"\nhealth = {{ eu = \"unhealthy\", us = \"unhealthy\", ap = \"unhealthy\" }}\n{NAMED}"
        ));
        let named = (0..300)
            .filter(|&i| {
                let selection = select(
                    &all_down.services[0],
                    RecordType::A,
                    &client(i),
                    &At::bucket(0),
                    &all_down.geo,
                );
                assert_eq!(selection.result, AnswerResult::FailOpen);
                selection.cname.is_some()
            })
            .count();
        assert!((50..150).contains(&named), "{named}");
        // Weighted, two regions per answer: a name drawn first answers alone; drawn second
        // it is passed over.
        let weighted = snapshot(&format!(
            "[[services]]\nname = \"web.gslb.example.com\"\nstrategy = \"weighted\"\npick = 2\nweights = {{ eu = 1, us = 1, ap = 1 }}\n{NAMED}"
        ));
        let (mut alone, mut pairs, mut singles) = (0, 0, 0);
        for i in 0..3000 {
            let selection = select(
                &weighted.services[0],
                RecordType::A,
                &client(i),
                &At::bucket(0),
                &weighted.geo,
            );
            match (selection.cname, selection.addresses.len()) {
                (Some(2), 0) => alone += 1,
                (None, 2) => pairs += 1,
                (None, 1) => singles += 1,
                other => panic!("{other:?}"),
            }
        }
        assert!((900..1100).contains(&alone), "{alone}");
        assert!(pairs > 900 && singles > 900, "{pairs} {singles}");
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
            let got = addrs(&select(&snap.services[0], RecordType::A, &client, &At::bucket(bucket), &snap.geo));
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
