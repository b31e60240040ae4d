//! The immutable view the DNS path reads: every name of the zone with its answer candidates,
//! built from the model and swapped atomically (`ArcSwap<Snapshot>`) when anything changes.
//!
//! All work that does not depend on the question is done here: name lookup table, SOA/NS/glue
//! records, the negative-answer SOA, per-region address records, geo orders.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::rdata::{A, AAAA, NS, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};
use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::geo::GeoIndex;
use crate::health::plan::key_for;
use crate::health::{Verdict, Verdicts};
use crate::model::{
    AllDownPolicy, Health, Model, ProbeKind, Region, Service, Strategy, Target, TargetPolicy,
};
use crate::remote::{Freshness, RemoteView};

/// What a name of the zone is.
#[derive(Clone, Debug)]
pub enum Node {
    /// The zone apex: SOA and NS.
    Apex,
    /// A balanced service (index into [`Snapshot::services`]).
    Service(usize),
    /// A region nameserver inside the zone, with its fixed addresses.
    Host(Addresses),
    /// A name that exists only because names below it do (RFC 8020: NODATA, not NXDOMAIN).
    EmptyNonTerminal,
}

/// A and AAAA records of one owner.
#[derive(Clone, Debug, Default)]
pub struct Addresses {
    pub a: Vec<Record>,
    pub aaaa: Vec<Record>,
    /// The owner name in wire format (lowercase, uncompressed), for the UDP fast encoder.
    pub owner_wire: Box<[u8]>,
}

/// `name` in DNS wire format (RFC 1035 §3.1), uncompressed.
pub fn wire_name(name: &Name) -> Box<[u8]> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.push(0);
    out.into_boxed_slice()
}

impl Addresses {
    fn new(owner: &Name, ttl: u32, addresses: &[IpAddr]) -> Self {
        let mut out = Self {
            owner_wire: wire_name(owner),
            ..Self::default()
        };
        for addr in addresses {
            match addr {
                IpAddr::V4(v4) => {
                    out.a
                        .push(Record::from_rdata(owner.clone(), ttl, RData::A(A(*v4))))
                }
                IpAddr::V6(v6) => out.aaaa.push(Record::from_rdata(
                    owner.clone(),
                    ttl,
                    RData::AAAA(AAAA(*v6)),
                )),
            }
        }
        out
    }

    /// Every address, A records first.
    pub fn ips(&self) -> Vec<IpAddr> {
        self.a
            .iter()
            .chain(&self.aaaa)
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                _ => None,
            })
            .collect()
    }

    /// How many addresses.
    pub fn len(&self) -> usize {
        self.a.len() + self.aaaa.len()
    }

    /// Whether there is no address.
    pub fn is_empty(&self) -> bool {
        self.a.is_empty() && self.aaaa.is_empty()
    }

    /// The records of one type (A or AAAA; empty for anything else).
    pub fn of(&self, rtype: RecordType) -> &[Record] {
        match rtype {
            RecordType::A => &self.a,
            RecordType::AAAA => &self.aaaa,
            _ => &[],
        }
    }
}

/// One region's contribution to a service.
#[derive(Clone, Debug)]
pub struct RegionAnswer {
    /// Index into [`Snapshot::regions`].
    pub region: usize,
    pub health: Health,
    /// The addresses to answer while the region is available: those not found unhealthy.
    pub addresses: Arc<Addresses>,
    /// Every address, for fail-open answers (shared with `addresses` when none is down).
    pub all: Arc<Addresses>,
    /// Weight for the weighted strategy: the config's, or the region's own report's.
    pub weight: u32,
    /// Why the region has this health.
    pub why: Why,
    /// When the region went unhealthy (its first failing probe, Unix ms), when known.
    pub down_since_ms: Option<u64>,
}

/// Where health comes from, besides the model: local probe verdicts and remote reports.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    pub verdicts: &'a Verdicts,
    /// `None` when gossip is off: remote regions then count as healthy (static config).
    pub remote: Option<RemoteInputs<'a>>,
}

