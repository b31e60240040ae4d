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
use crate::model::{Addresses, Health, ProbeKind, RegionIndex, Service, Target};
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
        addresses: Addresses::new(addresses),
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
        // The addresses answered stay the owner's last word: one observer's failing probe of
        // an address is no quorum on it.
        Some(region) if observers > 0 => RegionHealth {
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
            ..owner
        },
        Some(_) => owner,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::fixtures::{self, EU, US};
    use crate::gossip::report::Observation;
    use crate::health::{ProbeKey, Verdict};
    use crate::model::{Model, Quorum, Region};
    use crate::region_health::{Inputs, RemoteInputs, decide};
    use crate::remote::RemoteView;
    use crate::remote::tests::{report, stamp};

    const EU_ADDR: &str = "127.0.0.2";
    const US_ADDR: &str = "198.51.100.1";
    const AP_ADDR: &str = "203.0.113.1";

    fn model(us_health: &str) -> Model {
        fixtures::config(&format!(
            r#"
            [[services]]
            name = "app.gslb.example.com"
            strategy = "round-robin"
            probe = {{ kind = "tcp", port = 80 }}
            targets = {{ eu = ["{EU_ADDR}"], us = ["{US_ADDR}"], ap = ["{AP_ADDR}"] }}
            {us_health}
            "#
        ))
        .model
    }

    fn target(service: &Service, region: RegionIndex) -> &Target {
        service
            .targets
            .iter()
            .find(|t| t.region == region)
            .expect("a target in the region")
    }

    /// What one region says or sees in a row of the table; `None`: nothing.
    type Says = Option<Health>;

    /// One row: the owner us's freshness and report, eu's (this node's) probe verdict of us's
    /// target, ap's freshness and its observation of us's target.
    struct Row {
        us: Freshness,
        us_says: Says,
        eu_sees: Says,
        ap: Freshness,
        ap_sees: Says,
    }

    fn decide_us(row: &Row, model: &Model, quorum: Quorum) -> (Health, Why) {
        let decided = decide_us_fully(row, model, quorum);
        (decided.health, decided.why)
    }

    fn decide_us_fully(row: &Row, model: &Model, quorum: Quorum) -> RegionHealth {
        let service = &model.services[0];
        let app = service.name.clone();
        let t0 = Instant::now();
        let mut view = RemoteView::new(t0, Duration::from_secs(5), Duration::from_secs(15));
        if let Some(health) = row.us_says {
            let mut said = report(health);
            said.addresses = vec![US_ADDR.parse().unwrap()];
            view.report(&stamp("us", 1, 1), app.clone(), said, t0);
        }
        if let Some(health) = row.ap_sees {
            let seen = Seen {
                health,
                down: Vec::new(),
            };
            let observation = Observation::from([("us".to_string(), seen)]);
            view.observe(&stamp("ap", 1, 1), app.clone(), observation, t0);
        }
        let mut verdicts = Verdicts::new();
        if let Some(health) = row.eu_sees {
            let key = ProbeKey::for_target(service, US_ADDR.parse().unwrap()).unwrap();
            verdicts.insert(
                key,
                Verdict {
                    health,
                    since_ms: 1,
                },
            );
        }
        let freshness = HashMap::from([(Region::new("us"), row.us), (Region::new("ap"), row.ap)]);
        let inputs = Inputs {
            verdicts: &verdicts,
            remote: Some(RemoteInputs {
                view: &view,
                freshness: &freshness,
                regions: &model.regions,
                quorum: Some(quorum),
            }),
        };
        decide(service, target(service, US), Some(EU), &inputs)
    }

    #[test]
    fn the_owner_speaks_unless_a_quorum_of_observers_sees_it_down_and_observers_decide_for_a_silent_owner()
     {
        use Freshness::{Fresh, Stale, Suspect};
        use Health::{Healthy, Unhealthy, Unknown};
        let model = model("");
        let row = |us, us_says, eu_sees, ap, ap_sees| Row {
            us,
            us_says,
            eu_sees,
            ap,
            ap_sees,
        };
        let observed = |failing, observers, region| Why::Observed {
            failing,
            observers,
            region,
        };
        let down = |failing, observers| Why::ObservedDown { failing, observers };
        #[rustfmt::skip]
        let table = [
            // The owner speaks: its verdict, unless a quorum of observers sees it down.
            (row(Fresh, Some(Healthy), Some(Healthy), Fresh, Some(Healthy)), (Healthy, Why::Reported)),
            (row(Fresh, Some(Healthy), Some(Unhealthy), Fresh, Some(Healthy)), (Healthy, Why::Reported)),
            (row(Fresh, Some(Healthy), Some(Unhealthy), Fresh, Some(Unhealthy)), (Unhealthy, down(2, 2))),
            (row(Fresh, Some(Healthy), Some(Unhealthy), Stale, Some(Healthy)), (Unhealthy, down(1, 1))),
            (row(Fresh, Some(Healthy), Some(Unknown), Fresh, Some(Unhealthy)), (Unhealthy, down(1, 1))),
            (row(Fresh, Some(Unhealthy), Some(Healthy), Fresh, Some(Healthy)), (Unhealthy, Why::Reported)),
            // The owner is silent: the observers decide, healthy unless a quorum sees it down.
            (row(Suspect, Some(Healthy), Some(Healthy), Fresh, Some(Healthy)), (Healthy, observed(0, 2, Suspect))),
            (row(Suspect, Some(Healthy), Some(Unhealthy), Fresh, None), (Unhealthy, observed(1, 1, Suspect))),
            (row(Stale, Some(Healthy), Some(Unhealthy), Stale, None), (Unhealthy, observed(1, 1, Stale))),
            (row(Stale, Some(Healthy), Some(Healthy), Fresh, Some(Unhealthy)), (Healthy, observed(1, 2, Stale))),
            (row(Stale, None, Some(Healthy), Stale, None), (Healthy, observed(0, 1, Stale))),
            (row(Fresh, None, Some(Unhealthy), Fresh, Some(Unhealthy)), (Unhealthy, observed(2, 2, Fresh))),
            // Silent owner, no observer with a verdict: the owner's rule alone.
            (row(Suspect, Some(Healthy), Some(Unknown), Fresh, None), (Unknown, Why::Suspect)),
            (row(Stale, Some(Healthy), None, Suspect, Some(Unhealthy)), (Unhealthy, Why::Stale)),
            (row(Fresh, None, None, Fresh, None), (Unknown, Why::NotReported)),
        ];
        for (i, (row, expected)) in table.iter().enumerate() {
            assert_eq!(
                decide_us(row, &model, Quorum::Majority),
                *expected,
                "row {i}"
            );
        }
    }

    #[test]
    fn a_silent_owner_kept_in_by_the_observers_keeps_its_addresses_whatever_one_observer_sees() {
        use Health::{Healthy, Unhealthy};
        // eu's own probe of us fails (a cut between eu and us), ap's passes, us is suspect.
        let row = Row {
            us: Freshness::Suspect,
            us_says: Some(Healthy),
            eu_sees: Some(Unhealthy),
            ap: Freshness::Fresh,
            ap_sees: Some(Healthy),
        };
        let decided = decide_us_fully(&row, &model(""), Quorum::Majority);
        assert_eq!(decided.health, Healthy);
        assert_eq!(decided.answerable, vec![US_ADDR.parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn a_counted_quorum_needs_that_many_observers_and_an_operator_s_word_stands() {
        use Freshness::Fresh;
        use Health::{Healthy, Unhealthy};
        let one_down = Row {
            us: Fresh,
            us_says: Some(Healthy),
            eu_sees: Some(Unhealthy),
            ap: Fresh,
            ap_sees: Some(Healthy),
        };
        let plain = model("");
        assert_eq!(
            decide_us(&one_down, &plain, Quorum::AtLeast(1)),
            (
                Unhealthy,
                Why::ObservedDown {
                    failing: 1,
                    observers: 2
                }
            )
        );
        let both_down = Row {
            ap_sees: Some(Unhealthy),
            ..one_down
        };
        assert_eq!(
            decide_us(&both_down, &plain, Quorum::AtLeast(3)),
            (Healthy, Why::Reported),
            "two of the three required"
        );
        let pinned = model("health = { us = \"healthy\" }");
        assert_eq!(
            decide_us(&both_down, &pinned, Quorum::Majority),
            (Healthy, Why::Config)
        );
    }

    #[test]
    fn this_region_s_own_target_leaves_answers_when_a_quorum_of_observers_sees_it_down() {
        let model = model("");
        let service = &model.services[0];
        let app = service.name.clone();
        let t0 = Instant::now();
        let mut view = RemoteView::new(t0, Duration::from_secs(5), Duration::from_secs(15));
        for (region, health) in [("us", Health::Unhealthy), ("ap", Health::Unhealthy)] {
            let seen = Seen {
                health,
                down: vec![EU_ADDR.parse().unwrap()],
            };
            view.observe(
                &stamp(region, 1, 1),
                app.clone(),
                Observation::from([("eu".to_string(), seen)]),
                t0,
            );
        }
        let mut verdicts = Verdicts::new();
        let key = ProbeKey::for_target(service, EU_ADDR.parse().unwrap()).unwrap();
        let healthy = Verdict {
            health: Health::Healthy,
            since_ms: 1,
        };
        verdicts.insert(key, healthy);
        let freshness = HashMap::from([
            (Region::new("us"), Freshness::Fresh),
            (Region::new("ap"), Freshness::Fresh),
        ]);
        let inputs = Inputs {
            verdicts: &verdicts,
            remote: Some(RemoteInputs {
                view: &view,
                freshness: &freshness,
                regions: &model.regions,
                quorum: Some(Quorum::Majority),
            }),
        };
        let eu = decide(service, target(service, EU), Some(EU), &inputs);
        assert_eq!(
            (eu.health, eu.why),
            (
                Health::Unhealthy,
                Why::ObservedDown {
                    failing: 2,
                    observers: 2
                }
            )
        );
        // What eu reports of itself is its own verdict: observers never feed back into it.
        let own = crate::region_health::owner(service, target(service, EU), Some(EU), &inputs);
        assert_eq!(own.health, Health::Healthy);
    }
}
