//! What this region says about itself: one [`ServiceReport`] per service it has targets for,
//! with the owner's verdict alone (`region_health::owner`: observers do not feed back into it);
//! and, when regions observe each other, one [`Observation`] per service with other regions'
//! targets. The state owner builds it with every snapshot, from the same model and the same
//! health rule, and hands it to the gossip task over a `watch` channel; the gossip task only
//! stamps, signs and publishes it.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::Name;

use super::report::{DrainState, Observation, ServiceReport, ServiceSpec};
use super::unit::{SLOTS, Shard, shard_of};
use crate::model::{Model, RegionIndex, Service, Strategy};
use crate::region_health::{self, Inputs};

/// This region's reports as the state owner publishes them: `None` until its first, which it
/// builds as its first act, while the DNS listeners start (at 100 000 services the whole build
/// takes ~0.2 s). Nothing is gossiped before it: an empty report would take this region's
/// services from every peer's view.
pub type Reports = tokio::sync::watch::Receiver<Option<Arc<LocalReport>>>;

/// This region's reports and observations (`changed_ms` left for the publisher to fill in),
/// in the shards their names hash to ([`shard_of`]), keyed by name as published: a change to
/// one service replaces its shard's `Arc` alone, so that the state owner updates, and the
/// publisher compares and signs, only what changed (at 100 000 services, rebuilding and
/// comparing the whole report took ~1 s of CPU per health change).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalReport {
    shards: Vec<Arc<Shard>>,
    /// What this instance holds drained, for its sibling replicas.
    pub drain: DrainState,
}

impl Default for LocalReport {
    fn default() -> Self {
        Self {
            shards: (0..SLOTS).map(|_| Arc::default()).collect(),
            drain: DrainState::default(),
        }
    }
}

impl LocalReport {
    /// The shards, [`SLOTS`] of them, each at its slot.
    pub fn shards(&self) -> &[Arc<Shard>] {
        &self.shards
    }

    /// The report on the service `name`.
    pub fn service(&self, name: &Name) -> Option<&ServiceReport> {
        self.shard(name).services.get(&name.to_ascii())
    }

    /// Every service's report, shard by shard.
    pub fn services(&self) -> impl Iterator<Item = (&String, &ServiceReport)> {
        self.shards.iter().flat_map(|shard| shard.services.iter())
    }

    /// Sets (or with `None` removes) the report on the service `name`.
    pub fn set_service(&mut self, name: &Name, report: Option<ServiceReport>) {
        let key = name.to_ascii();
        let slot = usize::from(shard_of(name));
        if self.shards[slot].services.get(&key) == report.as_ref() {
            return;
        }
        let services = &mut Arc::make_mut(&mut self.shards[slot]).services;
        match report {
            Some(report) => services.insert(key, report),
            None => services.remove(&key),
        };
    }

    /// Sets (or with `None` removes) this region's observation of the service `name`.
    fn set_observation(&mut self, name: &Name, observation: Option<Observation>) {
        let key = name.to_ascii();
        let slot = usize::from(shard_of(name));
        if self.shards[slot].observed.get(&key) == observation.as_ref() {
            return;
        }
        let observed = &mut Arc::make_mut(&mut self.shards[slot]).observed;
        match observation {
            Some(observation) => observed.insert(key, observation),
            None => observed.remove(&key),
        };
    }

    fn shard(&self, name: &Name) -> &Shard {
        &self.shards[usize::from(shard_of(name))]
    }

    /// This report with the services at `positions` (in `model.services`) reported again
    /// from `inputs`, the others as they were: for a model this report was built from.
    pub fn update(&mut self, model: &Model, inputs: &Inputs<'_>, positions: &[usize]) {
        let Some(local) = model.local_region else {
            return;
        };
        for service in positions.iter().filter_map(|&i| model.services.get(i)) {
            self.set_service(&service.name, report(model, local, service, inputs));
            self.set_observation(&service.name, observation(model, local, service, inputs));
        }
    }
}