/// Remote regions' reports and their freshness (all-stale rule already applied).
#[derive(Clone, Copy, Debug)]
pub struct RemoteInputs<'a> {
    pub view: &'a RemoteView,
    pub freshness: &'a HashMap<usize, Freshness>,
}

/// Why a region has the health it has for a service: shown by `/state` and `/explain`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Why {
    /// `health` is set on the target in the config (an operator's drain or pin).
    Config,
    /// The service is not probed (`probe.kind = "none"`): healthy.
    NotProbed,
    /// This region's own probes: addresses by verdict, combined by the target policy.
    Probes {
        healthy: u32,
        unhealthy: u32,
        unknown: u32,
        policy: TargetPolicy,
    },
    /// Gossip is off: remote regions count as healthy.
    NoGossip,
    /// The region's own signed report, fresh.
    Reported,
    /// The region missed heartbeats: its last report still answers, as unknown.
    Suspect,
    /// No heartbeat for the peer timeout: the region's targets leave answers.
    Stale,
    /// The region is heard from but has not reported this service (yet).
    NotReported,
    /// Marked down by an `/explain` what-if question (never in a served snapshot).
    WhatIf,
    /// Kubernetes: the backend Services behind the target lack ready endpoints.
    Backends {
        ready: u32,
        total: u32,
        policy: TargetPolicy,
    },
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Config => f.write_str("health set in the config"),
            Why::NotProbed => f.write_str("not probed (probe kind none)"),
            Why::Probes {
                healthy,
                unhealthy,
                unknown,
                policy,
            } => write!(
                f,
                "local probes: {healthy} healthy, {unhealthy} unhealthy, {unknown} without a verdict yet (target policy {})",
                policy_name(*policy)
            ),
            Why::NoGossip => f.write_str("gossip off: remote regions count as healthy"),
            Why::Reported => f.write_str("the region's own report"),
            Why::Suspect => {
                f.write_str("region missed heartbeats (suspect): last report kept, as unknown")
            }
            Why::Stale => f.write_str("region silent past the peer timeout (stale)"),
            Why::NotReported => f.write_str("no report from the region for this service yet"),
            Why::WhatIf => f.write_str("marked down by the what-if question"),
            Why::Backends {
                ready,
                total,
                policy,
            } => write!(
                f,
                "Kubernetes: {ready} of {total} backend Services have ready endpoints (policy {})",
                policy_name(*policy)
            ),
        }
    }
}

fn policy_name(policy: TargetPolicy) -> &'static str {
    match policy {
        TargetPolicy::Any => "any",
        TargetPolicy::All => "all",
    }
}

/// A target as the answer sees it: the region's health, all its addresses, and those to answer
/// while the region is in.
struct TargetView {
    health: Health,
    why: Why,
    /// When the region went unhealthy: its first failing probe (Unix ms), when known.
    down_since_ms: Option<u64>,
    all: Vec<IpAddr>,
    answerable: Vec<IpAddr>,
    /// A weight the region reported for itself.
    weight: Option<u32>,
}

