//! The annotations that put a Kubernetes object under global balancing, parsed into what the
//! model needs. `gslbd.io/*` keys, and k8gb's where it has one (`k8gb.io/strategy`,
//! `k8gb.io/primary-geotag`, `k8gb.io/dns-ttl-seconds`, `k8gb.io/exposed-ip-addresses`,
//! `k8gb.io/hostname`); when both are set, gslbd's wins. `gslbd.io/target-name` makes the
//! region's target a host name, answered as a CNAME (k8gb issue 1800).
//!
//! Pure: a map of annotations and the config's regions in, settings or the first problem out.

use std::collections::BTreeMap;
use std::net::IpAddr;

use hickory_proto::rr::Name;

use crate::model::{
    AllDownPolicy, ProbeKind, RegionDef, RegionIndex, Strategy, StrategyKind, TargetPolicy,
};

pub const STRATEGY: [&str; 2] = ["gslbd.io/strategy", "k8gb.io/strategy"];
pub const FAILOVER_ORDER: [&str; 1] = ["gslbd.io/failover-order"];
pub const PRIMARY_REGION: [&str; 2] = ["gslbd.io/primary-region", "k8gb.io/primary-geotag"];
pub const WEIGHTS: [&str; 1] = ["gslbd.io/weights"];
pub const TTL: [&str; 2] = ["gslbd.io/ttl", "k8gb.io/dns-ttl-seconds"];
pub const PROBE_PATH: [&str; 1] = ["gslbd.io/probe-path"];
pub const PROBE_SCHEME: [&str; 1] = ["gslbd.io/probe-scheme"];
pub const ADDRESSES: [&str; 2] = ["gslbd.io/addresses", "k8gb.io/exposed-ip-addresses"];
pub const HEALTH_POLICY: [&str; 1] = ["gslbd.io/health-policy"];
pub const ALL_DOWN: [&str; 1] = ["gslbd.io/all-down"];
pub const HOSTNAME: [&str; 2] = ["gslbd.io/hostname", "k8gb.io/hostname"];
pub const TARGET_NAME: [&str; 1] = ["gslbd.io/target-name"];

/// Largest TTL accepted (one day: a GSLB answer cached longer defeats failover).
pub const MAX_TTL: u32 = 86_400;

/// What an object's annotations ask for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    pub strategy: Strategy,
    pub ttl: Option<u32>,
    pub probe_path: Option<String>,
    pub probe_scheme: Option<ProbeKind>,
    /// Addresses to publish instead of the object's status.
    pub addresses: Option<Vec<IpAddr>>,
    /// How backend Services' readiness combines (k8gb's serviceHealthPolicy).
    pub health_policy: TargetPolicy,
    pub all_down: Option<AllDownPolicy>,
    /// Host names for objects that have none of their own (LoadBalancer Services).
    pub hostnames: Vec<String>,
    /// The region's target as a host name answered by CNAME, instead of addresses.
    pub target_name: Option<TargetName>,
}

/// `gslbd.io/target-name`: which host name the region's target is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TargetName {
    /// This name (lowercase, fully qualified).
    Fixed(Name),
    /// `status`: the host name of the object's status (a cloud load balancer's), answered as
    /// it is rather than resolved; the status's addresses when it gives no name.
    Status,
}

/// A bad annotation: the object is skipped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("annotation {key}={value:?}: {reason}")]
pub struct AnnotationError {
    pub key: String,
    pub value: String,
    pub reason: String,
    /// A short class for metrics and Event reasons.
    pub class: &'static str,
}

type Annotations = BTreeMap<String, String>;

/// The first of `keys` present, with its key.
fn get<'a>(annotations: &'a Annotations, keys: &[&'static str]) -> Option<(&'static str, &'a str)> {
    keys.iter()
        .find_map(|k| annotations.get(*k).map(|v| (*k, v.trim())))
}

fn bad(key: &str, value: &str, class: &'static str, reason: impl Into<String>) -> AnnotationError {
    AnnotationError {
        key: key.to_string(),
        value: value.to_string(),
        reason: reason.into(),
        class,
    }
}

