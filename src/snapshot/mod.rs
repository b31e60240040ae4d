//! The immutable view the DNS path reads: every name of the zone with its answer candidates,
//! built from the model and swapped atomically (`ArcSwap<Snapshot>`) when anything changes.
//!
//! All work that does not depend on the question is done here: name lookup table, SOA/NS/glue
//! records, the negative-answer SOA, per-region address lists, geo orders.
//!
//! A snapshot is built whole (a large zone on a few threads), rebuilt for the few services
//! whose inputs changed ([`Snapshot::rebuilt`]), or after a reload sharing every service that
//! did not change ([`Snapshot::build_sharing`]): services, the name table and the geo table are
//! shared between snapshots by `Arc`, so a rebuild costs what changed.

mod name_key;
mod readiness;
mod records;
pub mod transitions;

pub use name_key::{MAX_WIRE_NAME, NameKey, key_bytes};
pub use readiness::{KubernetesSync, Readiness};
pub use records::{Host, NegativeSoa, ZoneRecords, address_record, cname_record};

use crate::dns::Identity;
use std::collections::BTreeSet;
use std::sync::Arc;

use hickory_proto::rr::{LowerName, Name, Record};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;

use crate::geo::GeoIndex;
use crate::health::Verdicts;
use crate::model::{
    Addresses, AllDownPolicy, Health, Model, Region, RegionIndex, Returning, Service, Strategy,
};
use crate::region_health::{self, Inputs, Why};
use crate::remote::{Freshness, RunInfo};

/// Zones of this many services or more are built on several threads.
const PARALLEL_BUILD: usize = 4096;

/// A service's position in [`Snapshot::services`]; valid for that snapshot only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServiceIndex(usize);

impl ServiceIndex {
    /// The position in the snapshot's services.
    pub const fn get(self) -> usize {
        self.0
    }
}

/// What a name of the zone is.
#[derive(Clone, Debug)]
pub enum Node {
    /// The zone apex: SOA and NS.
    Apex,
    /// A balanced service.
    Service(ServiceIndex),
    /// A region nameserver inside the zone, with its fixed addresses.
    Host(Box<Host>),
    /// A name that exists only because names below it do (RFC 8020: NODATA, not NXDOMAIN).
    EmptyNonTerminal,
}

/// One region's contribution to a service.
#[derive(Clone, Debug)]
pub struct RegionAnswer {
    pub region: RegionIndex,
    pub health: Health,
    /// The addresses to answer while the region is available: those not found unhealthy.
    pub addresses: Addresses,
    /// Every address, for fail-open answers (shared with `addresses` when none is down).
    pub all: Addresses,
    /// The CNAME answered for the region when its target is a host name (`addresses` and
    /// `all` are then empty).
    pub cname: Option<Arc<Record>>,
    /// Weight for the weighted strategy: the config's, or the region's own report's.
    pub weight: u32,
    /// Why the region has this health.
    pub why: Why,
    /// When the region went unhealthy (its first failing probe, Unix ms), when known.
    down_since: Since,
    /// When this server saw the region come back (available again after being out, Unix ms),
    /// while that is recent: it is then let in again slowly (`Snapshot::returning`). Set by the
    /// state owner, which remembers what the last snapshot said.
    back_since: Since,
}

impl RegionAnswer {
    /// When the region went unhealthy (its first failing probe, Unix ms), when known.
    pub fn down_since_ms(&self) -> Option<u64> {
        self.down_since.get()
    }

    /// When this server saw the region come back, while that is recent (Unix ms).
    pub fn back_since_ms(&self) -> Option<u64> {
        self.back_since.get()
    }

    /// Marks the region coming back since `ms` (Unix ms), or not.
    pub fn set_back_since_ms(&mut self, ms: Option<u64>) {
        self.back_since = Since::new(ms);
    }
}

/// A Unix time in ms, or none, in 8 bytes: a snapshot holds two per service and region.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Since(u64);

impl Since {
    /// `ms` (`u64::MAX`, half a billion years away, counts as none).
    fn new(ms: Option<u64>) -> Self {
        Self(ms.unwrap_or(u64::MAX))
    }

    fn get(self) -> Option<u64> {
        (self.0 != u64::MAX).then_some(self.0)
    }
}

