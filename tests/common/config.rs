//! The config file as typed test fixtures: serde mirrors of gslbd's TOML schema
//! (`src/config.rs`, `RawConfig` and the tables under it) that serialize to the text the daemon
//! parses, so a test states the change it makes (`config.server.udp_workers = Some(1)`)
//! instead of editing TOML text.
//!
//! The mirror holds what the file holds, not what gslbd makes of it: addresses, strategies,
//! health states and probe kinds are strings and weights are `i64`, so that tests can write
//! the invalid values gslbd must refuse. `None` fields (which the toml serializer leaves out)
//! and empty collections (skipped below) are not written, so gslbd's own defaults apply.

use std::collections::BTreeMap;

use serde::Serialize;

/// The zone every fixture serves.
pub const ZONE: &str = "gslb.example.com";

/// The whole file (`RawConfig`).
#[derive(Clone, Debug, Serialize)]
pub struct ConfigFile {
    /// The region this gslbd speaks for: its targets are probed.
    pub local_region: Option<String>,
    pub server: Server,
    /// Defaults for every service's probes.
    #[serde(skip_serializing_if = "Probe::is_empty")]
    pub probe: Probe,
    pub gossip: Option<Gossip>,
    pub kubernetes: Option<Kubernetes>,
    pub zone: Zone,
    /// In this order: the NS set, the SOA's default mname and /state follow it.
    pub regions: Vec<Region>,
    pub geo: Option<Geo>,
    /// In this order: check-config names them by index (`services[1]`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<Service>,
}

/// `[server]`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Server {
    /// DNS listeners, `ip:port` (UDP and TCP each).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listen: Vec<String>,
    pub max_udp_payload: Option<u16>,
    /// Fast-path UDP sockets per listener.
    pub udp_workers: Option<usize>,
    /// `false`: UDP through hickory-server instead of gslbd's own loop.
    pub udp_fast_path: Option<bool>,
    pub tcp_idle_timeout_secs: Option<u64>,
    /// The admin endpoint (`/metrics`, `/state`, ...), `ip:port`; off when `None`.
    pub admin: Option<String>,
    pub per_service_metrics: Option<bool>,
    pub service_metrics_limit: Option<usize>,
    /// `[server.rrl]`; gslbd's defaults when `None`.
    pub rrl: Option<Rrl>,
    /// `[server.tcp]`; gslbd's defaults when `None`.
    pub tcp: Option<Tcp>,
    /// NSID text (RFC 5001), or "hostname".
    pub nsid: Option<String>,
    /// `[server.cookies]`; gslbd's defaults when `None`.
    pub cookies: Option<Cookies>,
}

/// `[server.cookies]`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Cookies {
    pub enabled: Option<bool>,
    /// Base64 of 16 bytes each.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<String>,
}

/// `[server.tcp]`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Tcp {
    pub max_connections: Option<usize>,
    /// Per client /24 (IPv6 /56).
    pub max_connections_per_network: Option<usize>,
    pub idle_timeout_secs: Option<u64>,
    /// To receive one query once its first byte came, and to send one answer.
    pub message_timeout_ms: Option<u64>,
    /// 0: no limit.
    pub max_queries_per_connection: Option<u32>,
}

/// `[server.rrl]`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Rrl {
    pub enabled: Option<bool>,
    pub responses_per_second: Option<u32>,
    pub nxdomains_per_second: Option<u32>,
    pub errors_per_second: Option<u32>,
    pub slip: Option<u32>,
    /// CIDRs never limited (gslbd's default: the host's loopback).
    pub exempt: Option<Vec<String>>,
}

/// `[zone]`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Zone {
    pub name: String,
    /// TTL of service answers, seconds.
    pub ttl: Option<u32>,
    /// TTL of the apex NS set and glue, seconds.
    pub ns_ttl: Option<u32>,
    /// "fail-open" or "empty": what a service with every region down answers.
    pub all_down: Option<String>,
    pub time_bucket_ms: Option<u64>,
    /// A region coming back ramps up over this long (0: at once).
    pub slow_start_ms: Option<u64>,
    /// Failover and geo return to a region that came back after this long (0: at once).
    pub failback_delay_ms: Option<u64>,
    pub soa: Option<Soa>,
    /// `[zone.dnssec]`: signed when given.
    pub dnssec: Option<Dnssec>,
}

/// `[zone.dnssec]`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Dnssec {
    /// Signing keys: key-file base names (`K<zone>.+013+<tag>`) or either file.
    pub keys: Vec<String>,
    /// Keys published in the DNSKEY set that do not sign.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub published: Vec<String>,
    pub dnskey_ttl: Option<u32>,
    pub signature_lifetime_hours: Option<u64>,
    pub signature_refresh_hours: Option<u64>,
}

