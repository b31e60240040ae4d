//! What this region says about itself: one [`ServiceReport`] per service it has targets for,
//! with the owner's verdict alone (`region_health::owner`: observers do not feed back into it);
//! and, when regions observe each other, one [`Observation`] per service with other regions'
//! targets. The state owner builds it with every snapshot, from the same model and the same
//! health rule, and hands it to the gossip task over a `watch` channel; the gossip task only
//! stamps, signs and publishes it.

use std::collections::BTreeMap;
use std::net::IpAddr;

use hickory_proto::rr::Name;

use super::report::{DrainState, Observation, ServiceReport, ServiceSpec};
use crate::model::{Model, RegionIndex, Service, Strategy};
use crate::region_health::{self, Inputs};

/// This region's report (`changed_ms` left for the publisher to fill in) and observations, per
/// service name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LocalReport {
    pub services: BTreeMap<Name, ServiceReport>,
    /// What this region's probes see of other regions' targets (observing on).
    pub observed: BTreeMap<Name, Observation>,
    /// What this instance holds drained, for its sibling replicas.
    pub drain: DrainState,
}

/// The report of `model`'s local region for every service with a local target, and its
/// observations of every service with other regions' targets.
pub fn build(model: &Model, inputs: &Inputs<'_>) -> LocalReport {
    let Some(local) = model.local_region else {
        return LocalReport::default();
    };
    LocalReport {
        services: services(model, local, inputs),
        observed: observed(model, local, inputs),
        drain: DrainState::default(),
    }
}

/// What this region's probes see of the other regions' targets, per service.
fn observed(model: &Model, local: RegionIndex, inputs: &Inputs<'_>) -> BTreeMap<Name, Observation> {
    if inputs.remote.is_none_or(|r| r.quorum.is_none()) {
        return BTreeMap::new();
    }
    model
        .services
        .iter()
        .filter_map(|service| {
            let observation: Observation = service
                .targets
                .iter()
                .filter(|t| t.region != local)
                .filter_map(|target| {
                    let addresses = region_health::observed_addresses(service, target, inputs);
                    let seen =
                        region_health::seen_locally(service, target, addresses, inputs.verdicts)?;
                    Some((model.regions[target.region].name.to_string(), seen))
                })
                .collect();
            (!observation.is_empty()).then(|| (service.name.clone(), observation))
        })
        .collect()
}

fn services(
    model: &Model,
    local: RegionIndex,
    inputs: &Inputs<'_>,
) -> BTreeMap<Name, ServiceReport> {
    model
        .services
        .iter()
        .filter_map(|service| {
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
            let report = ServiceReport {
                health: health.health,
                addresses: health.all.to_vec(),
                down: a_first(down),
                name: health.name.as_ref().map(|name| name.to_string()),
                changed_ms: 0,
                failing_since_ms: health.down_since_ms,
                drained: target.drained,
                weight,
                spec: Some(spec(model, service)),
            };
            Some((service.name.clone(), report))
        })
        .collect()
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
