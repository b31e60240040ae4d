//! `[server.tcp]`: how many DNS-over-TCP connections gslbd keeps, from whom, and for how long.
//! Every field has a default, so the table may be left out.
//!
//! The defaults are those of a public authoritative server: room for every resolver that falls
//! back to TCP at once, little room for any one network, and no connection held by a client
//! that neither asks nor reads.

use std::time::Duration;

use serde::Deserialize;

use super::problems::Problems;

/// Limits on DNS over TCP (see `dns::tcp`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpSettings {
    /// Connections open at once over every listen address; lowered at start so that file
    /// descriptors remain for probes, gossip and the admin endpoint (`fd_limit`).
    pub max_connections: usize,
    /// Connections open at once from one client network (IPv4 /24, IPv6 /56).
    pub max_connections_per_network: usize,
    /// Time a connection may wait for the first byte of its next query.
    pub idle_timeout: Duration,
    /// Time a query may take to arrive whole once its first byte came, and an answer to be
    /// taken by the client.
    pub message_timeout: Duration,
    /// Queries answered on one connection before it is closed; `None`: no limit.
    pub max_queries_per_connection: Option<u32>,
}

/// `[server.tcp]` as written; what is left out takes [`RawTcp::default`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(super) struct RawTcp {
    max_connections: usize,
    max_connections_per_network: usize,
    /// `None` when not written: `[server] tcp_idle_timeout_secs` (the older key), else 10 s.
    idle_timeout_secs: Option<u64>,
    message_timeout_ms: u64,
    max_queries_per_connection: u32,
}

/// Knot's tcp-idle-timeout; RFC 7766 §6.2.3 asks for seconds, not minutes.
const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 10;

impl Default for RawTcp {
    fn default() -> Self {
        Self {
            // Every resolver of a large ISP falling back to TCP at the same moment fits; a
            // connection costs about 6 KiB (docs/performance.md), so 1024 stay near 6 MiB.
            max_connections: 1024,
            // A resolver farm behind one /24 needs a few connections; sixteen leave the other
            // networks 98% of the room.
            max_connections_per_network: 16,
            idle_timeout_secs: None,
            // A query is one or two segments: 2 s leaves room for a retransmission across
            // the world.
            message_timeout_ms: 2000,
            // A resolver reconnects after a thousand queries at no cost; a trickling client
            // cannot keep a connection for ever by asking now and then.
            max_queries_per_connection: 1000,
        }
    }
}

impl RawTcp {
    /// The settings; `legacy_idle_secs` is `[server] tcp_idle_timeout_secs` if written.
    pub(super) fn validate(
        self,
        legacy_idle_secs: Option<u64>,
        problems: &mut Problems,
    ) -> TcpSettings {
        if !(1..=1_000_000).contains(&self.max_connections) {
            problems.add(
                "server.tcp.max_connections",
                "must be between 1 and 1000000",
            );
        }
        if self.max_connections_per_network == 0 {
            problems.add("server.tcp.max_connections_per_network", "must be positive");
        } else if self.max_connections_per_network > self.max_connections {
            problems.add(
                "server.tcp.max_connections_per_network",
                format!(
                    "{} is above server.tcp.max_connections ({})",
                    self.max_connections_per_network, self.max_connections
                ),
            );
        }
        let idle_secs = match (self.idle_timeout_secs, legacy_idle_secs) {
            (Some(_), Some(_)) => {
                problems.add(
                    "server.tcp.idle_timeout_secs",
                    "also set as server.tcp_idle_timeout_secs: keep one",
                );
                DEFAULT_IDLE_TIMEOUT_SECS
            }
            (Some(secs), None) => {
                if secs == 0 {
                    problems.add("server.tcp.idle_timeout_secs", "must be positive");
                }
                secs
            }
            (None, Some(secs)) => {
                if secs == 0 {
                    problems.add("server.tcp_idle_timeout_secs", "must be positive");
                }
                secs
            }
            (None, None) => DEFAULT_IDLE_TIMEOUT_SECS,
        };
        if !(10..=60_000).contains(&self.message_timeout_ms) {
            problems.add(
                "server.tcp.message_timeout_ms",
                "must be between 10 and 60000",
            );
        }
        TcpSettings {
            max_connections: self.max_connections.max(1),
            max_connections_per_network: self.max_connections_per_network.max(1),
            idle_timeout: Duration::from_secs(idle_secs.max(1)),
            message_timeout: Duration::from_millis(self.message_timeout_ms.max(10)),
            max_queries_per_connection: (self.max_queries_per_connection > 0)
                .then_some(self.max_queries_per_connection),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::fixture::{Fixture, assert_has};

    #[test]
    fn defaults_suit_a_public_authoritative_server() {
        let tcp = Fixture::new().config().server.tcp;
        assert_eq!(
            (tcp.max_connections, tcp.max_connections_per_network),
            (1024, 16)
        );
        assert_eq!(tcp.idle_timeout, Duration::from_secs(10));
        assert_eq!(tcp.message_timeout, Duration::from_secs(2));
        assert_eq!(tcp.max_queries_per_connection, Some(1000));
    }

    #[test]
    fn zero_queries_per_connection_means_no_limit() {
        let tcp = Fixture::section("server.tcp", "max_queries_per_connection = 0")
            .config()
            .server
            .tcp;
        assert_eq!(tcp.max_queries_per_connection, None);
    }

    #[test]
    fn the_older_idle_key_under_server_still_sets_the_idle_timeout() {
        let tcp = Fixture::section("server", "tcp_idle_timeout_secs = 3")
            .config()
            .server
            .tcp;
        assert_eq!(tcp.idle_timeout, Duration::from_secs(3));
        let tcp = Fixture::section("server.tcp", "idle_timeout_secs = 4")
            .config()
            .server
            .tcp;
        assert_eq!(tcp.idle_timeout, Duration::from_secs(4));
    }

    #[test]
    fn the_idle_timeout_may_be_written_once_only() {
        Fixture::new()
            .table("[server]\ntcp_idle_timeout_secs = 3\n\n[server.tcp]\nidle_timeout_secs = 4")
            .assert_refused("server.tcp.idle_timeout_secs", "keep one");
    }

    #[test]
    fn limits_and_timeouts_are_checked_with_their_path() {
        let problems = Fixture::section("server.tcp", 
            "max_connections = 0\nmax_connections_per_network = 0\nidle_timeout_secs = 0\nmessage_timeout_ms = 5",
        )
        .problems();
        assert_has(
            &problems,
            "server.tcp.max_connections",
            "between 1 and 1000000",
        );
        assert_has(
            &problems,
            "server.tcp.max_connections_per_network",
            "must be positive",
        );
        assert_has(
            &problems,
            "server.tcp.idle_timeout_secs",
            "must be positive",
        );
        assert_has(
            &problems,
            "server.tcp.message_timeout_ms",
            "between 10 and 60000",
        );
        assert_eq!(problems.len(), 4, "{problems:#?}");
    }

    #[test]
    fn one_network_may_not_have_more_than_the_total() {
        Fixture::section(
            "server.tcp",
            "max_connections = 8\nmax_connections_per_network = 9",
        )
        .assert_refused(
            "server.tcp.max_connections_per_network",
            "9 is above server.tcp.max_connections (8)",
        );
    }
}