/// `[zone.soa]`; every field in seconds but `mname`, `rname` and `serial`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Soa {
    /// The first region nameserver when `None`.
    pub mname: Option<String>,
    /// `hostmaster.<zone>` when `None`.
    pub rname: Option<String>,
    pub serial: Option<u32>,
    pub refresh: Option<u32>,
    pub retry: Option<u32>,
    pub expire: Option<u32>,
    /// With `ttl`, bounds the negative TTL (RFC 2308 §5).
    pub minimum: Option<u32>,
    pub ttl: Option<u32>,
}

/// One `[[regions]]` entry.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Region {
    pub name: String,
    /// Its name server in the NS set; a region without one serves traffic only.
    pub nameserver: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub glue: Vec<String>,
    /// Latitude and longitude, for geo answers.
    pub location: Option<[f64; 2]>,
}

/// `[geo]`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Geo {
    pub default_region: Option<String>,
    /// Client network (CIDR) to region.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, String>,
}

/// One `[[services]]` entry. gslbd keys `targets`, `weights` and `health` by region in
/// sorted maps, so their order in the file never matters and `BTreeMap` loses nothing.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Service {
    pub name: String,
    /// "failover", "weighted", "round-robin" or "geo".
    pub strategy: String,
    pub ttl: Option<u32>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub failover_order: Vec<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub weights: BTreeMap<String, i64>,
    /// Weighted only: how many regions an answer holds.
    pub pick: Option<i64>,
    pub targets: BTreeMap<String, Target>,
    /// Static health by region: "healthy", "unhealthy" or "unknown".
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub health: BTreeMap<String, String>,
    pub all_down: Option<String>,
    /// Overrides the top-level `[probe]` for this service.
    #[serde(skip_serializing_if = "Probe::is_empty")]
    pub probe: Probe,
}

/// A region's target: its addresses, or a host name (answered as a CNAME).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Target {
    Addresses(Vec<String>),
    Name(String),
}

impl From<Vec<String>> for Target {
    fn from(addresses: Vec<String>) -> Self {
        Self::Addresses(addresses)
    }
}

/// `[probe]` or a service's `probe` table; what is `None` comes from the top level, then
/// from gslbd's defaults.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Probe {
    /// "http", "https", "tcp" or "none".
    pub kind: Option<String>,
    pub port: Option<u16>,
    /// HTTP(S) only, as are `host`, `expect_status` and `body_contains`.
    pub path: Option<String>,
    pub host: Option<String>,
    /// Status codes or ranges that pass ("200-399").
    pub expect_status: Option<Vec<String>>,
    pub body_contains: Option<String>,
    /// HTTPS only, as is `insecure_skip_verify`: the CA file to trust.
    pub ca_file: Option<String>,
    pub insecure_skip_verify: Option<bool>,
    pub interval_ms: Option<u64>,
    /// Below `interval_ms`.
    pub timeout_ms: Option<u64>,
    /// Successes in a row before a target is healthy.
    pub rise: Option<u32>,
    /// Failures in a row before a target is unhealthy.
    pub fall: Option<u32>,
    /// "any" or "all": which of a region's addresses must pass.
    pub target_policy: Option<String>,
    /// Top level only: probes in flight at once.
    pub max_concurrency: Option<usize>,
}

/// `[gossip]`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Gossip {
    /// `ip:port`; port 0 picks one, which is then advertised.
    pub listen: String,
    pub advertise: Option<String>,
    /// `host:port` of peers to start from.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub seeds: Vec<String>,
    /// The zone name when `None`.
    pub cluster: Option<String>,
    /// This node's name within its region.
    pub instance: Option<String>,
    /// Base64 cluster keys, or `keys_file`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<String>,
    pub keys_file: Option<String>,
    /// Base64 Ed25519 seed of the local region's key, or `signing_key_file`.
    pub signing_key: Option<String>,
    pub signing_key_file: Option<String>,
    /// Every region's public key; required by gslbd, so written even when empty.
    pub region_keys: BTreeMap<String, String>,
    pub interval_ms: Option<u64>,
    /// Silence after which a peer is suspect; below `peer_timeout_ms`.
    pub peer_suspect_ms: Option<u64>,
    pub peer_timeout_ms: Option<u64>,
    /// Probes of the other regions' targets; 0 turns them off.
    pub observe_interval_ms: Option<u64>,
    /// "majority" (the default) or a number, written as TOML.
    pub observer_quorum: Option<u32>,
}

