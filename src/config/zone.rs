//! `[zone]` with its `[zone.soa]`, the `[[regions]]` that serve it and the `[geo]` table that
//! places clients near a region: together they say what is delegated to whom and from where.

use std::collections::BTreeMap;
use std::net::IpAddr;

use hickory_proto::rr::Name;
use ipnet::IpNet;
use serde::Deserialize;

use super::MAX_TTL;
use super::names::parse_name;
use super::problems::Problems;
use crate::model::{AllDownPolicy, GeoTable, Region, RegionDef, Soa, Zone};

/// `[zone]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawZone {
    name: String,
    /// Services' TTL unless they set their own.
    #[serde(default = "default_ttl")]
    pub(super) ttl: u32,
    #[serde(default = "default_ns_ttl")]
    ns_ttl: u32,
    /// Services' policy when every region is down, unless they set their own.
    #[serde(default)]
    pub(super) all_down: AllDownPolicy,
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

/// `[zone.soa]` as written; every field has a default.
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

/// One `[[regions]]` entry as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRegion {
    name: String,
    nameserver: Option<String>,
    #[serde(default)]
    glue: Vec<IpAddr>,
    location: Option<[f64; 2]>,
}

/// `[geo]` as written: CIDR → region name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawGeo {
    default_region: Option<String>,
    #[serde(default)]
    networks: BTreeMap<String, String>,
}

/// Validates `[[regions]]` in order, leaving out a region whose name or nameserver is unusable.
pub(super) fn validate_regions(
    raw: &[RawRegion],
    origin: &Name,
    problems: &mut Problems,
) -> Vec<RegionDef> {
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
    /// The zone's name, lowercase and fully qualified; the root when it is unusable.
    pub(super) fn origin(&self, problems: &mut Problems) -> Name {
        match parse_name(&self.name) {
            Ok(name) if name.is_root() => {
                problems.add("zone.name", "the root zone cannot be served");
                name
            }
            Ok(name) => name,
            Err(reason) => {
                problems.add("zone.name", reason);
                Name::root()
            }
        }
    }

    /// Validates the zone and its SOA; the SOA's mname defaults to the first region nameserver.
    pub(super) fn validate(
        &self,
        origin: &Name,
        regions: &[RegionDef],
        problems: &mut Problems,
    ) -> Zone {
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
    /// Validates the networks and the default region against the regions' names.
    pub(super) fn validate(
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

/// Lowercase letters, digits and '-', like a DNS label of at most 63 bytes.
fn valid_region_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}