/// A service ready to answer.
#[derive(Clone, Debug)]
pub struct ServiceAnswer {
    /// The service as the model has it (shared, not copied): name, strategy, TTL, ...
    pub service: Arc<Service>,
    /// Regions with targets, in region order.
    pub regions: Vec<RegionAnswer>,
    /// Stable per-name salt so that different services spread clients differently.
    pub salt: u64,
    /// Whether a region of it is coming back (`RegionAnswer::back_since_ms`): only then do
    /// answers weigh slow starts and failback delays.
    pub returning: bool,
    /// Whether a region's target is a host name (answered by its CNAME): only then do
    /// answers look for one.
    pub named: bool,
}

impl ServiceAnswer {
    /// The service's name.
    pub fn name(&self) -> &Name {
        &self.service.name
    }

    /// How it answers.
    pub fn strategy(&self) -> &Strategy {
        &self.service.strategy
    }

    /// The TTL of its answers.
    pub fn ttl(&self) -> u32 {
        self.service.ttl
    }

    /// What it answers when no region is available.
    pub fn all_down(&self) -> AllDownPolicy {
        self.service.all_down
    }

    /// The answer candidates of `service` with the latest inputs; `local` is this node's
    /// region.
    pub fn build(service: &Arc<Service>, local: Option<RegionIndex>, inputs: &Inputs<'_>) -> Self {
        let regions: Vec<RegionAnswer> = service
            .targets
            .iter()
            .map(|t| {
                let view = region_health::decide(service, t, local, inputs);
                let all = view.all;
                let configured = match &service.strategy {
                    Strategy::Weighted { weights, .. } => weights[t.region],
                    _ => 1,
                };
                RegionAnswer {
                    region: t.region,
                    weight: view.weight.filter(|w| *w > 0).unwrap_or(configured),
                    health: view.health,
                    why: view.why,
                    down_since: Since::new(view.down_since_ms),
                    back_since: Since::new(None),
                    // One list when no address is down (most often already the same one).
                    addresses: if view.answerable.ptr_eq(&all) || view.answerable != all {
                        view.answerable
                    } else {
                        all.clone()
                    },
                    all,
                    cname: view
                        .name
                        .map(|target| Arc::new(cname_record(&service.name, service.ttl, &target))),
                }
            })
            .collect();
        ServiceAnswer {
            service: service.clone(),
            named: regions.iter().any(|r| r.cname.is_some()),
            regions,
            salt: name_salt(&service.name),
            returning: false,
        }
    }

    /// Position in `regions` of `region`, if it has targets.
    pub fn position(&self, region: RegionIndex) -> Option<usize> {
        self.regions.iter().position(|r| r.region == region)
    }
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
    /// Per region (same index): the runs speaking for its instances (remote regions only).
    pub region_runs: Vec<Vec<RunInfo>>,
    /// Per region (same index): when its heartbeat last advanced here (Unix ms, remote regions
    /// heard at least once).
    pub region_heard_ms: Vec<Option<u64>>,
    /// Shared between snapshots: a rebuild for a few services' inputs builds only those.
    pub services: Vec<Arc<ServiceAnswer>>,
    /// Shared between snapshots of the same model (a client network table may be large).
    pub geo: Arc<GeoIndex>,
    pub max_udp_payload: u16,
    /// Length of the time bucket answers depend on, in ms.
    pub time_bucket_ms: u64,
    /// How regions coming back are let in again (slow start, failback delay).
    pub returning: Returning,
    /// What the server still waits for before `/readyz` passes (set by the state owner).
    pub readiness: Readiness,
    /// The last changes of health and freshness, oldest first (set by the state owner).
    pub transitions: Arc<Vec<transitions::Transition>>,
    /// What this server adds of its own: NSID, cookie secrets (set by the state owner).
    pub identity: Arc<Identity>,
    /// Shared between snapshots of the same model.
    nodes: Arc<FxHashMap<NameKey, Node>>,
}

impl Snapshot {
    /// Builds the view of `model` with the latest probe verdicts and remote reports.
    pub fn build(model: &Model, max_udp_payload: u16, inputs: &Inputs<'_>) -> Self {
        Self::build_with(model, max_udp_payload, inputs, None, |_, _| None)
    }

