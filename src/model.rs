//! The validated domain model: what the zone serves, independent of where it was read from.
//!
//! `config.rs` turns a file into a [`Model`]; later sources (Kubernetes, gossip) will produce the
//! same types. Everything here is already checked: the rest of the code never re-validates.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::Name;
use ipnet::IpNet;

use crate::dnssec::Signer;
use crate::label_enum::label_enum;

/// A region (one cluster) by name, e.g. `eu`. k8gb calls it a geotag.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region(Arc<str>);

impl Region {
    /// Wraps an already validated region name.
    pub fn new(name: &str) -> Self {
        Self(Arc::from(name))
    }

    /// The region's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A region's position in [`Model::regions`]: how the model, the snapshot (whose `regions`
/// keep the model's order) and the remote view refer to a region. Never stored across models:
/// a reload may reorder regions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RegionIndex(u16);

/// The most regions a model holds (the config refuses more): a [`RegionIndex`] is 2 bytes,
/// which a snapshot holds once per service and region.
pub const MAX_REGIONS: usize = 1024;

impl RegionIndex {
    /// The region at `position` in the model's regions (below [`MAX_REGIONS`]).
    pub const fn new(position: usize) -> Self {
        assert!(position < MAX_REGIONS, "more regions than MAX_REGIONS");
        Self(position as u16)
    }

    /// The position in the model's regions.
    pub const fn get(self) -> usize {
        self.0 as usize
    }

    /// The region named `name` among `regions`.
    pub fn of(regions: &[RegionDef], name: &str) -> Option<Self> {
        regions
            .iter()
            .position(|r| r.name.as_str() == name)
            .map(Self::new)
    }

    /// Every region of a model with `count` regions, in order.
    pub fn all(count: usize) -> impl Iterator<Item = Self> {
        (0..count).map(Self::new)
    }
}

impl fmt::Display for RegionIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "region #{}", self.0)
    }
}

impl<T> std::ops::Index<RegionIndex> for [T] {
    type Output = T;

    fn index(&self, region: RegionIndex) -> &T {
        &self[region.get()]
    }
}

impl<T> std::ops::Index<RegionIndex> for Vec<T> {
    type Output = T;

    fn index(&self, region: RegionIndex) -> &T {
        &self[region.get()]
    }
}

impl<T> std::ops::IndexMut<RegionIndex> for Vec<T> {
    fn index_mut(&mut self, region: RegionIndex) -> &mut T {
        &mut self[region.get()]
    }
}

/// Health of one region for one service.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Health {
    /// The region serves the service.
    Healthy,
    /// The region must not receive traffic for the service.
    Unhealthy,
    /// No fresh word about the region. Answered as healthy: a missing verdict must never
    /// empty an answer on its own (no cold-start window where everything looks down).
    Unknown,
}

impl Health {
    /// Whether answers may include this region.
    pub fn is_available(self) -> bool {
        !matches!(self, Health::Unhealthy)
    }
}

/// What to answer when no region of a service is available.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AllDownPolicy {
    /// Answer as if every region were healthy: a degraded answer beats none.
    #[default]
    FailOpen,
    /// Answer NODATA.
    Empty,
}

/// How a service's healthy regions become an answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// All available addresses, order rotated per client and time bucket.
    RoundRobin,
    /// `pick` regions drawn by weight (without replacement); weights are indexed by region.
    Weighted { weights: Vec<u32>, pick: usize },
    /// The first available region in `order`.
    Failover { order: Vec<RegionIndex> },
    /// The available region nearest to the client.
    Geo,
}

impl Strategy {
    /// Which strategy this is, without its parameters.
    pub fn kind(&self) -> StrategyKind {
        match self {
            Strategy::RoundRobin => StrategyKind::RoundRobin,
            Strategy::Weighted { .. } => StrategyKind::Weighted,
            Strategy::Failover { .. } => StrategyKind::Failover,
            Strategy::Geo => StrategyKind::Geo,
        }
    }
}

