//! From claims to the model's services, deterministically: every object gets an outcome
//! (balanced, or skipped and why), and every host inside the zone claimed by a valid object
//! becomes a service whose local target is this cluster's addresses.
//!
//! Two objects claiming one host: with the same settings they share it (addresses and
//! backends merge); with different settings the oldest object wins (creation time, then kind,
//! namespace and name) and the others are skipped for that host, with a `HostConflict` outcome
//! naming the winner.
//!
//! A host no service may claim (`crate::ownership`: the zone apex, a nameserver name, a
//! wildcard) is refused: never balanced, reported on its object, while the object's other
//! hosts are. Hosts outside the zone are the object's own business and are ignored. Pure.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::Name;

use super::annotations::{self, Settings, TargetName};
use super::sources::{Claim, ObjectId};
use crate::model::{
    Addresses, AllDownPolicy, BackendReadiness, ProbeSettings, RegionDef, RegionIndex, Service,
    Target,
};
use crate::ownership::{self, Refusal};

/// What services discovered in Kubernetes start from.
#[derive(Clone, Debug, PartialEq)]
pub struct Defaults {
    /// Lowercase, fully qualified.
    pub zone: Name,
    pub regions: Vec<RegionDef>,
    pub local_region: RegionIndex,
    pub ttl: u32,
    pub all_down: AllDownPolicy,
    pub probe: Arc<ProbeSettings>,
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

/// The reason of the outcome of an object none of whose hosts in the zone may be claimed.
pub const HOST_REFUSED: &str = "HostRefused";

/// A host of an object that no service may claim: not balanced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedHost {
    /// As written on the object, without a final dot.
    pub host: String,
    pub refusal: Refusal,
    /// The host and why, for Events and logs.
    pub message: String,
}

/// What discovery decided about one object.
#[derive(Clone, Debug)]
pub struct Decision {
    pub claim: Claim,
    pub outcome: Outcome,
    /// Its hosts refused (each also reported when the object is balanced for others).
    pub refused: Vec<RefusedHost>,
}

/// The result of one discovery.
#[derive(Debug, Default)]
pub struct Discovery {
    pub services: Vec<Service>,
    pub decisions: BTreeMap<ObjectId, Decision>,
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
    let mut refusals: BTreeMap<ObjectId, Vec<RefusedHost>> = BTreeMap::new();
    for claim in &claims {
        let settings =
            match annotations::parse(&claim.annotations, &defaults.regions, &defaults.zone) {
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
        let (inside, refused) = claimable(&names, defaults);
        if inside.is_empty() && !refused.is_empty() {
            let message = refused
                .iter()
                .map(|r| r.message.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            outcomes.insert(
                claim.id.clone(),
                Outcome::Skipped {
                    reason: HOST_REFUSED,
                    message: format!("no host it names may be balanced: {message}"),
                },
            );
            refusals.insert(claim.id.clone(), refused);
            continue;
        }
        if !refused.is_empty() {
            refusals.insert(claim.id.clone(), refused);
        }
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
        // Status host names of the claimants, for `gslbd.io/target-name: status`.
        let mut status_names: BTreeSet<&str> = BTreeSet::new();
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
                    status_names.extend(claimant.claim.hostnames.iter().map(String::as_str));
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
            Arc::make_mut(&mut probe).path = path.clone();
        }
        if let Some(kind) = settings.probe_scheme {
            Arc::make_mut(&mut probe).kind = kind;
        }
        let target_name = match &settings.target_name {
            Some(TargetName::Fixed(name)) => Some(Arc::new(name.clone())),
            Some(TargetName::Status) => status_names
                .iter()
                .find_map(|text| crate::model::target_name(text).map(Arc::new)),
            None => None,
        };
        let targets = RegionIndex::all(defaults.regions.len())
            .map(|region| {
                let local = region == defaults.local_region;
                Target {
                    region,
                    addresses: if local && target_name.is_none() {
                        addresses.iter().copied().collect()
                    } else {
                        Addresses::default()
                    },
                    name: target_name.clone().filter(|_| local),
                    health: None,
                    backends: local.then_some(readiness),
                    drained: false,
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
            let refused = refusals.remove(&id).unwrap_or_default();
            discovery.decisions.insert(
                id,
                Decision {
                    claim: claim.clone(),
                    outcome,
                    refused,
                },
            );
        }
    }
    discovery
}

/// Splits an object's `hosts` into the names it may balance (lowercase, fully qualified) and
/// those it names in the zone that no service may claim. Hosts outside the zone, and text
/// that is no name, are left out of both.
fn claimable(hosts: &[String], defaults: &Defaults) -> (Vec<Name>, Vec<RefusedHost>) {
    let mut inside = Vec::new();
    let mut refused = Vec::new();
    for host in hosts {
        let host = host.trim_end_matches('.');
        let Ok(name) = Name::from_ascii(format!("{host}.")) else {
            continue;
        };
        let name = name.to_lowercase();
        match ownership::may_claim(&name, &defaults.zone, &defaults.regions) {
            Ok(()) => inside.push(name),
            Err(Refusal::OutsideZone) => {}
            Err(_) if refused.iter().any(|r: &RefusedHost| r.host == host) => {}
            Err(refusal) => refused.push(RefusedHost {
                host: host.to_string(),
                refusal,
                message: format!("{host} cannot be balanced: {}", refusal.why(&defaults.zone)),
            }),
        }
    }
    (inside, refused)
}
