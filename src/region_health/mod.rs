//! The rule that decides a region's health for one service, and why: an operator's drain at run
//! time first, then an operator's word in the config, then the owner's verdict (for the local
//! region Kubernetes backend readiness and this node's probe verdicts, for other regions their
//! own signed reports by how fresh they are; static config when gossip is off), then the
//! observers' (`observed`: the other regions' probes of the target, which can take a region out
//! that says it is fine, and decide for a region that says nothing). The snapshot builder
//! applies it to every (service, region); `/state` and `/explain` show its [`Why`]. This
//! region's own report carries the owner's verdict alone ([`owner`]).

mod observed;

pub use observed::seen_locally;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::Name;
use serde::Serialize;

use crate::health::{ProbeKey, Verdict, Verdicts};
use crate::model::Addresses;
use crate::model::{
    Health, ProbeKind, Quorum, Region, RegionDef, RegionIndex, Service, Target, TargetPolicy,
};
use crate::remote::{Freshness, RemoteView};

/// Where health comes from, besides the model: local probe verdicts and remote reports.
#[derive(Clone, Copy, Debug)]
pub struct Inputs<'a> {
    /// Probe verdicts of this node: its own region's targets and, when observing, the others'.
    pub verdicts: &'a Verdicts,
    /// `None` when gossip is off: remote regions then count as healthy (static config).
    pub remote: Option<RemoteInputs<'a>>,
}

/// Remote regions' reports and their freshness (all-stale rule already applied), by region
/// name; `regions` names the model's regions.
#[derive(Clone, Copy, Debug)]
pub struct RemoteInputs<'a> {
    pub view: &'a RemoteView,
    pub freshness: &'a HashMap<Region, Freshness>,
    pub regions: &'a [RegionDef],
    /// How many observers take a target out; `None` when regions do not observe each other.
    pub quorum: Option<Quorum>,
}

/// Why a region has the health it has for a service: shown by `/state` and `/explain`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "snake_case")]
pub enum Why {
    /// Drained by an operator at run time (`gslbd drain`): this region's own, or a remote
    /// region's as its report says.
    Drained,
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
    /// The owner says the target is available, but a quorum of the observers (other regions
    /// probing it, this node included) sees it down.
    ObservedDown { failing: u32, observers: u32 },
    /// The owner is silent about it (`region`: suspect, stale, or fresh without a report for
    /// the service): the observers decide, healthy unless a quorum sees it down.
    Observed {
        failing: u32,
        observers: u32,
        region: Freshness,
    },
}

impl std::fmt::Display for Why {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Why::Drained => f.write_str("drained by an operator (gslbd drain)"),
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
                policy.as_str()
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
                policy.as_str()
            ),
            Why::ObservedDown { failing, observers } => write!(
                f,
                "the region reports it available, but {failing} of {observers} observers (other regions' probes) see it down: a quorum"
            ),
            Why::Observed {
                failing,
                observers,
                region,
            } => write!(
                f,
                "the region says nothing about it ({}): the observers decide, {failing} of {observers} (other regions' probes) see it down",
                match region {
                    Freshness::Fresh => "heard, no report",
                    Freshness::Suspect => "suspect",
                    Freshness::Stale => "stale",
                },
            ),
        }
    }
}

/// A region's health for one service as the answer sees it, with all its addresses and those to
/// answer while the region is in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionHealth {
    pub health: Health,
    pub why: Why,
    /// When the region went unhealthy: its first failing probe (Unix ms), when known.
    pub down_since_ms: Option<u64>,
    /// Every address of the region's target.
    pub all: Addresses,
    /// Those not found down (the same list as `all` when none is).
    pub answerable: Addresses,
    /// The host name answered instead of addresses (a target that is a name).
    pub name: Option<Arc<Name>>,
    /// A weight the region reported for itself.
    pub weight: Option<u32>,
}

/// Decides `target`'s region health for `service`, owner and observers combined; `local` is
/// this node's region.
pub fn decide(
    service: &Service,
    target: &Target,
    local: Option<RegionIndex>,
    inputs: &Inputs<'_>,
) -> RegionHealth {
    let owner = owner(service, target, local, inputs);
    match inputs.remote {
        Some(remote) => observed::combine(owner, service, target, local, inputs.verdicts, &remote),
        None => owner,
    }
}

