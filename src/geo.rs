//! Where a client is: the CIDR → region table and each region's neighbours by distance.
//!
//! Built once per snapshot from [`GeoTable`]; a lookup is a longest-prefix match over a short
//! list, and the answer for "nearest available region" is a walk down a precomputed order.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::{GeoTable, RegionDef, RegionIndex};

/// Where the client was placed, and how much of its address that placement depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement<'g> {
    /// Regions nearest first.
    pub order: &'g [RegionIndex],
    /// Leading bits of the client address the placement depends on (RFC 7871 scope): every
    /// address sharing them is placed alike. The matched network's prefix length (0 when none
    /// matched), or more where a network placing elsewhere lies within it; it may exceed the
    /// prefix the client gave (RFC 7871 §7.2.1).
    pub scope: u8,
}

/// Lookup structure for the geo strategy.
#[derive(Clone, Debug, Default)]
pub struct GeoIndex {
    /// (network, region), longest prefix first.
    networks: Vec<(IpNet, RegionIndex)>,
    /// `orders[r]`: regions sorted by distance from region `r` (r first).
    orders: Vec<Vec<RegionIndex>>,
    /// Order for clients no network matches.
    default_order: Vec<RegionIndex>,
    /// The region of clients no network matches, when the table names one.
    default_region: Option<RegionIndex>,
}

impl GeoIndex {
    /// Precomputes the lookup table and the distance orders.
    pub fn build(table: &GeoTable, regions: &[RegionDef]) -> Self {
        let mut networks: Vec<(IpNet, RegionIndex)> = table.networks.clone();
        networks.sort_by(|a, b| b.0.prefix_len().cmp(&a.0.prefix_len()).then(a.0.cmp(&b.0)));
        let orders: Vec<Vec<RegionIndex>> = RegionIndex::all(regions.len())
            .map(|home| order_from(home, regions))
            .collect();
        let default_order = match table.default_region {
            Some(home) => orders[home].clone(),
            None => RegionIndex::all(regions.len()).collect(),
        };
        Self {
            networks,
            orders,
            default_order,
            default_region: table.default_region,
        }
    }

    /// Places a client address (already truncated to the prefix the client gave).
    pub fn place(&self, addr: IpAddr) -> Placement<'_> {
        let matched = self.networks.iter().find(|(net, _)| net.contains(&addr));
        let region = matched.map(|&(_, region)| region).or(self.default_region);
        Placement {
            order: match matched {
                Some(&(_, region)) => &self.orders[region],
                None => &self.default_order,
            },
            scope: self.scope(addr, matched.map_or(0, |(net, _)| net.prefix_len()), region),
        }
    }

    /// How many leading bits of `addr` its placement (in `region`, decided by a network of
    /// `prefix` bits) depends on: enough that no network placing elsewhere lies within them.
    /// A network placing in the same region gives the same answer and does not count.
    fn scope(&self, addr: IpAddr, prefix: u8, region: Option<RegionIndex>) -> u8 {
        let mut scope = prefix;
        for (net, other) in &self.networks {
            if net.prefix_len() <= prefix || Some(*other) == region {
                continue;
            }
            // `net` is more specific than the placing network and does not hold `addr` (the
            // longest match would be it): the bits up to the first where they differ decide.
            let differs_at = match (addr, net.addr()) {
                (IpAddr::V4(a), IpAddr::V4(n)) => (u32::from(a) ^ u32::from(n)).leading_zeros(),
                (IpAddr::V6(a), IpAddr::V6(n)) => (u128::from(a) ^ u128::from(n)).leading_zeros(),
                _ => continue,
            };
            let needed = (differs_at as u8).saturating_add(1);
            if u32::from(needed) <= u32::from(net.prefix_len()) {
                scope = scope.max(needed);
            }
        }
        scope
    }
}

/// Regions ordered by great-circle distance from `home`; regions without a location follow
/// in config order. Ties keep config order, so every server computes the same order.
fn order_from(home: RegionIndex, regions: &[RegionDef]) -> Vec<RegionIndex> {
    let origin = regions[home].location;
    let mut others: Vec<(RegionIndex, f64)> = RegionIndex::all(regions.len())
        .zip(regions)
        .filter(|(i, _)| *i != home)
        .map(|(i, r)| {
            let distance = match (origin, r.location) {
                (Some(a), Some(b)) => haversine_km(a, b),
                _ => f64::INFINITY,
            };
            (i, distance)
        })
        .collect();
    others.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
    std::iter::once(home)
        .chain(others.into_iter().map(|(i, _)| i))
        .collect()
}

