//! gslbd: a global DNS load balancer. Every region's gslbd is authoritative for the delegated
//! zone and answers each service name with the healthy regions' addresses by the service's
//! strategy.
//!
//! ```text
//!   sources                      owner                      readers
//!   static config ──┐ model    ┌──────────────┐ snapshot  ┌──────────────────────┐
//!   (probes, gossip,├────────▶ │ state (task) │ ────────▶ │ dns: udp fast path,  │
//!    kubernetes)  ──┘ events   │ rebuild      │ (ArcSwap) │ hickory-server (tcp) │
//!                              └──────────────┘           └──────────────────────┘
//! ```
//!
//! - [`config`]: the TOML file, validated into the [`model`].
//! - [`snapshot`]: the immutable, precomputed view the DNS path reads; [`geo`] its client
//!   placement table.
//! - [`state`]: the one task that rebuilds and publishes snapshots.
//! - [`dns`]: strategies (`select`), the pure answer (`answer`), encoding and transports.
//! - [`app`]: the daemon assembled, started by `main.rs` or by tests.

pub mod admin;
pub mod app;
pub mod config;
pub mod delegation;
pub mod demo;
pub mod dns;
pub mod explain;
#[cfg(test)]
mod fixtures;
pub mod geo;
pub mod gossip;
pub mod health;
pub mod kubernetes;
mod label_enum;
pub mod metrics;
pub mod model;
pub mod region_health;
pub mod remote;
pub mod snapshot;
pub mod state;
pub mod tasks;

/// Wall-clock time in Unix milliseconds: what reports and verdicts are stamped with, so that
/// regions can compare them (clocks are assumed NTP-synchronised).
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