    /// Builds the view of a new `model`, sharing with `previous` (built from `before`) what
    /// did not change: every service that is the same (one `Arc`) at the same name, whose
    /// inputs did not change (`changed` names those that did), when the regions are the same;
    /// and the name table, when the zone, regions and service names are.
    pub fn build_sharing(
        model: &Model,
        max_udp_payload: u16,
        inputs: &Inputs<'_>,
        previous: &Snapshot,
        before: &Model,
        changed: &BTreeSet<Name>,
    ) -> Self {
        let same_regions =
            model.regions == before.regions && model.local_region == before.local_region;
        let same_names = same_regions
            && model.zone == before.zone
            && model.services.len() == before.services.len()
            && model
                .services
                .iter()
                .zip(&before.services)
                .all(|(a, b)| a.name == b.name);
        let nodes = same_names.then(|| previous.nodes.clone());
        Self::build_with(model, max_udp_payload, inputs, nodes, |index, service| {
            if !same_regions || changed.contains(&service.name) {
                return None;
            }
            let was = if same_names {
                index
            } else {
                match previous.node(&service.name)? {
                    Node::Service(was) => was.get(),
                    _ => return None,
                }
            };
            let same = before
                .services
                .get(was)
                .is_some_and(|b| Arc::ptr_eq(b, service));
            same.then(|| previous.services.get(was).cloned()).flatten()
        })
    }

