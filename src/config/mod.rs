//! The configuration file (TOML): serde types as written, and their validation into [`Model`].
//!
//! Parsing is strict (`deny_unknown_fields`) and validation collects every problem with the path
//! of the field it concerns (`services[2].weights.us: weight must be positive`), so
//! `gslbd check-config` can list them all at once.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_proto::rr::Name;
use ipnet::IpNet;
use serde::Deserialize;

use crate::model::{
    AllDownPolicy, GeoTable, Health, Model, ProbeKind, ProbeSettings, Region, RegionDef, Service,
    Soa, Strategy, Target, TargetPolicy, Zone,
};

/// RFC 2181 §8: TTLs are 31-bit values.
const MAX_TTL: u32 = i32::MAX as u32;

/// A validated configuration: server settings plus the served model.
#[derive(Clone, Debug)]
pub struct Config {
    pub server: ServerSettings,
    pub model: Model,
    /// Cross-region gossip; `None` when the file has no `[gossip]` table.
    pub gossip: Option<GossipSettings>,
    /// Services discovered from Kubernetes; `None` when the file has no `[kubernetes]` table.
    pub kubernetes: Option<KubernetesSettings>,
}

/// Where and what to discover in Kubernetes (`[kubernetes]`).
#[derive(Clone, Debug, PartialEq)]
pub struct KubernetesSettings {
    /// API server URL (e.g. `http://127.0.0.1:8001` from `kubectl proxy`); in-cluster config
    /// or the kubeconfig when `None`.
    pub api_server: Option<String>,
    /// Namespaces to watch; every namespace when empty.
    pub namespaces: Vec<String>,
    pub ingresses: bool,
    pub load_balancer_services: bool,
    /// Gateway API HTTPRoutes and Gateways.
    pub gateway_api: bool,
    /// How often host names in load balancer statuses are resolved again.
    pub resolve_interval: Duration,
    /// Publish Kubernetes Events on the objects (what was balanced, what was skipped and why).
    pub events: bool,
    /// Keep an ExternalDNS `DNSEndpoint` (namespace, name) with the zone's delegation.
    pub dns_endpoint: Option<(String, String)>,
    /// What discovered services start from.
    pub defaults: crate::kubernetes::discover::Defaults,
}

/// How this gslbd gossips with the other regions' (validated: keys parse).
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
    /// Base64 keys, 32 bytes each: the first seals, all open (rotation).
    pub keys: Vec<String>,
    /// Base64 Ed25519 seed of this region's signing key.
    pub signing_key: String,
    /// Base64 Ed25519 public key of every region.
    pub region_keys: BTreeMap<String, String>,
    pub interval: Duration,
    pub peer_suspect: Duration,
    pub peer_timeout: Duration,
}

/// How the DNS listeners run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerSettings {
    /// Addresses to serve DNS on, UDP and TCP each.
    pub listen: Vec<SocketAddr>,
    /// Largest UDP response we send (RFC 6891 §6.2.5; 1232 avoids fragmentation).
    pub max_udp_payload: u16,
    /// UDP sockets (SO_REUSEPORT) and threads per listen address on the fast path.
    pub udp_workers: usize,
    /// Answer UDP on gslbd's own loop (true) or through hickory-server (false).
    pub udp_fast_path: bool,
    /// Idle time after which a TCP connection is closed.
    pub tcp_idle_timeout: Duration,
    /// Where the admin endpoint (/metrics, /healthz, /readyz, /state, /explain) listens; off
    /// when `None`.
    pub admin: Option<SocketAddr>,
    /// Also count answers per service (`gslbd_dns_service_answers_total`): one series per
    /// service, strategy and result, so off by default.
    pub per_service_metrics: bool,
}

/// One problem in a configuration, with the path of the field it concerns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub path: String,
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.reason)
        } else {
            write!(f, "{}: {}", self.path, self.reason)
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{}", list(.0))]
    Invalid(Vec<Problem>),
}

fn list(problems: &[Problem]) -> String {
    let lines: Vec<String> = problems.iter().map(Problem::to_string).collect();
    lines.join("\n")
}

impl ConfigError {
    /// The individual problems (empty for read errors).
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid(problems) => problems,
        }
    }
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text)
}

/// Parses and validates configuration text.
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    let deserializer = toml::Deserializer::parse(text).map_err(|e| {
        ConfigError::Invalid(vec![Problem {
            path: String::new(),
            reason: one_line(&e.to_string()),
        }])
    })?;
    let raw: RawConfig = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let reason = one_line(&e.into_inner().to_string());
        ConfigError::Invalid(vec![Problem {
            path: if path == "." { String::new() } else { path },
            reason,
        }])
    })?;
    let mut problems = Problems::default();
    let config = raw.validate(&mut problems);
    if problems.0.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid(problems.0))
    }
}

