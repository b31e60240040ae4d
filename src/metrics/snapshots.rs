//! The state owner's metrics: snapshot builds and their time, config reloads, and what each
//! published snapshot says — services per region by health, services with no region available,
//! failover latency, and per (service, region) health and targets (rendered at scrape time,
//! `service_region.rs`). `published.rs` keeps them current.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntGauge, IntGaugeVec, Opts, Registry,
};

use hickory_proto::rr::Name;

use super::dnssec::DnssecCollector;
use super::service_region::ServiceRegionCollector;
use super::{LabelCounters, histogram, register};
use crate::label_enum::label_enum;
use crate::snapshot::Snapshot;

label_enum! {
    /// How a config reload ended; the names are metric label values.
    pub enum ReloadResult {
        /// The new config is served.
        Ok = "ok",
        /// The file was refused; the previous config keeps serving.
        Error = "error",
    }
}

/// The state owner's metrics.
pub struct SnapshotMetrics {
    builds: IntCounter,
    build_seconds: Histogram,
    config_reloads: LabelCounters<ReloadResult>,
    /// The snapshot last published, which the per (service, region) series are read from.
    pub(super) current: Arc<ArcSwapOption<Snapshot>>,
    /// Zones of more services than this export no per (service, region) series.
    pub(super) service_region_limit: usize,
    /// Per (region, health): services whose target in the region has that health.
    pub(super) region_services: IntGaugeVec,
    /// Services no region of which is available (answered fail-open, or empty).
    pub(super) services_unavailable: IntGauge,
    /// A region's first failing probe → the first snapshot without it, by failed region.
    pub(super) failover_seconds: HistogramVec,
    /// What an operator drained in this region: `service="*"` for the whole region.
    drained: IntGaugeVec,
    /// Per (region, decision): services whose target in the region the observers decide.
    pub(super) region_observed: IntGaugeVec,
}

impl SnapshotMetrics {
    /// Registers the snapshot metrics, every reload result at zero; the per (service, region)
    /// series are exported for zones of at most `service_region_limit` services.
    pub(super) fn new(registry: &Registry, service_region_limit: usize) -> Self {
        let current = Arc::new(ArcSwapOption::empty());
        registry
            .register(Box::new(ServiceRegionCollector::new(
                current.clone(),
                service_region_limit,
            )))
            .expect("metric names are unique");
        registry
            .register(Box::new(DnssecCollector::new(current.clone())))
            .expect("metric names are unique");
        Self {
            current,
            service_region_limit,
            builds: register(
                registry,
                IntCounter::new(
                    "gslbd_snapshot_builds_total",
                    "Snapshots built and published",
                ),
            ),
            build_seconds: histogram(
                registry,
                "gslbd_snapshot_build_seconds",
                "Time to build a snapshot",
                &[0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0],
            ),
            config_reloads: LabelCounters::register(
                registry,
                "gslbd_config_reloads_total",
                "Config reloads, by result",
                "result",
            ),
            region_services: register(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "gslbd_region_services",
                        "Services whose target in a region has this health, as this server answers them: healthy, unknown (answered, unconfirmed), unhealthy",
                    ),
                    &["region", "health"],
                ),
            ),
            services_unavailable: register(
                registry,
                IntGauge::new(
                    "gslbd_services_unavailable",
                    "Services with no region available on this server: answered fail-open (every address) or empty, by their all_down policy",
                ),
            ),
            failover_seconds: register(
                registry,
                HistogramVec::new(
                    HistogramOpts::new(
                        "gslbd_failover_seconds",
                        "Failover latency: from a region's first failing probe (its report's timestamp) to the first snapshot this server publishes without it, by failed region",
                    )
                    .buckets(vec![
                        0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0,
                    ]),
                    &["region"],
                ),
            ),
            region_observed: register(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "gslbd_region_observed_services",
                        "Services whose target in a region the observers (other regions' probes) decide here: decision=\"overruled\" when they see it down while the region reports it available, \"decided\" when the region is silent and they decide",
                    ),
                    &["region", "decision"],
                ),
            ),
            drained: register(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "gslbd_drained",
                        "1 for what an operator drained in this server's region (gslbd drain): a service, or \"*\" for the whole region",
                    ),
                    &["service"],
                ),
            ),
        }
    }

    /// Snapshots built so far.
    pub fn builds(&self) -> u64 {
        self.builds.get()
    }

    /// Records one snapshot build and published.
    pub fn built(&self, took: Duration) {
        self.builds.inc();
        self.build_seconds.observe(took.as_secs_f64());
    }

    /// What is drained now: the whole region, and these services.
    pub fn set_drained<'a>(&self, region: bool, services: impl IntoIterator<Item = &'a Name>) {
        self.drained.reset();
        if region {
            self.drained.with_label_values(&["*"]).set(1);
        }
        for service in services {
            self.drained
                .with_label_values(&[service.to_string().as_str()])
                .set(1);
        }
    }

    /// Counts one config reload.
    pub fn config_reloaded(&self, result: ReloadResult) {
        self.config_reloads.inc_by(result, 1);
    }
}
