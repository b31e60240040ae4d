//! `[server]`: how the DNS listeners run. Every field has a default, so the table may be left out.

use std::collections::HashSet;
use std::net::SocketAddr;

use serde::Deserialize;

use super::cookies::{CookieSettings, RawCookies};
use super::default_true;
use super::problems::Problems;
use super::rrl::{RawRrl, RrlSettings};
use super::tcp::{RawTcp, TcpSettings};

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
    /// Limits on DNS over TCP: connections, timeouts (`[server.tcp]`).
    pub tcp: TcpSettings,
    /// Where the admin endpoint (/metrics, /healthz, /readyz, /state, /explain) listens; off
    /// when `None`.
    pub admin: Option<SocketAddr>,
    /// Also count answers per service (`gslbd_dns_service_answers_total`): one series per
    /// service, strategy and result, so off by default.
    pub per_service_metrics: bool,
    /// Zones of more services than this export no per (service, region) series
    /// (`gslbd_service_region_*`), only per-region totals; 0: never.
    pub service_metrics_limit: usize,
    /// Response rate limiting of UDP answers; `None` when off.
    pub rrl: Option<RrlSettings>,
    /// This server's identifier, sent to queries that ask for it with the NSID option
    /// (RFC 5001); `None`: not sent.
    pub nsid: Option<Vec<u8>>,
    /// DNS cookies (`[server.cookies]`).
    pub cookies: CookieSettings,
}

/// `[server]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    #[serde(default = "default_listen")]
    listen: Vec<SocketAddr>,
    #[serde(default = "default_max_udp_payload")]
    max_udp_payload: u16,
    #[serde(default = "default_udp_workers")]
    udp_workers: usize,
    #[serde(default = "default_true")]
    udp_fast_path: bool,
    /// The older place of `[server.tcp] idle_timeout_secs`, still read.
    tcp_idle_timeout_secs: Option<u64>,
    admin: Option<SocketAddr>,
    #[serde(default)]
    per_service_metrics: bool,
    #[serde(default = "default_service_metrics_limit")]
    service_metrics_limit: usize,
    #[serde(default)]
    rrl: RawRrl,
    #[serde(default)]
    tcp: RawTcp,
    /// NSID (RFC 5001): the text to send, or "hostname" for the host's name (the pod's name in
    /// Kubernetes: one per replica).
    nsid: Option<String>,
    #[serde(default)]
    cookies: RawCookies,
}

impl Default for RawServer {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            max_udp_payload: default_max_udp_payload(),
            udp_workers: default_udp_workers(),
            udp_fast_path: true,
            tcp_idle_timeout_secs: None,
            admin: None,
            per_service_metrics: false,
            service_metrics_limit: default_service_metrics_limit(),
            rrl: RawRrl::default(),
            tcp: RawTcp::default(),
            nsid: None,
            cookies: RawCookies::default(),
        }
    }
}

fn default_service_metrics_limit() -> usize {
    crate::metrics::DEFAULT_SERVICE_METRICS_LIMIT
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

impl RawServer {
    pub(super) fn validate(self, problems: &mut Problems) -> ServerSettings {
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
        ServerSettings {
            listen: self.listen,
            max_udp_payload: self.max_udp_payload.max(512),
            udp_workers: self.udp_workers.clamp(1, 64),
            udp_fast_path: self.udp_fast_path,
            tcp: self.tcp.validate(self.tcp_idle_timeout_secs, problems),
            admin: self.admin,
            per_service_metrics: self.per_service_metrics,
            service_metrics_limit: self.service_metrics_limit,
            rrl: self.rrl.validate(problems),
            nsid: self
                .nsid
                .as_deref()
                .and_then(|nsid| nsid_bytes(nsid, problems)),
            cookies: self.cookies.validate(problems),
        }
    }
}

/// Longest NSID sent: an identifier, not a message (BIND and Knot take a line of text).
const MAX_NSID: usize = 128;

/// The bytes of `server.nsid`: the text, or the host's name for "hostname".
fn nsid_bytes(nsid: &str, problems: &mut Problems) -> Option<Vec<u8>> {
    let text = if nsid == "hostname" {
        match std::fs::read_to_string("/proc/sys/kernel/hostname") {
            Ok(name) => name.trim().to_string(),
            Err(error) => {
                problems.add(
                    "server.nsid",
                    format!("cannot read the host's name: {error}"),
                );
                return None;
            }
        }
    } else {
        nsid.to_string()
    };
    if text.is_empty() || text.len() > MAX_NSID {
        problems.add(
            "server.nsid",
            format!("must be 1 to {MAX_NSID} bytes (or \"hostname\")"),
        );
        return None;
    }
    Some(text.into_bytes())
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Duration;

    use super::super::fixture::{Fixture, assert_has};

    fn server(keys: &str) -> Fixture {
        Fixture::new().table(&format!("[server]\n{keys}"))
    }

    #[test]
    fn without_a_server_table_dns_is_served_on_loopback_5353() {
        let server = Fixture::new().config().server;
        assert_eq!(
            server.listen,
            vec![SocketAddr::from(([127, 0, 0, 1], 5353))]
        );
        assert_eq!(server.max_udp_payload, 1232);
        assert!((1..=4).contains(&server.udp_workers));
        assert!(server.udp_fast_path);
        assert_eq!(server.tcp.idle_timeout, Duration::from_secs(10));
        assert_eq!(server.admin, None);
        assert!(!server.per_service_metrics);
        assert_eq!(server.service_metrics_limit, 1000);
        assert_eq!(server.nsid, None);
    }

    #[test]
    fn nsid_is_the_text_given_or_the_hosts_name() {
        let config = server(r#"nsid = "eu-1""#).config();
        assert_eq!(config.server.nsid.as_deref(), Some(&b"eu-1"[..]));
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname");
        let config = server(r#"nsid = "hostname""#).config();
        assert_eq!(config.server.nsid, Some(host.trim().as_bytes().to_vec()));
        server(r#"nsid = """#).assert_refused("server.nsid", "must be 1 to 128 bytes");
    }

    #[test]
    fn a_listen_address_given_twice_is_named_by_its_index() {
        server(r#"listen = ["127.0.0.1:53", "[::1]:53", "127.0.0.1:53"]"#)
            .assert_refused("server.listen[2]", "duplicate 127.0.0.1:53");
        server("listen = []").assert_refused("server.listen", "at least one address");
    }

    #[test]
    fn max_udp_payload_may_not_go_below_the_dns_minimum_of_512() {
        server("max_udp_payload = 511").assert_refused(
            "server.max_udp_payload",
            "511 is below the DNS minimum of 512",
        );
        let accepted = server("max_udp_payload = 512").config().server;
        assert_eq!(accepted.max_udp_payload, 512);
    }

    #[test]
    fn workers_and_idle_timeout_must_be_in_range() {
        let problems = server("udp_workers = 65\ntcp_idle_timeout_secs = 0").problems();
        assert_has(&problems, "server.udp_workers", "between 1 and 64");
        assert_has(
            &problems,
            "server.tcp_idle_timeout_secs",
            "must be positive",
        );
        server("udp_workers = 0").assert_refused("server.udp_workers", "between 1 and 64");
    }
}