/// `[kubernetes]`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Kubernetes {
    /// `http(s)://` URL; the in-cluster config or kubeconfig when `None`.
    pub api_server: Option<String>,
    /// Every namespace when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    /// Sources, each on when `None`.
    pub ingresses: Option<bool>,
    pub load_balancer_services: Option<bool>,
    pub gateway_api: Option<bool>,
    pub resolve_interval_secs: Option<u64>,
    /// How long `/readyz` waits for the first discovery.
    pub sync_timeout_secs: Option<u64>,
    /// Publish Kubernetes Events on the objects.
    pub events: Option<bool>,
    /// `namespace/name` of an ExternalDNS DNSEndpoint to keep with the delegation.
    pub dns_endpoint: Option<String>,
}

/// `strs(&["a", "b"])`: owned strings for the mirror's list fields.
pub fn strs(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

impl ConfigFile {
    /// A file serving `ZONE` from loopback with `regions` (each [`Region::delegated`]) and
    /// nothing else: the frame of the probe, gossip, Kubernetes and delegation fixtures.
    pub fn minimal(regions: &[&str]) -> Self {
        Self {
            local_region: None,
            server: Server::loopback(1),
            probe: Probe::default(),
            gossip: None,
            kubernetes: None,
            zone: Zone::named(ZONE),
            regions: regions.iter().map(|r| Region::delegated(r)).collect(),
            geo: None,
            services: Vec::new(),
        }
    }

    /// Three regions eu, us and ap with glue and locations, a geo table and one service per
    /// strategy (app failover, web weighted, api and v4only round-robin, geo): what most
    /// DNS tests ask.
    pub fn base() -> Self {
        let mut config = Self::minimal(&["eu", "us", "ap"]);
        config.server.udp_workers = Some(2);
        config.zone.ttl = Some(30);
        config.zone.soa = Some(Soa {
            rname: Some("hostmaster.example.com".into()),
            serial: Some(7),
            ttl: Some(120),
            minimum: Some(60),
            ..Soa::default()
        });
        config.regions[0].glue.push("2001:db8::10".into());
        let locations = [[50.1, 8.7], [39.0, -77.5], [1.35, 103.8]];
        for (region, location) in config.regions.iter_mut().zip(locations) {
            region.location = Some(location);
        }
        config.geo = Some(Geo {
            default_region: Some("us".into()),
            networks: [
                ("192.0.2.0/24", "eu"),
                ("198.51.100.0/24", "us"),
                ("203.0.113.0/24", "ap"),
                ("127.0.0.0/8", "ap"),
            ]
            .into_iter()
            .map(|(net, region)| (net.to_string(), region.to_string()))
            .collect(),
        });
        config.services = vec![
            Service::failover("app.gslb.example.com", &["eu", "us", "ap"])
                .target("eu", &["192.0.2.1", "2001:db8:e::1"])
                .target("us", &["198.51.100.1", "2001:db8:a::1"])
                .target("ap", &["203.0.113.1", "2001:db8:c::1"]),
            Service::weighted(
                "web.gslb.example.com",
                &[("eu", 50), ("us", 30), ("ap", 20)],
            )
            .target("eu", &["192.0.2.2"])
            .target("us", &["198.51.100.2"])
            .target("ap", &["203.0.113.2"]),
            Service::round_robin("api.gslb.example.com")
                .target("eu", &["192.0.2.3", "192.0.2.4"])
                .target("us", &["198.51.100.3"])
                .target("ap", &["203.0.113.3"]),
            Service::geo("geo.gslb.example.com")
                .target("eu", &["192.0.2.5"])
                .target("us", &["198.51.100.5"])
                .target("ap", &["203.0.113.5"]),
            Service::round_robin("v4only.deep.gslb.example.com").target("eu", &["192.0.2.6"]),
        ];
        config
    }

    /// As region `region` runs it (`local_region`): that region's targets are probed.
    pub fn seen_from(self, region: &str) -> Self {
        Self {
            local_region: Some(region.into()),
            ..self
        }
    }

    /// The TOML text gslbd reads.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("the config mirror serializes")
    }

    /// Parsed and validated by gslbd, as the daemon would load it.
    pub fn parse(&self) -> gslbd::config::Config {
        gslbd::config::parse(&self.to_toml()).expect("test config is valid")
    }

    /// The service named `name`; panics when there is none, naming it.
    pub fn service_mut(&mut self, name: &str) -> &mut Service {
        self.services
            .iter_mut()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no service {name} in the test config"))
    }

    /// The region named `name`; panics when there is none, naming it.
    pub fn region_mut(&mut self, name: &str) -> &mut Region {
        self.regions
            .iter_mut()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no region {name} in the test config"))
    }

    /// The `[gossip]` table; panics when the file has none.
    pub fn gossip_mut(&mut self) -> &mut Gossip {
        self.gossip.as_mut().expect("the test config gossips")
    }
}

