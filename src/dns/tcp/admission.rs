//! Which TCP connections may stay: at most so many in total and so many per client network
//! (IPv4 /24, IPv6 /56, the networks RRL and the strategies count by), decided once per
//! connection when it is accepted. An admitted connection holds a [`Permit`]; dropping it, however
//! the connection ends, gives its place back, so the counts cannot drift.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use prometheus::IntGauge;
use rustc_hash::FxHashMap;

use super::Refusal;

/// A client network: the /24 of an IPv4 address, the /56 of an IPv6 one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Network {
    V4(u32),
    V6(u64),
}

impl Network {
    fn of(client: IpAddr) -> Self {
        // An IPv4-mapped IPv6 source is the IPv4 client it stands for.
        match client.to_canonical() {
            IpAddr::V4(v4) => Self::V4(u32::from(v4) >> 8),
            IpAddr::V6(v6) => Self::V6((u128::from(v6) >> 72) as u64),
        }
    }
}

/// The connection counts, shared by every TCP listener of the server.
#[derive(Debug)]
pub struct Admission {
    max_total: usize,
    max_per_network: usize,
    open: Mutex<Open>,
    /// `gslbd_dns_tcp_connections`, set under the lock with the count it mirrors.
    open_gauge: IntGauge,
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    /// Networks with at least one connection open (entries are removed at zero).
    per_network: FxHashMap<Network, usize>,
}

impl Admission {
    /// Counts against `max_total` connections in all and `max_per_network` per network.
    pub fn new(max_total: usize, max_per_network: usize, open_gauge: IntGauge) -> Self {
        Self {
            max_total,
            max_per_network,
            open: Mutex::new(Open::default()),
            open_gauge,
        }
    }

    /// The place of a new connection from `client`, or why it has none.
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> Result<Permit, Refusal> {
        let network = Network::of(client);
        // A panic elsewhere cannot leave the counts half-updated: every update is one
        // statement, so a poisoned lock still guards consistent counts.
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if open.total >= self.max_total {
            return Err(Refusal::Total);
        }
        let of_network = open.per_network.entry(network).or_insert(0);
        if *of_network >= self.max_per_network {
            return Err(Refusal::PerNetwork);
        }
        *of_network += 1;
        open.total += 1;
        self.open_gauge.set(open.total as i64);
        Ok(Permit {
            admission: self.clone(),
            network,
        })
    }

    /// Connections allowed at once.
    pub fn max_total(&self) -> usize {
        self.max_total
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .total
    }

    fn release(&self, network: Network) {
        let mut open = self.open.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(of_network) = open.per_network.get_mut(&network) {
            *of_network -= 1;
            if *of_network == 0 {
                open.per_network.remove(&network);
            }
        }
        open.total = open.total.saturating_sub(1);
        self.open_gauge.set(open.total as i64);
    }
}

/// One admitted connection's place; given back when dropped.
#[derive(Debug)]
pub struct Permit {
    admission: Arc<Admission>,
    network: Network,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.admission.release(self.network);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(total: usize, per_network: usize) -> Arc<Admission> {
        let gauge = IntGauge::new("open", "open connections").expect("valid gauge");
        Arc::new(Admission::new(total, per_network, gauge))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn one_network_gets_its_share_and_the_others_theirs() {
        let admission = admission(10, 2);
        let first: Vec<Permit> = ["192.0.2.1", "192.0.2.200"]
            .iter()
            .map(|a| admission.admit(ip(a)).expect("room"))
            .collect();
        assert_eq!(
            admission.admit(ip("192.0.2.77")).err(),
            Some(Refusal::PerNetwork)
        );
        assert!(admission.admit(ip("192.0.3.1")).is_ok(), "the next /24");
        drop(first);
        assert!(
            admission.admit(ip("192.0.2.77")).is_ok(),
            "places given back"
        );
    }

    #[test]
    fn ipv6_clients_share_a_slash_56_and_mapped_ipv4_counts_as_ipv4() {
        let admission = admission(10, 1);
        let _held = admission.admit(ip("2001:db8:0:ff::1")).expect("room");
        assert_eq!(
            admission.admit(ip("2001:db8:0:1::2")).err(),
            Some(Refusal::PerNetwork),
            "same /56"
        );
        assert!(admission.admit(ip("2001:db8:0:100::1")).is_ok(), "next /56");
        let _v4 = admission.admit(ip("198.51.100.7")).expect("room");
        assert_eq!(
            admission.admit(ip("::ffff:198.51.100.8")).err(),
            Some(Refusal::PerNetwork)
        );
    }

    #[test]
    fn the_total_holds_whatever_the_networks() {
        let admission = admission(3, 3);
        let held: Vec<Permit> = (1..=3)
            .map(|i| admission.admit(ip(&format!("10.0.{i}.1"))).expect("room"))
            .collect();
        assert_eq!(admission.admit(ip("10.0.9.1")).err(), Some(Refusal::Total));
        assert_eq!(admission.open(), 3);
        assert_eq!(admission.open_gauge.get(), 3);
        drop(held);
        assert_eq!(admission.open(), 0);
        assert_eq!(admission.open_gauge.get(), 0);
        assert!(admission.open.lock().expect("lock").per_network.is_empty());
    }
}
