//! `[server.rrl]`: response rate limiting of UDP answers (Knot's and BIND's semantics), on by
//! default. Every field has a default; `enabled = false` turns it off.

use ipnet::IpNet;
use serde::Deserialize;

use super::default_true;
use super::problems::Problems;

/// How UDP answers are rate-limited per client network (see `dns::rrl`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RrlSettings {
    /// Answers with data (or NODATA) for one name and type, per client network and second.
    pub responses_per_second: u32,
    /// NXDOMAIN answers, per client network and second (all names of the zone share them).
    pub nxdomains_per_second: u32,
    /// REFUSED, FORMERR, NOTIMP and other errors, per client network and second.
    pub errors_per_second: u32,
    /// Every `slip`th limited answer is sent truncated (TC, no records: a real resolver retries
    /// over TCP), the others dropped; 0 drops all, 1 truncates all.
    pub slip: u32,
    /// Client networks: IPv4 addresses share a bucket per this prefix length.
    pub ipv4_prefix_length: u8,
    /// Client networks: IPv6 addresses share a bucket per this prefix length.
    pub ipv6_prefix_length: u8,
    /// Clients never limited.
    pub exempt: Vec<IpNet>,
    /// Buckets kept (8 bytes each); networks beyond it share buckets.
    pub table_size: usize,
}

/// `[server.rrl]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRrl {
    #[serde(default = "default_true")]
    enabled: bool,
    #[serde(default = "default_responses")]
    responses_per_second: u32,
    #[serde(default = "default_errors")]
    nxdomains_per_second: u32,
    #[serde(default = "default_errors")]
    errors_per_second: u32,
    #[serde(default = "default_slip")]
    slip: u32,
    #[serde(default = "default_ipv4_prefix")]
    ipv4_prefix_length: u8,
    #[serde(default = "default_ipv6_prefix")]
    ipv6_prefix_length: u8,
    #[serde(default = "default_exempt")]
    exempt: Vec<String>,
    #[serde(default = "default_table_size")]
    table_size: usize,
}

impl Default for RawRrl {
    fn default() -> Self {
        Self {
            enabled: true,
            responses_per_second: default_responses(),
            nxdomains_per_second: default_errors(),
            errors_per_second: default_errors(),
            slip: default_slip(),
            ipv4_prefix_length: default_ipv4_prefix(),
            ipv6_prefix_length: default_ipv6_prefix(),
            exempt: default_exempt(),
            table_size: default_table_size(),
        }
    }
}

/// BIND's and Knot's usual setting: a resolver asks a name once per TTL, so 20 identical
/// answers a second to one network is an attack or a broken client.
fn default_responses() -> u32 {
    20
}
fn default_errors() -> u32 {
    10
}
fn default_slip() -> u32 {
    2
}
fn default_ipv4_prefix() -> u8 {
    24
}
fn default_ipv6_prefix() -> u8 {
    56
}
/// The host itself (health checks, a local resolver) is not limited unless configured so.
fn default_exempt() -> Vec<String> {
    vec!["127.0.0.0/8".into(), "::1/128".into()]
}
/// 2^18 buckets: 2 MiB.
fn default_table_size() -> usize {
    1 << 18
}

impl RawRrl {
    /// The settings, or `None` when rate limiting is off.
    pub(super) fn validate(self, problems: &mut Problems) -> Option<RrlSettings> {
        for (field, value) in [
            ("responses_per_second", self.responses_per_second),
            ("nxdomains_per_second", self.nxdomains_per_second),
            ("errors_per_second", self.errors_per_second),
        ] {
            if !(1..=1_000_000).contains(&value) {
                problems.add(
                    format!("server.rrl.{field}"),
                    "must be between 1 and 1000000 (set enabled = false to turn rate limiting off)",
                );
            }
        }
        if self.slip > 10 {
            problems.add("server.rrl.slip", "must be between 0 and 10");
        }
        if !(8..=32).contains(&self.ipv4_prefix_length) {
            problems.add("server.rrl.ipv4_prefix_length", "must be between 8 and 32");
        }
        if !(16..=128).contains(&self.ipv6_prefix_length) {
            problems.add(
                "server.rrl.ipv6_prefix_length",
                "must be between 16 and 128",
            );
        }
        if !(1024..=(1 << 26)).contains(&self.table_size) {
            problems.add("server.rrl.table_size", "must be between 1024 and 67108864");
        }
        let mut exempt = Vec::with_capacity(self.exempt.len());
        for (i, text) in self.exempt.iter().enumerate() {
            match text.parse::<IpNet>() {
                Ok(net) => exempt.push(net.trunc()),
                Err(_) => problems.add(
                    format!("server.rrl.exempt[{i}]"),
                    format!("invalid CIDR {text:?}"),
                ),
            }
        }
        self.enabled.then_some(RrlSettings {
            responses_per_second: self.responses_per_second,
            nxdomains_per_second: self.nxdomains_per_second,
            errors_per_second: self.errors_per_second,
            slip: self.slip,
            ipv4_prefix_length: self.ipv4_prefix_length,
            ipv6_prefix_length: self.ipv6_prefix_length,
            exempt,
            table_size: self.table_size,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::{Fixture, assert_has};

    fn with_rrl(lines: &str) -> Fixture {
        Fixture::new().table(&format!("[server.rrl]\n{lines}"))
    }

    #[test]
    fn on_by_default_with_knot_like_limits_and_the_host_exempt() {
        let rrl = Fixture::new().config().server.rrl.expect("on by default");
        assert_eq!(
            (
                rrl.responses_per_second,
                rrl.nxdomains_per_second,
                rrl.errors_per_second
            ),
            (20, 10, 10)
        );
        assert_eq!(
            (rrl.slip, rrl.ipv4_prefix_length, rrl.ipv6_prefix_length),
            (2, 24, 56)
        );
        let exempt: Vec<String> = rrl.exempt.iter().map(ToString::to_string).collect();
        assert_eq!(exempt, ["127.0.0.0/8", "::1/128"]);
    }

    #[test]
    fn enabled_false_turns_it_off() {
        assert_eq!(with_rrl("enabled = false").config().server.rrl, None);
    }

    #[test]
    fn limits_prefixes_and_exemptions_are_checked_with_their_path() {
        let problems = with_rrl(
            "responses_per_second = 0\nslip = 11\nipv4_prefix_length = 33\nexempt = [\"10.0.0.0/8\", \"nope\"]",
        )
        .problems();
        assert_has(
            &problems,
            "server.rrl.responses_per_second",
            "between 1 and 1000000",
        );
        assert_has(&problems, "server.rrl.slip", "between 0 and 10");
        assert_has(
            &problems,
            "server.rrl.ipv4_prefix_length",
            "between 8 and 32",
        );
        assert_has(&problems, "server.rrl.exempt[1]", "invalid CIDR \"nope\"");
        assert_eq!(problems.len(), 4, "{problems:#?}");
    }

    #[test]
    fn exempt_networks_are_truncated_to_their_prefix() {
        let rrl = with_rrl("exempt = [\"198.51.100.7/24\"]")
            .config()
            .server
            .rrl
            .expect("on");
        assert_eq!(rrl.exempt[0].to_string(), "198.51.100.0/24");
    }
}