fn target_view(
    service: &Service,
    target: &Target,
    local: Option<usize>,
    inputs: &Inputs<'_>,
) -> TargetView {
    let statically = |health: Health, why: Why| TargetView {
        health,
        why,
        down_since_ms: None,
        all: target.addresses.clone(),
        answerable: target.addresses.clone(),
        weight: None,
    };
    if let Some(forced) = target.health {
        // Set in config: an operator's word beats probes and reports (e.g. to drain a region).
        return statically(forced, Why::Config);
    }
    if local == Some(target.region) {
        if let Some(backends) = target.backends.filter(|b| !b.ok()) {
            // Kubernetes says the backends cannot serve: probes of the ingress do not matter.
            return TargetView {
                answerable: Vec::new(),
                ..statically(
                    Health::Unhealthy,
                    Why::Backends {
                        ready: backends.ready,
                        total: backends.total,
                        policy: backends.policy,
                    },
                )
            };
        }
        return local_view(service, target, inputs.verdicts);
    }
    let Some(remote) = inputs.remote else {
        return statically(Health::Healthy, Why::NoGossip);
    };
    let freshness = remote
        .freshness
        .get(&target.region)
        .copied()
        .unwrap_or(Freshness::Fresh);
    let report = remote.view.service(target.region, &service.name);
    match (freshness, report) {
        (Freshness::Stale, Some(report)) => TargetView {
            health: Health::Unhealthy,
            why: Why::Stale,
            down_since_ms: None,
            all: report.addresses.clone(),
            answerable: report.addresses.clone(),
            weight: report.weight,
        },
        (Freshness::Stale, None) => statically(Health::Unhealthy, Why::Stale),
        (freshness, Some(report)) => TargetView {
            health: if freshness == Freshness::Fresh {
                report.health
            } else {
                Health::Unknown
            },
            why: if freshness == Freshness::Fresh {
                Why::Reported
            } else {
                Why::Suspect
            },
            down_since_ms: report
                .failing_since_ms
                .filter(|_| report.health == Health::Unhealthy),
            all: report.addresses.clone(),
            answerable: report
                .addresses
                .iter()
                .filter(|a| !report.down.contains(a))
                .copied()
                .collect(),
            weight: report.weight,
        },
        // Heard of, but not about this service yet (or never heard): wait and see.
        (_, None) => statically(Health::Unknown, Why::NotReported),
    }
}

/// The local region's view from probe verdicts.
fn local_view(service: &Service, target: &Target, verdicts: &Verdicts) -> TargetView {
    let unprobed = Verdict {
        health: Health::Healthy,
        since_ms: 0,
    };
    let unknown = Verdict {
        health: Health::Unknown,
        since_ms: 0,
    };
    let per_address: Vec<Verdict> = target
        .addresses
        .iter()
        .map(|&addr| match key_for(service, addr) {
            Some(key) => verdicts.get(&key).copied().unwrap_or(unknown),
            None => unprobed,
        })
        .collect();
    let count = |h: Health| per_address.iter().filter(|v| v.health == h).count() as u32;
    let (healthy, unhealthy, unknowns) = (
        count(Health::Healthy),
        count(Health::Unhealthy),
        count(Health::Unknown),
    );
    let total = per_address.len() as u32;
    let policy = service.probe.target_policy;
    let health = match policy {
        TargetPolicy::Any if healthy > 0 => Health::Healthy,
        TargetPolicy::Any if unhealthy == total => Health::Unhealthy,
        TargetPolicy::All if unhealthy > 0 => Health::Unhealthy,
        TargetPolicy::All if healthy == total => Health::Healthy,
        _ => Health::Unknown,
    };
    // The region went down with its last address (policy any) or its first one (policy all).
    let down_since = per_address
        .iter()
        .filter(|v| v.health == Health::Unhealthy)
        .map(|v| v.since_ms);
    let down_since_ms = match (health, policy) {
        (Health::Unhealthy, TargetPolicy::Any) => down_since.max(),
        (Health::Unhealthy, TargetPolicy::All) => down_since.min(),
        _ => None,
    };
    TargetView {
        health,
        why: if service.probe.kind == ProbeKind::None {
            Why::NotProbed
        } else {
            Why::Probes {
                healthy,
                unhealthy,
                unknown: unknowns,
                policy,
            }
        },
        down_since_ms,
        all: target.addresses.clone(),
        answerable: target
            .addresses
            .iter()
            .zip(&per_address)
            .filter(|(_, v)| v.health.is_available())
            .map(|(a, _)| *a)
            .collect(),
        weight: None,
    }
}

