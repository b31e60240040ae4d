//! What a region says of itself in gossip: per service its report (addresses and health) and
//! its observation (what its probes see of the other regions' targets), and the drain state its
//! replicas share; and the stamp every signed unit carries (`gossip::unit` signs them).

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::label_enum::label_enum;
use crate::model::{Health, Region, StrategyKind};
use crate::ownership::Refusal;

/// What an instance holds drained of its region (`gslbd drain`), shared with the region's other
/// replicas, which take the latest: the highest `version`, then instance name. An operator's
/// change is one above the highest version the instance has seen, so the last change made at
/// any replica wins, and a replica that restarts takes its siblings' state back.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainState {
    #[serde(rename = "r")]
    pub region: bool,
    /// Services drained one by one (fully qualified names).
    #[serde(
        rename = "s",
        default,
        skip_serializing_if = "std::collections::BTreeSet::is_empty"
    )]
    pub services: std::collections::BTreeSet<String>,
    #[serde(rename = "v")]
    pub version: u64,
    /// The instance where the change was made.
    #[serde(rename = "i")]
    pub by: String,
}

impl DrainState {
    /// Which of two states is the later: by version, then by instance.
    pub fn order(&self) -> (u64, &str) {
        (self.version, &self.by)
    }
}

/// What one region's probes see of the other regions' targets of one service, by region name.
/// Empty when it no longer observes the service.
pub type Observation = BTreeMap<String, Seen>;

/// One region's target as an observer sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seen {
    /// Healthy, unhealthy (rise/fall and the target policy, as the owner would decide), or
    /// unknown while the probes have no verdict yet.
    #[serde(rename = "h")]
    pub health: Health,
    /// Addresses the observer finds down.
    #[serde(rename = "d", default, skip_serializing_if = "Vec::is_empty")]
    pub down: Vec<IpAddr>,
}

/// One service as its region sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceReport {
    #[serde(rename = "h")]
    pub health: Health,
    /// Every address of the region's target.
    #[serde(rename = "a")]
    pub addresses: Vec<IpAddr>,
    /// Addresses found down (left out of answers while the region is in).
    #[serde(rename = "d", default, skip_serializing_if = "Vec::is_empty")]
    pub down: Vec<IpAddr>,
    /// The host name answered as a CNAME, for a target that is a name (`addresses` empty).
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When the region's health for the service last changed (Unix ms).
    #[serde(rename = "c")]
    pub changed_ms: u64,
    /// While unhealthy: when the first failing probe of the run that took the region down ran
    /// (Unix ms). Other regions measure failover latency from it.
    #[serde(rename = "f", default, skip_serializing_if = "Option::is_none")]
    pub failing_since_ms: Option<u64>,
    /// Drained by an operator (`gslbd drain`): out of answers everywhere, said as such.
    #[serde(rename = "x", default, skip_serializing_if = "std::ops::Not::not")]
    pub drained: bool,
    /// The region's weight for weighted services (it speaks for itself).
    #[serde(rename = "w", default, skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    /// How the service is answered, so that regions without it (a host annotated in some
    /// clusters only) answer it too, the same way.
    #[serde(rename = "s", default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<ServiceSpec>,
}

impl ServiceReport {
    /// The target's host name, when it is one and a valid name (fully qualified, lowercase);
    /// a malformed one counts as none: the region then has nothing to answer.
    pub fn target_name(&self) -> Option<hickory_proto::rr::Name> {
        crate::model::target_name(self.name.as_deref()?)
    }
}

/// A service's answering rules, with regions by name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSpec {
    /// An unknown strategy makes the whole report malformed: never guessed.
    #[serde(rename = "k")]
    pub strategy: StrategyKind,
    /// Failover order.
    #[serde(rename = "o", default, skip_serializing_if = "Vec::is_empty")]
    pub order: Vec<String>,
    /// Weights by region.
    #[serde(rename = "w", default, skip_serializing_if = "BTreeMap::is_empty")]
    pub weights: BTreeMap<String, u32>,
    /// Regions drawn per weighted answer.
    #[serde(rename = "n", default, skip_serializing_if = "Option::is_none")]
    pub pick: Option<usize>,
    #[serde(rename = "t")]
    pub ttl: u32,
    #[serde(rename = "d")]
    pub all_down: crate::model::AllDownPolicy,
}

