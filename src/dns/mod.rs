//! The authoritative DNS side: strategies (`select`), the pure answer (`answer`; a signed
//! zone's DNSSEC records added by `signed`, DNS cookies by `cookie`), its encoding
//! (`encode`), one message answered (`message`; the common query from its bytes, `quick`), and the transports: the UDP fast path (`udp`),
//! TCP with its connection limits (`tcp`), hickory-server for UDP when the fast path is off
//! (`handler`), and the listeners they share (`server`).

pub mod answer;
pub mod cookie;
pub mod encode;
pub mod handler;
pub mod message;
pub mod quick;
pub mod rrl;
pub mod select;
pub mod server;
pub mod signed;
pub mod tcp;
pub mod udp;

use crate::config::{CookieSettings, ServerSettings};
use crate::label_enum::label_enum;

/// What this server adds of its own to answers, from its settings: the NSID it gives queries
/// that ask (RFC 5001) and the secrets of its DNS cookies. The same in every snapshot.
#[derive(Clone, Debug, Default)]
pub struct Identity {
    pub nsid: Option<Vec<u8>>,
    pub cookies: Option<cookie::Cookies>,
}

impl Identity {
    /// The identity `server` describes (a cookie secret of its own made now, when it gives none).
    pub fn of(server: &ServerSettings) -> Self {
        if server.cookies == CookieSettings::OwnSecret {
            tracing::info!(
                "DNS cookies with a secret of this process's own: set server.cookies.secrets to share one between a region's replicas"
            );
        }
        Self {
            nsid: server.nsid.clone(),
            cookies: cookie::Cookies::from_settings(&server.cookies),
        }
    }
}

label_enum! {
    /// The transport a query came over; the names are metric label values.
    pub enum Transport {
        /// UDP, on the fast path or hickory-server's.
        Udp = "udp",
        /// TCP (gslbd's own connections, `tcp`).
        Tcp = "tcp",
    }
}

label_enum! {
    /// Why a datagram got no answer; the names are metric label values.
    pub enum DropReason {
        /// Shorter than a header, a response (never answered: no reflection loops), or too
        /// broken to be answered with FORMERR.
        NotAQuery = "not_a_query",
    }
}

/// The time bucket answers depend on: the number of `bucket_ms` periods since the epoch
/// (`zone.time_bucket_ms`, one second by default), so servers with roughly synchronised clocks
/// answer a client alike, and one client's picks change from one bucket to the next.
pub fn time_bucket(bucket_ms: u64) -> u64 {
    crate::unix_ms() / bucket_ms.max(1)
}