/// A service ready to answer.
#[derive(Clone, Debug)]
pub struct ServiceAnswer {
    pub name: Name,
    pub strategy: Strategy,
    pub ttl: u32,
    pub all_down: AllDownPolicy,
    /// Regions with targets, in region order.
    pub regions: Vec<RegionAnswer>,
    /// Stable per-name salt so that different services spread clients differently.
    pub salt: u64,
    /// The name in wire format (lowercase, uncompressed).
    pub owner_wire: Box<[u8]>,
}

impl ServiceAnswer {
    /// Position in `regions` of the given region index, if it has targets.
    pub fn position(&self, region: usize) -> Option<usize> {
        self.regions.iter().position(|r| r.region == region)
    }
}

/// The zone's fixed records.
#[derive(Clone, Debug)]
pub struct ZoneRecords {
    pub origin: LowerName,
    /// SOA as answered at the apex.
    pub soa: Record,
    /// SOA for the authority section of negative answers: its TTL is
    /// min(SOA TTL, SOA MINIMUM) (RFC 2308 §3 and §5).
    pub negative_soa: Record,
    pub ns: Vec<Record>,
    /// Addresses of in-zone nameservers, for the additional section of NS answers.
    pub glue: Vec<Record>,
}

/// Where a region's health comes from, as this server sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RegionStatus {
    /// This server's own region: its probes decide.
    Local,
    /// Gossip is off: the config decides.
    Static,
    /// Another region, by how recently it was heard from.
    Remote(Freshness),
}

/// An immutable world view.
#[derive(Clone, Debug)]
pub struct Snapshot {
    pub zone: ZoneRecords,
    pub regions: Vec<Region>,
    /// Per region (same index as `regions`): where its health comes from.
    pub region_status: Vec<RegionStatus>,
    pub services: Vec<ServiceAnswer>,
    pub geo: GeoIndex,
    pub max_udp_payload: u16,
    /// Length of the time bucket answers depend on, in ms.
    pub time_bucket_ms: u64,
    nodes: FxHashMap<LowerName, Node>,
}