label_enum! {
    /// A strategy's name, as written in config, annotations, gossip reports and metric labels.
    #[derive(serde::Deserialize, serde::Serialize)]
    #[serde(rename_all = "kebab-case")]
    pub enum StrategyKind {
        RoundRobin = "round-robin",
        Weighted = "weighted",
        Failover = "failover",
        Geo = "geo",
    }
}

/// A strategy name that is none of the four.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown strategy {0:?}: expected round-robin, weighted, failover or geo")]
pub struct UnknownStrategy(pub String);

impl std::str::FromStr for StrategyKind {
    type Err = UnknownStrategy;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| UnknownStrategy(text.to_string()))
    }
}

/// The SOA fields of the zone (RFC 1035 §3.3.13).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Soa {
    pub mname: Name,
    pub rname: Name,
    pub serial: u32,
    pub refresh: u32,
    pub retry: u32,
    pub expire: u32,
    pub minimum: u32,
    /// TTL of the SOA record itself.
    pub ttl: u32,
}

/// The delegated zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Zone {
    /// Lowercase, fully qualified.
    pub origin: Name,
    pub soa: Soa,
    /// TTL of the apex NS records and of nameserver addresses.
    pub ns_ttl: u32,
    /// Length of the time bucket answers depend on (rotation, weighted draws), in ms.
    pub time_bucket_ms: u64,
    /// How a region that comes back is let in again.
    pub returning: Returning,
    /// The zone's keys and signatures (`[zone.dnssec]`); `None`: unsigned.
    pub signer: Option<Arc<Signer>>,
}

/// How a region coming back (healthy again, or undrained) is let in again: its weight ramps up
/// from 0 over `slow_start_ms` (weighted and round-robin services), and ordered strategies
/// (failover, geo) return to it only after `failback_delay_ms`, so that a flapping region does
/// not flip answers back and forth. 0 turns either off.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Returning {
    pub slow_start_ms: u64,
    pub failback_delay_ms: u64,
}

/// One region of the deployment: its nameserver and where it sits.
#[derive(Clone, Debug, PartialEq)]
pub struct RegionDef {
    pub name: Region,
    /// The region's nameserver name, lowercase and fully qualified; `None` for a region that
    /// serves traffic but runs no DNS server of the zone.
    pub nameserver: Option<Name>,
    /// The nameserver's addresses (glue when the name is inside the zone).
    pub glue: Vec<IpAddr>,
    /// Latitude and longitude in degrees, for geo distance.
    pub location: Option<(f64, f64)>,
}

/// The addresses of a target: IPv4 first, each family in the order given, shared by
/// reference, so that the model, the snapshots built from it and their answers hold one copy.
/// Reads as a slice of addresses.
#[derive(Clone, Default, PartialEq, Eq, Hash)]
pub struct Addresses(Arc<[IpAddr]>);

impl Addresses {
    /// `addresses`, IPv4 ones first, each family in the order given.
    pub fn new(addresses: &[IpAddr]) -> Self {
        addresses.iter().copied().collect()
    }

    /// The addresses answering `rtype`: the A's or the AAAA's (none for any other type).
    pub fn of(&self, rtype: hickory_proto::rr::RecordType) -> &[IpAddr] {
        // Lists are short (a target has one or two addresses): a scan beats a search.
        let v4 = self.0.iter().take_while(|a| a.is_ipv4()).count();
        match rtype {
            hickory_proto::rr::RecordType::A => &self.0[..v4],
            hickory_proto::rr::RecordType::AAAA => &self.0[v4..],
            _ => &[],
        }
    }

    /// Whether it holds an IPv4 address.
    pub fn has_v4(&self) -> bool {
        self.0.first().is_some_and(IpAddr::is_ipv4)
    }

    /// Whether it holds an IPv6 address.
    pub fn has_v6(&self) -> bool {
        self.0.last().is_some_and(IpAddr::is_ipv6)
    }

    /// Every address, IPv4 first.
    pub fn ips(&self) -> &[IpAddr] {
        &self.0
    }

