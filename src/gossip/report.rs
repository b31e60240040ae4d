//! What a region publishes, as signed gossip values: `alive` (a heartbeat), `svc:<name>` (one
//! service's addresses and health) and `obs:<name>` (what its probes see of the other regions'
//! targets of that service). Each value is
//! `<base64 Ed25519 signature>.<json>`, the JSON naming the region and key it belongs to, so a
//! value cannot be moved to another region or key, and its issue time, so an old value cannot
//! be replayed over a newer one.

use std::collections::BTreeMap;
use std::net::IpAddr;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};

use super::keys::{RegionKeys, SigningKey};
use crate::label_enum::label_enum;
use crate::model::{Health, Region, StrategyKind};
use crate::ownership::Refusal;

/// Key of the heartbeat value.
pub const ALIVE_KEY: &str = "alive";
/// Prefix of service values.
pub const SERVICE_PREFIX: &str = "svc:";
/// Key of the drain value: what an instance holds drained of its own region, for its sibling
/// replicas (never read by other regions: the reports' `drained` flags tell them).
pub const DRAIN_KEY: &str = "drain";

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

/// Prefix of observation values: what this region's probes see of the other regions' targets
/// of one service.
pub const OBSERVED_PREFIX: &str = "obs:";

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

#[derive(Debug, Serialize, Deserialize)]
struct Envelope<T> {
    #[serde(rename = "r")]
    region: String,
    #[serde(rename = "i")]
    instance: String,
    #[serde(rename = "k")]
    key: String,
    #[serde(rename = "e")]
    epoch: u64,
    #[serde(rename = "q")]
    seq: u64,
    /// Issue time (Unix ms).
    #[serde(rename = "t")]
    issued_ms: u64,
    #[serde(rename = "v")]
    value: T,
}

/// Why a gossiped value was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("no public key for region {0}")]
    UnknownRegion(String),
    #[error("malformed value")]
    Malformed,
    #[error("bad signature")]
    BadSignature,
    #[error("value signed for {signed} published by {publisher}")]
    WrongRegion { signed: String, publisher: String },
    #[error("value signed for key {signed} published as {published}")]
    WrongKey { signed: String, published: String },
}

label_enum! {
    /// Why a gossiped value was refused, as counted; the names are metric label values. One
    /// per [`ReportError`] variant ([`ReportError::rejection`]), `BadName`, and one per
    /// [`Refusal`] of the ownership rule, under the rule's own names.
    pub enum ReportRejection {
        UnknownRegion = "unknown_region", Malformed = "malformed_report",
        BadSignature = "bad_signature", WrongRegion = "wrong_region", WrongKey = "wrong_key",
        /// A service key that is not a DNS name: refused before any verification.
        BadName = "bad_name",
        /// Verified, but not above the last sequence held for its key in its run: a replay
        /// or a duplicate, which changes nothing.
        Replayed = "replayed",
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

impl ReportError {
    /// The rejection this error counts as.
    pub fn rejection(&self) -> ReportRejection {
        match self {
            ReportError::UnknownRegion(_) => ReportRejection::UnknownRegion,
            ReportError::Malformed => ReportRejection::Malformed,
            ReportError::BadSignature => ReportRejection::BadSignature,
            ReportError::WrongRegion { .. } => ReportRejection::WrongRegion,
            ReportError::WrongKey { .. } => ReportRejection::WrongKey,
        }
    }

    /// The rejection's name, for log lines.
    pub fn as_str(&self) -> &'static str {
        self.rejection().as_str()
    }
}

fn signed_message(cluster: &str, json: &str) -> Vec<u8> {
    let mut message = Vec::with_capacity(cluster.len() + 1 + json.len());
    message.extend_from_slice(cluster.as_bytes());
    message.push(b'\n');
    message.extend_from_slice(json.as_bytes());
    message
}

/// Signs `value` as `stamp`'s publisher's value for `key`.
pub fn sign<T: Serialize>(
    signing: &SigningKey,
    cluster: &str,
    stamp: &Stamp,
    key: &str,
    value: &T,
) -> String {
    let envelope = Envelope {
        region: stamp.region.to_string(),
        instance: stamp.instance.clone(),
        key: key.to_string(),
        epoch: stamp.epoch,
        seq: stamp.seq,
        issued_ms: stamp.issued_ms,
        value,
    };
    // Serialising plain structs of strings, numbers and addresses cannot fail.
    let json = serde_json::to_string(&envelope).unwrap_or_default();
    sign_json(signing, cluster, &json)
}

/// Signs `json` as it stands, envelope included: [`sign`]'s last step, public so that the fuzz
/// target `report_verify` can sign any text and reach [`verify`]'s JSON parsing.
pub fn sign_json(signing: &SigningKey, cluster: &str, json: &str) -> String {
    let signature = signing.sign(&signed_message(cluster, json));
    format!("{}.{json}", STANDARD.encode(signature))
}

/// A verified value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified<T> {
    pub stamp: Stamp,
    pub value: T,
}