impl Snapshot {
    /// Builds the view of `model` with the latest probe verdicts and remote reports.
    pub fn build(model: &Model, max_udp_payload: u16, inputs: &Inputs<'_>) -> Self {
        let zone = &model.zone;
        let origin = zone.origin.clone();
        let soa_rdata = SOA::new(
            zone.soa.mname.clone(),
            zone.soa.rname.clone(),
            zone.soa.serial,
            zone.soa.refresh as i32,
            zone.soa.retry as i32,
            zone.soa.expire as i32,
            zone.soa.minimum,
        );
        let soa = Record::from_rdata(origin.clone(), zone.soa.ttl, RData::SOA(soa_rdata.clone()));
        let negative_soa = Record::from_rdata(
            origin.clone(),
            zone.soa.ttl.min(zone.soa.minimum),
            RData::SOA(soa_rdata),
        );

        let mut nodes: FxHashMap<LowerName, Node> = FxHashMap::default();
        nodes.insert(LowerName::new(&origin), Node::Apex);

        let mut ns = Vec::new();
        let mut glue = Vec::new();
        for (nameserver, region) in model
            .regions
            .iter()
            .filter_map(|r| Some((r.nameserver.as_ref()?, r)))
        {
            ns.push(Record::from_rdata(
                origin.clone(),
                zone.ns_ttl,
                RData::NS(NS(nameserver.clone())),
            ));
            if origin.zone_of(nameserver) {
                let addresses = Addresses::new(nameserver, zone.ns_ttl, &region.glue);
                glue.extend(addresses.a.iter().cloned());
                glue.extend(addresses.aaaa.iter().cloned());
                nodes.insert(LowerName::new(nameserver), Node::Host(addresses));
            }
        }

        let services: Vec<ServiceAnswer> = model
            .services
            .iter()
            .enumerate()
            .map(|(index, service)| {
                nodes.insert(LowerName::new(&service.name), Node::Service(index));
                ServiceAnswer {
                    name: service.name.clone(),
                    strategy: service.strategy.clone(),
                    ttl: service.ttl,
                    all_down: service.all_down,
                    regions: service
                        .targets
                        .iter()
                        .map(|t| {
                            let view = target_view(service, t, model.local_region, inputs);
                            let all =
                                Arc::new(Addresses::new(&service.name, service.ttl, &view.all));
                            let configured = match &service.strategy {
                                Strategy::Weighted { weights, .. } => weights[t.region],
                                _ => 1,
                            };
                            RegionAnswer {
                                region: t.region,
                                weight: view.weight.filter(|w| *w > 0).unwrap_or(configured),
                                health: view.health,
                                why: view.why,
                                down_since_ms: view.down_since_ms,
                                addresses: if view.answerable == view.all {
                                    all.clone()
                                } else {
                                    Arc::new(Addresses::new(
                                        &service.name,
                                        service.ttl,
                                        &view.answerable,
                                    ))
                                },
                                all,
                            }
                        })
                        .collect(),
                    salt: name_salt(&service.name),
                    owner_wire: wire_name(&service.name),
                }
            })
            .collect();

        // Every name between a node and the apex exists (RFC 8020).
        let owners: Vec<LowerName> = nodes.keys().cloned().collect();
        let origin_lower = LowerName::new(&origin);
        for owner in owners {
            let mut name = owner.base_name();
            while name.num_labels() > origin_lower.num_labels() {
                if let Entry::Vacant(slot) = nodes.entry(name.clone()) {
                    slot.insert(Node::EmptyNonTerminal);
                }
                name = name.base_name();
            }
        }

        Self {
            zone: ZoneRecords {
                origin: origin_lower,
                soa,
                negative_soa,
                ns,
                glue,
            },
            regions: model.regions.iter().map(|r| r.name.clone()).collect(),
            region_status: (0..model.regions.len())
                .map(|i| match inputs.remote {
                    _ if model.local_region == Some(i) => RegionStatus::Local,
                    None => RegionStatus::Static,
                    Some(remote) => RegionStatus::Remote(
                        remote
                            .freshness
                            .get(&i)
                            .copied()
                            .unwrap_or(Freshness::Fresh),
                    ),
                })
                .collect(),
            services,
            geo: GeoIndex::build(&model.geo, &model.regions),
            max_udp_payload,
            time_bucket_ms: model.zone.time_bucket_ms,
            nodes,
        }
    }

    /// A snapshot of `model` with no probe verdicts and no gossip (tests, benches).
    pub fn from_model(model: &Model, max_udp_payload: u16) -> Self {
        let verdicts = Verdicts::new();
        Self::build(
            model,
            max_udp_payload,
            &Inputs {
                verdicts: &verdicts,
                remote: None,
            },
        )
    }

    /// The node at `name`, if the zone has it.
    pub fn node(&self, name: &LowerName) -> Option<&Node> {
        self.nodes.get(name)
    }

    /// Whether `name` is the apex or below it.
    pub fn is_in_zone(&self, name: &LowerName) -> bool {
        self.zone.origin.zone_of(name)
    }
}

