//! Kubernetes discovery's metrics: watch events and errors by kind, annotated objects skipped
//! and hosts refused by kind and reason, the services discovered, and whether the first
//! discovery is in.
//!
//! The `kind` label (`Ingress`, `Service`, ...) is the watch's; the skipped `reason` is the
//! discovery outcome's, the refused `reason` the ownership rule's ([`Refusal`]). Both are
//! gauges of what the latest discovery found, which runs again after every change: a counter
//! would count the same object at every run.

use prometheus::{IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

use super::register;
use crate::kubernetes::WatchEvent;
use crate::ownership::Refusal;
use crate::snapshot::KubernetesSync;

/// Kubernetes discovery's metrics.
pub struct KubernetesMetrics {
    /// By kind and [`WatchEvent`].
    watch_events: IntCounterVec,
    /// API server unreachable, 410 Gone, decoding; by kind.
    watch_errors: IntCounterVec,
    /// Bad annotations, conflicts, no host in the zone; by kind and reason.
    objects_skipped: IntGaugeVec,
    /// Hosts of annotated objects that no service may claim; by kind and [`Refusal`].
    hosts_refused: IntGaugeVec,
    services: IntGauge,
    /// 1 for the current [`KubernetesSync`] state, 0 for the others.
    sync_state: IntGaugeVec,
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
                        "Annotated Kubernetes objects skipped, by kind and reason (BadAnnotation, HostConflict, HostRefused, NoHostInZone, NoHostname)",
                    ),
                    &["kind", "reason"],
                ),
            ),
            hosts_refused: register(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "gslbd_kubernetes_hosts_refused",
                        "Hosts of annotated Kubernetes objects not balanced because no service may claim them, by kind and reason (apex, nameserver, wildcard)",
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
            sync_state: register(
                registry,
                IntGaugeVec::new(
                    Opts::new(
                        "gslbd_kubernetes_sync_state",
                        "Kubernetes discovery's state, 1 for the current one: listing (first lists not in yet, not ready), synced (the first discovery is served), not_listed (the API server was unreachable past the sync timeout: the config's services serve alone)",
                    ),
                    &["state"],
                ),
            ),
        }
    }

    /// Discovery is in `state` (series appear with the first call: only with Kubernetes on).
    pub fn set_sync_state(&self, state: KubernetesSync) {
        for each in KubernetesSync::ALL {
            self.sync_state
                .with_label_values(&[each.as_str()])
                .set(i64::from(*each == state));
        }
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

    /// Replaces the refused-host counts with `refused` (((kind, refusal), count) pairs).
    pub fn set_refused_hosts(
        &self,
        refused: impl IntoIterator<Item = ((&'static str, Refusal), i64)>,
    ) {
        self.hosts_refused.reset();
        for ((kind, refusal), count) in refused {
            self.hosts_refused
                .with_label_values(&[kind, refusal.as_str()])
                .set(count);
        }
    }

    /// Sets how many services discovery found.
    pub fn set_services(&self, services: usize) {
        self.services.set(services as i64);
    }
}