/// Reports of this many services or more are built on several threads.
const PARALLEL_BUILD: usize = 4096;

/// One service's entries: its slot, its name as published, its report and observation.
type Entry = (usize, String, Option<ServiceReport>, Option<Observation>);

/// The report of `model`'s local region for every service with a local target, and its
/// observations of every service with other regions' targets.
pub fn build(model: &Model, inputs: &Inputs<'_>) -> LocalReport {
    let Some(local) = model.local_region else {
        return LocalReport::default();
    };
    let entry = |service: &Arc<Service>| -> Option<Entry> {
        let report = report(model, local, service, inputs);
        let observation = observation(model, local, service, inputs);
        (report.is_some() || observation.is_some()).then(|| {
            let slot = usize::from(shard_of(&service.name));
            (slot, service.name.to_ascii(), report, observation)
        })
    };
    // A large model's entries are made on a few threads (the hash of each name most of it).
    let threads = if model.services.len() < PARALLEL_BUILD {
        1
    } else {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
    };
    let part = model.services.len().div_ceil(threads).max(1);
    let entries: Vec<Vec<Entry>> = std::thread::scope(|scope| {
        let parts: Vec<_> = model
            .services
            .chunks(part)
            .map(|services| scope.spawn(move || services.iter().filter_map(entry).collect()))
            .collect();
        parts
            .into_iter()
            .map(|part| part.join().expect("a report build thread panicked"))
            .collect()
    });
    let mut shards = vec![Shard::default(); usize::from(SLOTS)];
    for (slot, key, report, observation) in entries.into_iter().flatten() {
        let shard = &mut shards[slot];
        if let Some(observation) = observation {
            shard.observed.insert(key.clone(), observation);
        }
        if let Some(report) = report {
            shard.services.insert(key, report);
        }
    }
    LocalReport {
        shards: shards.into_iter().map(Arc::new).collect(),
        drain: DrainState::default(),
    }
}

/// What this region's probes see of `service`'s targets in other regions (observing on).
fn observation(
    model: &Model,
    local: RegionIndex,
    service: &Service,
    inputs: &Inputs<'_>,
) -> Option<Observation> {
    if inputs.remote.is_none_or(|r| r.quorum.is_none()) {
        return None;
    }
    let observation: Observation = service
        .targets
        .iter()
        .filter(|t| t.region != local)
        .filter_map(|target| {
            let addresses = region_health::observed_addresses(service, target, inputs);
            let seen = region_health::seen_locally(service, target, addresses, inputs.verdicts)?;
            Some((model.regions[target.region].name.to_string(), seen))
        })
        .collect();
    (!observation.is_empty()).then_some(observation)
}

/// This region's report on `service`, if it has a local target.
fn report(
    model: &Model,
    local: RegionIndex,
    service: &Service,
    inputs: &Inputs<'_>,
) -> Option<ServiceReport> {
    let target = service.targets.iter().find(|t| t.region == local)?;
    let health = region_health::owner(service, target, Some(local), inputs);
    let down = health
        .all
        .iter()
        .filter(|a| !health.answerable.contains(a))
        .copied()
        .collect();
    let weight = match &service.strategy {
        Strategy::Weighted { weights, .. } => Some(weights[local]),
        _ => None,
    };
    Some(ServiceReport {
        health: health.health,
        addresses: health.all.to_vec(),
        down: a_first(down),
        name: health.name.as_ref().map(|name| name.to_string()),
        changed_ms: 0,
        failing_since_ms: health.down_since_ms,
        drained: target.drained,
        weight,
        spec: Some(spec(model, service)),
    })
}

/// IPv4 addresses before IPv6 ones, each family in its given order (as the answer's A and
/// AAAA records hold them).
fn a_first(mut addresses: Vec<IpAddr>) -> Vec<IpAddr> {
    addresses.sort_by_key(IpAddr::is_ipv6);
    addresses
}

