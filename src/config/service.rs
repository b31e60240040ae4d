//! `[[services]]`: the balanced names, their targets per region and the strategy that picks
//! among healthy regions. A service inherits TTL, all-down policy and probe settings from the
//! zone and the top-level `[probe]` unless it sets its own.

use std::collections::{BTreeMap, HashSet};
use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::Name;
use serde::Deserialize;

use super::MAX_TTL;
use super::names::{parse_name, parse_service_name};
use super::probe::RawProbe;
use super::problems::Problems;
use super::zone::RawZone;
use crate::model::{
    Addresses, AllDownPolicy, Health, ProbeSettings, RegionDef, RegionIndex, Service, Strategy,
    StrategyKind, Target,
};
use crate::ownership;

/// One `[[services]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawService {
    name: String,
    strategy: StrategyKind,
    ttl: Option<u32>,
    failover_order: Option<Vec<String>>,
    weights: Option<BTreeMap<String, i64>>,
    pick: Option<i64>,
    targets: BTreeMap<String, RawTarget>,
    #[serde(default)]
    health: BTreeMap<String, Health>,
    all_down: Option<AllDownPolicy>,
    #[serde(default)]
    probe: RawProbe,
}

/// One region's target as written: a list of addresses, or a host name (a string) answered as
/// a CNAME.
#[derive(Debug)]
pub(super) enum RawTarget {
    Addresses(Vec<IpAddr>),
    Name(String),
}

impl<'de> Deserialize<'de> for RawTarget {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = RawTarget;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of IP addresses, or a host name")
            }

            fn visit_str<E: serde::de::Error>(self, name: &str) -> Result<RawTarget, E> {
                Ok(RawTarget::Name(name.to_string()))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<RawTarget, A::Error> {
                let mut addresses = Vec::with_capacity(seq.size_hint().unwrap_or(1));
                while let Some(addr) = seq.next_element::<IpAddr>()? {
                    addresses.push(addr);
                }
                Ok(RawTarget::Addresses(addresses))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// What a service inherits from the rest of the file.
pub(super) struct ServiceDefaults<'a> {
    pub(super) origin: &'a Name,
    pub(super) zone: &'a RawZone,
    /// The top-level `[probe]` as written, merged under a service's own table.
    pub(super) raw_probe: &'a RawProbe,
    /// The top-level `[probe]` validated, for services without a table of their own.
    pub(super) probe: &'a Arc<ProbeSettings>,
}

/// The services of a file: parsed with it, or each table's text still to parse (a file
/// split at its `[[services]]` tables, `split.rs`).
pub(super) enum RawServices<'a> {
    Parsed(&'a [RawService]),
    Tables(&'a [&'a str]),
}

/// One `[[services]]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OneService {
    services: [RawService; 1],
}

/// A table that does not parse alone: the file is parsed whole for its error.
#[derive(Debug)]
pub(super) struct Unparsed;

/// One service validated, or why not.
type Checked = (Option<Service>, Problems);

