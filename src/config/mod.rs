//! The configuration file (TOML): serde types as written, and their validation into [`Model`].
//!
//! Parsing is strict (`deny_unknown_fields`) and validation collects every problem with the path
//! of the field it concerns (`services[2].weights.us: weight must be positive`), so
//! `gslbd check-config` can list them all at once.
//!
//! One file per section, each pairing its raw serde type with its validation:
//! - `mod.rs`: [`Config`], [`load`], [`parse`] and the top-level table, which validates the
//!   sections in order and ties them together (`local_region`, the [`Model`]).
//! - `problems.rs`: [`Problem`], [`ConfigError`] and the collector every section adds to.
//! - `names.rs`: domain names as written in the file, parsed one way for every section.
//! - `split.rs`: a large file cut at its `[[services]]` tables, so each is parsed alone.
//! - `server.rs`: `[server]`, the DNS listeners ([`ServerSettings`]); `rrl.rs`: `[server.rrl]`,
//!   response rate limiting ([`RrlSettings`]); `tcp.rs`: `[server.tcp]`, TCP limits ([`TcpSettings`]);
//!   `cookies.rs`: `[server.cookies]`, DNS cookies ([`CookieSettings`]).
//! - `zone.rs`: `[zone]` with its SOA, `[[regions]]` and `[geo]`; `dnssec.rs`: `[zone.dnssec]`,
//!   the signing keys ([`Signer`](crate::dnssec::Signer)).
//! - `service.rs`: `[[services]]` and their strategies.
//! - `probe.rs`: the `[probe]` defaults and each service's `probe` overrides.
//! - `gossip.rs`: `[gossip]` ([`GossipSettings`]).
//! - `kubernetes.rs`: `[kubernetes]` ([`KubernetesSettings`]).
//! - `fixture.rs` (tests only): a small valid file the section tests extend.

mod cookies;
mod dnssec;
#[cfg(test)]
mod fixture;
mod gossip;
mod kubernetes;
mod names;
mod probe;
mod problems;
mod rrl;
mod server;
mod service;
mod split;
mod tcp;
mod zone;

use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

pub use self::cookies::{CookieSettings, SECRET_LEN as COOKIE_SECRET_LEN};
pub use self::gossip::GossipSettings;
pub use self::kubernetes::KubernetesSettings;
pub use self::problems::{ConfigError, Problem};
pub use self::rrl::RrlSettings;
pub use self::server::ServerSettings;
pub use self::tcp::TcpSettings;

use self::gossip::RawGossip;
use self::kubernetes::RawKubernetes;
use self::probe::RawProbe;
use self::problems::{Problems, one_line};
use self::server::RawServer;
use self::service::{RawService, RawServices, ServiceDefaults, Unparsed, validate_services};
use self::zone::{RawGeo, RawRegion, RawZone, validate_regions};
use crate::kubernetes::discover::Defaults;
use crate::model::{GeoTable, Model, RegionIndex};

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
    // Split at its services when it parses that way (`split.rs`), else whole: the whole
    // parse says what is wrong.
    let mut problems = Problems::default();
    let split = split::split(text);
    let config = match split
        .as_ref()
        .and_then(|split| parse_split(split, &mut problems))
    {
        Some(config) => config,
        None => {
            problems = Problems::default();
            validate_whole(parse_raw(text)?, &mut problems)
        }
    };
    if problems.0.is_empty() {
        Ok(config)
    } else {
        Err(ConfigError::Invalid(problems.0))
    }
}

/// A file parsed whole, validated.
fn validate_whole(mut raw: RawConfig, problems: &mut Problems) -> Config {
    let services = std::mem::take(&mut raw.services);
    match raw.validate(RawServices::Parsed(&services), problems) {
        Ok(config) => config,
        Err(Unparsed) => unreachable!("parsed services need no parse"),
    }
}

/// The file's head parsed and validated, then each of its services' tables parsed and
/// validated alone; `None` if any part does not parse.
fn parse_split(split: &split::Split<'_>, problems: &mut Problems) -> Option<Config> {
    let raw: RawConfig = toml::from_str(&split.head).ok()?;
    if !raw.services.is_empty() {
        return None;
    }
    raw.validate(RawServices::Tables(&split.services), problems)
        .ok()
}

