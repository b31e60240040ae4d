//! From claims to the model's services, deterministically: every object gets an outcome
//! (balanced, or skipped and why), and every host inside the zone claimed by a valid object
//! becomes a service whose local target is this cluster's addresses.
//!
//! Two objects claiming one host: with the same settings they share it (addresses and
//! backends merge); with different settings the oldest object wins (creation time, then kind,
//! namespace and name) and the others are skipped for that host, with a `HostConflict` outcome
//! naming the winner. Pure.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;

use hickory_proto::rr::Name;

use super::annotations::{self, Settings};
use super::sources::{Claim, ObjectId};
use crate::model::{
    AllDownPolicy, BackendReadiness, ProbeSettings, RegionDef, RegionIndex, Service, Target,
};

/// What services discovered in Kubernetes start from.
#[derive(Clone, Debug, PartialEq)]
pub struct Defaults {
    /// Lowercase, fully qualified.
    pub zone: Name,
    pub regions: Vec<RegionDef>,
    pub local_region: RegionIndex,
    pub ttl: u32,
    pub all_down: AllDownPolicy,
    pub probe: ProbeSettings,
}

/// What became of one object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Balanced: these hosts.
    Balanced { hosts: Vec<String> },
    /// Skipped: a short reason (for metrics and Event reasons) and the message.
    Skipped {
        reason: &'static str,
        message: String,
    },
}

/// The result of one discovery.
#[derive(Debug, Default)]
pub struct Discovery {
    pub services: Vec<Service>,
    pub outcomes: BTreeMap<ObjectId, (Claim, Outcome)>,
}

/// One host as one object asks for it.
struct HostClaim<'c> {
    claim: &'c Claim,
    settings: Settings,
}

fn rank(claim: &Claim) -> (&str, &'static str, &str, &str) {
    (
        claim.created.as_str(),
        claim.id.kind,
        claim.id.namespace.as_str(),
        claim.id.name.as_str(),
    )
}

/// Discovers services from `claims`, with backend Service readiness in `ready` ((namespace,
/// name) → has a ready endpoint) and status host names resolved in `resolved`.
pub fn discover(
    claims: Vec<Claim>,
    ready: &HashMap<(String, String), bool>,
    resolved: &HashMap<String, Vec<IpAddr>>,
    defaults: &Defaults,
) -> Discovery {
    let mut discovery = Discovery::default();
    let mut hosts: BTreeMap<Name, Vec<HostClaim<'_>>> = BTreeMap::new();
    let mut claims = claims;
    claims.sort_by(|a, b| rank(a).cmp(&rank(b)));
    let mut outcomes: BTreeMap<ObjectId, Outcome> = BTreeMap::new();
    for claim in &claims {
        let settings = match annotations::parse(&claim.annotations, &defaults.regions) {
            Ok(Some(settings)) => settings,
            Ok(None) => continue,
            Err(error) => {
                outcomes.insert(
                    claim.id.clone(),
                    Outcome::Skipped {
                        reason: "BadAnnotation",
                        message: error.to_string(),
                    },
                );
                continue;
            }
        };
        let mut names: Vec<String> = claim.hosts.clone();
        if claim.id.kind == "Service" {
            names = settings.hostnames.clone();
            if names.is_empty() {
                outcomes.insert(
                    claim.id.clone(),
                    Outcome::Skipped {
                        reason: "NoHostname",
                        message: "a LoadBalancer Service needs gslbd.io/hostname (or k8gb.io/hostname) to name its host".to_string(),
                    },
                );
                continue;
            }
        }
        let inside: Vec<Name> = names
            .iter()
            .filter_map(|h| Name::from_ascii(format!("{}.", h.trim_end_matches('.'))).ok())
            .map(|n| n.to_lowercase())
            .filter(|n| defaults.zone.zone_of(n) && *n != defaults.zone)
            .collect();
        if inside.is_empty() {
            outcomes.insert(
                claim.id.clone(),
                Outcome::Skipped {
                    reason: "NoHostInZone",
                    message: format!(
                        "none of its hosts ({}) is inside the zone {}",
                        names.join(", "),
                        defaults.zone
                    ),
                },
            );
            continue;
        }
        for name in inside {
            hosts.entry(name).or_default().push(HostClaim {
                claim,
                settings: settings.clone(),
            });
        }
        outcomes.insert(claim.id.clone(), Outcome::Balanced { hosts: Vec::new() });
    }

    for (name, claimants) in hosts {
        // Claimants are in rank order: the first one's settings win.
        let winner = &claimants[0];
        let mut addresses: BTreeSet<IpAddr> = BTreeSet::new();
        let mut backends: BTreeSet<(String, String)> = BTreeSet::new();
        for claimant in &claimants {
            if claimant.settings != winner.settings {
                outcomes.insert(
                    claimant.claim.id.clone(),
                    Outcome::Skipped {
                        reason: "HostConflict",
                        message: format!(
                            "{} is claimed by the older {} with different settings; that one wins",
                            name.to_string().trim_end_matches('.'),
                            winner.claim.id
                        ),
                    },
                );
                continue;
            }
            match &claimant.settings.addresses {
                Some(fixed) => addresses.extend(fixed.iter().copied()),
                None => {
                    addresses.extend(claimant.claim.addresses.iter().copied());
                    for hostname in &claimant.claim.hostnames {
                        addresses.extend(resolved.get(hostname).into_iter().flatten().copied());
                    }
                }
            }
            backends.extend(claimant.claim.backends.iter().cloned());
            if let Some(Outcome::Balanced { hosts }) = outcomes.get_mut(&claimant.claim.id) {
                hosts.push(name.to_string().trim_end_matches('.').to_string());
            }
        }
        let settings = &winner.settings;
        let readiness = BackendReadiness {
            ready: backends
                .iter()
                .filter(|b| ready.get(*b).copied().unwrap_or(false))
                .count() as u32,
            total: backends.len() as u32,
            policy: settings.health_policy,
        };
        let mut probe = defaults.probe.clone();
        if let Some(path) = &settings.probe_path {
            probe.path = path.clone();
        }
        if let Some(kind) = settings.probe_scheme {
            probe.kind = kind;
        }
        let targets = RegionIndex::all(defaults.regions.len())
            .map(|region| {
                let local = region == defaults.local_region;
                Target {
                    region,
                    addresses: if local {
                        addresses.iter().copied().collect()
                    } else {
                        Vec::new()
                    },
                    health: None,
                    backends: local.then_some(readiness),
                }
            })
            .collect();
        discovery.services.push(Service {
            name,
            strategy: settings.strategy.clone(),
            ttl: settings.ttl.unwrap_or(defaults.ttl),
            targets,
            all_down: settings.all_down.unwrap_or(defaults.all_down),
            probe,
        });
    }
    // An object in conflict for one of its hosts is reported as such (its other hosts serve).
    for (id, outcome) in outcomes {
        if let Some(claim) = claims.iter().find(|c| c.id == id) {
            discovery.outcomes.insert(id, (claim.clone(), outcome));
        }
    }
    discovery
}
