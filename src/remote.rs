//! What other regions said about themselves, and how fresh it is.
//!
//! Pure: the state owner feeds it verified gossip and the time, the snapshot builder asks it
//! per (region, service). A region is `Fresh` while its heartbeats arrive, `Suspect` after
//! `peer_suspect` without one (its last report still answers, as Unknown) and `Stale` after
//! `peer_timeout` (its targets leave answers) — unless every other region is stale too: then
//! this node is the one cut off, and the last known state keeps serving (availability first).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use hickory_proto::rr::Name;

use crate::gossip::report::{ServiceReport, ServiceSpec};
use crate::model::{
    Model, ProbeSettings, Region, RegionIndex, Service, Strategy, StrategyKind, Target,
};
use crate::ownership;

/// How recently a region was heard from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Freshness {
    Fresh,
    Suspect,
    Stale,
}

#[derive(Clone, Debug, Default)]
struct RegionState {
    last_heard: Option<Instant>,
    services: HashMap<Name, (u64, ServiceReport)>,
    newest_alive_ms: u64,
}

/// Reports of remote regions, by region name: names hold across reloads that add, remove or
/// reorder regions, where positions in the model would not.
#[derive(Clone, Debug)]
pub struct RemoteView {
    regions: HashMap<Region, RegionState>,
    started: Instant,
    pub peer_suspect: Duration,
    pub peer_timeout: Duration,
}

impl RemoteView {
    pub fn new(started: Instant, peer_suspect: Duration, peer_timeout: Duration) -> Self {
        Self {
            regions: HashMap::new(),
            started,
            peer_suspect,
            peer_timeout,
        }
    }

    /// A verified heartbeat issued at `issued_ms`, received at `at`. Returns whether it is new.
    pub fn heard(&mut self, region: &Region, issued_ms: u64, at: Instant) -> bool {
        let state = self.regions.entry(region.clone()).or_default();
        if issued_ms < state.newest_alive_ms {
            return false; // a replayed old heartbeat
        }
        state.newest_alive_ms = issued_ms;
        state.last_heard = Some(at);
        true
    }

    /// A verified service report. Older than the one held (by issue time): ignored.
    /// Returns whether the view changed.
    pub fn report(
        &mut self,
        region: &Region,
        service: Name,
        issued_ms: u64,
        report: ServiceReport,
        at: Instant,
    ) -> bool {
        let state = self.regions.entry(region.clone()).or_default();
        state.last_heard = Some(state.last_heard.map_or(at, |t| t.max(at)));
        match state.services.get(&service) {
            Some((held, _)) if *held > issued_ms => false,
            Some((_, held)) if *held == report => {
                state.services.insert(service, (issued_ms, report));
                false
            }
            _ => {
                state.services.insert(service, (issued_ms, report));
                true
            }
        }
    }

    /// The region no longer reports `service` (its key was deleted).
    pub fn forget(&mut self, region: &Region, service: &Name) -> bool {
        self.regions
            .get_mut(region)
            .is_some_and(|s| s.services.remove(service).is_some())
    }

    /// When `region` was last heard from; our own start if never.
    pub fn last_heard(&self, region: &Region) -> Instant {
        self.regions
            .get(region)
            .and_then(|s| s.last_heard)
            .unwrap_or(self.started)
    }

    /// How fresh `region` is at `now`. Never heard: counted from our own start.
    pub fn freshness(&self, region: &Region, now: Instant) -> Freshness {
        let since = self
            .regions
            .get(region)
            .and_then(|s| s.last_heard)
            .unwrap_or(self.started);
        let age = now.saturating_duration_since(since);
        if age >= self.peer_timeout {
            Freshness::Stale
        } else if age >= self.peer_suspect {
            Freshness::Suspect
        } else {
            Freshness::Fresh
        }
    }

    /// Freshness of every remote region, with the all-stale rule applied.
    pub fn effective(&self, remote_regions: &[Region], now: Instant) -> HashMap<Region, Freshness> {
        let raw: HashMap<Region, Freshness> = remote_regions
            .iter()
            .map(|r| (r.clone(), self.freshness(r, now)))
            .collect();
        let all_stale = !raw.is_empty() && raw.values().all(|f| *f == Freshness::Stale);
        if all_stale {
            // We are the one cut off: keep serving what we last knew.
            raw.into_keys().map(|r| (r, Freshness::Suspect)).collect()
        } else {
            raw
        }
    }

    /// Every (region, service, report) held.
    pub fn reported(&self) -> impl Iterator<Item = (&Region, &Name, &ServiceReport)> {
        self.regions.iter().flat_map(|(region, state)| {
            state
                .services
                .iter()
                .map(move |(name, (_, report))| (region, name, report))
        })
    }

