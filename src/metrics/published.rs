//! What each published snapshot says, as metrics and log lines: per (service, region) health
//! and target counts, health transitions with their reason, and failover latency (a region's
//! first failing probe → the first snapshot that answers without it).
//!
//! Only what changed since the previous snapshot touches the label maps.

use std::collections::HashMap;

use hickory_proto::rr::Name;
use tracing::{debug, info};

use super::SnapshotMetrics;
use crate::model::Health;
use crate::region_health::Why;
use crate::snapshot::{RegionAnswer, Snapshot};

/// More transitions than this in one snapshot are summarised in one line (a region going
/// stale moves every service at once); the rest go to debug.
const LOGGED_TRANSITIONS: usize = 10;

/// One (service, region) as last published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Published {
    health: Health,
    healthy_targets: usize,
    targets: usize,
}

impl Published {
    fn of(answer: &RegionAnswer) -> Self {
        Self {
            health: answer.health,
            healthy_targets: answer.addresses.len(),
            targets: answer.all.len(),
        }
    }
}

/// The gauge value of a health: 1 healthy, 0.5 unknown (answered, not confirmed), 0 unhealthy.
pub fn health_value(health: Health) -> f64 {
    match health {
        Health::Healthy => 1.0,
        Health::Unknown => 0.5,
        Health::Unhealthy => 0.0,
    }
}

/// A service's name as a label value: without the root's trailing dot.
pub fn service_label(name: &Name) -> String {
    let mut text = name.to_ascii();
    if text.len() > 1 && text.ends_with('.') {
        text.pop();
    }
    text
}

/// Follows published snapshots; owned by the state task.
#[derive(Debug, Default)]
pub struct SnapshotWatch {
    last: HashMap<(Name, String), Published>,
}

impl SnapshotWatch {
    /// Updates metrics for a newly published `snapshot` at `now_ms` (Unix ms).
    pub fn published(&mut self, metrics: &SnapshotMetrics, snapshot: &Snapshot, now_ms: u64) {
        let mut next = HashMap::with_capacity(self.last.len());
        let mut transitions = 0;
        // Per region: services the observers overrule, and decide for a silent region.
        let mut observed = vec![(0i64, 0i64); snapshot.regions.len()];
        for service in &snapshot.services {
            for answer in &service.regions {
                match answer.why {
                    Why::ObservedDown { .. } => observed[answer.region.get()].0 += 1,
                    Why::Observed { .. } => observed[answer.region.get()].1 += 1,
                    _ => {}
                }
                let region = snapshot.regions[answer.region].as_str();
                let key = (service.name.clone(), region.to_string());
                let now = Published::of(answer);
                let before = self.last.remove(&key);
                if before != Some(now) {
                    let labels = [service_label(&key.0), key.1.clone()];
                    let labels = [labels[0].as_str(), labels[1].as_str()];
                    metrics
                        .service_region_health
                        .with_label_values(&labels)
                        .set(health_value(now.health));
                    metrics
                        .service_region_targets
                        .with_label_values(&labels)
                        .set(now.targets as i64);
                    metrics
                        .service_region_healthy_targets
                        .with_label_values(&labels)
                        .set(now.healthy_targets as i64);
                }
                if let Some(before) = before.filter(|b| b.health != now.health) {
                    transitions += 1;
                    let failover = (before.health.is_available() && !now.health.is_available())
                        .then_some(answer.down_since_ms)
                        .flatten()
                        .map(|since| now_ms.saturating_sub(since) as f64 / 1000.0);
                    if let Some(seconds) = failover {
                        metrics
                            .failover_seconds
                            .with_label_values(&[region])
                            .observe(seconds);
                    }
                    if transitions <= LOGGED_TRANSITIONS {
                        info!(
                            service = %service.name,
                            region,
                            from = ?before.health,
                            to = ?now.health,
                            why = %answer.why,
                            failover_seconds = failover,
                            "region health changed for service"
                        );
                    } else {
                        debug!(
                            service = %service.name,
                            region,
                            from = ?before.health,
                            to = ?now.health,
                            why = %answer.why,
                            "region health changed for service"
                        );
                    }
                }
                next.insert(key, now);
            }
        }
        if transitions > LOGGED_TRANSITIONS {
            info!(
                transitions,
                logged = LOGGED_TRANSITIONS,
                "more region health changes in this snapshot (the rest at debug level)"
            );
        }
        metrics.region_observed.reset();
        for (region, (overruled, decided)) in snapshot.regions.iter().zip(observed) {
            for (decision, count) in [("overruled", overruled), ("decided", decided)] {
                metrics
                    .region_observed
                    .with_label_values(&[region.as_str(), decision])
                    .set(count);
            }
        }
        // Services or regions gone from the snapshot: their series go too.
        for (service, region) in self.last.keys() {
            let labels = [service_label(service), region.clone()];
            let labels = [labels[0].as_str(), labels[1].as_str()];
            let _ = metrics.service_region_health.remove_label_values(&labels);
            let _ = metrics.service_region_targets.remove_label_values(&labels);
            let _ = metrics
                .service_region_healthy_targets
                .remove_label_values(&labels);
        }
        self.last = next;
    }
}
