//! `[zone]` with its `[zone.soa]`, the `[[regions]]` that serve it and the `[geo]` table that
//! places clients near a region: together they say what is delegated to whom and from where.

use std::collections::BTreeMap;
use std::net::IpAddr;

use hickory_proto::rr::Name;
use ipnet::IpNet;
use serde::Deserialize;

use super::MAX_TTL;
use super::dnssec::RawDnssec;
use super::names::parse_name;
use super::problems::Problems;
use crate::model::{AllDownPolicy, GeoTable, Region, RegionDef, RegionIndex, Returning, Soa, Zone};

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
    /// A region coming back ramps from no weight to its full weight over this long.
    #[serde(default = "default_slow_start_ms")]
    slow_start_ms: u64,
    /// Failover and geo answers go back to a region that came back only after this long.
    #[serde(default = "default_failback_delay_ms")]
    failback_delay_ms: u64,
    #[serde(default)]
    soa: RawSoa,
    /// Signing; the zone is unsigned without it.
    dnssec: Option<RawDnssec>,
}

fn default_slow_start_ms() -> u64 {
    60_000
}

fn default_failback_delay_ms() -> u64 {
    30_000
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
// SOA timers as the usual recommendations have them (RFC 1912 §2.2, RIPE-203; what Zonemaster
// checks): gslbd has no secondaries, so refresh, retry and expire only matter to the tools that
// check them. The negative TTL (`minimum`) stays short on purpose: a service added (an Ingress
// annotated, a config reloaded) must not stay hidden behind an NXDOMAIN a resolver cached for
// longer than a minute (Zonemaster notes it is below its 300).
fn soa_refresh() -> u32 {
    14_400
}
fn soa_retry() -> u32 {
    3600
}
fn soa_expire() -> u32 {
    1_209_600
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
    if raw.len() > crate::model::MAX_REGIONS {
        problems.add(
            "regions",
            format!("at most {} regions", crate::model::MAX_REGIONS),
        );
        return Vec::new();
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
        for (field, value) in [
            ("zone.slow_start_ms", self.slow_start_ms),
            ("zone.failback_delay_ms", self.failback_delay_ms),
        ] {
            if value > 3_600_000 {
                problems.add(field, "must be between 0 (off) and 3600000");
            }
        }
        for (field, value) in [("zone.ttl", self.ttl), ("zone.ns_ttl", self.ns_ttl)] {
            if value > MAX_TTL {
                problems.add(field, "must be below 2^31");
            }
        }
        let signer = self
            .dnssec
            .as_ref()
            .and_then(|dnssec| dnssec.validate(origin, problems));
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
            returning: Returning {
                slow_start_ms: self.slow_start_ms,
                failback_delay_ms: self.failback_delay_ms,
            },
            signer,
        }
    }
}

