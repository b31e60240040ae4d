//! `[[services]]`: the balanced names, their targets per region and the strategy that picks
//! among healthy regions. A service inherits TTL, all-down policy and probe settings from the
//! zone and the top-level `[probe]` unless it sets its own.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;

use hickory_proto::rr::Name;
use serde::Deserialize;

use super::MAX_TTL;
use super::names::parse_name;
use super::probe::RawProbe;
use super::problems::Problems;
use super::zone::RawZone;
use crate::model::{AllDownPolicy, Health, ProbeSettings, RegionDef, Service, Strategy, Target};

/// The `strategy` field; its parameters are separate fields of the service.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
enum StrategyName {
    RoundRobin,
    Weighted,
    Failover,
    Geo,
}

/// One `[[services]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
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

/// What a service inherits from the rest of the file.
pub(super) struct ServiceDefaults<'a> {
    pub(super) origin: &'a Name,
    pub(super) zone: &'a RawZone,
    /// The top-level `[probe]` as written, merged under a service's own table.
    pub(super) raw_probe: &'a RawProbe,
    /// The top-level `[probe]` validated, for services without a table of their own.
    pub(super) probe: &'a ProbeSettings,
}

/// Validates every service; names must be unique and distinct from the region nameservers.
pub(super) fn validate_services(
    raw: &[RawService],
    defaults: &ServiceDefaults<'_>,
    regions: &[RegionDef],
    region_index: &dyn Fn(&str) -> Option<usize>,
    has_geo_table: bool,
    problems: &mut Problems,
) -> Vec<Service> {
    let mut services = Vec::with_capacity(raw.len());
    let mut seen: HashSet<Name> = HashSet::new();
    let reserved: HashSet<Name> = regions
        .iter()
        .filter_map(|r| r.nameserver.clone())
        .collect();
    for (i, raw) in raw.iter().enumerate() {
        let path = format!("services[{i}]");
        let Some(service) = raw.validate(
            &path,
            defaults,
            regions,
            region_index,
            has_geo_table,
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
    services
}

impl RawService {
    /// Validates one service at `path`; `None` when it has any problem.
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

    /// The strategy with its parameters, checked against the service's targets.
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
