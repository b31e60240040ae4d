//! `[gossip]`: how this node exchanges health with the other regions. Validation reads the key
//! files and parses every key, so a bad key is named with its field by `check-config` rather than
//! found when the first peer is contacted.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::Name;
use serde::Deserialize;

use super::problems::Problems;
use crate::gossip::keys::{Keyring, RegionKeys, SigningKey, VerifyingKey};
use crate::model::{Observe, Quorum, Region, RegionDef};

/// How this gslbd gossips with the other regions', keys parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GossipSettings {
    /// This node's region (the config's `local_region`).
    pub region: Region,
    /// Node name within the region, unique per replica.
    pub instance: String,
    pub listen: SocketAddr,
    /// The address peers reach this node at.
    pub advertise: SocketAddr,
    /// `host:port` of peers to start from; membership finds the rest.
    pub seeds: Vec<String>,
    /// Only nodes of the same cluster talk; bound into every seal and signature.
    pub cluster: String,
    /// The cluster keys: the first seals, all open (rotation).
    pub keyring: Arc<Keyring>,
    /// This region's signing key.
    pub signing_key: Arc<SigningKey>,
    /// Every region's public key, by region name.
    pub region_keys: Arc<RegionKeys>,
    pub interval: Duration,
    pub peer_suspect: Duration,
    pub peer_timeout: Duration,
    /// Probes of the other regions' targets; `None` when `observe_interval_ms = 0`.
    pub observe: Option<Observe>,
}

/// `observer_quorum` as written: "majority" or a number of observers.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawQuorum {
    Word(String),
    Count(i64),
}

impl Default for RawQuorum {
    fn default() -> Self {
        RawQuorum::Word("majority".into())
    }
}

/// `advertise` as written: one address, or one per instance (replicas sharing a config, each
/// behind its own load balancer address).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawAdvertise {
    One(SocketAddr),
    PerInstance(BTreeMap<String, SocketAddr>),
}

/// `[gossip]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGossip {
    listen: SocketAddr,
    advertise: Option<RawAdvertise>,
    #[serde(default)]
    seeds: Vec<String>,
    cluster: Option<String>,
    instance: Option<String>,
    #[serde(default)]
    keys: Vec<String>,
    /// A file with the cluster keys, one per line (e.g. a mounted Kubernetes Secret).
    keys_file: Option<PathBuf>,
    #[serde(default)]
    signing_key: String,
    /// A file holding the signing key (e.g. a mounted Kubernetes Secret).
    signing_key_file: Option<PathBuf>,
    region_keys: BTreeMap<String, String>,
    #[serde(default = "default_gossip_interval")]
    interval_ms: u64,
    #[serde(default = "default_peer_suspect")]
    peer_suspect_ms: u64,
    #[serde(default = "default_peer_timeout")]
    peer_timeout_ms: u64,
    /// Probe interval for the other regions' targets; 0 turns observing off.
    #[serde(default = "default_observe_interval")]
    observe_interval_ms: u64,
    #[serde(default)]
    observer_quorum: RawQuorum,
}

fn default_gossip_interval() -> u64 {
    250
}
fn default_peer_suspect() -> u64 {
    5_000
}
fn default_peer_timeout() -> u64 {
    15_000
}
/// Two seconds: with the default fall of 2, a region that dies whole leaves answers within
/// about 5 s of its last good probe, inside the 10 s such a loss must take.
fn default_observe_interval() -> u64 {
    2_000
}

