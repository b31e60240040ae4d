//! What each published snapshot says, as metrics and log lines: services per region by health,
//! services with no region available, health transitions with their reason, and failover
//! latency (a region's first failing probe → the first snapshot that answers without it). The
//! per (service, region) series are rendered at scrape time from the snapshot handed over here
//! (`service_region.rs`).

use std::sync::Arc;

use hickory_proto::rr::Name;
use tracing::{debug, info};

use super::SnapshotMetrics;
use crate::model::Health;
use crate::region_health::Why;
use crate::snapshot::{Node, RegionAnswer, ServiceAnswer, Snapshot};

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
    /// What `last` counts.
    counts: Counts,
    /// Whether the zone was last over `server.service_metrics_limit` (said once per crossing).
    over_limit: bool,
}

/// What the per-region totals count.
#[derive(Debug, Default)]
struct Counts {
    /// Per region: services by health ([`health_index`]).
    by_health: Vec<[i64; 3]>,
    /// Per region: services the observers overrule, and decide for a silent region.
    observed: Vec<(i64, i64)>,
    /// Services with no region available.
    unavailable: i64,
}

impl Counts {
    fn new(regions: usize) -> Self {
        Self {
            by_health: vec![[0; 3]; regions],
            observed: vec![(0, 0); regions],
            unavailable: 0,
        }
    }

    /// Counts `service` once more (`by` 1), or once less (`by` -1).
    fn add(&mut self, service: &ServiceAnswer, by: i64) {
        if !service.regions.iter().any(|a| a.health.is_available()) {
            self.unavailable += by;
        }
        for answer in &service.regions {
            let region = answer.region.get();
            self.by_health[region][health_index(answer.health)] += by;
            match answer.why {
                Why::ObservedDown { .. } => self.observed[region].0 += by,
                Why::Observed { .. } => self.observed[region].1 += by,
                _ => {}
            }
        }
    }
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

        let before = self.last.take();
        let mut transitions = Transitions::default();
        match before
            .as_deref()
            .and_then(|b| Some((b, snapshot.changed_since(b)?)))
        {
            // Rebuilt for a few services: only those are counted again and compared, region
            // by region in the same order.
            Some((before, changed)) => {
                for index in changed {
                    let (old, new) = (&before.services[index], &snapshot.services[index]);
                    self.counts.add(old, -1);
                    self.counts.add(new, 1);
                    for (was, answer) in old.regions.iter().zip(&new.regions) {
                        transitions.compare(metrics, snapshot, new, was, answer, now_ms);
                    }
                }
            }
            None => {
                let mut counts = Counts::new(snapshot.regions.len());
                // The previous snapshot's region positions by this one's (a reload may
                // reorder them).
                let old_region: Vec<Option<usize>> = snapshot
                    .regions
                    .iter()
                    .map(|r| before.as_ref()?.regions.iter().position(|o| o == r))
                    .collect();
                for service in &snapshot.services {
                    counts.add(service, 1);
                    let previous = before
                        .as_deref()
                        .and_then(|b| match b.node(service.name()) {
                            Some(Node::Service(index)) => Some(b.service(*index)),
                            _ => None,
                        });
                    for answer in &service.regions {
                        let was = previous.and_then(|p| {
                            let old = old_region[answer.region.get()]?;
                            p.regions.iter().find(|r| r.region.get() == old)
                        });
                        if let Some(was) = was {
                            transitions.compare(metrics, snapshot, service, was, answer, now_ms);
                        }
                    }
                }
                self.counts = counts;
            }
        }
        if transitions.count > LOGGED_TRANSITIONS {
            info!(
                transitions = transitions.count,
                logged = LOGGED_TRANSITIONS,
                "more region health changes in this snapshot (the rest at debug level)"
            );
        }
        metrics.region_observed.reset();
        metrics.region_services.reset();
        for (region, (observed, by_health)) in snapshot
            .regions
            .iter()
            .zip(self.counts.observed.iter().zip(&self.counts.by_health))
        {
            for (decision, count) in [("overruled", observed.0), ("decided", observed.1)] {
                metrics
                    .region_observed
                    .with_label_values(&[region.as_str(), decision])
                    .set(count);
            }
            for (health, count) in HEALTHS.iter().zip(by_health) {
                metrics
                    .region_services
                    .with_label_values(&[region.as_str(), health])
                    .set(*count);
            }
        }
        metrics.services_unavailable.set(self.counts.unavailable);
        self.last = Some(snapshot.clone());
    }
}

/// The health changes of one published snapshot: logged (the first few at info) and timed.
#[derive(Default)]
struct Transitions {
    count: usize,
}

impl Transitions {
    /// Compares a region of `service` in `snapshot` (`answer`) with what it was (`was`).
    fn compare(
        &mut self,
        metrics: &SnapshotMetrics,
        snapshot: &Snapshot,
        service: &ServiceAnswer,
        was: &RegionAnswer,
        answer: &RegionAnswer,
        now_ms: u64,
    ) {
        if was.health == answer.health {
            return;
        }
        self.count += 1;
        let region = snapshot.regions[answer.region].as_str();
        let failover = (was.health.is_available() && !answer.health.is_available())
            .then_some(answer.down_since_ms())
            .flatten()
            .map(|since| now_ms.saturating_sub(since) as f64 / 1000.0);
        if let Some(seconds) = failover {
            metrics
                .failover_seconds
                .with_label_values(&[region])
                .observe(seconds);
        }
        if self.count <= LOGGED_TRANSITIONS {
            info!(
                service = %service.name(),
                region,
                from = ?was.health,
                to = ?answer.health,
                why = %answer.why,
                failover_seconds = failover,
                "region health changed for service"
            );
        } else {
            debug!(
                service = %service.name(),
                region,
                from = ?was.health,
                to = ?answer.health,
                why = %answer.why,
                "region health changed for service"
            );
        }
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
