//! The health checker's metrics: probe results by outcome and the time probes take.

use std::time::Duration;

use prometheus::{Histogram, Registry};

use super::{LabelCounters, histogram};
use crate::health::probe::ProbeOutcome;

/// The health checker's metrics.
pub struct ProbeMetrics {
    results: LabelCounters<ProbeOutcome>,
    duration_seconds: Histogram,
}

impl ProbeMetrics {
    /// Registers the probe metrics, every outcome at zero.
    pub(super) fn new(registry: &Registry) -> Self {
        Self {
            results: LabelCounters::register(
                registry,
                "gslbd_probe_results_total",
                "Probe results, by outcome",
                "result",
            ),
            duration_seconds: histogram(
                registry,
                "gslbd_probe_duration_seconds",
                "Time a probe took",
                &[0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5],
            ),
        }
    }

    /// Counts one probe that ended with `outcome` after `took`.
    pub fn observe(&self, outcome: ProbeOutcome, took: Duration) {
        self.duration_seconds.observe(took.as_secs_f64());
        self.results.inc_by(outcome, 1);
    }
}
