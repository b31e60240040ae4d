//! The authoritative DNS side: strategies (`select`), the pure answer (`answer`), its encoding
//! (`encode`), and the transports: hickory-server (`handler`, `server`) and the UDP fast path
//! (`udp`).

pub mod answer;
pub mod encode;
pub mod handler;
pub mod select;
pub mod server;
pub mod udp;

use std::time::{SystemTime, UNIX_EPOCH};

/// The time bucket answers depend on: whole seconds since the epoch, so servers with roughly
/// synchronised clocks answer a client alike, and one client's picks change second by second.
pub fn time_bucket() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