impl RawGeo {
    /// Validates the networks and the default region against the regions' names.
    pub(super) fn validate(
        &self,
        region_index: &dyn Fn(&str) -> Option<RegionIndex>,
        problems: &mut Problems,
    ) -> GeoTable {
        let default_region = self.default_region.as_ref().and_then(|name| {
            let index = region_index(name);
            if index.is_none() {
                problems.add("geo.default_region", format!("unknown region {name}"));
            }
            index
        });
        let mut networks: Vec<(IpNet, RegionIndex)> = Vec::new();
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

#[cfg(test)]
mod tests {
    use crate::model::Returning;
    use hickory_proto::rr::Name;

    use super::super::fixture::{Fixture, assert_has, assert_none_at};
    use crate::fixtures::{EU, US};

    /// The fixture with a third region (`regions[2]`) made of `keys`.
    fn third_region(keys: &str) -> Fixture {
        Fixture::new().table(&format!("[[regions]]\n{keys}"))
    }

    fn geo(keys: &str) -> Fixture {
        Fixture::new().table(&format!("[geo]\n{keys}"))
    }

    fn name(text: &str) -> Name {
        Name::from_ascii(text).expect("test name")
    }

    #[test]
    fn soa_defaults_to_the_first_nameserver_and_hostmaster_in_the_zone() {
        let zone = Fixture::new().config().model.zone;
        assert_eq!(zone.origin, name("gslb.example.com."));
        assert_eq!(zone.soa.mname, name("ns-eu.gslb.example.com."));
        assert_eq!(zone.soa.rname, name("hostmaster.gslb.example.com."));
        let soa = &zone.soa;
        assert_eq!(
            (soa.serial, soa.refresh, soa.retry, soa.expire, soa.minimum),
            (1, 14_400, 3600, 1_209_600, 60)
        );
        assert_eq!(soa.ttl, 60);
        assert_eq!((zone.ns_ttl, zone.time_bucket_ms), (3600, 1000));
        assert_eq!(
            zone.returning,
            Returning {
                slow_start_ms: 60_000,
                failback_delay_ms: 30_000
            }
        );
    }

    #[test]
    fn slow_start_and_failback_delay_are_0_to_an_hour() {
        Fixture::new()
            .zone("slow_start_ms = 3600001")
            .assert_refused("zone.slow_start_ms", "between 0 (off) and 3600000");
        let zone = Fixture::new()
            .zone("slow_start_ms = 0\nfailback_delay_ms = 5000")
            .config()
            .model
            .zone;
        assert_eq!(
            zone.returning,
            Returning {
                slow_start_ms: 0,
                failback_delay_ms: 5_000
            }
        );
    }

    #[test]
    fn the_root_zone_cannot_be_served() {
        Fixture::new()
            .zone_name(".")
            .assert_refused("zone.name", "the root zone cannot be served");
    }

    #[test]
    fn time_bucket_ms_must_be_between_1_and_3600000() {
        for bad in ["0", "3600001"] {
            Fixture::new()
                .zone(&format!("time_bucket_ms = {bad}"))
                .assert_refused("zone.time_bucket_ms", "between 1 and 3600000");
        }
        let zone = Fixture::new().zone("time_bucket_ms = 3600000").config();
        assert_eq!(zone.model.zone.time_bucket_ms, 3_600_000);
    }

    #[test]
    fn ttls_of_2_pow_31_or_more_are_refused() {
        let problems = Fixture::new()
            .zone("ns_ttl = 2147483648")
            .table("[zone.soa]\nexpire = 2147483648\nminimum = 2147483647")
            .problems();
        assert_has(&problems, "zone.ns_ttl", "must be below 2^31");
        assert_has(&problems, "zone.soa.expire", "must be below 2^31");
        assert_none_at(&problems, "zone.soa.minimum");
    }

    #[test]
    fn region_names_are_lowercase_labels_and_unique() {
        third_region(r#"name = "Asia""#)
            .assert_refused("regions[2].name", r#"invalid region name "Asia""#);
        third_region(r#"name = "eu""#).assert_refused("regions[2].name", "duplicate region eu");
    }

    #[test]
    fn a_nameserver_inside_the_zone_needs_glue() {
        third_region("name = \"ap\"\nnameserver = \"ns-ap.gslb.example.com\"").assert_refused(
            "regions[2].glue",
            "ns-ap.gslb.example.com. is inside the zone, so it needs glue addresses",
        );
        third_region("name = \"ap\"\nglue = [\"192.0.2.54\"]")
            .assert_refused("regions[2].glue", "glue needs a nameserver");
    }

    #[test]
    fn a_nameserver_is_neither_the_apex_nor_another_regions() {
        third_region("name = \"ap\"\nnameserver = \"NS.us.example.net\"").assert_refused(
            "regions[2].nameserver",
            "ns.us.example.net. is already region us's nameserver",
        );
        third_region("name = \"ap\"\nnameserver = \"gslb.example.com\"\nglue = [\"192.0.2.54\"]")
            .assert_refused(
                "regions[2].nameserver",
                "the nameserver cannot be the zone apex",
            );
    }

    #[test]
    fn geo_networks_must_be_cidrs_of_known_regions() {
        let problems =
            geo(r#"networks = { "192.0.2.0/33" = "eu", "198.51.100.0/24" = "mars" }"#).problems();
        assert_has(
            &problems,
            r#"geo.networks."192.0.2.0/33""#,
            r#"invalid CIDR "192.0.2.0/33""#,
        );
        assert_has(
            &problems,
            r#"geo.networks."198.51.100.0/24""#,
            "unknown region mars",
        );
        geo(r#"default_region = "mars""#)
            .assert_refused("geo.default_region", "unknown region mars");
    }

    #[test]
    fn geo_networks_are_truncated_to_their_prefix_and_listed_once() {
        geo(r#"networks = { "192.0.2.0/24" = "us", "192.0.2.1/24" = "eu" }"#).assert_refused(
            r#"geo.networks."192.0.2.1/24""#,
            "network 192.0.2.0/24 is listed twice",
        );
        let table = geo("default_region = \"us\"\nnetworks = { \"192.0.2.1/24\" = \"eu\" }")
            .config()
            .model
            .geo;
        let network = "192.0.2.0/24".parse().expect("test network");
        assert_eq!(table.networks, vec![(network, EU)]);
        assert_eq!(table.default_region, Some(US));
    }
}