/// Validates every service; names must be unique and claimable (`crate::ownership`). Tables
/// still to parse are parsed and validated one at a time, on a few threads, so that each
/// table's text and raw form are let go as soon as its service is built.
pub(super) fn validate_services(
    raw: RawServices<'_>,
    defaults: &ServiceDefaults<'_>,
    regions: &[RegionDef],
    region_index: &(dyn Fn(&str) -> Option<RegionIndex> + Sync),
    has_geo_table: bool,
    problems: &mut Problems,
) -> Result<Vec<Service>, Unparsed> {
    let check = |i: usize, raw: &RawService| -> Checked {
        let mut problems = Problems::default();
        let path = format!("services[{i}]");
        let service = raw.validate(
            &path,
            defaults,
            regions,
            region_index,
            has_geo_table,
            &mut problems,
        );
        (service, problems)
    };
    let checked: Vec<Checked> = match raw {
        RawServices::Parsed(raw) => raw.iter().enumerate().map(|(i, r)| check(i, r)).collect(),
        RawServices::Tables(tables) => {
            let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
            let part = tables.len().div_ceil(threads).max(1);
            std::thread::scope(|scope| {
                let parts: Vec<_> = tables
                    .chunks(part)
                    .enumerate()
                    .map(|(p, tables)| {
                        scope.spawn(move || {
                            // Sized once: a part of a large file holds tens of megabytes.
                            let mut checked = Vec::with_capacity(tables.len());
                            for (j, table) in tables.iter().enumerate() {
                                let [raw] = toml::from_str::<OneService>(table)
                                    .map_err(|_| Unparsed)?
                                    .services;
                                checked.push(check(p * part + j, &raw));
                            }
                            Ok::<_, Unparsed>(checked)
                        })
                    })
                    .collect();
                let mut checked = Vec::with_capacity(tables.len());
                for part in parts {
                    checked.extend(part.join().map_err(|_| Unparsed)??);
                }
                Ok(checked)
            })?
        }
    };
    let mut services = Vec::with_capacity(checked.len());
    let mut seen: HashSet<Name> = HashSet::with_capacity(checked.len());
    for (i, (service, found)) in checked.into_iter().enumerate() {
        problems.0.extend(found.0);
        let Some(service) = service else {
            continue;
        };
        if !seen.insert(service.name.clone()) {
            problems.add(
                format!("services[{i}].name"),
                format!("duplicate service {}", service.name),
            );
        } else {
            services.push(service);
        }
    }
    Ok(services)
}

/// A target host name as written: a valid name outside the zone `origin` (gslbd does not
/// chase a CNAME, so one into its own zone would answer a name it never resolves).
fn target_name(text: &str, origin: &Name) -> Result<Name, String> {
    let name = parse_name(text)?;
    if name.is_root() {
        return Err("the root cannot be a target name".to_string());
    }
    if origin.zone_of(&name) {
        return Err(format!(
            "target name {name} is inside the zone {origin}: gslbd does not chase CNAMEs within \
             its zone; give the addresses instead"
        ));
    }
    Ok(name)
}