    /// Whether both are the same list (one allocation): cheaper than comparing.
    pub fn ptr_eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl std::ops::Deref for Addresses {
    type Target = [IpAddr];

    fn deref(&self) -> &[IpAddr] {
        &self.0
    }
}

impl FromIterator<IpAddr> for Addresses {
    fn from_iter<I: IntoIterator<Item = IpAddr>>(addresses: I) -> Self {
        let mut all: Vec<IpAddr> = addresses.into_iter().collect();
        // Stable: each family keeps its order.
        all.sort_by_key(|a| a.is_ipv6());
        Self(all.into())
    }
}

impl<'a> IntoIterator for &'a Addresses {
    type Item = &'a IpAddr;
    type IntoIter = std::slice::Iter<'a, IpAddr>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl From<Vec<IpAddr>> for Addresses {
    fn from(addresses: Vec<IpAddr>) -> Self {
        addresses.into_iter().collect()
    }
}

impl fmt::Debug for Addresses {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.0.iter()).finish()
    }
}

impl PartialEq<Vec<IpAddr>> for Addresses {
    fn eq(&self, other: &Vec<IpAddr>) -> bool {
        *self.0 == **other
    }
}

/// A service's addresses in one region, or the host name answered for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub region: RegionIndex,
    /// Empty for a target that is a host name (`name`).
    pub addresses: Addresses,
    /// A host name answered as a CNAME in place of addresses (a cloud load balancer's name),
    /// lowercase, fully qualified and outside the zone; `addresses` is then empty. Probes
    /// resolve it and check what it resolves to.
    pub name: Option<Arc<Name>>,
    /// Health set in config: it overrides what probes say (e.g. to drain a region). `None`:
    /// probes decide for the local region, and other regions count as healthy.
    pub health: Option<Health>,
    /// Kubernetes readiness of the backend Services behind the target (local region, services
    /// discovered from Kubernetes only): not ready makes the region unhealthy whatever probes say.
    pub backends: Option<BackendReadiness>,
    /// Drained by an operator at run time (`gslbd drain`, local region only): out of answers
    /// whatever else says, and said so in this region's report.
    pub drained: bool,
}

/// A target host name as another system gives it (a gossip report, a load balancer's status):
/// lowercase and fully qualified; `None` when it does not parse or is the root.
pub fn target_name(text: &str) -> Option<Name> {
    let mut name = Name::from_ascii(text).ok()?.to_lowercase();
    name.set_fqdn(true);
    (!name.is_root()).then_some(name)
}

/// How many of a target's backend Services have ready endpoints (EndpointSlices).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BackendReadiness {
    pub ready: u32,
    pub total: u32,
    /// `any`: one ready Service is enough; `all`: every one must be (k8gb's
    /// serviceHealthPolicy).
    pub policy: TargetPolicy,
}

impl BackendReadiness {
    /// Whether the backends allow traffic.
    pub fn ok(&self) -> bool {
        match self.policy {
            TargetPolicy::Any => self.ready > 0,
            TargetPolicy::All => self.total > 0 && self.ready == self.total,
        }
    }
}

/// How a region's health follows from its addresses' probe verdicts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetPolicy {
    /// Healthy while at least one address is (k8gb's serviceHealthPolicy `any`).
    #[default]
    Any,
    /// Healthy only while every address is.
    All,
}

impl TargetPolicy {
    /// The policy as written in config and annotations.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetPolicy::Any => "any",
            TargetPolicy::All => "all",
        }
    }
}

/// How many observers must see a target fail to take its region out (`gossip.observer_quorum`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Quorum {
    /// More than half of the observers with a verdict.
    #[default]
    Majority,
    /// At least this many observers (and at least one), however many there are.
    AtLeast(u32),
}

impl Quorum {
    /// Whether `failing` of `observers` (those with a verdict) is a quorum: never with none.
    pub fn reached(self, failing: u32, observers: u32) -> bool {
        failing > 0
            && match self {
                Quorum::Majority => failing * 2 > observers,
                Quorum::AtLeast(n) => failing >= n.max(1),
            }
    }
}

impl fmt::Display for Quorum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quorum::Majority => f.write_str("majority"),
            Quorum::AtLeast(n) => write!(f, "{n}"),
        }
    }
}

/// Probes of the other regions' targets, a second opinion on their health (issue #11).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Observe {
    /// Probe interval for other regions' targets (rise, fall and the rest: the service's).
    pub interval: Duration,
    pub quorum: Quorum,
}