/// `target`'s region health for `service` as its owner says: what this region reports for
/// its own targets, and what another region's report says of its own.
pub fn owner(
    service: &Service,
    target: &Target,
    local: Option<RegionIndex>,
    inputs: &Inputs<'_>,
) -> RegionHealth {
    let statically = |health: Health, why: Why| RegionHealth {
        health,
        why,
        down_since_ms: None,
        all: target.addresses.clone(),
        answerable: target.addresses.clone(),
        name: target.name.clone(),
        weight: None,
    };
    if target.drained {
        return statically(Health::Unhealthy, Why::Drained);
    }
    if let Some(forced) = target.health {
        // Set in config: an operator's word beats probes and reports (e.g. to drain a region).
        return statically(forced, Why::Config);
    }
    if local == Some(target.region) {
        if let Some(backends) = target.backends.filter(|b| !b.ok()) {
            // Kubernetes says the backends cannot serve: probes of the ingress do not matter.
            return RegionHealth {
                answerable: Addresses::default(),
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
        return from_probes(service, target, inputs.verdicts);
    }
    let Some(remote) = inputs.remote else {
        return statically(Health::Healthy, Why::NoGossip);
    };
    let region = &remote.regions[target.region].name;
    let freshness = remote
        .freshness
        .get(region)
        .copied()
        .unwrap_or(Freshness::Fresh);
    let report = remote.view.service(region, &service.name);
    match (freshness, report) {
        (Freshness::Stale, Some(report)) => {
            let all = Addresses::new(&report.addresses);
            RegionHealth {
                health: Health::Unhealthy,
                why: Why::Stale,
                down_since_ms: None,
                answerable: all.clone(),
                all,
                name: report.target_name().map(Arc::new),
                weight: report.weight,
            }
        }
        (Freshness::Stale, None) => statically(Health::Unhealthy, Why::Stale),
        (freshness, Some(report)) => RegionHealth {
            health: if freshness == Freshness::Fresh {
                report.health
            } else {
                Health::Unknown
            },
            why: match freshness {
                Freshness::Fresh if report.drained => Why::Drained,
                Freshness::Fresh => Why::Reported,
                _ => Why::Suspect,
            },
            down_since_ms: report
                .failing_since_ms
                .filter(|_| report.health == Health::Unhealthy),
            all: Addresses::new(&report.addresses),
            answerable: report
                .addresses
                .iter()
                .filter(|a| !report.down.contains(a))
                .copied()
                .collect(),
            name: report.target_name().map(Arc::new),
            weight: report.weight,
        },
        // Heard of, but not about this service yet (or never heard): wait and see.
        (_, None) => statically(Health::Unknown, Why::NotReported),
    }
}

/// The addresses of another region's `target` that observers probe: those its report gives
/// (discovered services have no others), else the config's.
pub fn observed_addresses<'a>(
    service: &'a Service,
    target: &'a Target,
    inputs: &Inputs<'a>,
) -> &'a [IpAddr] {
    inputs
        .remote
        .and_then(|remote| {
            let region = &remote.regions[target.region].name;
            remote.view.service(region, &service.name)
        })
        .map_or(&target.addresses, |report| &report.addresses)
}

/// The local region's view from probe verdicts.
fn from_probes(service: &Service, target: &Target, verdicts: &Verdicts) -> RegionHealth {
    let unprobed = Verdict {
        health: Health::Healthy,
        since_ms: 0,
    };
    let unknown = Verdict {
        health: Health::Unknown,
        since_ms: 0,
    };
    let verdict = |key: Option<ProbeKey>| match key {
        Some(key) => verdicts.get(&key).copied().unwrap_or(unknown),
        None => unprobed,
    };
    // A target that is a host name has one probe, of the name.
    let per_address: Vec<Verdict> = match &target.name {
        Some(name) => vec![verdict(ProbeKey::for_name(service, name))],
        None => target
            .addresses
            .iter()
            .map(|&addr| verdict(ProbeKey::for_target(service, addr)))
            .collect(),
    };
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
    RegionHealth {
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
        answerable: if unhealthy == 0 {
            target.addresses.clone()
        } else {
            target
                .addresses
                .iter()
                .zip(&per_address)
                .filter(|(_, v)| v.health.is_available())
                .map(|(a, _)| *a)
                .collect()
        },
        name: target.name.clone(),
        weight: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn a_region_goes_down_with_its_last_address_under_any_and_its_first_under_all() {
        for (policy, since) in [("any", 200), ("all", 100)] {
            let model = fixtures::config(&format!(
                r#"
                [[services]]
                name = "a.gslb.example.com"
                strategy = "round-robin"
                probe = {{ kind = "tcp", port = 80, target_policy = "{policy}" }}
                targets = {{ eu = ["127.0.0.2", "127.0.0.3"] }}
                "#
            ))
            .model;
            let service = &model.services[0];
            let mut verdicts = Verdicts::new();
            for (addr, since_ms) in [("127.0.0.2", 100), ("127.0.0.3", 200)] {
                let key = ProbeKey::for_target(service, addr.parse().unwrap()).unwrap();
                let verdict = Verdict {
                    health: Health::Unhealthy,
                    since_ms,
                };
                verdicts.insert(key, verdict);
            }
            let view = from_probes(service, &service.targets[0], &verdicts);
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
