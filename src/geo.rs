//! Where a client is: the CIDR → region table and each region's neighbours by distance.
//!
//! Built once per snapshot from [`GeoTable`]; a lookup is a longest-prefix match over a short
//! list, and the answer for "nearest available region" is a walk down a precomputed order.

use std::net::IpAddr;

use ipnet::IpNet;

use crate::model::{GeoTable, RegionDef};

/// Where the client was placed, and how much of its address that placement depends on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Placement<'g> {
    /// Regions nearest first, as indexes into the model's regions.
    pub order: &'g [usize],
    /// Leading bits of the client address that decided the placement (RFC 7871 scope).
    /// `None` when the whole given prefix mattered (no network matched, or a more specific
    /// network lies inside the matched one).
    pub scope: Option<u8>,
}

/// Lookup structure for the geo strategy.
#[derive(Clone, Debug, Default)]
pub struct GeoIndex {
    /// (network, region, has a more specific network inside), longest prefix first.
    networks: Vec<(IpNet, usize, bool)>,
    /// `orders[r]`: regions sorted by distance from region `r` (r first).
    orders: Vec<Vec<usize>>,
    /// Order for clients no network matches.
    default_order: Vec<usize>,
}

impl GeoIndex {
    /// Precomputes the lookup table and the distance orders.
    pub fn build(table: &GeoTable, regions: &[RegionDef]) -> Self {
        let mut networks: Vec<(IpNet, usize, bool)> = table
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
        let orders: Vec<Vec<usize>> = (0..regions.len())
            .map(|home| order_from(home, regions))
            .collect();
        let default_order = match table.default_region {
            Some(home) => orders[home].clone(),
            None => (0..regions.len()).collect(),
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
fn order_from(home: usize, regions: &[RegionDef]) -> Vec<usize> {
    let origin = regions[home].location;
    let mut others: Vec<(usize, f64)> = regions
        .iter()
        .enumerate()
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
    use crate::model::Region;

    fn region(name: &str, location: Option<(f64, f64)>) -> RegionDef {
        RegionDef {
            name: Region::new(name),
            nameserver: None,
            glue: vec![],
            location,
        }
    }

    fn regions() -> Vec<RegionDef> {
        vec![
            region("eu", Some((50.1, 8.7))),
            region("us", Some((39.0, -77.5))),
            region("ap", Some((1.35, 103.8))),
        ]
    }

    #[test]
    fn orders_regions_by_distance_from_home() {
        let regions = regions();
        assert_eq!(order_from(0, &regions), vec![0, 1, 2]);
        assert_eq!(order_from(1, &regions), vec![1, 0, 2]);
        assert_eq!(order_from(2, &regions), vec![2, 0, 1]);
    }

    #[test]
    fn longest_prefix_wins_and_scope_is_conservative_when_nested() {
        let table = GeoTable {
            networks: vec![
                ("198.51.100.0/24".parse().unwrap(), 1),
                ("198.51.100.128/25".parse().unwrap(), 2),
                ("203.0.113.0/24".parse().unwrap(), 0),
            ],
            default_region: Some(1),
        };
        let geo = GeoIndex::build(&table, &regions());
        let p = geo.place("198.51.100.200".parse().unwrap());
        assert_eq!((p.order[0], p.scope), (2, Some(25)));
        let p = geo.place("198.51.100.7".parse().unwrap());
        assert_eq!((p.order[0], p.scope), (1, None));
        let p = geo.place("203.0.113.9".parse().unwrap());
        assert_eq!((p.order, p.scope), (&[0, 1, 2][..], Some(24)));
        let p = geo.place("192.0.2.1".parse().unwrap());
        assert_eq!((p.order, p.scope), (&[1, 0, 2][..], None));
    }
}