/// What a probe does.
#[derive(
    Clone,
    Copy,
    Debug,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Deserialize,
    serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum ProbeKind {
    /// HTTP GET with the service's Host header.
    #[default]
    Http,
    /// HTTPS GET, with SNI and certificate check for the service's name.
    Https,
    /// A TCP connect.
    Tcp,
    /// No probe: the static health decides.
    None,
}

/// How one service's local targets are probed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeSettings {
    pub kind: ProbeKind,
    pub port: u16,
    /// HTTP path, starting with '/'.
    pub path: String,
    /// Host header and TLS server name; the service name when `None`.
    pub host: Option<String>,
    /// Accepted HTTP status ranges (inclusive).
    pub expect_status: Vec<(u16, u16)>,
    /// The body must contain this text (first 64 KiB).
    pub body_contains: Option<String>,
    /// PEM bundle of CAs trusted for HTTPS, in addition to the system's.
    pub ca_file: Option<PathBuf>,
    pub insecure_skip_verify: bool,
    pub interval: Duration,
    pub timeout: Duration,
    /// Consecutive successes that make a target healthy.
    pub rise: u32,
    /// Consecutive failures that make a target unhealthy.
    pub fall: u32,
    pub target_policy: TargetPolicy,
}

impl ProbeSettings {
    /// No probe (services whose targets are all in other regions).
    pub fn none() -> Self {
        Self {
            kind: ProbeKind::None,
            port: 80,
            path: "/".to_string(),
            host: None,
            expect_status: vec![(200, 399)],
            body_contains: None,
            ca_file: None,
            insecure_skip_verify: false,
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(800),
            rise: 2,
            fall: 2,
            target_policy: TargetPolicy::Any,
        }
    }
}

/// One balanced name in the zone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// Lowercase, fully qualified, strictly inside the zone.
    pub name: Name,
    pub strategy: Strategy,
    pub ttl: u32,
    /// At most one target per region, in region order.
    pub targets: Vec<Target>,
    pub all_down: AllDownPolicy,
    /// Shared: most services take the config's defaults.
    pub probe: Arc<ProbeSettings>,
}

impl Service {
    /// This service, built against regions named `from`, for a model whose regions are `to`
    /// (a reload added, removed or reordered regions): targets, failover order and weights
    /// follow the regions by name; regions gone are dropped, failover regions not listed
    /// follow in `to`'s order (as the failover annotation's do).
    pub fn remap(&self, from: &[Region], to: &[RegionDef]) -> Service {
        let moved = |index: RegionIndex| {
            from.get(index.get())
                .and_then(|name| RegionIndex::of(to, name.as_str()))
        };
        let mut targets: Vec<Target> = self
            .targets
            .iter()
            .filter_map(|t| {
                Some(Target {
                    region: moved(t.region)?,
                    ..t.clone()
                })
            })
            .collect();
        targets.sort_by_key(|t| t.region);
        let strategy = match &self.strategy {
            Strategy::Failover { order } => {
                let mut order: Vec<RegionIndex> = order.iter().filter_map(|&r| moved(r)).collect();
                let rest: Vec<RegionIndex> = RegionIndex::all(to.len())
                    .filter(|r| !order.contains(r))
                    .collect();
                order.extend(rest);
                Strategy::Failover { order }
            }
            Strategy::Weighted { weights, pick } => {
                let mut remapped = vec![0; to.len()];
                for (index, &weight) in RegionIndex::all(weights.len()).zip(weights) {
                    if let Some(to_index) = moved(index) {
                        remapped[to_index.get()] = weight;
                    }
                }
                Strategy::Weighted {
                    weights: remapped,
                    pick: *pick,
                }
            }
            other => other.clone(),
        };
        Service {
            targets,
            strategy,
            ..self.clone()
        }
    }
}

/// CIDR → region table used by the geo strategy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GeoTable {
    /// Networks (normalised) with the index of their region.
    pub networks: Vec<(IpNet, RegionIndex)>,
    /// Region whose neighbourhood serves clients no network matches.
    pub default_region: Option<RegionIndex>,
}