    /// Builds the view of `model`, with `nodes` as its name table when given, and each service
    /// from `shared` (its position and service) when that gives one, else built.
    fn build_with(
        model: &Model,
        max_udp_payload: u16,
        inputs: &Inputs<'_>,
        nodes: Option<Arc<FxHashMap<NameKey, Node>>>,
        shared: impl Fn(usize, &Arc<Service>) -> Option<Arc<ServiceAnswer>> + Sync,
    ) -> Self {
        let build = |(index, service): (usize, &Arc<Service>)| {
            shared(index, service).unwrap_or_else(|| {
                Arc::new(ServiceAnswer::build(service, model.local_region, inputs))
            })
        };
        let (zone, hosts) = ZoneRecords::build(&model.zone, &model.regions);
        // A large zone is built on a few threads: the name table on one, the services in
        // parts on the others (and this one).
        let threads = if model.services.len() < PARALLEL_BUILD {
            1
        } else {
            std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
        };
        let (services, nodes) = std::thread::scope(|scope| {
            let names = match nodes {
                Some(nodes) => Ok(nodes),
                None if threads > 1 => {
                    Err(scope.spawn(|| Arc::new(Self::names(model, &zone, hosts))))
                }
                None => Ok(Arc::new(Self::names(model, &zone, hosts))),
            };
            let part = model.services.len().div_ceil(threads).max(1);
            let mut parts = model.services.chunks(part).enumerate();
            let first = parts.next();
            let others: Vec<_> = parts
                .map(|(p, services)| {
                    scope.spawn(move || {
                        let at = p * part;
                        services
                            .iter()
                            .enumerate()
                            .map(|(i, s)| build((at + i, s)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let mut services: Vec<Arc<ServiceAnswer>> = Vec::with_capacity(model.services.len());
            if let Some((_, first)) = first {
                services.extend(first.iter().enumerate().map(build));
            }
            for part in others {
                services.extend(part.join().expect("a snapshot build thread panicked"));
            }
            let nodes = names
                .unwrap_or_else(|thread| thread.join().expect("the name table thread panicked"));
            (services, nodes)
        });
        let mut snapshot = Self {
            zone,
            regions: model.regions.iter().map(|r| r.name.clone()).collect(),
            region_status: Vec::new(),
            region_runs: Vec::new(),
            region_heard_ms: Vec::new(),
            services,
            geo: Arc::new(GeoIndex::build(&model.geo, &model.regions)),
            max_udp_payload,
            time_bucket_ms: model.zone.time_bucket_ms,
            returning: model.zone.returning,
            readiness: Readiness::default(),
            transitions: Arc::default(),
            identity: Arc::default(),
            nodes,
        };
        snapshot.set_regions(model, inputs);
        snapshot
    }

    /// The name table of `model`'s zone: apex, nameservers (`hosts`), services, and the empty
    /// non-terminals between them.
    fn names(model: &Model, zone: &ZoneRecords, hosts: Vec<Host>) -> FxHashMap<NameKey, Node> {
        let mut nodes: FxHashMap<NameKey, Node> = FxHashMap::default();
        nodes.reserve(model.services.len() + hosts.len() + 1);
        nodes.insert(NameKey::of(&zone.origin), Node::Apex);
        for host in hosts {
            nodes.insert(NameKey::of(&host.name), Node::Host(Box::new(host)));
        }
        for (index, service) in model.services.iter().enumerate() {
            // The zone's own names (apex, nameservers) are never a service's: every entrance
            // refuses them (`crate::ownership`). Should one get here all the same, the zone's
            // records keep their name.
            let name = NameKey::of(&service.name);
            let zone_owned = matches!(nodes.get(&name), Some(Node::Apex | Node::Host(_)));
            debug_assert!(!zone_owned, "{} is the zone's own name", service.name);
            if !zone_owned {
                nodes.insert(name, Node::Service(ServiceIndex(index)));
            }
        }
        // Every name between a node and the apex exists (RFC 8020). Found first, then added:
        // most zones have none, and the owners are not copied to look.
        let apex = NameKey::of(&zone.origin).as_wire().len();
        let mut between: FxHashSet<&[u8]> = FxHashSet::default();
        for owner in nodes.keys() {
            let mut name = owner.parent();
            while name.len() > apex && !nodes.contains_key(name) && between.insert(name) {
                name = name_key::parent(name);
            }
        }
        let between: Vec<NameKey> = between.into_iter().map(NameKey::from).collect();
        for name in between {
            nodes.insert(name, Node::EmptyNonTerminal);
        }
        nodes
    }

    /// This snapshot rebuilt for the same `model` (the same services, in the same order) with
    /// new inputs that concern only the services at `changed` (positions in `model.services`):
    /// those are built again, every other one is shared with this snapshot.
    pub fn rebuilt(&self, model: &Model, inputs: &Inputs<'_>, changed: &[usize]) -> Self {
        debug_assert_eq!(self.services.len(), model.services.len());
        let mut services = self.services.clone();
        for &index in changed {
            if let (Some(slot), Some(service)) =
                (services.get_mut(index), model.services.get(index))
            {
                *slot = Arc::new(ServiceAnswer::build(service, model.local_region, inputs));
            }
        }
        let mut snapshot = Self {
            services,
            ..self.clone_without_services()
        };
        snapshot.set_regions(model, inputs);
        snapshot
    }

    /// A copy of everything but the services (empty), which a rebuild replaces.
    fn clone_without_services(&self) -> Self {
        Self {
            zone: self.zone.clone(),
            regions: self.regions.clone(),
            region_status: Vec::new(),
            region_runs: Vec::new(),
            region_heard_ms: Vec::new(),
            services: Vec::new(),
            geo: self.geo.clone(),
            max_udp_payload: self.max_udp_payload,
            time_bucket_ms: self.time_bucket_ms,
            returning: self.returning,
            readiness: Readiness::default(),
            transitions: Arc::default(),
            identity: self.identity.clone(),
            nodes: self.nodes.clone(),
        }
    }

    /// Where each region's health comes from, and what gossip says of its runs.
    fn set_regions(&mut self, model: &Model, inputs: &Inputs<'_>) {
        self.region_status = RegionIndex::all(model.regions.len())
            .map(|i| match inputs.remote {
                _ if model.local_region == Some(i) => RegionStatus::Local,
                None => RegionStatus::Static,
                Some(remote) => RegionStatus::Remote(
                    remote
                        .freshness
                        .get(&model.regions[i].name)
                        .copied()
                        .unwrap_or(Freshness::Fresh),
                ),
            })
            .collect();
        self.region_runs = model
            .regions
            .iter()
            .map(|region| {
                inputs
                    .remote
                    .map(|remote| remote.view.runs(&region.name))
                    .unwrap_or_default()
            })
            .collect();
        self.region_heard_ms = {
            let (now, now_ms) = (std::time::Instant::now(), crate::unix_ms());
            model
                .regions
                .iter()
                .map(|region| {
                    let view = inputs.remote?.view;
                    view.ever_heard(&region.name).then(|| {
                        let age = now.saturating_duration_since(view.last_heard(&region.name));
                        now_ms.saturating_sub(age.as_millis() as u64)
                    })
                })
                .collect()
        };
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

    /// Whether `other` is this snapshot rebuilt ([`Snapshot::rebuilt`]), or the other way
    /// round: the same services at the same positions, those not rebuilt shared.
    pub fn same_services(&self, other: &Snapshot) -> bool {
        Arc::ptr_eq(&self.nodes, &other.nodes) && self.services.len() == other.services.len()
    }

    /// The positions of the services that differ from `previous`'s, when `previous` and this
    /// snapshot have the same services ([`Snapshot::same_services`]); `None` otherwise.
    pub fn changed_since(&self, previous: &Snapshot) -> Option<Vec<usize>> {
        self.same_services(previous).then(|| {
            (0..self.services.len())
                .filter(|&i| !Arc::ptr_eq(&self.services[i], &previous.services[i]))
                .collect()
        })
    }

    /// The region named `name`.
    pub fn region_index(&self, name: &str) -> Option<RegionIndex> {
        self.regions
            .iter()
            .position(|r| r.as_str() == name)
            .map(RegionIndex::new)
    }

    /// The service at `index`.
    pub fn service(&self, index: ServiceIndex) -> &ServiceAnswer {
        &self.services[index.0]
    }

    /// The node at `name`, if the zone has it.
    pub fn node(&self, name: &Name) -> Option<&Node> {
        self.nodes.get(key_bytes(name).as_slice())
    }

    /// The node of the name whose lowercase wire form is `key` ([`NameKey`]).
    pub fn node_of_key(&self, key: &[u8]) -> Option<&Node> {
        self.nodes.get(key)
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

    use hickory_proto::rr::RecordType;

    use super::*;
    use crate::fixtures::{self, AP, US};
    use crate::gossip::report::ServiceReport;
    use crate::region_health::RemoteInputs;
    use crate::remote::RemoteView;

    const WEB: &str = r#"
        [[services]]
        name = "web.gslb.example.com"
        strategy = "weighted"
        probe = { kind = "none" }
        weights = { eu = 50, us = 30, ap = 20 }
        targets = { eu = ["192.0.2.1"], us = ["198.51.100.1"], ap = ["203.0.113.1"] }
    "#;

    #[test]
    fn every_name_between_a_service_and_the_apex_exists_and_a_service_stays_one() {
        let mut tables = String::new();
        for name in ["a.b.c", "x.b.c", "c", "d.e"] {
            tables.push_str(&format!(
                "[[services]]\nname = \"{name}.gslb.example.com\"\nstrategy = \"round-robin\"\n\
                 targets = {{ eu = [\"192.0.2.1\"] }}\n"
            ));
        }
        let snapshot = Snapshot::from_model(&fixtures::config(&tables).model, 1232);
        let node = |name: &str| snapshot.node(&fixtures::name(name));
        for ent in ["b.c.gslb.example.com.", "e.gslb.example.com."] {
            assert!(matches!(node(ent), Some(Node::EmptyNonTerminal)), "{ent}");
        }
        for service in ["a.b.c", "x.b.c", "c", "d.e"] {
            let name = format!("{service}.gslb.example.com.");
            assert!(matches!(node(&name), Some(Node::Service(_))), "{name}");
        }
        assert!(matches!(node("gslb.example.com."), Some(Node::Apex)));
        assert!(node("b.gslb.example.com.").is_none());
        assert!(node("z.c.gslb.example.com.").is_none());
    }

    #[test]
    fn remote_reports_set_health_addresses_and_weight_by_freshness() {
        let model = fixtures::config(WEB).model;
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
            name: None,
            changed_ms: 1,
            failing_since_ms: None,
            drained: false,
            spec: None,
            weight: Some(90),
        };
        let name_of = |i: RegionIndex| model.regions[i].name.clone();
        view.report(&crate::remote::tests::stamp("us", 1, 1), name, report, t0);
        let verdicts = Verdicts::new();
        let build = |now: Instant| {
            let freshness = view.effective(&[name_of(US), name_of(AP)], now);
            let snapshot = Snapshot::build(
                &model,
                1232,
                &Inputs {
                    verdicts: &verdicts,
                    remote: Some(RemoteInputs {
                        view: &view,
                        freshness: &freshness,
                        regions: &model.regions,
                        quorum: None,
                    }),
                },
            );
            let us = snapshot.services[0].regions[1].clone();
            let ap = snapshot.services[0].regions[2].clone();
            (us, ap)
        };
        let (us, ap) = build(t0);
        assert_eq!((us.health, us.weight), (Health::Unhealthy, 90));
        assert_eq!(us.all.of(RecordType::A).len(), 2);
        assert_eq!(
            us.addresses.of(RecordType::A).len(),
            1,
            "the address reported down leaves answers"
        );
        // ap never reported: unknown, with the config's targets and weight.
        assert_eq!(
            (ap.health, ap.weight, ap.all.of(RecordType::A).len()),
            (Health::Unknown, 20, 1)
        );
        // us goes quiet: suspect (unknown), then stale (unhealthy) while ap is fresh... but ap
        // is never heard either, so both go stale together and the last state keeps serving.
        let (us, _) = build(t0 + Duration::from_secs(6));
        assert_eq!(us.health, Health::Unknown);
        let (us, ap) = build(t0 + Duration::from_secs(20));
        assert_eq!((us.health, ap.health), (Health::Unknown, Health::Unknown));
    }
}