/// Whether the object asks for global balancing at all.
pub fn wanted(annotations: &Annotations) -> bool {
    get(annotations, &STRATEGY).is_some()
}

/// The settings `annotations` ask for, against the config's `regions`. `None` when the object
/// carries no strategy annotation (not ours).
pub fn parse(
    annotations: &Annotations,
    regions: &[RegionDef],
    zone: &Name,
) -> Result<Option<Settings>, AnnotationError> {
    let Some((key, value)) = get(annotations, &STRATEGY) else {
        return Ok(None);
    };
    let region_index = |key: &str, name: &str| -> Result<RegionIndex, AnnotationError> {
        RegionIndex::of(regions, name).ok_or_else(|| {
            let known: Vec<&str> = regions.iter().map(|r| r.name.as_str()).collect();
            bad(
                key,
                name,
                "unknown_region",
                format!("unknown region {name:?} (regions: {})", known.join(", ")),
            )
        })
    };
    let weights = match get(annotations, &WEIGHTS) {
        Some((wkey, text)) => Some(parse_weights(wkey, text, regions.len(), &region_index)?),
        None => None,
    };
    // k8gb's spellings: roundRobin and geoip.
    let kind = match value.to_ascii_lowercase().as_str() {
        "roundrobin" => Ok(StrategyKind::RoundRobin),
        "geoip" => Ok(StrategyKind::Geo),
        other => other.parse::<StrategyKind>(),
    }
    .map_err(|_| {
        bad(
            key,
            value,
            "bad_strategy",
            "strategy must be round-robin (roundRobin), weighted, failover or geo (geoip)",
        )
    })?;
    let strategy = match kind {
        // k8gb: roundRobin with weights is its weighted round robin.
        StrategyKind::RoundRobin => match weights {
            Some(weights) => Strategy::Weighted { weights, pick: 1 },
            None => Strategy::RoundRobin,
        },
        StrategyKind::Weighted => match weights {
            Some(weights) => Strategy::Weighted { weights, pick: 1 },
            None => {
                return Err(bad(
                    WEIGHTS[0],
                    "",
                    "missing",
                    "the weighted strategy needs weights, e.g. eu=50,us=30,ap=20",
                ));
            }
        },
        StrategyKind::Failover => Strategy::Failover {
            order: failover_order(annotations, regions.len(), &region_index)?,
        },
        StrategyKind::Geo => Strategy::Geo,
    };
    let ttl = match get(annotations, &TTL) {
        Some((key, text)) => match text.parse::<u32>() {
            Ok(ttl) if (1..=MAX_TTL).contains(&ttl) => Some(ttl),
            _ => {
                return Err(bad(
                    key,
                    text,
                    "bad_ttl",
                    format!("TTL must be a number of seconds from 1 to {MAX_TTL}"),
                ));
            }
        },
        None => None,
    };
    let probe_path = match get(annotations, &PROBE_PATH) {
        Some((key, path)) if !path.starts_with('/') || path.chars().any(char::is_whitespace) => {
            return Err(bad(
                key,
                path,
                "bad_probe",
                "the probe path must start with / and hold no spaces",
            ));
        }
        Some((_, path)) => Some(path.to_string()),
        None => None,
    };
    let probe_scheme = match get(annotations, &PROBE_SCHEME) {
        Some((key, text)) => Some(match text.to_ascii_lowercase().as_str() {
            "http" => ProbeKind::Http,
            "https" => ProbeKind::Https,
            "tcp" => ProbeKind::Tcp,
            "none" => ProbeKind::None,
            _ => {
                return Err(bad(
                    key,
                    text,
                    "bad_probe",
                    "the probe scheme must be http, https, tcp or none",
                ));
            }
        }),
        None => None,
    };
    let addresses = match get(annotations, &ADDRESSES) {
        Some((key, text)) => {
            let mut out = Vec::new();
            for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                match part.parse::<IpAddr>() {
                    Ok(addr) if !addr.is_unspecified() && !addr.is_multicast() => out.push(addr),
                    _ => {
                        return Err(bad(
                            key,
                            text,
                            "bad_address",
                            format!("{part:?} is not a unicast IPv4 or IPv6 address"),
                        ));
                    }
                }
            }
            if out.is_empty() {
                return Err(bad(key, text, "bad_address", "no address given"));
            }
            Some(out)
        }
        None => None,
    };
    let health_policy = match get(annotations, &HEALTH_POLICY) {
        Some((key, text)) => match text.to_ascii_lowercase().as_str() {
            "any" => TargetPolicy::Any,
            "all" => TargetPolicy::All,
            _ => {
                return Err(bad(
                    key,
                    text,
                    "bad_policy",
                    "the health policy must be any or all",
                ));
            }
        },
        None => TargetPolicy::Any,
    };
    let all_down = match get(annotations, &ALL_DOWN) {
        Some((key, text)) => Some(match text.to_ascii_lowercase().as_str() {
            "fail-open" => AllDownPolicy::FailOpen,
            "empty" | "fail-closed" => AllDownPolicy::Empty,
            _ => {
                return Err(bad(
                    key,
                    text,
                    "bad_policy",
                    "all-down must be fail-open or empty (fail-closed)",
                ));
            }
        }),
        None => None,
    };
    let target_name = match get(annotations, &TARGET_NAME) {
        Some((_, "status")) => Some(TargetName::Status),
        Some((key, text)) => Some(TargetName::Fixed(target_name(key, text, zone)?)),
        None => None,
    };
    if let (Some(_), Some((key, text))) = (&target_name, get(annotations, &ADDRESSES)) {
        return Err(bad(
            key,
            text,
            "conflict",
            format!("give addresses or {}, not both", TARGET_NAME[0]),
        ));
    }
    let hostnames = get(annotations, &HOSTNAME)
        .map(|(_, text)| {
            text.split(',')
                .map(str::trim)
                .filter(|h| !h.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(Settings {
        strategy,
        ttl,
        probe_path,
        probe_scheme,
        addresses,
        health_policy,
        all_down,
        hostnames,
        target_name,
    }))
}

/// A target host name: valid and outside the zone (a CNAME into the zone is never chased).
fn target_name(key: &str, text: &str, zone: &Name) -> Result<Name, AnnotationError> {
    let valid = |name: &Name| {
        name.num_labels() > 0
            && name.iter().all(|label| {
                !label.is_empty()
                    && label
                        .iter()
                        .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
    };
    let mut name = Name::from_ascii(text)
        .ok()
        .filter(valid)
        .ok_or_else(|| {
            bad(
                key,
                text,
                "bad_target",
                "not a host name (letters, digits, '-' and '_' in dot-separated labels), nor status",
            )
        })?
        .to_lowercase();
    name.set_fqdn(true);
    if zone.zone_of(&name) {
        return Err(bad(
            key,
            text,
            "bad_target",
            format!(
                "{name} is inside the zone {zone}: gslbd does not chase CNAMEs within its zone"
            ),
        ));
    }
    Ok(name)
}

/// `eu=50,us=30,ap=20`: a weight per region (0 to 1 000 000; regions left out get 0).
fn parse_weights(
    key: &str,
    text: &str,
    regions: usize,
    region_index: &dyn Fn(&str, &str) -> Result<RegionIndex, AnnotationError>,
) -> Result<Vec<u32>, AnnotationError> {
    let mut weights = vec![0u32; regions];
    let mut seen = vec![false; regions];
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((name, weight)) = part.split_once('=') else {
            return Err(bad(
                key,
                text,
                "bad_weights",
                format!("{part:?} is not region=weight"),
            ));
        };
        let index = region_index(key, name.trim())?;
        if seen[index] {
            return Err(bad(
                key,
                text,
                "bad_weights",
                format!("region {} given twice", name.trim()),
            ));
        }
        seen[index] = true;
        weights[index] = match weight.trim().parse::<u32>() {
            Ok(w) if w <= 1_000_000 => w,
            _ => {
                return Err(bad(
                    key,
                    text,
                    "bad_weights",
                    format!(
                        "weight {:?} must be a whole number from 0 to 1000000",
                        weight.trim()
                    ),
                ));
            }
        };
    }
    if weights.iter().all(|w| *w == 0) {
        return Err(bad(
            key,
            text,
            "bad_weights",
            "at least one region needs a positive weight",
        ));
    }
    Ok(weights)
}

/// The failover order: `gslbd.io/failover-order` (`eu,us,ap`), else the primary region first
/// (`gslbd.io/primary-region`, k8gb's `k8gb.io/primary-geotag`); regions not listed follow in
/// config order.
fn failover_order(
    annotations: &Annotations,
    regions: usize,
    region_index: &dyn Fn(&str, &str) -> Result<RegionIndex, AnnotationError>,
) -> Result<Vec<RegionIndex>, AnnotationError> {
    let (key, text) = match get(annotations, &FAILOVER_ORDER).or(get(annotations, &PRIMARY_REGION))
    {
        Some(found) => found,
        None => {
            return Err(bad(
                FAILOVER_ORDER[0],
                "",
                "missing",
                "the failover strategy needs gslbd.io/failover-order (eu,us,ap) or gslbd.io/primary-region (k8gb.io/primary-geotag)",
            ));
        }
    };
    let mut order = Vec::new();
    for name in text.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let index = region_index(key, name)?;
        if order.contains(&index) {
            return Err(bad(
                key,
                text,
                "bad_order",
                format!("region {name} given twice"),
            ));
        }
        order.push(index);
    }
    if order.is_empty() {
        return Err(bad(key, text, "bad_order", "no region given"));
    }
    let rest: Vec<RegionIndex> = RegionIndex::all(regions)
        .filter(|i| !order.contains(i))
        .collect();
    order.extend(rest);
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{AP, EU, US, regions};

    fn parse_pairs(pairs: &[(&str, &str)]) -> Result<Option<Settings>, AnnotationError> {
        let map = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        parse(
            &map,
            &regions(),
            &Name::from_ascii("gslb.example.com.").expect("a name"),
        )
    }

    #[test]
    fn a_target_name_is_a_host_name_outside_the_zone_or_status() {
        let target = |value: &str| {
            parse_pairs(&[
                ("gslbd.io/strategy", "round-robin"),
                ("gslbd.io/target-name", value),
            ])
            .map(|s| s.expect("ours").target_name)
        };
        assert_eq!(
            target("LB-1.elb.Example.NET"),
            Ok(Some(TargetName::Fixed(
                Name::from_ascii("lb-1.elb.example.net.").expect("a name")
            )))
        );
        assert_eq!(target("status"), Ok(Some(TargetName::Status)));
        for (bad, reason) in [
            ("www.gslb.example.com", "inside the zone"),
            ("lb..example.net", "not a host name"),
            ("lb/1.example.net", "not a host name"),
            ("", "not a host name"),
            (".", "not a host name"),
        ] {
            let error = target(bad).expect_err(bad);
            assert_eq!(error.class, "bad_target");
            assert!(error.reason.contains(reason), "{bad}: {error}");
        }
        let both = parse_pairs(&[
            ("gslbd.io/strategy", "round-robin"),
            ("gslbd.io/target-name", "lb.example.net"),
            ("gslbd.io/addresses", "192.0.2.1"),
        ]);
        assert_eq!(both.expect_err("both").class, "conflict");
    }

    #[test]
    fn strategies_and_k8gb_aliases() {
        assert_eq!(parse_pairs(&[("other", "x")]), Ok(None));
        let s = parse_pairs(&[("k8gb.io/strategy", "roundRobin")])
            .unwrap()
            .unwrap();
        assert_eq!(s.strategy, Strategy::RoundRobin);
        let s = parse_pairs(&[
            ("k8gb.io/strategy", "failover"),
            ("k8gb.io/primary-geotag", "us"),
            ("k8gb.io/dns-ttl-seconds", "15"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (s.strategy, s.ttl),
            (
                Strategy::Failover {
                    order: vec![US, EU, AP]
                },
                Some(15)
            )
        );
        let s = parse_pairs(&[
            ("gslbd.io/strategy", "failover"),
            ("gslbd.io/failover-order", "ap, eu"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            s.strategy,
            Strategy::Failover {
                order: vec![AP, EU, US]
            }
        );
        let s = parse_pairs(&[
            ("gslbd.io/strategy", "weighted"),
            ("gslbd.io/weights", "eu=50,us=30,ap=20"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            s.strategy,
            Strategy::Weighted {
                weights: vec![50, 30, 20],
                pick: 1
            }
        );
        let s = parse_pairs(&[
            ("gslbd.io/strategy", "geo"),
            ("gslbd.io/addresses", "192.0.2.7, 2001:db8::7"),
            ("gslbd.io/health-policy", "all"),
            ("gslbd.io/probe-path", "/healthz"),
            ("gslbd.io/probe-scheme", "https"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.strategy, Strategy::Geo);
        assert_eq!(s.addresses.unwrap().len(), 2);
        assert_eq!(s.health_policy, TargetPolicy::All);
        assert_eq!(s.probe_path.as_deref(), Some("/healthz"));
        assert_eq!(s.probe_scheme, Some(ProbeKind::Https));
    }

    #[test]
    fn every_class_of_bad_annotation_says_which_and_why() {
        // (annotations, class, key at fault)
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: &[Case<'_>] = &[
            (
                &[("gslbd.io/strategy", "random")],
                "bad_strategy",
                "gslbd.io/strategy",
            ),
            (
                &[("gslbd.io/strategy", "failover")],
                "missing",
                "gslbd.io/failover-order",
            ),
            (
                &[
                    ("gslbd.io/strategy", "failover"),
                    ("gslbd.io/primary-region", "mars"),
                ],
                "unknown_region",
                "gslbd.io/primary-region",
            ),
            (
                &[
                    ("gslbd.io/strategy", "failover"),
                    ("gslbd.io/failover-order", "eu,eu"),
                ],
                "bad_order",
                "gslbd.io/failover-order",
            ),
            (
                &[("gslbd.io/strategy", "weighted")],
                "missing",
                "gslbd.io/weights",
            ),
            (
                &[
                    ("gslbd.io/strategy", "weighted"),
                    ("gslbd.io/weights", "eu=lots"),
                ],
                "bad_weights",
                "gslbd.io/weights",
            ),
            (
                &[
                    ("gslbd.io/strategy", "weighted"),
                    ("gslbd.io/weights", "eu=0"),
                ],
                "bad_weights",
                "gslbd.io/weights",
            ),
            (
                &[("gslbd.io/strategy", "geo"), ("gslbd.io/ttl", "0")],
                "bad_ttl",
                "gslbd.io/ttl",
            ),
            (
                &[
                    ("gslbd.io/strategy", "geo"),
                    ("k8gb.io/dns-ttl-seconds", "soon"),
                ],
                "bad_ttl",
                "k8gb.io/dns-ttl-seconds",
            ),
            (
                &[
                    ("gslbd.io/strategy", "geo"),
                    ("gslbd.io/addresses", "10.0.0.300"),
                ],
                "bad_address",
                "gslbd.io/addresses",
            ),
            (
                &[
                    ("gslbd.io/strategy", "geo"),
                    ("gslbd.io/probe-path", "healthz"),
                ],
                "bad_probe",
                "gslbd.io/probe-path",
            ),
            (
                &[
                    ("gslbd.io/strategy", "geo"),
                    ("gslbd.io/probe-scheme", "ftp"),
                ],
                "bad_probe",
                "gslbd.io/probe-scheme",
            ),
            (
                &[
                    ("gslbd.io/strategy", "geo"),
                    ("gslbd.io/health-policy", "most"),
                ],
                "bad_policy",
                "gslbd.io/health-policy",
            ),
        ];
        for (pairs, class, key) in cases {
            let error = parse_pairs(pairs).expect_err("refused");
            assert_eq!(
                (error.class, error.key.as_str()),
                (*class, *key),
                "{pairs:?}: {error}"
            );
        }
    }
}