/// toml's messages carry a source excerpt over several lines; keep the location and the reason.
fn one_line(message: &str) -> String {
    let mut parts = message.lines().map(str::trim).filter(|l| {
        !l.is_empty() && !l.starts_with('|') && !l.chars().all(|c| c == '^' || c == ' ')
    });
    let mut out = String::new();
    for part in parts.by_ref() {
        // Lines like "5 | foo = 1" are the excerpt.
        if part
            .split_once('|')
            .is_some_and(|(n, _)| n.trim().chars().all(|c| c.is_ascii_digit()))
        {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(part);
    }
    out
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, path: impl Into<String>, reason: impl Into<String>) {
        self.0.push(Problem {
            path: path.into(),
            reason: reason.into(),
        });
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    /// This gslbd's region: its targets are probed.
    local_region: Option<String>,
    #[serde(default)]
    server: RawServer,
    #[serde(default)]
    probe: RawProbe,
    gossip: Option<RawGossip>,
    kubernetes: Option<RawKubernetes>,
    zone: RawZone,
    regions: Vec<RawRegion>,
    #[serde(default)]
    geo: Option<RawGeo>,
    #[serde(default)]
    services: Vec<RawService>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawKubernetes {
    api_server: Option<String>,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default = "default_true")]
    ingresses: bool,
    #[serde(default = "default_true")]
    load_balancer_services: bool,
    #[serde(default = "default_true")]
    gateway_api: bool,
    #[serde(default = "default_resolve_interval")]
    resolve_interval_secs: u64,
    #[serde(default = "default_true")]
    events: bool,
    dns_endpoint: Option<String>,
}

fn default_resolve_interval() -> u64 {
    30
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    #[serde(default = "default_listen")]
    listen: Vec<SocketAddr>,
    #[serde(default = "default_max_udp_payload")]
    max_udp_payload: u16,
    #[serde(default = "default_udp_workers")]
    udp_workers: usize,
    #[serde(default = "default_true")]
    udp_fast_path: bool,
    #[serde(default = "default_tcp_idle_timeout")]
    tcp_idle_timeout_secs: u64,
    admin: Option<SocketAddr>,
    #[serde(default)]
    per_service_metrics: bool,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            max_udp_payload: default_max_udp_payload(),
            udp_workers: default_udp_workers(),
            udp_fast_path: true,
            tcp_idle_timeout_secs: default_tcp_idle_timeout(),
            admin: None,
            per_service_metrics: false,
        }
    }
}

