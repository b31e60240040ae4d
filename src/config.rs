//! The configuration file (TOML): serde types as written, and their validation into [`Model`].
//!
//! Parsing is strict (`deny_unknown_fields`) and validation collects every problem with the path
//! of the field it concerns (`services[2].weights.us: weight must be positive`), so
//! `gslbd check-config` can list them all at once.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use hickory_proto::rr::Name;
use ipnet::IpNet;
use serde::Deserialize;

use crate::model::{
    AllDownPolicy, GeoTable, Health, Model, Region, RegionDef, Service, Soa, Strategy, Target, Zone,
};

/// RFC 2181 §8: TTLs are 31-bit values.
const MAX_TTL: u32 = i32::MAX as u32;

/// A validated configuration: server settings plus the served model.
#[derive(Clone, Debug)]
pub struct Config {
    pub server: ServerSettings,
    pub model: Model,
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
    #[serde(default)]
    server: RawServer,
    zone: RawZone,
    regions: Vec<RawRegion>,
    #[serde(default)]
    geo: Option<RawGeo>,
    #[serde(default)]
    services: Vec<RawService>,
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
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            max_udp_payload: default_max_udp_payload(),
            udp_workers: default_udp_workers(),
            udp_fast_path: true,
            tcp_idle_timeout_secs: default_tcp_idle_timeout(),
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
                &origin,
                &self.zone,
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

        Config {
            server,
            model: Model {
                zone,
                regions,
                services,
                geo,
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

impl RawService {
    #[allow(clippy::too_many_arguments)]
    fn validate(
        &self,
        path: &str,
        origin: &Name,
        zone: &RawZone,
        regions: &[RegionDef],
        region_index: &dyn Fn(&str) -> Option<usize>,
        has_geo_table: bool,
        problems: &mut Problems,
    ) -> Option<Service> {
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
            let health = match self.health.get(region) {
                Some(health) => *health,
                None => Health::Healthy,
            };
            targets.push(Target {
                region: index,
                addresses: addresses.clone(),
                health,
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

        if problems.0.len() > before {
            return None;
        }
        Some(Service {
            name: name?,
            strategy: strategy?,
            ttl,
            targets,
            all_down: self.all_down.unwrap_or(zone.all_down),
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