/// Checks that `text`, published under `key` by gossip node `node` (`<region>/<instance>`), is
/// signed by that node's region and names that region, instance and key.
pub fn verify<T: for<'de> Deserialize<'de>>(
    text: &str,
    cluster: &str,
    node: &str,
    key: &str,
    region_keys: &RegionKeys,
) -> Result<Verified<T>, ReportError> {
    let (region, instance) = node.split_once('/').unwrap_or((node, ""));
    let (signature, json) = text.split_once('.').ok_or(ReportError::Malformed)?;
    let signature = STANDARD
        .decode(signature)
        .map_err(|_| ReportError::Malformed)?;
    let verifying = region_keys
        .get(region)
        .ok_or_else(|| ReportError::UnknownRegion(region.to_string()))?;
    if !verifying.verify(&signed_message(cluster, json), &signature) {
        return Err(ReportError::BadSignature);
    }
    let envelope: Envelope<T> = serde_json::from_str(json).map_err(|_| ReportError::Malformed)?;
    if envelope.region != region || envelope.instance != instance {
        return Err(ReportError::WrongRegion {
            signed: format!("{}/{}", envelope.region, envelope.instance),
            publisher: node.to_string(),
        });
    }
    if envelope.key != key {
        return Err(ReportError::WrongKey {
            signed: envelope.key,
            published: key.to_string(),
        });
    }
    Ok(Verified {
        stamp: Stamp {
            region: Region::new(&envelope.region),
            instance: envelope.instance,
            epoch: envelope.epoch,
            seq: envelope.seq,
            issued_ms: envelope.issued_ms,
        },
        value: envelope.value,
    })
}

/// The region a gossip node speaks for: node ids are `<region>/<instance>`.
pub fn region_of_node(node_id: &str) -> &str {
    node_id
        .split_once('/')
        .map_or(node_id, |(region, _)| region)
}

