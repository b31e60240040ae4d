//! Which regions are coming back: the state owner remembers, per (service, region), whether
//! the last served snapshot had the region out, and since when it is back, so that answers let
//! it in again slowly (`Returning`: slow start, failback delay; `dns::select`). Only regions out
//! or recently back are remembered; a region never out is settled.

use std::collections::HashMap;

use hickory_proto::rr::Name;
use tracing::debug;

use crate::model::Region;
use crate::snapshot::Snapshot;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Back {
    /// Not available in the last snapshot.
    Out,
    /// Available again since (Unix ms).
    Since(u64),
}

/// Regions out or coming back, per service.
#[derive(Debug, Default)]
pub(super) struct Returns {
    regions: HashMap<(Name, Region), Back>,
}

impl Returns {
    /// Marks in `snapshot` the regions that came back within the slow start or failback delay
    /// (`RegionAnswer::back_since_ms`), at `now_ms`, and remembers what it says.
    pub(super) fn mark(&mut self, snapshot: &mut Snapshot, now_ms: u64) {
        let window = snapshot
            .returning
            .slow_start_ms
            .max(snapshot.returning.failback_delay_ms);
        if window == 0 {
            self.regions.clear();
            return;
        }
        let mut next = HashMap::new();
        for service in &mut snapshot.services {
            for answer in &mut service.regions {
                let region = &snapshot.regions[answer.region.get()];
                let key = (service.name.clone(), region.clone());
                let back = if !answer.health.is_available() {
                    Some(Back::Out)
                } else {
                    match self.regions.get(&key) {
                        Some(Back::Out) => {
                            debug!(service = %service.name, %region, "region back: let in again slowly");
                            Some(Back::Since(now_ms))
                        }
                        Some(Back::Since(since)) if now_ms.saturating_sub(*since) < window => {
                            Some(Back::Since(*since))
                        }
                        _ => None,
                    }
                };
                if let Some(Back::Since(since)) = back {
                    answer.back_since_ms = Some(since);
                    service.returning = true;
                }
                if let Some(back) = back {
                    next.insert(key, back);
                }
            }
        }
        self.regions = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::model::Health;

    fn snapshot() -> Snapshot {
        let config = fixtures::config(
            r#"
            [[services]]
            name = "app.gslb.example.com"
            strategy = "round-robin"
            targets = { eu = ["192.0.2.1"], us = ["198.51.100.1"] }
            "#,
        );
        Snapshot::from_model(&config.model, 1232)
    }

    fn with_us(health: Health) -> Snapshot {
        let mut snapshot = snapshot();
        snapshot.services[0].regions[1].health = health;
        snapshot
    }

    fn us_back_since(returns: &mut Returns, health: Health, now_ms: u64) -> Option<u64> {
        let mut snapshot = with_us(health);
        returns.mark(&mut snapshot, now_ms);
        assert_eq!(
            snapshot.services[0].regions[0].back_since_ms, None,
            "eu never left"
        );
        snapshot.services[0].regions[1].back_since_ms
    }

    #[test]
    fn a_region_back_after_being_out_is_marked_until_the_longer_window_passes() {
        let mut returns = Returns::default();
        // Defaults: slow start 60 s, failback delay 30 s.
        assert_eq!(
            us_back_since(&mut returns, Health::Healthy, 1_000),
            None,
            "never out"
        );
        assert_eq!(us_back_since(&mut returns, Health::Unhealthy, 2_000), None);
        assert_eq!(us_back_since(&mut returns, Health::Unhealthy, 3_000), None);
        assert_eq!(
            us_back_since(&mut returns, Health::Healthy, 4_000),
            Some(4_000)
        );
        assert_eq!(
            us_back_since(&mut returns, Health::Unknown, 30_000),
            Some(4_000)
        );
        assert_eq!(
            us_back_since(&mut returns, Health::Healthy, 63_999),
            Some(4_000)
        );
        assert_eq!(
            us_back_since(&mut returns, Health::Healthy, 64_000),
            None,
            "settled"
        );
        assert_eq!(us_back_since(&mut returns, Health::Healthy, 64_001), None);
    }

    #[test]
    fn nothing_is_marked_when_both_are_off() {
        let mut returns = Returns::default();
        for (health, now) in [(Health::Unhealthy, 1), (Health::Healthy, 2)] {
            let mut snapshot = with_us(health);
            snapshot.returning = Default::default();
            returns.mark(&mut snapshot, now);
            assert_eq!(snapshot.services[0].regions[1].back_since_ms, None);
        }
    }
}