impl Server {
    /// DNS on an ephemeral loopback port with `udp_workers` fast-path workers.
    pub fn loopback(udp_workers: usize) -> Self {
        Self {
            listen: strs(&["127.0.0.1:0"]),
            udp_workers: Some(udp_workers),
            ..Self::default()
        }
    }
}

impl Zone {
    /// The zone `name` with gslbd's defaults for everything else.
    /// Zone `name`; regions coming back are let in at once (slow start and failback delay
    /// off: tests of recovery assert answers, and `tests/returning.rs` tests the two).
    pub fn named(name: &str) -> Self {
        Self {
            name: name.into(),
            slow_start_ms: Some(0),
            failback_delay_ms: Some(0),
            ..Self::default()
        }
    }
}

impl Region {
    /// A region without a nameserver (it serves traffic, not the zone).
    pub fn new(name: &str) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }

    /// Region `name` with nameserver `ns-<name>.gslb.example.com` and the loopback glue every
    /// fixture gives it: eu 127.0.10.1, us 127.0.20.1, ap 127.0.30.1.
    pub fn delegated(name: &str) -> Self {
        let glue = match name {
            "eu" => "127.0.10.1",
            "us" => "127.0.20.1",
            "ap" => "127.0.30.1",
            other => panic!("no fixture glue for region {other}"),
        };
        Self {
            name: name.into(),
            nameserver: Some(format!("ns-{name}.{ZONE}")),
            glue: strs(&[glue]),
            location: None,
        }
    }
}

impl Service {
    /// A service of `strategy` without targets yet.
    pub fn new(name: &str, strategy: &str) -> Self {
        Self {
            name: name.into(),
            strategy: strategy.into(),
            ..Self::default()
        }
    }

    /// Failover through `order`.
    pub fn failover(name: &str, order: &[&str]) -> Self {
        Self {
            failover_order: strs(order),
            ..Self::new(name, "failover")
        }
    }

    /// Weighted by `weights` (region, weight).
    pub fn weighted(name: &str, weights: &[(&str, i64)]) -> Self {
        Self {
            weights: weights.iter().map(|(r, w)| (r.to_string(), *w)).collect(),
            ..Self::new(name, "weighted")
        }
    }

    /// Round-robin over every healthy address.
    pub fn round_robin(name: &str) -> Self {
        Self::new(name, "round-robin")
    }

    /// The nearest healthy region to the client.
    pub fn geo(name: &str) -> Self {
        Self::new(name, "geo")
    }

    /// With `addrs` as `region`'s targets.
    pub fn target(mut self, region: &str, addrs: &[impl AsRef<str>]) -> Self {
        let addrs: Vec<String> = addrs.iter().map(|a| a.as_ref().to_string()).collect();
        self.targets.insert(region.into(), addrs.into());
        self
    }

    /// With `region`'s target the host name `name`.
    pub fn target_name(mut self, region: &str, name: &str) -> Self {
        self.targets
            .insert(region.into(), Target::Name(name.into()));
        self
    }

    /// With `region`'s static health set to `health` ("healthy", "unhealthy", "unknown").
    pub fn health(mut self, region: &str, health: &str) -> Self {
        self.health.insert(region.into(), health.into());
        self
    }

    /// With its own probe settings.
    pub fn probe(mut self, probe: Probe) -> Self {
        self.probe = probe;
        self
    }
}

impl Probe {
    /// HTTP probes on `port`, every `interval_ms`, each given `timeout_ms`.
    pub fn http(port: u16, interval_ms: u64, timeout_ms: u64) -> Self {
        Self {
            kind: Some("http".into()),
            port: Some(port),
            interval_ms: Some(interval_ms),
            timeout_ms: Some(timeout_ms),
            ..Self::default()
        }
    }

    /// No probes: static health decides.
    pub fn none() -> Self {
        Self {
            kind: Some("none".into()),
            ..Self::default()
        }
    }

    /// With verdicts after `rise` successes and `fall` failures in a row.
    pub fn rise_fall(self, rise: u32, fall: u32) -> Self {
        Self {
            rise: Some(rise),
            fall: Some(fall),
            ..self
        }
    }

    /// Whether nothing is set (the table is left out of the file).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}