fn default_listen() -> Vec<SocketAddr> {
    vec![SocketAddr::from(([127, 0, 0, 1], 5353))]
}
fn default_max_udp_payload() -> u16 {
    1232
}
fn default_udp_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}
fn default_true() -> bool {
    true
}
fn default_tcp_idle_timeout() -> u64 {
    10
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawZone {
    name: String,
    #[serde(default = "default_ttl")]
    ttl: u32,
    #[serde(default = "default_ns_ttl")]
    ns_ttl: u32,
    #[serde(default)]
    all_down: AllDownPolicy,
    #[serde(default = "default_time_bucket_ms")]
    time_bucket_ms: u64,
    #[serde(default)]
    soa: RawSoa,
}

fn default_time_bucket_ms() -> u64 {
    1000
}

fn default_ttl() -> u32 {
    30
}
fn default_ns_ttl() -> u32 {
    3600
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSoa {
    mname: Option<String>,
    rname: Option<String>,
    #[serde(default = "one")]
    serial: u32,
    #[serde(default = "soa_refresh")]
    refresh: u32,
    #[serde(default = "soa_retry")]
    retry: u32,
    #[serde(default = "soa_expire")]
    expire: u32,
    #[serde(default = "soa_minimum")]
    minimum: u32,
    #[serde(default = "soa_minimum")]
    ttl: u32,
}

impl Default for RawSoa {
    fn default() -> Self {
        Self {
            mname: None,
            rname: None,
            serial: one(),
            refresh: soa_refresh(),
            retry: soa_retry(),
            expire: soa_expire(),
            minimum: soa_minimum(),
            ttl: soa_minimum(),
        }
    }
}

fn one() -> u32 {
    1
}
fn soa_refresh() -> u32 {
    3600
}
fn soa_retry() -> u32 {
    600
}
fn soa_expire() -> u32 {
    86400
}
fn soa_minimum() -> u32 {
    60
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegion {
    name: String,
    nameserver: Option<String>,
    #[serde(default)]
    glue: Vec<IpAddr>,
    location: Option<[f64; 2]>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGeo {
    default_region: Option<String>,
    #[serde(default)]
    networks: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum StrategyName {
    RoundRobin,
    Weighted,
    Failover,
    Geo,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    name: String,
    strategy: StrategyName,
    ttl: Option<u32>,
    failover_order: Option<Vec<String>>,
    weights: Option<BTreeMap<String, i64>>,
    pick: Option<i64>,
    targets: BTreeMap<String, Vec<IpAddr>>,
    #[serde(default)]
    health: BTreeMap<String, Health>,
    all_down: Option<AllDownPolicy>,
    #[serde(default)]
    probe: RawProbe,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGossip {
    listen: SocketAddr,
    advertise: Option<SocketAddr>,
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

impl RawGossip {
    fn validate(
        &self,
        local_region: Option<&RegionDef>,
        regions: &[RegionDef],
        zone: &Name,
        problems: &mut Problems,
    ) -> Option<GossipSettings> {
        use crate::gossip::keys::{Keyring, SigningKey, VerifyingKey};
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
        if let Err(error) = Keyring::new(&cluster, &keys) {
            problems.add(
                "gossip.keys",
                format!("{error} (each key is base64 of 32 bytes)"),
            );
        }
        match SigningKey::from_base64(&signing_key) {
            Err(error) => problems.add("gossip.signing_key", error.to_string()),
            Ok(signing) => {
                if self.region_keys.get(local.name.as_str()) != Some(&signing.public_base64()) {
                    problems.add(
                        "gossip.signing_key",
                        format!("does not match gossip.region_keys.{}", local.name),
                    );
                }
            }
        }
        for (region, key) in &self.region_keys {
            if !regions.iter().any(|r| r.name.as_str() == region) {
                problems.add(
                    format!("gossip.region_keys.{region}"),
                    format!("unknown region {region}"),
                );
            } else if let Err(error) = VerifyingKey::from_base64(key) {
                problems.add(format!("gossip.region_keys.{region}"), error.to_string());
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
        // Replicas of one region need distinct names: the pod's name when Kubernetes gives it.
        let instance = self
            .instance
            .clone()
            .or_else(|| std::env::var("POD_NAME").ok())
            .unwrap_or_else(|| "0".into());
        if instance.is_empty() || instance.contains('/') {
            problems.add("gossip.instance", "must be non-empty, without '/'");
        }
        if self.listen.port() == 0 && self.advertise.is_none() {
            // Fine for tests: the bound port is advertised.
        }
        (problems.0.len() == before).then(|| GossipSettings {
            region: local.name.clone(),
            instance,
            listen: self.listen,
            advertise: self.advertise.unwrap_or(self.listen),
            seeds: self.seeds.clone(),
            cluster,
            keys,
            signing_key,
            region_keys: self.region_keys.clone(),
            interval: Duration::from_millis(self.interval_ms),
            peer_suspect: Duration::from_millis(self.peer_suspect_ms),
            peer_timeout: Duration::from_millis(self.peer_timeout_ms),
        })
    }
}

/// Probe settings: the top-level `[probe]` gives defaults, `[services.probe]` overrides them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProbe {
    kind: Option<ProbeKind>,
    port: Option<u16>,
    path: Option<String>,
    host: Option<String>,
    expect_status: Option<Vec<String>>,
    body_contains: Option<String>,
    ca_file: Option<String>,
    insecure_skip_verify: Option<bool>,
    interval_ms: Option<u64>,
    timeout_ms: Option<u64>,
    rise: Option<u32>,
    fall: Option<u32>,
    target_policy: Option<TargetPolicy>,
    /// Top level only: probes in flight at once.
    max_concurrency: Option<usize>,
}

/// Defaults: a probe a second, a verdict after two agreeing results (so one lost packet or one
/// slow answer changes nothing, and a dead target leaves answers ~2-3 s after it died), and a
/// timeout below the interval so probes of one target never overlap.
const DEFAULT_PROBE_INTERVAL_MS: u64 = 1000;
const DEFAULT_PROBE_TIMEOUT_MS: u64 = 800;
const DEFAULT_RISE: u32 = 2;
const DEFAULT_FALL: u32 = 2;
const DEFAULT_PROBE_CONCURRENCY: usize = 64;

impl RawProbe {
    /// This table's values where set, else `defaults`'.
    fn or(&self, defaults: &RawProbe) -> RawProbe {
        RawProbe {
            kind: self.kind.or(defaults.kind),
            port: self.port.or(defaults.port),
            path: self.path.clone().or_else(|| defaults.path.clone()),
            host: self.host.clone().or_else(|| defaults.host.clone()),
            expect_status: self
                .expect_status
                .clone()
                .or_else(|| defaults.expect_status.clone()),
            body_contains: self
                .body_contains
                .clone()
                .or_else(|| defaults.body_contains.clone()),
            ca_file: self.ca_file.clone().or_else(|| defaults.ca_file.clone()),
            insecure_skip_verify: self.insecure_skip_verify.or(defaults.insecure_skip_verify),
            interval_ms: self.interval_ms.or(defaults.interval_ms),
            timeout_ms: self.timeout_ms.or(defaults.timeout_ms),
            rise: self.rise.or(defaults.rise),
            fall: self.fall.or(defaults.fall),
            target_policy: self.target_policy.or(defaults.target_policy),
            max_concurrency: None,
        }
    }

    /// HTTP-only fields set in this very table while the probe is TCP.
    fn check_http_fields(&self, kind: Option<ProbeKind>, path: &str, problems: &mut Problems) {
        if kind == Some(ProbeKind::Tcp)
            && (self.body_contains.is_some() || self.expect_status.is_some())
        {
            problems.add(
                path,
                "body_contains and expect_status need an HTTP(S) probe",
            );
        }
    }

    fn is_empty(&self) -> bool {
        self.kind.is_none()
            && self.port.is_none()
            && self.path.is_none()
            && self.host.is_none()
            && self.expect_status.is_none()
            && self.body_contains.is_none()
            && self.ca_file.is_none()
            && self.insecure_skip_verify.is_none()
            && self.interval_ms.is_none()
            && self.timeout_ms.is_none()
            && self.rise.is_none()
            && self.fall.is_none()
            && self.target_policy.is_none()
            && self.max_concurrency.is_none()
    }

    /// Validates settings (a service's merged with the defaults); `path` names the table.
    fn validate(&self, path: &str, problems: &mut Problems) -> ProbeSettings {
        let kind = self.kind.unwrap_or_default();
        let port = self.port.unwrap_or(match kind {
            ProbeKind::Https => 443,
            _ => 80,
        });
        if port == 0 {
            problems.add(format!("{path}.port"), "must be between 1 and 65535");
        }
        let http_path = self.path.clone().unwrap_or_else(|| "/".into());
        if !http_path.starts_with('/')
            || http_path
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            problems.add(
                format!("{path}.path"),
                format!("{http_path:?} must start with '/' and hold no spaces"),
            );
        }
        let host = self.host.as_ref().and_then(|host| match parse_name(host) {
            Ok(_) => Some(host.trim_end_matches('.').to_ascii_lowercase()),
            Err(reason) => {
                problems.add(format!("{path}.host"), reason);
                None
            }
        });
        let mut expect_status = Vec::new();
        for (i, text) in self
            .expect_status
            .clone()
            .unwrap_or_else(|| vec!["200-399".into()])
            .iter()
            .enumerate()
        {
            match parse_status_range(text) {
                Some(range) => expect_status.push(range),
                None => problems.add(
                    format!("{path}.expect_status[{i}]"),
                    format!(
                        "{text:?} is not a status code or range within 100-599 (e.g. \"200-399\")"
                    ),
                ),
            }
        }
        let interval_ms = self.interval_ms.unwrap_or(DEFAULT_PROBE_INTERVAL_MS);
        let timeout_ms = self.timeout_ms.unwrap_or(DEFAULT_PROBE_TIMEOUT_MS);
        if !(50..=3_600_000).contains(&interval_ms) {
            problems.add(
                format!("{path}.interval_ms"),
                "must be between 50 and 3600000",
            );
        }
        if timeout_ms == 0 || timeout_ms >= interval_ms {
            problems.add(
                format!("{path}.timeout_ms"),
                format!("must be positive and below interval_ms ({interval_ms})"),
            );
        }
        let rise = self.rise.unwrap_or(DEFAULT_RISE);
        let fall = self.fall.unwrap_or(DEFAULT_FALL);
        for (field, value) in [("rise", rise), ("fall", fall)] {
            if !(1..=100).contains(&value) {
                problems.add(format!("{path}.{field}"), "must be between 1 and 100");
            }
        }
        let insecure_skip_verify = self.insecure_skip_verify.unwrap_or(false);
        let ca_file = self.ca_file.as_ref().map(std::path::PathBuf::from);
        if kind != ProbeKind::Https && (ca_file.is_some() || insecure_skip_verify) {
            let field = if ca_file.is_some() {
                "ca_file"
            } else {
                "insecure_skip_verify"
            };
            problems.add(
                format!("{path}.{field}"),
                "only valid with kind = \"https\"",
            );
        }
        if let Some(file) = &ca_file {
            if insecure_skip_verify {
                problems.add(
                    format!("{path}.ca_file"),
                    "give either ca_file or insecure_skip_verify, not both",
                );
            }
            if let Err(error) = std::fs::metadata(file) {
                problems.add(
                    format!("{path}.ca_file"),
                    format!("cannot read {}: {error}", file.display()),
                );
            }
        }
        ProbeSettings {
            kind,
            port,
            path: http_path,
            host,
            expect_status,
            body_contains: self.body_contains.clone(),
            ca_file,
            insecure_skip_verify,
            interval: Duration::from_millis(interval_ms.max(1)),
            timeout: Duration::from_millis(timeout_ms.max(1)),
            rise: rise.clamp(1, 100),
            fall: fall.clamp(1, 100),
            target_policy: self.target_policy.unwrap_or_default(),
        }
    }
}

/// "200", or "200-399".
fn parse_status_range(text: &str) -> Option<(u16, u16)> {
    let (low, high) = match text.split_once('-') {
        Some((low, high)) => (low.trim().parse().ok()?, high.trim().parse().ok()?),
        None => {
            let code = text.trim().parse().ok()?;
            (code, code)
        }
    };
    ((100..=599).contains(&low) && (100..=599).contains(&high) && low <= high)
        .then_some((low, high))
}

/// Parses a domain name given in config; returns it lowercase and fully qualified.
fn parse_name(text: &str) -> Result<Name, String> {
    if text.is_empty() {
        return Err("empty name".into());
    }
    let mut name = Name::from_ascii(text).map_err(|e| format!("invalid name {text:?}: {e}"))?;
    if name.iter().any(|l| l.is_empty()) {
        return Err(format!("invalid name {text:?}: empty label"));
    }
    if name.iter().any(|l| {
        !l.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    }) {
        return Err(format!(
            "invalid name {text:?}: only letters, digits, '-' and '_' are allowed in labels"
        ));
    }
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}

fn valid_region_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl RawConfig {
    fn validate(self, problems: &mut Problems) -> Config {
        let server = self.server.validate(problems);
        let origin = match parse_name(&self.zone.name) {
            Ok(name) if name.is_root() => {
                problems.add("zone.name", "the root zone cannot be served");
                name
            }
            Ok(name) => name,
            Err(reason) => {
                problems.add("zone.name", reason);
                Name::root()
            }
        };

        let regions = validate_regions(&self.regions, &origin, problems);
        let region_index = |name: &str| regions.iter().position(|r| r.name.as_str() == name);

        let zone = self.zone.validate(&origin, &regions, problems);
        let default_probe = self.probe.validate("probe", problems);
        self.probe
            .check_http_fields(self.probe.kind, "probe", problems);
        let local_region = self.local_region.as_ref().and_then(|name| {
            let index = region_index(name);
            if index.is_none() {
                problems.add("local_region", format!("unknown region {name}"));
            }
            index
        });
        let probe_concurrency = self
            .probe
            .max_concurrency
            .unwrap_or(DEFAULT_PROBE_CONCURRENCY);
        if !(1..=10_000).contains(&probe_concurrency) {
            problems.add("probe.max_concurrency", "must be between 1 and 10000");
        }
        let geo = match &self.geo {
            Some(geo) => geo.validate(&region_index, problems),
            None => GeoTable::default(),
        };

        let mut services = Vec::with_capacity(self.services.len());
        let mut seen: HashSet<Name> = HashSet::new();
        let reserved: HashSet<Name> = regions
            .iter()
            .filter_map(|r| r.nameserver.clone())
            .collect();
        for (i, raw) in self.services.iter().enumerate() {
            let path = format!("services[{i}]");
            let Some(service) = raw.validate(
                &path,
                &ServiceDefaults {
                    origin: &origin,
                    zone: &self.zone,
                    raw_probe: &self.probe,
                    probe: &default_probe,
                },
                &regions,
                &region_index,
                self.geo.is_some(),
                problems,
            ) else {
                continue;
            };
            if reserved.contains(&service.name) {
                problems.add(
                    format!("{path}.name"),
                    format!("{} is a region nameserver name", service.name),
                );
            } else if !seen.insert(service.name.clone()) {
                problems.add(
                    format!("{path}.name"),
                    format!("duplicate service {}", service.name),
                );
            } else {
                services.push(service);
            }
        }

        let gossip = self.gossip.as_ref().and_then(|g| {
            g.validate(
                local_region.map(|i| &regions[i]),
                &regions,
                &origin,
                problems,
            )
        });
        let kubernetes = self.kubernetes.as_ref().and_then(|k| {
            let Some(local) = local_region else {
                problems.add(
                    "kubernetes",
                    "needs local_region: discovered objects are this region's targets",
                );
                return None;
            };
            if k.resolve_interval_secs == 0 {
                problems.add("kubernetes.resolve_interval_secs", "must be positive");
            }
            if let Some(url) = &k.api_server
                && !(url.starts_with("http://") || url.starts_with("https://"))
            {
                problems.add(
                    "kubernetes.api_server",
                    format!("{url:?} is not an http:// or https:// URL"),
                );
            }
            if !(k.ingresses || k.load_balancer_services || k.gateway_api) {
                problems.add("kubernetes", "every source is off: nothing to discover");
            }
            let dns_endpoint =
                k.dns_endpoint
                    .as_ref()
                    .and_then(|text| match text.split_once('/') {
                        Some((ns, name)) if !ns.is_empty() && !name.is_empty() => {
                            Some((ns.to_string(), name.to_string()))
                        }
                        _ => {
                            problems.add(
                                "kubernetes.dns_endpoint",
                                format!("{text:?} is not namespace/name"),
                            );
                            None
                        }
                    });
            Some(KubernetesSettings {
                dns_endpoint,
                api_server: k.api_server.clone(),
                namespaces: k.namespaces.clone(),
                ingresses: k.ingresses,
                load_balancer_services: k.load_balancer_services,
                gateway_api: k.gateway_api,
                resolve_interval: Duration::from_secs(k.resolve_interval_secs.max(1)),
                events: k.events,
                defaults: crate::kubernetes::discover::Defaults {
                    zone: origin.clone(),
                    regions: regions.clone(),
                    local_region: local,
                    ttl: self.zone.ttl,
                    all_down: self.zone.all_down,
                    probe: default_probe.clone(),
                },
            })
        });
        Config {
            server,
            gossip,
            kubernetes,
            model: Model {
                zone,
                regions,
                services,
                geo,
                local_region,
                probe_concurrency: probe_concurrency.clamp(1, 10_000),
            },
        }
    }
}

impl RawServer {
    fn validate(self, problems: &mut Problems) -> ServerSettings {
        if self.listen.is_empty() {
            problems.add("server.listen", "at least one address is needed");
        }
        let mut seen = HashSet::new();
        for (i, addr) in self.listen.iter().enumerate() {
            if !seen.insert(addr) {
                problems.add(format!("server.listen[{i}]"), format!("duplicate {addr}"));
            }
        }
        if self.max_udp_payload < 512 {
            problems.add(
                "server.max_udp_payload",
                format!("{} is below the DNS minimum of 512", self.max_udp_payload),
            );
        }
        if self.udp_workers == 0 || self.udp_workers > 64 {
            problems.add("server.udp_workers", "must be between 1 and 64");
        }
        if self.tcp_idle_timeout_secs == 0 {
            problems.add("server.tcp_idle_timeout_secs", "must be positive");
        }
        ServerSettings {
            listen: self.listen,
            max_udp_payload: self.max_udp_payload.max(512),
            udp_workers: self.udp_workers.clamp(1, 64),
            udp_fast_path: self.udp_fast_path,
            tcp_idle_timeout: Duration::from_secs(self.tcp_idle_timeout_secs),
            admin: self.admin,
            per_service_metrics: self.per_service_metrics,
        }
    }
}

fn validate_regions(raw: &[RawRegion], origin: &Name, problems: &mut Problems) -> Vec<RegionDef> {
    if raw.is_empty() {
        problems.add("regions", "at least one region is needed");
    }
    if !raw.is_empty() && raw.iter().all(|r| r.nameserver.is_none()) {
        problems.add(
            "regions",
            "at least one region needs a nameserver: the zone needs an NS record",
        );
    }
    let mut regions: Vec<RegionDef> = Vec::with_capacity(raw.len());
    for (i, region) in raw.iter().enumerate() {
        let path = format!("regions[{i}]");
        if !valid_region_name(&region.name) {
            problems.add(
                format!("{path}.name"),
                format!(
                    "invalid region name {:?}: use lowercase letters, digits and '-'",
                    region.name
                ),
            );
            continue;
        }
        if regions.iter().any(|r| r.name.as_str() == region.name) {
            problems.add(
                format!("{path}.name"),
                format!("duplicate region {}", region.name),
            );
            continue;
        }
        let nameserver = match region.nameserver.as_deref().map(parse_name) {
            None => {
                if !region.glue.is_empty() {
                    problems.add(format!("{path}.glue"), "glue needs a nameserver");
                }
                None
            }
            Some(Ok(name)) => Some(name),
            Some(Err(reason)) => {
                problems.add(format!("{path}.nameserver"), reason);
                continue;
            }
        };
        if let Some(nameserver) = &nameserver {
            if nameserver == origin {
                problems.add(
                    format!("{path}.nameserver"),
                    "the nameserver cannot be the zone apex",
                );
            }
            if origin.zone_of(nameserver) && region.glue.is_empty() {
                problems.add(
                    format!("{path}.glue"),
                    format!("{nameserver} is inside the zone, so it needs glue addresses"),
                );
            }
            if let Some(dup) = regions
                .iter()
                .find(|r| r.nameserver.as_ref() == Some(nameserver))
            {
                problems.add(
                    format!("{path}.nameserver"),
                    format!("{nameserver} is already region {}'s nameserver", dup.name),
                );
            }
        }
        let location = region.location.and_then(|[lat, lon]| {
            if (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) {
                Some((lat, lon))
            } else {
                problems.add(
                    format!("{path}.location"),
                    "expected [latitude, longitude] within [-90, 90] and [-180, 180]",
                );
                None
            }
        });
        regions.push(RegionDef {
            name: Region::new(&region.name),
            nameserver,
            glue: region.glue.clone(),
            location,
        });
    }
    regions
}

impl RawZone {
    fn validate(&self, origin: &Name, regions: &[RegionDef], problems: &mut Problems) -> Zone {
        let soa = &self.soa;
        let mname = match &soa.mname {
            Some(text) => parse_name(text).unwrap_or_else(|reason| {
                problems.add("zone.soa.mname", reason);
                Name::root()
            }),
            None => regions
                .iter()
                .find_map(|r| r.nameserver.clone())
                .unwrap_or_else(Name::root),
        };
        let rname = match &soa.rname {
            Some(text) => parse_name(text).unwrap_or_else(|reason| {
                problems.add("zone.soa.rname", reason);
                Name::root()
            }),
            None => Name::from_ascii("hostmaster")
                .and_then(|h| h.append_domain(origin))
                .unwrap_or_else(|_| origin.clone()),
        };
        for (field, value) in [
            ("refresh", soa.refresh),
            ("retry", soa.retry),
            ("expire", soa.expire),
            ("minimum", soa.minimum),
            ("ttl", soa.ttl),
        ] {
            if value > MAX_TTL {
                problems.add(format!("zone.soa.{field}"), "must be below 2^31");
            }
        }
        if !(1..=3_600_000).contains(&self.time_bucket_ms) {
            problems.add("zone.time_bucket_ms", "must be between 1 and 3600000");
        }
        for (field, value) in [("zone.ttl", self.ttl), ("zone.ns_ttl", self.ns_ttl)] {
            if value > MAX_TTL {
                problems.add(field, "must be below 2^31");
            }
        }
        Zone {
            origin: origin.clone(),
            soa: Soa {
                mname,
                rname,
                serial: soa.serial,
                refresh: soa.refresh,
                retry: soa.retry,
                expire: soa.expire,
                minimum: soa.minimum,
                ttl: soa.ttl,
            },
            ns_ttl: self.ns_ttl,
            time_bucket_ms: self.time_bucket_ms.max(1),
        }
    }
}

impl RawGeo {
    fn validate(
        &self,
        region_index: &dyn Fn(&str) -> Option<usize>,
        problems: &mut Problems,
    ) -> GeoTable {
        let default_region = self.default_region.as_ref().and_then(|name| {
            let index = region_index(name);
            if index.is_none() {
                problems.add("geo.default_region", format!("unknown region {name}"));
            }
            index
        });
        let mut networks: Vec<(IpNet, usize)> = Vec::new();
        for (cidr, region) in &self.networks {
            let path = format!("geo.networks.\"{cidr}\"");
            let net = match cidr.parse::<IpNet>() {
                Ok(net) => net.trunc(),
                Err(_) => {
                    problems.add(&path, format!("invalid CIDR {cidr:?}"));
                    continue;
                }
            };
            let Some(index) = region_index(region) else {
                problems.add(&path, format!("unknown region {region}"));
                continue;
            };
            if networks.iter().any(|(n, _)| *n == net) {
                problems.add(&path, format!("network {net} is listed twice"));
                continue;
            }
            networks.push((net, index));
        }
        GeoTable {
            networks,
            default_region,
        }
    }
}

/// What a service inherits from the rest of the file.
struct ServiceDefaults<'a> {
    origin: &'a Name,
    zone: &'a RawZone,
    raw_probe: &'a RawProbe,
    probe: &'a ProbeSettings,
}

impl RawService {
    fn validate(
        &self,
        path: &str,
        defaults: &ServiceDefaults<'_>,
        regions: &[RegionDef],
        region_index: &dyn Fn(&str) -> Option<usize>,
        has_geo_table: bool,
        problems: &mut Problems,
    ) -> Option<Service> {
        let (origin, zone) = (defaults.origin, defaults.zone);
        let before = problems.0.len();
        let name = match parse_name(&self.name) {
            Ok(name) if !origin.zone_of(&name) => {
                problems.add(
                    format!("{path}.name"),
                    format!("{name} is outside zone {origin}"),
                );
                None
            }
            Ok(name) if &name == origin => {
                problems.add(
                    format!("{path}.name"),
                    "the zone apex cannot be a service (it holds SOA and NS)",
                );
                None
            }
            Ok(name) if name.is_wildcard() => {
                problems.add(
                    format!("{path}.name"),
                    "wildcard services are not supported",
                );
                None
            }
            Ok(name) => Some(name),
            Err(reason) => {
                problems.add(format!("{path}.name"), reason);
                None
            }
        };

        let ttl = self.ttl.unwrap_or(zone.ttl);
        if ttl > MAX_TTL {
            problems.add(format!("{path}.ttl"), "must be below 2^31");
        }

        let mut targets = Vec::new();
        if self.targets.is_empty() {
            problems.add(
                format!("{path}.targets"),
                "at least one region needs targets",
            );
        }
        for (region, addresses) in &self.targets {
            let tpath = format!("{path}.targets.{region}");
            let Some(index) = region_index(region) else {
                problems.add(&tpath, format!("unknown region {region}"));
                continue;
            };
            if addresses.is_empty() {
                problems.add(&tpath, "no addresses");
                continue;
            }
            let mut seen = HashSet::new();
            for addr in addresses {
                if !seen.insert(addr) {
                    problems.add(&tpath, format!("duplicate address {addr}"));
                }
                if addr.is_unspecified() || addr.is_multicast() {
                    problems.add(&tpath, format!("{addr} cannot be a service address"));
                }
            }
            targets.push(Target {
                region: index,
                addresses: addresses.clone(),
                health: self.health.get(region).copied(),
                backends: None,
            });
        }
        targets.sort_by_key(|t| t.region);
        for region in self.health.keys() {
            if !self.targets.contains_key(region) {
                problems.add(
                    format!("{path}.health.{region}"),
                    format!("region {region} has no targets for this service"),
                );
            }
        }

        let strategy = self.strategy(path, regions, region_index, has_geo_table, problems);
        if self.probe.max_concurrency.is_some() {
            problems.add(
                format!("{path}.probe.max_concurrency"),
                "only valid in the top-level [probe] table",
            );
        }
        self.probe.check_http_fields(
            self.probe.kind.or(defaults.raw_probe.kind),
            &format!("{path}.probe"),
            problems,
        );
        let probe = if self.probe.is_empty() {
            defaults.probe.clone()
        } else {
            self.probe
                .or(defaults.raw_probe)
                .validate(&format!("{path}.probe"), problems)
        };

        if problems.0.len() > before {
            return None;
        }
        Some(Service {
            name: name?,
            strategy: strategy?,
            ttl,
            targets,
            all_down: self.all_down.unwrap_or(zone.all_down),
            probe,
        })
    }

    fn strategy(
        &self,
        path: &str,
        regions: &[RegionDef],
        region_index: &dyn Fn(&str) -> Option<usize>,
        has_geo_table: bool,
        problems: &mut Problems,
    ) -> Option<Strategy> {
        let only_for = |problems: &mut Problems, field: &str, strategy: &str| {
            problems.add(
                format!("{path}.{field}"),
                format!("only valid with strategy {strategy}"),
            );
        };
        if self.strategy != StrategyName::Failover && self.failover_order.is_some() {
            only_for(problems, "failover_order", "failover");
        }
        if self.strategy != StrategyName::Weighted {
            if self.weights.is_some() {
                only_for(problems, "weights", "weighted");
            }
            if self.pick.is_some() {
                only_for(problems, "pick", "weighted");
            }
        }
        match self.strategy {
            StrategyName::RoundRobin => Some(Strategy::RoundRobin),
            StrategyName::Geo => {
                if !has_geo_table {
                    problems.add(
                        format!("{path}.strategy"),
                        "strategy geo needs a [geo] table of networks",
                    );
                }
                Some(Strategy::Geo)
            }
            StrategyName::Failover => {
                let Some(order) = &self.failover_order else {
                    problems.add(
                        format!("{path}.failover_order"),
                        "strategy failover needs an ordered list of regions",
                    );
                    return None;
                };
                if order.is_empty() {
                    problems.add(format!("{path}.failover_order"), "empty list");
                }
                let mut indexes = Vec::with_capacity(order.len());
                for (i, region) in order.iter().enumerate() {
                    let rpath = format!("{path}.failover_order[{i}]");
                    match region_index(region) {
                        None => problems.add(rpath, format!("unknown region {region}")),
                        Some(index) if indexes.contains(&index) => {
                            problems.add(rpath, format!("region {region} is listed twice"))
                        }
                        Some(index) if !self.targets.contains_key(region) => {
                            problems.add(
                                rpath,
                                format!("region {region} has no targets for this service"),
                            );
                            indexes.push(index);
                        }
                        Some(index) => indexes.push(index),
                    }
                }
                for region in self.targets.keys() {
                    if !order.contains(region) && region_index(region).is_some() {
                        problems.add(
                            format!("{path}.failover_order"),
                            format!("region {region} has targets but is not in the order"),
                        );
                    }
                }
                Some(Strategy::Failover { order: indexes })
            }
            StrategyName::Weighted => {
                let Some(raw_weights) = &self.weights else {
                    problems.add(
                        format!("{path}.weights"),
                        "strategy weighted needs a weight per region",
                    );
                    return None;
                };
                let mut weights = vec![0u32; regions.len()];
                for (region, &weight) in raw_weights {
                    let wpath = format!("{path}.weights.{region}");
                    let Some(index) = region_index(region) else {
                        problems.add(wpath, format!("unknown region {region}"));
                        continue;
                    };
                    if !self.targets.contains_key(region) {
                        problems.add(
                            wpath,
                            format!("region {region} has no targets for this service"),
                        );
                        continue;
                    }
                    match u32::try_from(weight) {
                        Ok(w) if w > 0 && w <= 1_000_000 => weights[index] = w,
                        _ => problems.add(
                            wpath,
                            format!("weight must be between 1 and 1000000, got {weight}"),
                        ),
                    }
                }
                for region in self.targets.keys() {
                    if !raw_weights.contains_key(region) && region_index(region).is_some() {
                        problems.add(
                            format!("{path}.weights"),
                            format!("missing weight for region {region}"),
                        );
                    }
                }
                let pick = match self.pick {
                    None => 1,
                    Some(p) if p >= 1 && (p as usize) <= self.targets.len() => p as usize,
                    Some(p) => {
                        problems.add(
                            format!("{path}.pick"),
                            format!(
                                "must be between 1 and the number of regions with targets ({}), got {p}",
                                self.targets.len()
                            ),
                        );
                        1
                    }
                };
                Some(Strategy::Weighted { weights, pick })
            }
        }
    }
}