    /// The latest report of `region` about `service`.
    pub fn service(&self, region: &Region, service: &Name) -> Option<&ServiceReport> {
        self.regions
            .get(region)
            .and_then(|s| s.services.get(service))
            .map(|(_, r)| r)
    }
}

/// Services other regions serve and `model` (this one's) does not (a host annotated in some
/// clusters only): built from their reports' specs so that this server answers them the same
/// way. For each name, the first region in config order whose report has addresses and a spec
/// gives the rules; the targets are the remote regions' (no local target). Names no service
/// may claim in the model's zone (`crate::ownership`) are left out: the state owner refuses
/// such reports as they come, and this keeps out those held from before a reload changed the
/// zone's names.
pub fn remote_only_services(
    view: &RemoteView,
    model: &Model,
    known: &HashSet<Name>,
) -> Vec<Service> {
    let (regions, local) = (&model.regions, model.local_region);
    let mut specs: BTreeMap<&Name, (RegionIndex, &ServiceSpec)> = BTreeMap::new();
    for (region, name, report) in view.reported() {
        let Some(spec) = &report.spec else { continue };
        // A region no longer in the config (reloaded away) speaks for nothing.
        let Some(region) = RegionIndex::of(regions, region.as_str()) else {
            continue;
        };
        if known.contains(name) || report.addresses.is_empty() {
            continue;
        }
        if ownership::may_claim(name, &model.zone.origin, regions).is_err() {
            continue;
        }
        let entry = specs.entry(name).or_insert((region, spec));
        if region < entry.0 {
            *entry = (region, spec);
        }
    }
    let index = |name: &String| RegionIndex::of(regions, name);
    specs
        .into_iter()
        .map(|(name, (_, spec))| {
            let strategy = match spec.strategy {
                StrategyKind::Failover => {
                    let mut order: Vec<RegionIndex> = spec.order.iter().filter_map(index).collect();
                    order.dedup();
                    let rest: Vec<RegionIndex> = RegionIndex::all(regions.len())
                        .filter(|i| !order.contains(i))
                        .collect();
                    order.extend(rest);
                    Strategy::Failover { order }
                }
                StrategyKind::Weighted => {
                    let mut weights = vec![0; regions.len()];
                    for (region, weight) in &spec.weights {
                        if let Some(i) = index(region) {
                            weights[i] = *weight;
                        }
                    }
                    Strategy::Weighted {
                        weights,
                        pick: spec.pick.unwrap_or(1).max(1),
                    }
                }
                StrategyKind::Geo => Strategy::Geo,
                StrategyKind::RoundRobin => Strategy::RoundRobin,
            };
            Service {
                name: name.clone(),
                strategy,
                ttl: spec.ttl,
                targets: RegionIndex::all(regions.len())
                    .filter(|i| Some(*i) != local)
                    .map(|region| Target {
                        region,
                        addresses: Vec::new(),
                        health: None,
                        backends: None,
                    })
                    .collect(),
                all_down: spec.all_down,
                probe: ProbeSettings::none(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{AP, EU, US, name};
    use crate::model::Health;

    fn us() -> Region {
        Region::new("us")
    }

    fn ap() -> Region {
        Region::new("ap")
    }

    fn view(start: Instant) -> RemoteView {
        RemoteView::new(start, Duration::from_secs(5), Duration::from_secs(15))
    }

    fn report(health: Health) -> ServiceReport {
        ServiceReport {
            health,
            addresses: vec!["192.0.2.1".parse().unwrap()],
            down: vec![],
            changed_ms: 1,
            failing_since_ms: None,
            spec: None,
            weight: None,
        }
    }

    #[test]
    fn regions_age_from_fresh_to_suspect_to_stale_and_return_at_once() {
        let t0 = Instant::now();
        let mut v = view(t0);
        assert_eq!(v.freshness(&us(), t0), Freshness::Fresh);
        assert!(v.heard(&us(), 100, t0));
        assert_eq!(
            v.freshness(&us(), t0 + Duration::from_secs(4)),
            Freshness::Fresh
        );
        assert_eq!(
            v.freshness(&us(), t0 + Duration::from_secs(6)),
            Freshness::Suspect
        );
        assert_eq!(
            v.freshness(&us(), t0 + Duration::from_secs(16)),
            Freshness::Stale
        );
        assert!(v.heard(&us(), 200, t0 + Duration::from_secs(20)));
        assert_eq!(
            v.freshness(&us(), t0 + Duration::from_secs(20)),
            Freshness::Fresh
        );
        // A replayed old heartbeat does not revive it.
        assert!(!v.heard(&us(), 150, t0 + Duration::from_secs(40)));
        assert_eq!(
            v.freshness(&us(), t0 + Duration::from_secs(40)),
            Freshness::Stale
        );
    }

    #[test]
    fn when_every_other_region_is_stale_the_last_state_keeps_serving() {
        let t0 = Instant::now();
        let mut v = view(t0);
        v.heard(&us(), 1, t0);
        v.heard(&ap(), 1, t0);
        let late = t0 + Duration::from_secs(30);
        let eff = v.effective(&[us(), ap()], late);
        assert_eq!(eff[&us()], Freshness::Suspect);
        assert_eq!(eff[&ap()], Freshness::Suspect);
        v.heard(&ap(), 2, late);
        let eff = v.effective(&[us(), ap()], late);
        assert_eq!(eff[&us()], Freshness::Stale);
        assert_eq!(eff[&ap()], Freshness::Fresh);
    }

    #[test]
    fn older_reports_never_replace_newer_ones() {
        let t0 = Instant::now();
        let mut v = view(t0);
        let name = name("app.gslb.example.com.");
        assert!(v.report(&us(), name.clone(), 10, report(Health::Unhealthy), t0));
        assert!(!v.report(&us(), name.clone(), 5, report(Health::Healthy), t0));
        assert_eq!(v.service(&us(), &name).unwrap().health, Health::Unhealthy);
        assert!(v.report(&us(), name.clone(), 11, report(Health::Healthy), t0));
        assert_eq!(v.service(&us(), &name).unwrap().health, Health::Healthy);
    }

    #[test]
    fn services_only_other_regions_serve_follow_the_first_region_s_rules() {
        use crate::model::AllDownPolicy;
        let t0 = Instant::now();
        let mut v = view(t0);
        let model = crate::fixtures::config("").model;
        let spec = |strategy: &str, ttl: u32| ServiceSpec {
            strategy: strategy.parse().unwrap(),
            order: vec!["ap".to_string()],
            weights: BTreeMap::new(),
            pick: None,
            ttl,
            all_down: AllDownPolicy::Empty,
        };
        let with = |spec: Option<ServiceSpec>, addresses: bool| ServiceReport {
            spec,
            addresses: if addresses {
                report(Health::Healthy).addresses
            } else {
                Vec::new()
            },
            ..report(Health::Healthy)
        };
        let only = name("only.gslb.example.com.");
        let mine = name("mine.gslb.example.com.");
        let gone = name("gone.gslb.example.com.");
        v.report(&ap(), only.clone(), 1, with(Some(spec("geo", 5)), true), t0);
        v.report(
            &us(),
            only.clone(),
            1,
            with(Some(spec("failover", 7)), true),
            t0,
        );
        v.report(&us(), mine.clone(), 1, with(Some(spec("geo", 5)), true), t0);
        v.report(&us(), gone.clone(), 1, with(None, false), t0);
        let known: HashSet<Name> = [mine].into_iter().collect();
        let services = remote_only_services(&v, &model, &known);
        assert_eq!(services.len(), 1, "{services:?}");
        let service = &services[0];
        assert_eq!(service.name, only);
        // us comes before ap in the config: its rules win.
        assert_eq!(
            service.strategy,
            Strategy::Failover {
                order: vec![AP, EU, US]
            }
        );
        assert_eq!((service.ttl, service.all_down), (7, AllDownPolicy::Empty));
        // No local target: this region has nothing to answer for it.
        let regions_with_targets: Vec<RegionIndex> =
            service.targets.iter().map(|t| t.region).collect();
        assert_eq!(regions_with_targets, [US, AP]);
    }

    #[test]
    fn names_no_service_may_claim_never_become_remote_only_services() {
        let t0 = Instant::now();
        let mut v = view(t0);
        // The fixture's model: zone gslb.example.com, eu's nameserver ns-eu inside it.
        let model = crate::fixtures::config("").model;
        let spec = ServiceSpec {
            strategy: StrategyKind::RoundRobin,
            order: Vec::new(),
            weights: BTreeMap::new(),
            pick: None,
            ttl: 5,
            all_down: crate::model::AllDownPolicy::FailOpen,
        };
        let with_spec = ServiceReport {
            spec: Some(spec),
            ..report(Health::Healthy)
        };
        for text in [
            "gslb.example.com.",
            "ns-eu.gslb.example.com.",
            "*.gslb.example.com.",
            "app.example.org.",
            "fine.gslb.example.com.",
        ] {
            v.report(&us(), name(text), 1, with_spec.clone(), t0);
        }
        let services = remote_only_services(&v, &model, &HashSet::new());
        let names: Vec<String> = services.iter().map(|s| s.name.to_string()).collect();
        assert_eq!(names, ["fine.gslb.example.com."]);
    }
}
