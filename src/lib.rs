//! gslbd: a global DNS load balancer. Every region's gslbd is authoritative for the delegated
//! zone and answers each service name with the healthy regions' addresses by the service's
//! strategy.
//!
//! ```text
//!   sources                         owner                       readers
//!   config file ───────┐ model    ┌──────────────────┐ snapshot ┌───────────────────────┐
//!   kubernetes ────────┤ services │ state (one task) │────────▶ │ dns: udp fast path,   │
//!   health probes ─────┤ verdicts │ merge, coalesce, │ (ArcSwap)│ tcp connections       │
//!   gossip (verified) ─┘ reports  │ rebuild          │────────▶ │ admin: /state /explain│
//!                                 └──────────────────┘ report   │ gossip: our report    │
//!                                                     (watch)   └───────────────────────┘
//! ```
//!
//! Every module, by what it holds:
//! - [`app`]: the daemon assembled ([`app::run`], [`app::App`]) on one task tree ([`tasks`]).
//! - [`config`]: the TOML file, one file per section, validated into the [`model`] (enums with
//!   written names come from `label_enum`); [`ownership`] says which names a service may claim
//!   (not the apex, a nameserver, a wildcard or a name outside the zone), for the config,
//!   Kubernetes and gossip alike.
//! - [`state`]: the one task that owns mutable state: events in, snapshots and our region's
//!   report out.
//! - [`snapshot`]: the immutable, precomputed view the DNS path reads, with its fixed records
//!   and readiness; [`region_health`] decides each region's health for each service, and why;
//!   [`geo`] places clients; [`remote`] holds other regions' reports and their freshness.
//! - [`dns`]: strategies (`select`), the pure answer (`answer`), encoding and transports (UDP,
//!   TCP with its connection limits), DNS cookies; [`dnssec`] signs the zone online (keys,
//!   cached signatures, compact denial); [`fd_limit`] keeps file descriptors for gslbd's own use.
//! - [`health`]: probe plan, probes, rise/fall, the checker.
//! - [`gossip`]: signed units of state, their store, pushes and pulls, foca membership, sealed transport, keys.
//! - [`kubernetes`]: watches, a pure index and discovery, the controller loop.
//! - [`delegation`]: the parent zone's NS and glue: print, RFC 2136 apply, ExternalDNS.
//! - [`metrics`]: Prometheus metrics by subsystem; [`admin`] serves them with `/readyz`,
//!   `/state` and [`explain`].
//! - [`demo`]: three regions in one process.

pub mod admin;
pub mod admin_client;
pub mod app;
pub mod config;
pub mod delegation;
pub mod demo;
pub mod dns;
pub mod dnssec;
pub mod explain;
pub mod fd_limit;
#[cfg(test)]
mod fixtures;
pub mod geo;
pub mod gossip;
pub mod health;
pub mod kubernetes;
mod label_enum;
pub mod metrics;
pub mod model;
pub mod ownership;
pub mod region_health;
pub mod remote;
pub mod snapshot;
pub mod state;
pub mod status;
pub mod tasks;
pub mod ui;

/// Wall-clock time in Unix milliseconds: what reports and verdicts are stamped with, so that
/// regions can compare them (clocks are assumed NTP-synchronised).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