/// How `service` is answered, with regions by name.
fn spec(model: &Model, service: &Service) -> ServiceSpec {
    let name = |i: RegionIndex| model.regions[i].name.as_str().to_string();
    let (order, weights, pick) = match &service.strategy {
        Strategy::Failover { order } => (
            order.iter().map(|&i| name(i)).collect(),
            BTreeMap::new(),
            None,
        ),
        Strategy::Weighted { weights, pick } => (
            Vec::new(),
            RegionIndex::all(weights.len())
                .zip(weights)
                .filter(|(_, w)| **w > 0)
                .map(|(i, w)| (name(i), *w))
                .collect(),
            Some(*pick),
        ),
        _ => (Vec::new(), BTreeMap::new(), None),
    };
    ServiceSpec {
        strategy: service.strategy.kind(),
        order,
        weights,
        pick,
        ttl: service.ttl,
        all_down: service.all_down,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::health::Verdicts;

    fn model(services: usize) -> Model {
        let mut text = String::from(
            "local_region = \"eu\"\nprobe = { kind = \"none\" }\n\
             [zone]\nname = \"gslb.example.com\"\n\
             [[regions]]\nname = \"eu\"\nnameserver = \"ns-eu.gslb.example.com\"\n\
             glue = [\"192.0.2.250\"]\n\
             [[regions]]\nname = \"us\"\n",
        );
        for i in 0..services {
            text.push_str(&format!(
                "[[services]]\nname = \"s{i}.gslb.example.com\"\nstrategy = \"round-robin\"\n\
                 targets = {{ eu = [\"192.0.2.{}\"], us = [\"198.51.100.{}\"] }}\n",
                i % 250,
                i % 250
            ));
        }
        crate::config::parse(&text).unwrap().model
    }

    #[test]
    fn an_update_equals_a_whole_build_and_replaces_only_the_changed_services_shards() {
        let mut model = model(50);
        let verdicts = Verdicts::new();
        let inputs = Inputs {
            verdicts: &verdicts,
            remote: None,
        };
        let before = build(&model, &inputs);
        assert_eq!(before.services().count(), 50);
        // Two services drained here (what a drain changes in the model, in place).
        for i in [7, 31] {
            for target in &mut Arc::make_mut(&mut model.services[i]).targets {
                target.drained = true;
            }
        }
        let mut updated = before.clone();
        updated.update(&model, &inputs, &[7, 31]);
        assert_eq!(updated, build(&model, &inputs));
        let name = |i: usize| Name::from_ascii(format!("s{i}.gslb.example.com.")).unwrap();
        assert!(updated.service(&name(7)).unwrap().drained);
        assert!(!before.service(&name(7)).unwrap().drained);
        let replaced: Vec<usize> = (0..usize::from(SLOTS))
            .filter(|&slot| !Arc::ptr_eq(&before.shards()[slot], &updated.shards()[slot]))
            .collect();
        let mut expected: Vec<usize> = [7, 31]
            .iter()
            .map(|&i| usize::from(shard_of(&name(i))))
            .collect();
        expected.sort_unstable();
        expected.dedup();
        assert_eq!(replaced, expected, "only the drained services' shards");
        // An update of a service that did not change replaces nothing.
        let mut again = updated.clone();
        again.update(&model, &inputs, &[7, 12]);
        assert!(
            again
                .shards()
                .iter()
                .zip(updated.shards())
                .all(|(a, b)| Arc::ptr_eq(a, b))
        );
    }

    #[test]
    fn a_large_report_built_on_several_threads_is_the_one_built_service_by_service() {
        let model = model(PARALLEL_BUILD + 10);
        let verdicts = Verdicts::new();
        let inputs = Inputs {
            verdicts: &verdicts,
            remote: None,
        };
        let mut one_by_one = LocalReport::default();
        let all: Vec<usize> = (0..model.services.len()).collect();
        one_by_one.update(&model, &inputs, &all);
        let built = build(&model, &inputs);
        assert_eq!(built.services().count(), PARALLEL_BUILD + 10);
        assert_eq!(built, one_by_one);
    }
}
