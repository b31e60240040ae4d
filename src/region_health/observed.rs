//! The observers' word on a region's target: every region probes the other regions' targets
//! too (`gossip.observe_interval_ms`) and publishes what it sees (`obs:<service>`). The owner's
//! verdict is combined with the observers' by one rule (README, "When a region fails"):
//!
//! - an operator's word (drain, `health` in the config) stands;
//! - the owner speaks (fresh, with a report; or this node for its own region): its verdict,
//!   unless a quorum of the observers sees the target down;
//! - the owner is silent (suspect, stale, or heard without a report for the service) and at
//!   least one observer has a verdict: the observers decide, healthy unless a quorum sees it
//!   down;
//! - the owner is silent and no observer has a verdict: the owner's rule alone (suspect:
//!   answered as unknown; stale: out, unless every other region is stale).
//!
//! The observers of a target are this node (when it is not the owner) and every other fresh
//! region but the owner; only those with a verdict count, and a quorum is counted among them.

use std::net::IpAddr;

use super::{RegionHealth, RemoteInputs, Why, from_probes};
use crate::gossip::report::Seen;
use crate::health::Verdicts;
use crate::model::{Health, ProbeKind, RegionIndex, Service, Target};
use crate::remote::Freshness;

/// What this node's probes see of `addresses`, another region's target of `service`: `None`
/// when the service is not probed or the target has no address.
pub fn seen_locally(
    service: &Service,
    target: &Target,
    addresses: &[IpAddr],
    verdicts: &Verdicts,
) -> Option<Seen> {
    if service.probe.kind == ProbeKind::None || addresses.is_empty() {
        return None;
    }
    let target = Target {
        addresses: addresses.to_vec(),
        health: None,
        backends: None,
        drained: false,
        ..target.clone()
    };
    let view = from_probes(service, &target, verdicts);
    let down = view
        .all
        .iter()
        .filter(|a| !view.answerable.contains(a))
        .copied()
        .collect();
    Some(Seen {
        health: view.health,
        down,
    })
}

/// The owner's verdict `owner` on `target` combined with the observers'.
pub(super) fn combine(
    owner: RegionHealth,
    service: &Service,
    target: &Target,
    local: Option<RegionIndex>,
    verdicts: &Verdicts,
    remote: &RemoteInputs<'_>,
) -> RegionHealth {
    let Some(quorum) = remote.quorum else {
        return owner;
    };
    let silent = match owner.why {
        Why::Drained | Why::Config | Why::WhatIf | Why::NoGossip => return owner,
        Why::Suspect => Some(Freshness::Suspect),
        Why::Stale => Some(Freshness::Stale),
        Why::NotReported => Some(Freshness::Fresh),
        _ => None,
    };
    let region = &remote.regions[target.region].name;
    let mine = (local.is_some() && local != Some(target.region))
        .then(|| seen_locally(service, target, &owner.all, verdicts))
        .flatten();
    let theirs = remote
        .freshness
        .iter()
        .filter(|(other, freshness)| **freshness == Freshness::Fresh && *other != region)
        .filter_map(|(other, _)| {
            remote
                .view
                .observation(other, &service.name)?
                .get(region.as_str())
        });
    let (mut observers, mut failing) = (0, 0);
    for seen in mine.iter().chain(theirs) {
        observers += u32::from(seen.health != Health::Unknown);
        failing += u32::from(seen.health == Health::Unhealthy);
    }
    let down = quorum.reached(failing, observers);
    match silent {
        None if down && owner.health != Health::Unhealthy => RegionHealth {
            health: Health::Unhealthy,
            why: Why::ObservedDown { failing, observers },
            down_since_ms: None,
            ..owner
        },
        None => owner,
        Some(region) if observers > 0 => {
            let seen_down = mine.map(|seen| seen.down).unwrap_or_default();
            RegionHealth {
                health: if down {
                    Health::Unhealthy
                } else {
                    Health::Healthy
                },
                why: Why::Observed {
                    failing,
                    observers,
                    region,
                },
                down_since_ms: None,
                answerable: owner
                    .all
                    .iter()
                    .filter(|a| !seen_down.contains(a))
                    .copied()
                    .collect(),
                ..owner
            }
        }
        Some(_) => owner,
    }
}