/// FNV-1a over the lowercase name: the same on every server, unlike `Hash` with random keys.
fn name_salt(name: &Name) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for label in name.iter() {
        for &b in label {
            hash ^= u64::from(b.to_ascii_lowercase());
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash ^= 0x2e;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::config;
    use crate::gossip::report::ServiceReport;

    const CONFIG: &str = r#"
        local_region = "eu"
        [zone]
        name = "gslb.example.com"
        [[regions]]
        name = "eu"
        nameserver = "ns.gslb.example.com"
        glue = ["192.0.2.53"]
        [[regions]]
        name = "us"
        [[regions]]
        name = "ap"
        [[services]]
        name = "web.gslb.example.com"
        strategy = "weighted"
        probe = { kind = "none" }
        weights = { eu = 50, us = 30, ap = 20 }
        targets = { eu = ["192.0.2.1"], us = ["198.51.100.1"], ap = ["203.0.113.1"] }
    "#;

    #[test]
    fn remote_reports_set_health_addresses_and_weight_by_freshness() {
        let model = config::parse(CONFIG).unwrap().model;
        let t0 = Instant::now();
        let mut view = RemoteView::new(t0, Duration::from_secs(5), Duration::from_secs(15));
        let name = Name::from_ascii("web.gslb.example.com.").unwrap();
        let report = ServiceReport {
            health: Health::Unhealthy,
            addresses: vec![
                "198.51.100.7".parse().unwrap(),
                "198.51.100.8".parse().unwrap(),
            ],
            down: vec!["198.51.100.8".parse().unwrap()],
            changed_ms: 1,
            failing_since_ms: None,
            spec: None,
            weight: Some(90),
        };
        view.report(1, name, 1, report, t0);
        let verdicts = Verdicts::new();
        let build = |now: Instant| {
            let freshness = view.effective(&[1, 2], now);
            let snapshot = Snapshot::build(
                &model,
                1232,
                &Inputs {
                    verdicts: &verdicts,
                    remote: Some(RemoteInputs {
                        view: &view,
                        freshness: &freshness,
                    }),
                },
            );
            let us = snapshot.services[0].regions[1].clone();
            let ap = snapshot.services[0].regions[2].clone();
            (us, ap)
        };
        let (us, ap) = build(t0);
        assert_eq!((us.health, us.weight), (Health::Unhealthy, 90));
        assert_eq!(us.all.a.len(), 2);
        assert_eq!(
            us.addresses.a.len(),
            1,
            "the address reported down leaves answers"
        );
        // ap never reported: unknown, with the config's targets and weight.
        assert_eq!(
            (ap.health, ap.weight, ap.all.a.len()),
            (Health::Unknown, 20, 1)
        );
        // us goes quiet: suspect (unknown), then stale (unhealthy) while ap is fresh... but ap
        // is never heard either, so both go stale together and the last state keeps serving.
        let (us, _) = build(t0 + Duration::from_secs(6));
        assert_eq!(us.health, Health::Unknown);
        let (us, ap) = build(t0 + Duration::from_secs(20));
        assert_eq!((us.health, ap.health), (Health::Unknown, Health::Unknown));
    }

    #[test]
    fn a_region_goes_down_with_its_last_address_under_any_and_its_first_under_all() {
        for (policy, since) in [("any", 200), ("all", 100)] {
            let text = format!(
                "local_region = \"eu\"\n[zone]\nname = \"gslb.example.com\"\n[[regions]]\nname = \"eu\"\nnameserver = \"ns.gslb.example.com\"\nglue = [\"192.0.2.53\"]\n[[services]]\nname = \"a.gslb.example.com\"\nstrategy = \"round-robin\"\nprobe = {{ kind = \"tcp\", port = 80, target_policy = \"{policy}\" }}\ntargets = {{ eu = [\"127.0.0.2\", \"127.0.0.3\"] }}\n"
            );
            let model = config::parse(&text).unwrap().model;
            let service = &model.services[0];
            let mut verdicts = Verdicts::new();
            for (addr, since_ms) in [("127.0.0.2", 100), ("127.0.0.3", 200)] {
                let key = key_for(service, addr.parse().unwrap()).unwrap();
                let verdict = Verdict {
                    health: Health::Unhealthy,
                    since_ms,
                };
                verdicts.insert(key, verdict);
            }
            let view = local_view(service, &service.targets[0], &verdicts);
            assert_eq!(view.health, Health::Unhealthy, "{policy}");
            assert_eq!(view.down_since_ms, Some(since), "{policy}");
            assert_eq!(
                view.why,
                Why::Probes {
                    healthy: 0,
                    unhealthy: 2,
                    unknown: 0,
                    policy: service.probe.target_policy,
                }
            );
        }
    }
}