/// The instance part of a node id (`<region>/<instance>`).
pub fn instance_of_node(node_id: &str) -> &str {
    node_id.split_once('/').map_or("", |(_, instance)| instance)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gossip::keys::{VerifyingKey, generate};

    fn keys() -> (SigningKey, SigningKey, RegionKeys) {
        let (_, eu_seed, eu_public) = generate().unwrap();
        let (_, us_seed, us_public) = generate().unwrap();
        let mut public = RegionKeys::new();
        public.insert(
            "eu".to_string(),
            VerifyingKey::from_base64(&eu_public).unwrap(),
        );
        public.insert(
            "us".to_string(),
            VerifyingKey::from_base64(&us_public).unwrap(),
        );
        (
            SigningKey::from_base64(&eu_seed).unwrap(),
            SigningKey::from_base64(&us_seed).unwrap(),
            public,
        )
    }

    fn stamp(node: &str, seq: u64) -> Stamp {
        let (region, instance) = node.split_once('/').unwrap();
        Stamp {
            region: Region::new(region),
            instance: instance.to_string(),
            epoch: 7,
            seq,
            issued_ms: 42,
        }
    }

    fn report() -> ServiceReport {
        ServiceReport {
            health: Health::Healthy,
            addresses: vec!["192.0.2.1".parse().unwrap()],
            down: vec![],
            changed_ms: 5,
            failing_since_ms: None,
            drained: false,
            spec: None,
            weight: Some(30),
        }
    }

    #[test]
    fn a_signed_report_verifies_for_its_region_and_key() {
        let (eu, _, public) = keys();
        let key = "svc:app.gslb.example.com.";
        let text = sign(&eu, "c", &stamp("eu/0", 3), key, &report());
        let got: Verified<ServiceReport> = verify(&text, "c", "eu/0", key, &public).unwrap();
        assert_eq!(got.value, report());
        assert_eq!(got.stamp, stamp("eu/0", 3));
    }

    #[test]
    fn forged_moved_and_tampered_reports_are_rejected() {
        let (eu, us, public) = keys();
        let key = "svc:app.gslb.example.com.";
        // us signs a report claiming to be eu's: eu's key does not verify it.
        let forged = sign(&us, "c", &stamp("eu/0", 1), key, &report());
        assert_eq!(
            verify::<ServiceReport>(&forged, "c", "eu/0", key, &public).unwrap_err(),
            ReportError::BadSignature
        );
        // eu's genuine report republished by a us node.
        let genuine = sign(&eu, "c", &stamp("eu/0", 1), key, &report());
        assert_eq!(
            verify::<ServiceReport>(&genuine, "c", "us/0", key, &public).unwrap_err(),
            ReportError::BadSignature
        );
        // ... or by another instance of eu (a node a member made up, say).
        assert!(matches!(
            verify::<ServiceReport>(&genuine, "c", "eu/1", key, &public),
            Err(ReportError::WrongRegion { .. })
        ));
        // Moved to another key.
        assert!(matches!(
            verify::<ServiceReport>(&genuine, "c", "eu/0", "svc:other.", &public),
            Err(ReportError::WrongKey { .. })
        ));
        // Another cluster.
        assert_eq!(
            verify::<ServiceReport>(&genuine, "d", "eu/0", key, &public).unwrap_err(),
            ReportError::BadSignature
        );
        // Tampered JSON.
        let tampered = genuine.replace("192.0.2.1", "192.0.2.9");
        assert_eq!(
            verify::<ServiceReport>(&tampered, "c", "eu/0", key, &public).unwrap_err(),
            ReportError::BadSignature
        );
        assert_eq!(
            verify::<ServiceReport>("nonsense", "c", "eu/0", key, &public).unwrap_err(),
            ReportError::Malformed
        );
        assert!(matches!(
            verify::<ServiceReport>(&genuine, "c", "ap/0", key, &public),
            Err(ReportError::UnknownRegion(_))
        ));
    }

    #[test]
    fn a_report_with_a_strategy_we_do_not_know_is_malformed_not_guessed() {
        let (eu, _, public) = keys();
        let key = "svc:app.gslb.example.com.";
        let mut value = serde_json::to_value(ServiceReport {
            spec: Some(ServiceSpec {
                strategy: StrategyKind::Failover,
                order: vec!["eu".into()],
                weights: BTreeMap::new(),
                pick: None,
                ttl: 30,
                all_down: crate::model::AllDownPolicy::FailOpen,
            }),
            ..report()
        })
        .unwrap();
        let signed = sign(&eu, "c", &stamp("eu/0", 1), key, &value);
        assert!(verify::<ServiceReport>(&signed, "c", "eu/0", key, &public).is_ok());
        // A peer of a newer version, or a forger holding eu's key: a strategy named otherwise.
        value["s"]["k"] = serde_json::json!("nearest");
        let signed = sign(&eu, "c", &stamp("eu/0", 1), key, &value);
        assert_eq!(
            verify::<ServiceReport>(&signed, "c", "eu/0", key, &public).unwrap_err(),
            ReportError::Malformed
        );
    }

    #[test]
    fn names_refused_by_the_ownership_rule_are_counted_under_the_rule_s_labels() {
        for &refusal in Refusal::ALL {
            assert_eq!(ReportRejection::from(refusal).as_str(), refusal.as_str());
        }
    }

    #[test]
    fn node_ids_name_their_region() {
        assert_eq!(region_of_node("eu/pod-1"), "eu");
        assert_eq!(region_of_node("us"), "us");
    }
}