/// Where a value comes from and its place in its publisher's run, signed with it.
///
/// A run is one start of one gslbd instance: `epoch` is drawn at random at start and `seq`
/// numbers every value the run signs, heartbeats and reports alike. Receivers order values by
/// these alone (`crate::remote`); `issued_ms`, the publisher's clock, is for people and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stamp {
    pub region: Region,
    /// The gslbd instance within the region (node ids are `<region>/<instance>`).
    pub instance: String,
    pub epoch: u64,
    pub seq: u64,
    /// Issue time on the publisher's clock (Unix ms).
    pub issued_ms: u64,
}

label_enum! {
    /// Why a gossiped unit or value was refused, as counted; the names are metric label
    /// values. Those of the unit format (`gossip::unit`), of the store's caps and of pulls
    /// (`gossip::store`, `gossip::node`), of the runs (`remote`), and one per [`Refusal`] of
    /// the ownership rule, under the rule's own names.
    pub enum ReportRejection {
        /// Signed by a region that has no key here.
        UnknownRegion = "unknown_region",
        /// Not a unit of our format, or its body does not decode, or a service in the wrong
        /// shard.
        Malformed = "malformed_report",
        /// The signature does not verify with the region's key: forged, altered, or signed
        /// for another cluster.
        BadSignature = "bad_signature",
        /// A service name that is not a DNS name.
        BadName = "bad_name",
        /// A unit over `unit::MAX_UNIT` bytes.
        UnitTooBig = "unit_too_big",
        /// A shard that inflates past `unit::MAX_DECOMPRESSED` bytes.
        DecompressLimit = "decompress_limit",
        /// A region holding more than `store::MAX_REGION_BYTES` of units.
        RegionFull = "region_full",
        /// A membership message about an identity of no configured region, or beyond the
        /// instances a region may have.
        UnknownMember = "unknown_member",
        /// A peer asking for units faster than the responder serves them.
        RateLimited = "rate_limited",
        /// Below the last sequence held for its slot (or service) in its run: an old unit
        /// replayed, or a late copy; it changes nothing.
        Replayed = "replayed",
        /// The very unit held already: gossip's own redundancy (relays, pushes and pulls
        /// crossing), or a replay of the latest; it changes nothing.
        Duplicate = "duplicate",
        /// Verified and new, from a run of its instance that no longer speaks for it (the
        /// instance restarted since): kept aside, not answered from.
        Superseded = "superseded_run",
        /// From an instance beyond the number a region may have (`remote::MAX_INSTANCES`).
        TooManyInstances = "too_many_instances",
        /// A verified report about a name no service may claim (`crate::ownership`), refused
        /// by the state owner, which knows the zone.
        OutsideZone = "outside_zone", Apex = "apex", Nameserver = "nameserver",
        Wildcard = "wildcard",
    }
}

impl From<Refusal> for ReportRejection {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::OutsideZone => ReportRejection::OutsideZone,
            Refusal::Apex => ReportRejection::Apex,
            Refusal::Nameserver => ReportRejection::Nameserver,
            Refusal::Wildcard => ReportRejection::Wildcard,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_with_a_strategy_we_do_not_know_is_malformed_not_guessed() {
        let mut value = serde_json::to_value(ServiceReport {
            health: Health::Healthy,
            addresses: vec!["192.0.2.1".parse().unwrap()],
            down: vec![],
            name: None,
            changed_ms: 5,
            failing_since_ms: None,
            drained: false,
            weight: None,
            spec: Some(ServiceSpec {
                strategy: StrategyKind::Failover,
                order: vec!["eu".into()],
                weights: BTreeMap::new(),
                pick: None,
                ttl: 30,
                all_down: crate::model::AllDownPolicy::FailOpen,
            }),
        })
        .unwrap();
        assert!(serde_json::from_value::<ServiceReport>(value.clone()).is_ok());
        // A peer of a newer version, or a forger holding eu's key: a strategy named otherwise.
        value["s"]["k"] = serde_json::json!("nearest");
        assert!(serde_json::from_value::<ServiceReport>(value).is_err());
    }

    #[test]
    fn names_refused_by_the_ownership_rule_are_counted_under_the_rule_s_labels() {
        for &refusal in Refusal::ALL {
            assert_eq!(ReportRejection::from(refusal).as_str(), refusal.as_str());
        }
    }
}