impl RawService {
    /// Validates one service at `path`; `None` when it has any problem.
    fn validate(
        &self,
        path: &str,
        defaults: &ServiceDefaults<'_>,
        regions: &[RegionDef],
        region_index: &(dyn Fn(&str) -> Option<RegionIndex> + Sync),
        has_geo_table: bool,
        problems: &mut Problems,
    ) -> Option<Service> {
        let (origin, zone) = (defaults.origin, defaults.zone);
        let before = problems.0.len();
        let name = match parse_service_name(&self.name) {
            Ok(name) => match ownership::may_claim(&name, origin, regions) {
                Ok(()) => Some(name),
                Err(refusal) => {
                    problems.add(
                        format!("{path}.name"),
                        format!("{name} cannot be a service: {}", refusal.why(origin)),
                    );
                    None
                }
            },
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
        for (region, target) in &self.targets {
            // Made only for a problem: a large file has a million targets.
            let tpath = || format!("{path}.targets.{region}");
            let Some(index) = region_index(region) else {
                problems.add(tpath(), format!("unknown region {region}"));
                continue;
            };
            let addresses = match target {
                RawTarget::Addresses(addresses) => addresses,
                RawTarget::Name(text) => {
                    match target_name(text, origin) {
                        Ok(name) => targets.push(Target {
                            region: index,
                            addresses: Addresses::default(),
                            name: Some(Arc::new(name)),
                            health: self.health.get(region).copied(),
                            backends: None,
                            drained: false,
                        }),
                        Err(reason) => problems.add(tpath(), reason),
                    }
                    continue;
                }
            };
            if addresses.is_empty() {
                problems.add(tpath(), "no addresses");
                continue;
            }
            // Short lists (most are one or two) are compared in place, long ones through a set.
            let mut seen = (addresses.len() > 16).then(HashSet::new);
            for (i, addr) in addresses.iter().enumerate() {
                let repeated = match &mut seen {
                    Some(seen) => !seen.insert(addr),
                    None => addresses[..i].contains(addr),
                };
                if repeated {
                    problems.add(tpath(), format!("duplicate address {addr}"));
                }
                if addr.is_unspecified() || addr.is_multicast() {
                    problems.add(tpath(), format!("{addr} cannot be a service address"));
                }
            }
            targets.push(Target {
                region: index,
                addresses: Addresses::new(addresses),
                name: None,
                health: self.health.get(region).copied(),
                backends: None,
                drained: false,
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
            Arc::new(
                self.probe
                    .or(defaults.raw_probe)
                    .validate(&format!("{path}.probe"), problems),
            )
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
        region_index: &(dyn Fn(&str) -> Option<RegionIndex> + Sync),
        has_geo_table: bool,
        problems: &mut Problems,
    ) -> Option<Strategy> {
        let only_for = |problems: &mut Problems, field: &str, strategy: &str| {
            problems.add(
                format!("{path}.{field}"),
                format!("only valid with strategy {strategy}"),
            );
        };
        if self.strategy != StrategyKind::Failover && self.failover_order.is_some() {
            only_for(problems, "failover_order", "failover");
        }
        if self.strategy != StrategyKind::Weighted {
            if self.weights.is_some() {
                only_for(problems, "weights", "weighted");
            }
            if self.pick.is_some() {
                only_for(problems, "pick", "weighted");
            }
        }
        match self.strategy {
            StrategyKind::RoundRobin => Some(Strategy::RoundRobin),
            StrategyKind::Geo => {
                if !has_geo_table {
                    problems.add(
                        format!("{path}.strategy"),
                        "strategy geo needs a [geo] table of networks",
                    );
                }
                Some(Strategy::Geo)
            }
            StrategyKind::Failover => {
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
            StrategyKind::Weighted => {
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

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::fixture::{Fixture, assert_has};
    use crate::fixtures::{EU, US};
    use crate::model::{AllDownPolicy, Health, Strategy};

    /// Targets in both of the fixture's regions.
    const TARGETS: &str = r#"targets = { eu = ["192.0.2.1"], us = ["198.51.100.1"] }"#;

    /// The fixture with one service (`services[0]`) named `name`, made of `keys`.
    fn named(name: &str, keys: &str) -> Fixture {
        Fixture::new().table(&format!("[[services]]\nname = {name:?}\n{keys}"))
    }

    fn service(keys: &str) -> Fixture {
        named("app.gslb.example.com", keys)
    }

    fn weighted(weights: &str) -> Fixture {
        service(&format!(
            "strategy = \"weighted\"\nweights = {{ {weights} }}\n{TARGETS}"
        ))
    }

    fn failover(order: &str, targets: &str) -> Fixture {
        service(&format!(
            "strategy = \"failover\"\nfailover_order = [{order}]\n{targets}"
        ))
    }

    #[test]
    fn a_target_is_addresses_or_a_host_name_outside_the_zone() {
        let config = failover(
            r#""us", "eu""#,
            r#"targets = { eu = ["192.0.2.1"], us = "LB-1.us-east-1.Example.NET" }"#,
        )
        .config();
        let app = &config.model.services[0];
        assert_eq!(app.targets[0].name, None);
        let us = &app.targets[1];
        assert!(us.addresses.is_empty());
        assert_eq!(
            us.name.as_deref().map(ToString::to_string).as_deref(),
            Some("lb-1.us-east-1.example.net.")
        );
        failover(
            r#""us", "eu""#,
            r#"targets = { eu = ["192.0.2.1"], us = "www.gslb.example.com" }"#,
        )
        .assert_refused(
            "services[0].targets.us",
            "inside the zone gslb.example.com.: gslbd does not chase CNAMEs",
        );
        failover(
            r#""us", "eu""#,
            r#"targets = { eu = ["192.0.2.1"], us = "lb..example.net" }"#,
        )
        .assert_refused("services[0].targets.us", "invalid name");
        let wrong = failover(
            r#""us", "eu""#,
            r#"targets = { eu = ["192.0.2.1"], us = 7 }"#,
        );
        let error = crate::config::parse(&wrong.text()).expect_err("a number is no target");
        assert!(
            error
                .to_string()
                .contains("a list of IP addresses, or a host name"),
            "{error}"
        );
    }

    #[test]
    fn a_service_inherits_ttl_all_down_and_probe_from_the_file() {
        let config = failover(r#""us", "eu""#, TARGETS).config();
        let app = &config.model.services[0];
        assert_eq!(app.name.to_string(), "app.gslb.example.com.");
        assert_eq!(app.ttl, 30);
        assert_eq!(app.all_down, AllDownPolicy::FailOpen);
        assert_eq!(
            app.strategy,
            Strategy::Failover {
                order: vec![US, EU]
            }
        );
        assert_eq!(app.probe.interval, Duration::from_secs(1));
        let regions: Vec<_> = app.targets.iter().map(|t| t.region).collect();
        assert_eq!(regions, vec![EU, US], "targets are kept in region order");
    }

    #[test]
    fn a_service_name_is_strictly_inside_the_zone() {
        let round_robin = format!("strategy = \"round-robin\"\n{TARGETS}");
        named("app.example.org", &round_robin).assert_refused(
            "services[0].name",
            "app.example.org. cannot be a service: it is outside the zone gslb.example.com.",
        );
        named("gslb.example.com", &round_robin).assert_refused(
            "services[0].name",
            "gslb.example.com. cannot be a service: it is the zone apex, which holds SOA and NS",
        );
        named("GSLB.example.com.", &round_robin)
            .assert_refused("services[0].name", "it is the zone apex");
    }

    #[test]
    fn a_service_name_is_no_nameserver_of_the_zone() {
        let round_robin = format!("strategy = \"round-robin\"\n{TARGETS}");
        named("ns-eu.gslb.example.com", &round_robin).assert_refused(
            "services[0].name",
            "ns-eu.gslb.example.com. cannot be a service: it is a nameserver name of the zone, answered with its glue",
        );
        named("NS-EU.gslb.example.com.", &round_robin)
            .assert_refused("services[0].name", "it is a nameserver name of the zone");
        // us's nameserver is outside the zone: refused as outside, like any other.
        named("ns.us.example.net", &round_robin)
            .assert_refused("services[0].name", "it is outside the zone");
    }

    #[test]
    fn a_service_name_is_no_wildcard() {
        let round_robin = format!("strategy = \"round-robin\"\n{TARGETS}");
        for name in ["*.gslb.example.com", "app.*.gslb.example.com"] {
            named(name, &round_robin).assert_refused(
                "services[0].name",
                "cannot be a service: it is a wildcard name (a '*' label); wildcards are not supported",
            );
        }
        // Any other use of '*' is no wildcard, just not a name.
        named("a*.gslb.example.com", &round_robin)
            .assert_refused("services[0].name", r#"invalid name "a*.gslb.example.com""#);
    }

    #[test]
    fn service_names_are_unique() {
        let round_robin = format!("strategy = \"round-robin\"\n{TARGETS}");
        let twice = service(&round_robin).table(&format!(
            "[[services]]\nname = \"APP.gslb.example.com\"\n{round_robin}"
        ));
        twice.assert_refused(
            "services[1].name",
            "duplicate service app.gslb.example.com.",
        );
    }

    #[test]
    fn weights_are_between_1_and_1000000_for_every_region_with_targets() {
        weighted("eu = 0, us = 1").assert_refused(
            "services[0].weights.eu",
            "weight must be between 1 and 1000000, got 0",
        );
        weighted("eu = 1, us = 1000001").assert_refused("services[0].weights.us", "got 1000001");
        weighted("eu = 1").assert_refused("services[0].weights", "missing weight for region us");
        let config = weighted("eu = 3, us = 1").config();
        let strategy = &config.model.services[0].strategy;
        assert_eq!(
            *strategy,
            Strategy::Weighted {
                weights: vec![3, 1],
                pick: 1
            }
        );
    }

    #[test]
    fn pick_is_at_most_the_number_of_regions_with_targets() {
        let pick = |n: i64| {
            service(&format!(
                "strategy = \"weighted\"\nweights = {{ eu = 1, us = 1 }}\npick = {n}\n{TARGETS}"
            ))
        };
        pick(3).assert_refused(
            "services[0].pick",
            "must be between 1 and the number of regions with targets (2), got 3",
        );
        pick(0).assert_refused("services[0].pick", "got 0");
        let strategy = pick(2).config().model.services[0].strategy.clone();
        assert!(matches!(strategy, Strategy::Weighted { pick: 2, .. }));
    }

    #[test]
    fn failover_order_lists_each_region_with_targets_once() {
        failover(r#""eu""#, TARGETS).assert_refused(
            "services[0].failover_order",
            "region us has targets but is not in the order",
        );
        failover(r#""eu", "us""#, r#"targets = { eu = ["192.0.2.1"] }"#).assert_refused(
            "services[0].failover_order[1]",
            "region us has no targets for this service",
        );
        failover(r#""eu", "eu", "us""#, TARGETS)
            .assert_refused("services[0].failover_order[1]", "region eu is listed twice");
        failover(r#""mars""#, TARGETS)
            .assert_refused("services[0].failover_order[0]", "unknown region mars");
    }

    #[test]
    fn health_may_only_be_set_for_a_region_with_targets() {
        let config = service(&format!(
            "strategy = \"round-robin\"\n{TARGETS}\nhealth = {{ eu = \"unhealthy\" }}"
        ))
        .config();
        assert_eq!(
            config.model.services[0].targets[0].health,
            Some(Health::Unhealthy)
        );
        service("strategy = \"round-robin\"\ntargets = { eu = [\"192.0.2.1\"] }\nhealth = { us = \"unhealthy\" }")
            .assert_refused(
                "services[0].health.us",
                "region us has no targets for this service",
            );
    }

    #[test]
    fn strategy_parameters_only_go_with_their_strategy() {
        let problems = service(&format!(
            "strategy = \"round-robin\"\npick = 1\nfailover_order = [\"eu\"]\n{TARGETS}"
        ))
        .problems();
        assert_has(
            &problems,
            "services[0].pick",
            "only valid with strategy weighted",
        );
        assert_has(
            &problems,
            "services[0].failover_order",
            "only valid with strategy failover",
        );
        service(&format!("strategy = \"geo\"\n{TARGETS}")).assert_refused(
            "services[0].strategy",
            "strategy geo needs a [geo] table of networks",
        );
    }

    #[test]
    fn targets_are_usable_addresses_in_known_regions() {
        let problems = service(
            r#"strategy = "round-robin"
targets = { eu = ["192.0.2.1", "192.0.2.1", "0.0.0.0"], us = [], mars = ["192.0.2.9"] }"#,
        )
        .problems();
        let at_eu: Vec<&str> = problems
            .iter()
            .filter(|p| p.path == "services[0].targets.eu")
            .map(|p| p.reason.as_str())
            .collect();
        assert_eq!(
            at_eu,
            [
                "duplicate address 192.0.2.1",
                "0.0.0.0 cannot be a service address"
            ]
        );
        assert_has(&problems, "services[0].targets.us", "no addresses");
        assert_has(&problems, "services[0].targets.mars", "unknown region mars");
        service("strategy = \"round-robin\"\ntargets = {}")
            .assert_refused("services[0].targets", "at least one region needs targets");
        // A long list is checked through a set: the repeat found, once.
        let mut long: Vec<String> = (1..=20).map(|i| format!("\"192.0.2.{i}\"")).collect();
        long.push("\"192.0.2.7\"".into());
        let problems = service(&format!(
            "strategy = \"round-robin\"\ntargets = {{ eu = [{}] }}",
            long.join(", ")
        ))
        .problems();
        assert_eq!(
            problems
                .iter()
                .map(|p| (p.path.as_str(), p.reason.as_str()))
                .collect::<Vec<_>>(),
            [("services[0].targets.eu", "duplicate address 192.0.2.7")]
        );
    }

    #[test]
    fn a_service_ttl_overrides_the_zone_and_stays_below_2_pow_31() {
        let config = service(&format!("strategy = \"round-robin\"\nttl = 5\n{TARGETS}")).config();
        assert_eq!(config.model.services[0].ttl, 5);
        service(&format!(
            "strategy = \"round-robin\"\nttl = 2147483648\n{TARGETS}"
        ))
        .assert_refused("services[0].ttl", "must be below 2^31");
    }
}
