//! What each published snapshot says, as metrics and log lines: services per region by health,
//! services with no region available, health transitions with their reason, and failover
//! latency (a region's first failing probe → the first snapshot that answers without it). The
//! per (service, region) series are rendered at scrape time from the snapshot handed over here
//! (`service_region.rs`).

use std::sync::Arc;

use hickory_proto::rr::{LowerName, Name};
use tracing::{debug, info};

use super::SnapshotMetrics;
use crate::model::Health;
use crate::region_health::Why;
use crate::snapshot::{Node, Snapshot};

/// More transitions than this in one snapshot are summarised in one line (a region going
/// stale moves every service at once); the rest go to debug.
const LOGGED_TRANSITIONS: usize = 10;

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
    /// The snapshot published last, to compare the next one with.
    last: Option<Arc<Snapshot>>,
    /// Whether the zone was last over `server.service_metrics_limit` (said once per crossing).
    over_limit: bool,
}

impl SnapshotWatch {
    /// Updates metrics for a newly published `snapshot` at `now_ms` (Unix ms).
    pub fn published(&mut self, metrics: &SnapshotMetrics, snapshot: &Arc<Snapshot>, now_ms: u64) {
        metrics.current.store(Some(snapshot.clone()));
        let over_limit = snapshot.services.len() > metrics.service_region_limit;
        if over_limit && !self.over_limit {
            info!(
                services = snapshot.services.len(),
                limit = metrics.service_region_limit,
                "more services than server.service_metrics_limit: the per (service, region) series are not exported, the per-region totals are"
            );
        }
        self.over_limit = over_limit;

        let regions = snapshot.regions.len();
        // Per region: services by health; services the observers overrule, and decide for a
        // silent region.
        let mut by_health = vec![[0i64; 3]; regions];
        let mut observed = vec![(0i64, 0i64); regions];
        let mut unavailable = 0;
        let before = self.last.take();
        // The previous snapshot's region positions by this one's (a reload may reorder them).
        let old_region: Vec<Option<usize>> = snapshot
            .regions
            .iter()
            .map(|r| before.as_ref()?.regions.iter().position(|o| o == r))
            .collect();
        let mut transitions = 0;
        for service in &snapshot.services {
            if !service.regions.iter().any(|a| a.health.is_available()) {
                unavailable += 1;
            }
            let previous =
                before
                    .as_deref()
                    .and_then(|b| match b.node(&LowerName::new(&service.name)) {
                        Some(Node::Service(index)) => Some(b.service(*index)),
                        _ => None,
                    });
            for answer in &service.regions {
                let region = answer.region.get();
                by_health[region][health_index(answer.health)] += 1;
                match answer.why {
                    Why::ObservedDown { .. } => observed[region].0 += 1,
                    Why::Observed { .. } => observed[region].1 += 1,
                    _ => {}
                }
                let Some(before) = previous.and_then(|p| {
                    let old = old_region[region]?;
                    p.regions.iter().find(|r| r.region.get() == old)
                }) else {
                    continue;
                };
                if before.health == answer.health {
                    continue;
                }
                transitions += 1;
                let region = snapshot.regions[answer.region].as_str();
                let failover = (before.health.is_available() && !answer.health.is_available())
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
                        to = ?answer.health,
                        why = %answer.why,
                        failover_seconds = failover,
                        "region health changed for service"
                    );
                } else {
                    debug!(
                        service = %service.name,
                        region,
                        from = ?before.health,
                        to = ?answer.health,
                        why = %answer.why,
                        "region health changed for service"
                    );
                }
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
        metrics.region_services.reset();
        for ((region, (overruled, decided)), counts) in
            snapshot.regions.iter().zip(observed).zip(by_health)
        {
            for (decision, count) in [("overruled", overruled), ("decided", decided)] {
                metrics
                    .region_observed
                    .with_label_values(&[region.as_str(), decision])
                    .set(count);
            }
            for (health, count) in HEALTHS.iter().zip(counts) {
                metrics
                    .region_services
                    .with_label_values(&[region.as_str(), health])
                    .set(count);
            }
        }
        metrics.services_unavailable.set(unavailable);
        self.last = Some(snapshot.clone());
    }
}

/// The `health` label values of `gslbd_region_services`, by [`health_index`].
const HEALTHS: [&str; 3] = ["healthy", "unknown", "unhealthy"];

fn health_index(health: Health) -> usize {
    match health {
        Health::Healthy => 0,
        Health::Unknown => 1,
        Health::Unhealthy => 2,
    }
}
