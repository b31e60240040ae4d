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
    /// Leading bits of the client address that decided the placement (RFC 7871 scope).
    /// `None` when the whole given prefix mattered (no network matched, or a more specific
    /// network lies inside the matched one).
    pub scope: Option<u8>,
}

/// Lookup structure for the geo strategy.
#[derive(Clone, Debug, Default)]
pub struct GeoIndex {
    /// (network, region, has a more specific network inside), longest prefix first.
    networks: Vec<(IpNet, RegionIndex, bool)>,
    /// `orders[r]`: regions sorted by distance from region `r` (r first).
    orders: Vec<Vec<RegionIndex>>,
    /// Order for clients no network matches.
    default_order: Vec<RegionIndex>,
}

impl GeoIndex {
    /// Precomputes the lookup table and the distance orders.
    pub fn build(table: &GeoTable, regions: &[RegionDef]) -> Self {
        let mut networks: Vec<(IpNet, RegionIndex, bool)> = table
            .networks
            .iter()
            .map(|(net, region)| {
                let nested = table
                    .networks
                    .iter()
                    .any(|(other, _)| other != net && net.contains(other));
                (*net, *region, nested)
            })
            .collect();
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
        }
    }

    /// Places a client address (already truncated to the prefix the client gave).
    pub fn place(&self, addr: IpAddr) -> Placement<'_> {
        for (net, region, nested) in &self.networks {
            if net.contains(&addr) {
                return Placement {
                    order: &self.orders[*region],
                    scope: (!nested).then(|| net.prefix_len()),
                };
            }
        }
        Placement {
            order: &self.default_order,
            scope: None,
        }
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
    fn longest_prefix_wins_and_scope_is_conservative_when_nested() {
        let table = GeoTable {
            networks: vec![
                ("198.51.100.0/24".parse().unwrap(), US),
                ("198.51.100.128/25".parse().unwrap(), AP),
                ("203.0.113.0/24".parse().unwrap(), EU),
            ],
            default_region: Some(US),
        };
        let geo = GeoIndex::build(&table, &regions());
        let p = geo.place("198.51.100.200".parse().unwrap());
        assert_eq!((p.order[0], p.scope), (AP, Some(25)));
        let p = geo.place("198.51.100.7".parse().unwrap());
        assert_eq!((p.order[0], p.scope), (US, None));
        let p = geo.place("203.0.113.9".parse().unwrap());
        assert_eq!((p.order, p.scope), (&[EU, US, AP][..], Some(24)));
        let p = geo.place("192.0.2.1".parse().unwrap());
        assert_eq!((p.order, p.scope), (&[US, EU, AP][..], None));
    }
}
