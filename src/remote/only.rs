//! Services other regions serve and this one does not, built from their reports' rules.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use hickory_proto::rr::Name;

use super::RemoteView;
use crate::gossip::report::ServiceSpec;
use crate::model::{
    Addresses, Model, ProbeSettings, RegionIndex, Service, Strategy, StrategyKind, Target,
};
use crate::ownership;

/// Services other regions serve and `model` (this one's) does not (a host annotated in some
/// clusters only): built from their reports' specs so that this server answers them the same
/// way. For each name, the first region in config order whose report has addresses (or a host
/// name) and a spec gives the rules; the targets are the remote regions' (no local target).
/// Names no service may claim in the model's zone (`crate::ownership`) are left out: the state
/// owner refuses such reports as they come, and this keeps out those held from before a reload
/// changed the zone's names.
pub fn remote_only_services(
    view: &RemoteView,
    model: &Model,
    known: &HashSet<&Name>,
) -> Vec<Service> {
    let (regions, local) = (&model.regions, model.local_region);
    let mut specs: BTreeMap<&Name, (RegionIndex, &ServiceSpec)> = BTreeMap::new();
    for (region, name, report) in view.reported() {
        let Some(spec) = &report.spec else { continue };
        // A region no longer in the config (reloaded away) speaks for nothing.
        let Some(region) = RegionIndex::of(regions, region.as_str()) else {
            continue;
        };
        if known.contains(name) || (report.addresses.is_empty() && report.name.is_none()) {
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
                        addresses: Addresses::default(),
                        name: None,
                        health: None,
                        backends: None,
                        drained: false,
                    })
                    .collect(),
                all_down: spec.all_down,
                probe: Arc::new(ProbeSettings::none()),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::fixtures::{AP, EU, US, name};
    use crate::gossip::report::ServiceReport;
    use crate::model::Health;
    use crate::remote::tests::{report, stamp};

    #[test]
    fn services_only_other_regions_serve_follow_the_first_region_s_rules() {
        use crate::model::AllDownPolicy;
        let t0 = Instant::now();
        let mut v = RemoteView::new(t0, Duration::from_secs(5), Duration::from_secs(15));
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
        let (ap, us) = (stamp("ap", 1, 1), |seq| stamp("us", 1, seq));
        v.report(&ap, only.clone(), with(Some(spec("geo", 5)), true), t0);
        v.report(
            &us(1),
            only.clone(),
            with(Some(spec("failover", 7)), true),
            t0,
        );
        v.report(&us(2), mine.clone(), with(Some(spec("geo", 5)), true), t0);
        v.report(&us(3), gone.clone(), with(None, false), t0);
        let known: HashSet<&Name> = [&mine].into_iter().collect();
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
        let mut v = RemoteView::new(t0, Duration::from_secs(5), Duration::from_secs(15));
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
        for (seq, text) in [
            "gslb.example.com.",
            "ns-eu.gslb.example.com.",
            "*.gslb.example.com.",
            "app.example.org.",
            "fine.gslb.example.com.",
        ]
        .into_iter()
        .enumerate()
        {
            v.report(
                &stamp("us", 1, seq as u64 + 1),
                name(text),
                with_spec.clone(),
                t0,
            );
        }
        let services = remote_only_services(&v, &model, &HashSet::new());
        let names: Vec<String> = services.iter().map(|s| s.name.to_string()).collect();
        assert_eq!(names, ["fine.gslb.example.com."]);
    }
}