fn haversine_km((lat1, lon1): (f64, f64), (lat2, lon2): (f64, f64)) -> f64 {
    const EARTH_RADIUS_KM: f64 = 6371.0;
    let (p1, p2) = (lat1.to_radians(), lat2.to_radians());
    let dp = p2 - p1;
    let dl = (lon2 - lon1).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * a.sqrt().asin()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{AP, EU, US, regions};

    #[test]
    fn orders_regions_by_distance_from_home() {
        let regions = regions();
        assert_eq!(order_from(EU, &regions), vec![EU, US, AP]);
        assert_eq!(order_from(US, &regions), vec![US, EU, AP]);
        assert_eq!(order_from(AP, &regions), vec![AP, EU, US]);
    }

    #[test]
    fn longest_prefix_wins_and_scope_covers_only_addresses_placed_alike() {
        let table = GeoTable {
            networks: vec![
                ("198.51.100.0/24".parse().unwrap(), US),
                ("198.51.100.128/25".parse().unwrap(), AP),
                ("203.0.113.0/24".parse().unwrap(), EU),
                ("2001:db8:a000::/36".parse().unwrap(), US),
            ],
            default_region: Some(US),
        };
        let geo = GeoIndex::build(&table, &regions());
        // Inside the /25: the /25 alone decides.
        let p = geo.place("198.51.100.200".parse().unwrap());
        assert_eq!((p.order[0], p.scope), (AP, 25));
        // In the /24 but not the /25: the 25th bit decides too (a /24 answer would be cached
        // for the /25's clients as well).
        let p = geo.place("198.51.100.7".parse().unwrap());
        assert_eq!((p.order[0], p.scope), (US, 25));
        let p = geo.place("203.0.113.9".parse().unwrap());
        assert_eq!((p.order, p.scope), (&[EU, US, AP][..], 24));
        // No network: the default region (us) for all of 192.0.0.0/6, where no network placing
        // elsewhere lies (198.51.100.128/25 differs from 192.0.2.1 at bit 6, 203.0.113.0/24 at
        // bit 5; 198.51.100.0/24 places in us too).
        let p = geo.place("192.0.2.1".parse().unwrap());
        assert_eq!((p.order, p.scope), (&[US, EU, AP][..], 6));
        // IPv6: only IPv6 networks count; none places elsewhere.
        let p = geo.place("2001:db8:ffff::1".parse().unwrap());
        assert_eq!((p.order[0], p.scope), (US, 0));
        let p = geo.place("2001:db8:a000::1".parse().unwrap());
        assert_eq!((p.order[0], p.scope), (US, 36));
    }

    proptest::proptest! {
        /// The scope is exact: every address sharing `scope` leading bits with a client is
        /// placed in the same region as the client (and with fewer bits, some would not be,
        /// unless no network at all decides).
        #[test]
        fn every_address_within_the_scope_is_placed_alike(
            nets in proptest::collection::vec((proptest::num::u32::ANY, 1u8..=28, 0usize..3), 1..8),
            client in proptest::num::u32::ANY,
            samples in proptest::collection::vec(proptest::num::u32::ANY, 64),
        ) {
            let table = GeoTable {
                networks: nets
                    .iter()
                    .map(|&(bits, len, region)| {
                        let net = IpNet::new(IpAddr::from(bits.to_be_bytes()), len)
                            .expect("valid prefix")
                            .trunc();
                        (net, [EU, US, AP][region])
                    })
                    .collect::<std::collections::BTreeMap<_, _>>()
                    .into_iter()
                    .collect(),
                default_region: Some(US),
            };
            let geo = GeoIndex::build(&table, &regions());
            let placed = geo.place(IpAddr::from(client.to_be_bytes()));
            let scope = u32::from(placed.scope);
            let mask = if scope == 0 { 0 } else { u32::MAX << (32 - scope) };
            for sample in samples {
                // An address sharing the client's first `scope` bits.
                let other = (client & mask) | (sample & !mask);
                let there = geo.place(IpAddr::from(other.to_be_bytes()));
                proptest::prop_assert_eq!(there.order, placed.order, "scope {}", scope);
            }
        }
    }
}