impl RawGossip {
    /// Validates the table for `local_region`, reading key files it names.
    pub(super) fn validate(
        &self,
        local_region: Option<&RegionDef>,
        regions: &[RegionDef],
        zone: &Name,
        problems: &mut Problems,
    ) -> Option<GossipSettings> {
        let before = problems.0.len();
        let Some(local) = local_region else {
            problems.add(
                "gossip",
                "gossip needs local_region: the region this node speaks for",
            );
            return None;
        };
        let cluster = self
            .cluster
            .clone()
            .unwrap_or_else(|| zone.to_string().trim_end_matches('.').to_string());
        let read =
            |field: &str, path: &PathBuf, problems: &mut Problems| match std::fs::read_to_string(
                path,
            ) {
                Ok(text) => Some(text),
                Err(error) => {
                    problems.add(
                        format!("gossip.{field}"),
                        format!("cannot read {}: {error}", path.display()),
                    );
                    None
                }
            };
        let keys: Vec<String> = match (&self.keys_file, self.keys.is_empty()) {
            (Some(_), false) => {
                problems.add("gossip.keys_file", "give keys or keys_file, not both");
                Vec::new()
            }
            (Some(path), true) => read("keys_file", path, problems)
                .map(|text| {
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            (None, _) => self.keys.clone(),
        };
        let signing_key = match (&self.signing_key_file, self.signing_key.is_empty()) {
            (Some(_), false) => {
                problems.add(
                    "gossip.signing_key_file",
                    "give signing_key or signing_key_file, not both",
                );
                String::new()
            }
            (Some(path), true) => read("signing_key_file", path, problems)
                .map(|text| text.trim().to_string())
                .unwrap_or_default(),
            (None, _) => self.signing_key.clone(),
        };
        let keyring = Keyring::new(&cluster, &keys)
            .inspect_err(|error| {
                problems.add(
                    "gossip.keys",
                    format!("{error} (each key is base64 of 32 bytes)"),
                )
            })
            .ok();
        let signing_key = match SigningKey::from_base64(&signing_key) {
            Err(error) => {
                problems.add("gossip.signing_key", error.to_string());
                None
            }
            Ok(signing) => {
                if self.region_keys.get(local.name.as_str()) != Some(&signing.public_base64()) {
                    problems.add(
                        "gossip.signing_key",
                        format!("does not match gossip.region_keys.{}", local.name),
                    );
                }
                Some(signing)
            }
        };
        let mut region_keys = RegionKeys::new();
        for (region, key) in &self.region_keys {
            if !regions.iter().any(|r| r.name.as_str() == region) {
                problems.add(
                    format!("gossip.region_keys.{region}"),
                    format!("unknown region {region}"),
                );
            } else {
                match VerifyingKey::from_base64(key) {
                    Ok(key) => {
                        region_keys.insert(region.clone(), key);
                    }
                    Err(error) => {
                        problems.add(format!("gossip.region_keys.{region}"), error.to_string())
                    }
                }
            }
        }
        for region in regions {
            if !self.region_keys.contains_key(region.name.as_str()) {
                problems.add(
                    "gossip.region_keys",
                    format!("missing public key of region {}", region.name),
                );
            }
        }
        for (i, seed) in self.seeds.iter().enumerate() {
            let valid = seed.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
            if !valid {
                problems.add(
                    format!("gossip.seeds[{i}]"),
                    format!("{seed:?} is not host:port"),
                );
            }
        }
        if !(10..=60_000).contains(&self.interval_ms) {
            problems.add("gossip.interval_ms", "must be between 10 and 60000");
        }
        if self.peer_suspect_ms < 2 * self.interval_ms
            || self.peer_timeout_ms <= self.peer_suspect_ms
        {
            problems.add(
                "gossip.peer_timeout_ms",
                "need interval_ms * 2 <= peer_suspect_ms < peer_timeout_ms",
            );
        }
        let quorum = match &self.observer_quorum {
            RawQuorum::Word(word) if word == "majority" => Some(Quorum::Majority),
            RawQuorum::Count(n) if (1..=1000).contains(n) => Some(Quorum::AtLeast(*n as u32)),
            _ => {
                problems.add(
                    "gossip.observer_quorum",
                    "must be \"majority\" or a number of observers from 1 to 1000",
                );
                None
            }
        };
        if self.observe_interval_ms != 0 && !(100..=3_600_000).contains(&self.observe_interval_ms) {
            problems.add(
                "gossip.observe_interval_ms",
                "must be 0 (off) or between 100 and 3600000",
            );
        }
        let observe = quorum
            .filter(|_| self.observe_interval_ms > 0)
            .map(|quorum| Observe {
                interval: Duration::from_millis(self.observe_interval_ms),
                quorum,
            });
        // Replicas of one region need distinct names: the pod's name when Kubernetes gives it.
        let instance = self
            .instance
            .clone()
            .or_else(|| std::env::var("POD_NAME").ok())
            .unwrap_or_else(|| "0".into());
        if instance.is_empty() || instance.contains('/') {
            problems.add("gossip.instance", "must be non-empty, without '/'");
        }
        let advertise = match &self.advertise {
            None => Some(self.listen),
            Some(RawAdvertise::One(addr)) => Some(*addr),
            Some(RawAdvertise::PerInstance(addresses)) => {
                let found = addresses.get(&instance).copied();
                if found.is_none() {
                    problems.add(
                        "gossip.advertise",
                        format!(
                            "no address for instance {instance:?} (gossip.instance, else $POD_NAME); it has {:?}",
                            addresses.keys().collect::<Vec<_>>()
                        ),
                    );
                }
                found
            }
        };
        let (Some(keyring), Some(signing_key)) = (keyring, signing_key) else {
            return None;
        };
        (problems.0.len() == before).then(|| GossipSettings {
            region: local.name.clone(),
            instance,
            listen: self.listen,
            advertise: advertise.unwrap_or(self.listen),
            seeds: self.seeds.clone(),
            cluster,
            keyring: Arc::new(keyring),
            signing_key: Arc::new(signing_key),
            region_keys: Arc::new(region_keys),
            interval: Duration::from_millis(self.interval_ms),
            peer_suspect: Duration::from_millis(self.peer_suspect_ms),
            peer_timeout: Duration::from_millis(self.peer_timeout_ms),
            observe,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::super::fixture::{Fixture, assert_has};
    use crate::gossip::keys::{SigningKey, generate};
    use crate::model::{Observe, Quorum};

    /// A valid `[gossip]` table for region eu, as fields that tests replace or remove.
    struct Gossip {
        fields: BTreeMap<&'static str, String>,
        eu_seed: String,
        eu_public: String,
        us_public: String,
    }

    impl Gossip {
        fn valid() -> Self {
            let (cluster, eu_seed, eu_public) = generate().expect("keys");
            let (_, _, us_public) = generate().expect("keys");
            let fields = BTreeMap::from([
                ("listen", r#""127.0.0.1:7946""#.to_string()),
                ("keys", format!("[{cluster:?}]")),
                ("signing_key", format!("{eu_seed:?}")),
                (
                    "region_keys",
                    format!("{{ eu = {eu_public:?}, us = {us_public:?} }}"),
                ),
            ]);
            Self {
                fields,
                eu_seed,
                eu_public,
                us_public,
            }
        }

        fn set(mut self, field: &'static str, value: impl Into<String>) -> Self {
            self.fields.insert(field, value.into());
            self
        }

        fn without(mut self, field: &'static str) -> Self {
            self.fields.remove(field);
            self
        }

        /// The fixture with this table and `local_region` set to `local` (none when empty).
        fn in_region(&self, local: &str) -> Fixture {
            let table: Vec<String> = self
                .fields
                .iter()
                .map(|(field, value)| format!("{field} = {value}"))
                .collect();
            let fixture = Fixture::new().table(&format!("[gossip]\n{}", table.join("\n")));
            if local.is_empty() {
                fixture
            } else {
                fixture.top(&format!("local_region = {local:?}"))
            }
        }
    }

    #[test]
    fn valid_gossip_defaults_the_cluster_to_the_zone_and_advertises_the_listen_address() {
        let gossip = Gossip::valid().set("instance", "\"eu-1\"");
        let settings = gossip
            .in_region("eu")
            .config()
            .gossip
            .expect("gossip settings");
        assert_eq!(settings.region.as_str(), "eu");
        assert_eq!(settings.instance, "eu-1");
        assert_eq!(settings.cluster, "gslb.example.com");
        assert_eq!(settings.advertise, settings.listen);
        assert_eq!(
            settings.signing_key.public_base64(),
            SigningKey::from_base64(&gossip.eu_seed)
                .expect("a generated seed")
                .public_base64()
        );
        assert_eq!(
            settings.region_keys.keys().collect::<Vec<_>>(),
            ["eu", "us"],
            "every region's public key, parsed"
        );
        assert_eq!(settings.interval, Duration::from_millis(250));
        assert_eq!(settings.peer_suspect, Duration::from_secs(5));
        assert_eq!(settings.peer_timeout, Duration::from_secs(15));
        assert_eq!(
            settings.observe,
            Some(Observe {
                interval: Duration::from_secs(2),
                quorum: Quorum::Majority,
            }),
            "other regions' targets are observed by default"
        );
    }

    #[test]
    fn observing_is_tuned_or_turned_off_and_its_quorum_checked() {
        let observe = |gossip: Gossip| {
            gossip
                .in_region("eu")
                .config()
                .gossip
                .expect("valid")
                .observe
        };
        let tuned = Gossip::valid()
            .set("observe_interval_ms", "5000")
            .set("observer_quorum", "2");
        assert_eq!(
            observe(tuned),
            Some(Observe {
                interval: Duration::from_secs(5),
                quorum: Quorum::AtLeast(2),
            })
        );
        assert_eq!(
            observe(Gossip::valid().set("observe_interval_ms", "0")),
            None
        );
        for quorum in ["0", "\"most\"", "-1"] {
            Gossip::valid()
                .set("observer_quorum", quorum)
                .in_region("eu")
                .assert_refused("gossip.observer_quorum", "must be \"majority\" or a number");
        }
        Gossip::valid()
            .set("observe_interval_ms", "10")
            .in_region("eu")
            .assert_refused(
                "gossip.observe_interval_ms",
                "must be 0 (off) or between 100",
            );
    }

    #[test]
    fn replicas_sharing_a_config_advertise_each_its_own_address() {
        let per_instance = r#"{ gslbd-0 = "192.0.2.46:7946", gslbd-1 = "192.0.2.47:7946" }"#;
        let advertised = |instance: &str| {
            Gossip::valid()
                .set("advertise", per_instance)
                .set("instance", format!("{instance:?}"))
                .in_region("eu")
                .config()
                .gossip
                .expect("gossip settings")
                .advertise
                .to_string()
        };
        assert_eq!(advertised("gslbd-0"), "192.0.2.46:7946");
        assert_eq!(advertised("gslbd-1"), "192.0.2.47:7946");
        Gossip::valid()
            .set("advertise", per_instance)
            .set("instance", "\"gslbd-2\"")
            .in_region("eu")
            .assert_refused("gossip.advertise", "no address for instance \"gslbd-2\"");
    }

    #[test]
    fn gossip_needs_the_local_region() {
        Gossip::valid().in_region("").assert_refused(
            "gossip",
            "gossip needs local_region: the region this node speaks for",
        );
    }

    #[test]
    fn cluster_keys_are_32_bytes_of_base64() {
        Gossip::valid()
            .set("keys", r#"["c2hvcnQ="]"#)
            .in_region("eu")
            .assert_refused("gossip.keys", "expected 32 bytes, got 5");
        Gossip::valid()
            .set("keys_file", "\"/nonexistent/keys\"")
            .in_region("eu")
            .assert_refused("gossip.keys_file", "give keys or keys_file, not both");
    }

    #[test]
    fn the_signing_key_matches_the_local_regions_public_key() {
        Gossip::valid()
            .in_region("us")
            .assert_refused("gossip.signing_key", "does not match gossip.region_keys.us");
        let (_, other_seed, _) = generate().expect("keys");
        Gossip::valid()
            .set("signing_key", format!("{other_seed:?}"))
            .in_region("eu")
            .assert_refused("gossip.signing_key", "does not match gossip.region_keys.eu");
    }

    #[test]
    fn every_region_has_a_public_key_and_no_other_is_listed() {
        let gossip = Gossip::valid();
        let with_mars = format!(
            "{{ eu = {:?}, us = {:?}, mars = {:?} }}",
            gossip.eu_public, gossip.us_public, gossip.us_public
        );
        gossip
            .set("region_keys", with_mars)
            .in_region("eu")
            .assert_refused("gossip.region_keys.mars", "unknown region mars");
        let gossip = Gossip::valid();
        let eu_only = format!("{{ eu = {:?} }}", gossip.eu_public);
        gossip
            .set("region_keys", eu_only)
            .in_region("eu")
            .assert_refused("gossip.region_keys", "missing public key of region us");
    }

    #[test]
    fn seeds_and_timing_are_checked() {
        let problems = Gossip::valid()
            .set("seeds", r#"["peer.example.net:7946", "no-port"]"#)
            .set("interval_ms", "5")
            .in_region("eu")
            .problems();
        assert_has(
            &problems,
            "gossip.seeds[1]",
            r#""no-port" is not host:port"#,
        );
        assert_has(
            &problems,
            "gossip.interval_ms",
            "must be between 10 and 60000",
        );
        Gossip::valid()
            .set("peer_suspect_ms", "20000")
            .in_region("eu")
            .assert_refused(
                "gossip.peer_timeout_ms",
                "need interval_ms * 2 <= peer_suspect_ms < peer_timeout_ms",
            );
        Gossip::valid()
            .set("instance", "\"eu/1\"")
            .in_region("eu")
            .assert_refused("gossip.instance", "without '/'");
    }

    #[test]
    fn a_missing_signing_key_is_refused() {
        Gossip::valid()
            .without("signing_key")
            .in_region("eu")
            .assert_refused("gossip.signing_key", "expected 32 bytes, got 0");
    }
}
