//! Kubernetes discovery's metrics: watch events and errors by kind, annotated objects skipped
//! by kind and reason, the services discovered, and whether the first discovery is in.
//!
//! The `kind` label (`Ingress`, `Service`, ...) is the watch's; the skipped `reason` is the
//! discovery outcome's.

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::register;
use crate::kubernetes::WatchEvent;

/// Kubernetes discovery's metrics.
pub struct KubernetesMetrics {
    /// By kind and [`WatchEvent`].
    watch_events: IntCounterVec,
    /// API server unreachable, 410 Gone, decoding; by kind.
    watch_errors: IntCounterVec,
    /// Bad annotations, conflicts, no host in the zone; by kind and reason.
    objects_skipped: IntGaugeVec,
    services: IntGauge,
    /// 1 once every core watch has listed and the first discovery is served.
    synced: IntGauge,
}

impl KubernetesMetrics {
    /// Registers the Kubernetes metrics; their series appear as watches start.
    pub(super) fn new(registry: &Registry) -> Self {
        Self {
            watch_events: register(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "gslbd_kubernetes_watch_events_total",
                        "Kubernetes watch events, by kind and event (apply, delete, init, init_apply, init_done)",
                    ),
                    &["kind", "event"],
                ),
            ),
            watch_errors: register(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "gslbd_kubernetes_watch_errors_total",
                        "Kubernetes watch errors (API server unreachable, expired watches, bad objects), by kind",
                    ),
                    &["kind"],
                ),
            ),
            objects_skipped: register(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "gslbd_kubernetes_objects_skipped",
                        "Annotated Kubernetes objects skipped, by kind and reason (BadAnnotation, HostConflict, NoHostInZone, NoHostname)",
                    ),
                    &["kind", "reason"],
                ),
            ),
            services: register(
                registry,
                IntGauge::new(
                    "gslbd_kubernetes_services",
                    "Services discovered from Kubernetes",
                ),
            ),
            synced: register(
                registry,
                IntGauge::new(
                    "gslbd_kubernetes_synced",
                    "1 once every Kubernetes watch has listed and the first discovery is served; 0 while waiting (an API server unreachable at start), when the config's services serve alone",
                ),
            ),
        }
    }

    /// Whether the first discovery is served.
    pub fn set_synced(&self, synced: bool) {
        self.synced.set(i64::from(synced));
    }

    /// A watch of `kind` starts: its event and error series start at zero, so rate() and
    /// alerts see them from the first scrape.
    pub fn watch_started(&self, kind: &str) {
        for event in WatchEvent::ALL {
            self.watch_events.with_label_values(&[kind, event.as_str()]);
        }
        self.watch_errors.with_label_values(&[kind]);
    }

    /// Counts one event of a watch of `kind`.
    pub fn watch_event(&self, kind: &str, event: WatchEvent) {
        self.watch_events
            .with_label_values(&[kind, event.as_str()])
            .inc();
    }

    /// Counts one error of a watch of `kind`.
    pub fn watch_error(&self, kind: &str) {
        self.watch_errors.with_label_values(&[kind]).inc();
    }

    /// Replaces the skipped-object counts with `skipped` (((kind, reason), count) pairs).
    pub fn set_skipped<'a>(&self, skipped: impl IntoIterator<Item = ((&'a str, &'a str), i64)>) {
        self.objects_skipped.reset();
        for ((kind, reason), count) in skipped {
            self.objects_skipped
                .with_label_values(&[kind, reason])
                .set(count);
        }
    }

    /// Sets how many services discovery found.
    pub fn set_services(&self, services: usize) {
        self.services.set(services as i64);
    }
}