/// The whole text parsed as one document, or the first thing wrong with it.
fn parse_raw(text: &str) -> Result<RawConfig, ConfigError> {
    let deserializer = toml::Deserializer::parse(text).map_err(|e| {
        ConfigError::Invalid(vec![Problem {
            path: String::new(),
            reason: one_line(&e.to_string()),
        }])
    })?;
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        let reason = one_line(&e.into_inner().to_string());
        ConfigError::Invalid(vec![Problem {
            path: if path == "." { String::new() } else { path },
            reason,
        }])
    })
}

/// The whole file as written.
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

/// Serde default for flags that are on unless turned off (in several sections).
fn default_true() -> bool {
    true
}

impl RawConfig {
    /// Validates the sections in an order where each finds what it refers to (regions before
    /// the services and tables that name them); problems are listed in that order.
    /// `services` are the file's: `self.services` parsed with it, or tables still to parse.
    fn validate(
        self,
        services: RawServices<'_>,
        problems: &mut Problems,
    ) -> Result<Config, Unparsed> {
        let server = self.server.validate(problems);
        let origin = self.zone.origin(problems);

        let regions = validate_regions(&self.regions, &origin, problems);
        let region_index = |name: &str| RegionIndex::of(&regions, name);

        let zone = self.zone.validate(&origin, &regions, problems);
        let default_probe = Arc::new(self.probe.validate("probe", problems));
        self.probe
            .check_http_fields(self.probe.kind, "probe", problems);
        let local_region = self.local_region.as_ref().and_then(|name| {
            let index = region_index(name);
            if index.is_none() {
                problems.add("local_region", format!("unknown region {name}"));
            }
            index
        });
        let probe_concurrency = self.probe.concurrency(problems);
        let geo = match &self.geo {
            Some(geo) => geo.validate(&region_index, problems),
            None => GeoTable::default(),
        };

        let services = validate_services(
            services,
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
        )?;

        let gossip = self.gossip.as_ref().and_then(|g| {
            g.validate(
                local_region.map(|i| &regions[i]),
                &regions,
                &origin,
                problems,
            )
        });
        let kubernetes = self.kubernetes.as_ref().and_then(|k| {
            k.validate(
                local_region,
                |local| Defaults {
                    zone: origin.clone(),
                    regions: regions.clone(),
                    local_region: local,
                    ttl: self.zone.ttl,
                    all_down: self.zone.all_down,
                    probe: default_probe.clone(),
                },
                problems,
            )
        });
        Ok(Config {
            server,
            gossip,
            kubernetes,
            model: Model {
                zone,
                regions,
                services: services.into_iter().map(Arc::new).collect(),
                geo,
                local_region,
                probe_concurrency,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::Fixture;

    #[test]
    fn a_file_with_only_zone_and_regions_is_valid() {
        let config = Fixture::new().config();
        assert_eq!(config.model.regions.len(), 2);
        assert!(config.model.services.is_empty());
        assert_eq!(config.model.local_region, None);
        assert!(config.gossip.is_none());
        assert!(config.kubernetes.is_none());
    }

    #[test]
    fn local_region_names_one_of_the_regions() {
        let config = Fixture::new().top(r#"local_region = "us""#).config();
        assert_eq!(config.model.local_region, Some(crate::fixtures::US));
        Fixture::new()
            .top(r#"local_region = "mars""#)
            .assert_refused("local_region", "unknown region mars");
    }

    /// Sections are validated in a fixed order (server, zone, regions, probe, services,
    /// kubernetes), and problems are listed in that order whatever the order of the file.
    #[test]
    fn problems_of_every_section_are_listed_in_validation_order() {
        let problems = Fixture::new()
            .table("[kubernetes]")
            .table("[[services]]\nname = \"app.example.org\"\nstrategy = \"round-robin\"\ntargets = { eu = [\"192.0.2.1\"] }")
            .table("[probe]\nrise = 0")
            .table("[[regions]]\nname = \"Asia\"")
            .zone("time_bucket_ms = 0")
            .table("[server]\nmax_udp_payload = 100")
            .problems();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "server.max_udp_payload",
                "regions[2].name",
                "zone.time_bucket_ms",
                "probe.rise",
                "services[0].name",
                "kubernetes",
            ]
        );
    }
}
