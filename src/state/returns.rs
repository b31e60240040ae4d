//! Which regions are coming back: the state owner remembers, per (service, region), whether
//! the last served snapshot had the region out, and since when it is back, so that answers let
//! it in again slowly (`Returning`: slow start, failback delay; `dns::select`). Only regions out
//! or recently back are remembered; a region never out is settled.

use std::collections::HashMap;
use std::sync::Arc;

use hickory_proto::rr::{LowerName, Name};
use smallvec::SmallVec;
use tracing::debug;

use crate::model::Region;
use crate::snapshot::{Node, Snapshot};

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
    services: HashMap<Name, SmallVec<[(Region, Back); 2]>>,
}

impl Returns {
    /// Marks in `snapshot` the regions that came back within the slow start or failback delay
    /// (`RegionAnswer::back_since_ms`), at `now_ms`, and remembers what it says. `changed`:
    /// the services (positions) whose health may have changed since the last call, or `None`
    /// for all of them; those and the services remembered are visited, no other.
    pub(super) fn mark(&mut self, snapshot: &mut Snapshot, changed: Option<&[usize]>, now_ms: u64) {
        let window = snapshot
            .returning
            .slow_start_ms
            .max(snapshot.returning.failback_delay_ms);
        if window == 0 {
            self.services.clear();
            return;
        }
        let visit: Vec<usize> = match changed {
            None => {
                self.services.retain(|name, _| {
                    matches!(snapshot.node(&LowerName::new(name)), Some(Node::Service(_)))
                });
                (0..snapshot.services.len()).collect()
            }
            Some(changed) => {
                let mut visit: Vec<usize> = changed.to_vec();
                visit.extend(self.services.keys().filter_map(|name| {
                    match snapshot.node(&LowerName::new(name)) {
                        Some(Node::Service(index)) => Some(index.get()),
                        _ => None,
                    }
                }));
                visit.sort_unstable();
                visit.dedup();
                visit
            }
        };
        for index in visit {
            let Some(service) = snapshot.services.get_mut(index) else {
                continue;
            };
            let before = self.services.get(service.name());
            let mut now: SmallVec<[(Region, Back); 2]> = SmallVec::new();
            let mut marks: SmallVec<[Option<u64>; 8]> = SmallVec::new();
            for answer in &service.regions {
                let region = &snapshot.regions[answer.region.get()];
                let was = before.and_then(|b| b.iter().find(|(r, _)| r == region).map(|(_, b)| *b));
                let back = if !answer.health.is_available() {
                    Some(Back::Out)
                } else {
                    match was {
                        Some(Back::Out) => {
                            debug!(service = %service.name(), %region, "region back: let in again slowly");
                            Some(Back::Since(now_ms))
                        }
                        Some(Back::Since(since)) if now_ms.saturating_sub(since) < window => {
                            Some(Back::Since(since))
                        }
                        _ => None,
                    }
                };
                marks.push(match back {
                    Some(Back::Since(since)) => Some(since),
                    _ => None,
                });
                if let Some(back) = back {
                    now.push((region.clone(), back));
                }
            }
            let returning = marks.iter().any(Option::is_some);
            let differs = service.returning != returning
                || service
                    .regions
                    .iter()
                    .zip(&marks)
                    .any(|(answer, mark)| answer.back_since_ms() != *mark);
            if differs {
                let service = Arc::make_mut(service);
                service.returning = returning;
                for (answer, mark) in service.regions.iter_mut().zip(marks) {
                    answer.set_back_since_ms(mark);
                }
            }
            let name = snapshot.services[index].name();
            if now.is_empty() {
                self.services.remove(name);
            } else {
                self.services.insert(name.clone(), now);
            }
        }
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
        Arc::make_mut(&mut snapshot.services[0]).regions[1].health = health;
        snapshot
    }

    fn us_back_since(returns: &mut Returns, health: Health, now_ms: u64) -> Option<u64> {
        let mut snapshot = with_us(health);
        returns.mark(&mut snapshot, None, now_ms);
        assert_eq!(
            snapshot.services[0].regions[0].back_since_ms(),
            None,
            "eu never left"
        );
        snapshot.services[0].regions[1].back_since_ms()
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
            returns.mark(&mut snapshot, None, now);
            assert_eq!(snapshot.services[0].regions[1].back_since_ms(), None);
        }
    }
}