/// Everything the DNS side serves, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub zone: Zone,
    pub regions: Vec<RegionDef>,
    /// Shared, so that the served model and the config's (and snapshots built from them)
    /// hold one copy of each service: a change replaces the services it concerns.
    pub services: Vec<Arc<Service>>,
    pub geo: GeoTable,
    /// This gslbd's own region (index into `regions`): the one it probes.
    pub local_region: Option<RegionIndex>,
    /// Probes running at once, at most.
    pub probe_concurrency: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, AP, EU, US};

    /// A failover service (us > eu > ap) and a weighted one (eu 5, us 3, ap 2), built against
    /// regions eu, us, ap; and those regions' names.
    fn built() -> (Service, Service, Vec<Region>) {
        let model = fixtures::config(
            r#"
            services = [
                { name = "f.gslb.example.com", strategy = "failover", failover_order = ["us", "eu", "ap"],
                  targets = { eu = ["192.0.2.1"], us = ["198.51.100.1"], ap = ["203.0.113.1"] } },
                { name = "w.gslb.example.com", strategy = "weighted", weights = { eu = 5, us = 3, ap = 2 },
                  targets = { eu = ["192.0.2.2"], us = ["198.51.100.2"], ap = ["203.0.113.2"] } },
            ]
            "#,
        )
        .model;
        let names = model.regions.iter().map(|r| r.name.clone()).collect();
        let [failover, weighted] = <[Arc<Service>; 2]>::try_from(model.services).expect("two");
        let (failover, weighted) = (
            Arc::unwrap_or_clone(failover),
            Arc::unwrap_or_clone(weighted),
        );
        (failover, weighted, names)
    }

    fn regions(names: &[&str]) -> Vec<RegionDef> {
        names
            .iter()
            .map(|name| RegionDef {
                name: Region::new(name),
                nameserver: None,
                glue: Vec::new(),
                location: None,
            })
            .collect()
    }

    /// (region name, first address) of each target.
    fn targets(service: &Service, to: &[RegionDef]) -> Vec<(String, String)> {
        service
            .targets
            .iter()
            .map(|t| (to[t.region].name.to_string(), t.addresses[0].to_string()))
            .collect()
    }

    #[test]
    fn reordered_regions_keep_each_target_strategy_and_weight_with_its_region() {
        let (failover, weighted, from) = built();
        let to = regions(&["ap", "eu", "us"]);
        let moved = failover.remap(&from, &to);
        assert_eq!(
            targets(&moved, &to),
            [
                ("ap".into(), "203.0.113.1".into()),
                ("eu".into(), "192.0.2.1".into()),
                ("us".into(), "198.51.100.1".into())
            ]
        );
        // us > eu > ap, now at positions 2, 1, 0.
        assert_eq!(
            moved.strategy,
            Strategy::Failover {
                order: vec![
                    RegionIndex::new(2),
                    RegionIndex::new(1),
                    RegionIndex::new(0)
                ]
            }
        );
        let moved = weighted.remap(&from, &to);
        assert_eq!(
            moved.strategy,
            Strategy::Weighted {
                weights: vec![2, 5, 3],
                pick: 1
            }
        );
        assert_eq!(
            failover.remap(&from, &regions(&["eu", "us", "ap"])),
            failover
        );
    }

    #[test]
    fn a_region_removed_leaves_and_one_added_follows_in_config_order() {
        let (failover, weighted, from) = built();
        let to = regions(&["eu", "ap"]);
        let moved = failover.remap(&from, &to);
        assert_eq!(targets(&moved, &to).len(), 2, "us's target is gone");
        assert_eq!(
            moved.strategy,
            Strategy::Failover {
                order: vec![EU, US] // eu (was 2nd), then ap, now at index 1
            }
        );
        assert_eq!(
            weighted.remap(&from, &to).strategy,
            Strategy::Weighted {
                weights: vec![5, 2],
                pick: 1
            }
        );
        let to = regions(&["eu", "us", "ap", "sa"]);
        assert_eq!(
            failover.remap(&from, &to).strategy,
            Strategy::Failover {
                order: vec![US, EU, AP, RegionIndex::new(3)]
            }
        );
    }
}
