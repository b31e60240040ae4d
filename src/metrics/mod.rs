//! Prometheus metrics, one file per subsystem, so the rest of the code only calls typed
//! methods and label values come from enums (`as_str`), never string literals. Names follow
//! Prometheus conventions: `gslbd_` prefix, base units, `_total`.
//!
//! - `dns.rs`: queries, drops, answer time, answers by strategy and result (and per service),
//!   TCP connections.
//! - `probes.rs`: probe results by outcome, probe time.
//! - `gossip.rs`: datagrams and values refused, traffic, members, regions last heard from.
//! - `kubernetes.rs`: watch events and errors, objects skipped, services discovered.
//! - `snapshots.rs`: the state owner's: builds, config reloads, services per region by health,
//!   failover latency.
//! - `published.rs`: follows published snapshots into the `snapshots.rs` series.
//! - `service_region.rs`: per (service, region) health and targets, read from the snapshot at
//!   scrape time (small zones only).
//! - `dnssec.rs`: a signed zone's signatures made, signed RRsets cached and keys, read from the
//!   snapshot's signer at scrape time.
//!
//! Every subsystem registers on one shared [`Registry`]. Known label values start at zero (the
//! constructors iterate each label enum's `ALL`), so rate() and alerts see a series from the
//! start and a new variant cannot be forgotten.

mod dns;
mod dnssec;
mod gossip;
mod kubernetes;
mod probes;
mod published;
mod service_region;
mod snapshots;

pub use dns::{
    AnswerCounts, DnsMetrics, QueryCounts, RateLimitCounts, TcpMetrics, qtype_index, rcode_index,
};
pub use gossip::GossipMetrics;
pub use kubernetes::KubernetesMetrics;
pub use probes::ProbeMetrics;
pub use published::{SnapshotWatch, health_value, service_label};
pub use snapshots::{ReloadResult, SnapshotMetrics};

use std::marker::PhantomData;

use prometheus::core::Collector;
use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry, TextEncoder,
};

use crate::label_enum::LabelEnum;

/// Zones of more services than this export no per (service, region) series by default
/// (`[server] service_metrics_limit`): 1 000 services × 10 regions is 30 000 series.
pub const DEFAULT_SERVICE_METRICS_LIMIT: usize = 1000;

/// gslbd's metrics, by subsystem.
pub struct Metrics {
    registry: Registry,
    /// Queries, drops, answers (`dns.rs`).
    pub dns: DnsMetrics,
    /// Probe results and time (`probes.rs`).
    pub probes: ProbeMetrics,
    /// Gossip traffic, refusals and peers (`gossip.rs`).
    pub gossip: GossipMetrics,
    /// Kubernetes watches and discovery (`kubernetes.rs`).
    pub kubernetes: KubernetesMetrics,
    /// Snapshot builds, reloads and what published snapshots say (`snapshots.rs`).
    pub snapshots: SnapshotMetrics,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Metrics without per-service answer counters, with per (service, region) series for zones
    /// of the default size limit.
    pub fn new() -> Self {
        Self::with_options(false, DEFAULT_SERVICE_METRICS_LIMIT)
    }

    /// Metrics; `per_service` adds answer counters labelled by service (one series per
    /// service, strategy and result: mind the cardinality of large zones); zones of more than
    /// `service_region_limit` services export no per (service, region) series.
    pub fn with_options(per_service: bool, service_region_limit: usize) -> Self {
        let registry = Registry::new();
        Self {
            dns: DnsMetrics::new(&registry, per_service),
            probes: ProbeMetrics::new(&registry),
            gossip: GossipMetrics::new(&registry),
            kubernetes: KubernetesMetrics::new(&registry),
            snapshots: SnapshotMetrics::new(&registry, service_region_limit),
            registry,
        }
    }

    /// The registry, for collectors registered elsewhere.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Text exposition format (version 0.0.4).
    pub fn encode(&self) -> String {
        encode(&self.registry)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Registers a newly made metric on `registry` and returns it.
fn register<M: Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<M>,
) -> M {
    let metric = metric.expect("metric names, help and labels are valid");
    registry
        .register(Box::new(metric.clone()))
        .expect("metric names are unique");
    metric
}

/// Registers the histogram `name` with `buckets` (upper bounds).
fn histogram(registry: &Registry, name: &str, help: &str, buckets: &[f64]) -> Histogram {
    let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
    register(registry, Histogram::with_opts(opts))
}

/// A counter with one label whose values are the label enum `L`: every value's series starts
/// at zero when registered, and counting takes no label lookup.
struct LabelCounters<L> {
    /// Indexed by [`LabelEnum::index`].
    by_value: Vec<IntCounter>,
    label: PhantomData<L>,
}

impl<L: LabelEnum> LabelCounters<L> {
    /// Registers the counter `name`, labelled `label`.
    fn register(registry: &Registry, name: &str, help: &str, label: &str) -> Self {
        let vec = register(
            registry,
            IntCounterVec::new(Opts::new(name, help), &[label]),
        );
        Self {
            by_value: L::ALL
                .iter()
                .map(|value| vec.with_label_values(&[value.as_str()]))
                .collect(),
            label: PhantomData,
        }
    }

    /// Adds `n` to `value`'s series.
    fn inc_by(&self, value: L, n: u64) {
        self.by_value[value.index()].inc_by(n);
    }
}

/// `registry`'s metrics in the text exposition format (version 0.0.4).
fn encode(registry: &Registry) -> String {
    let mut out = Vec::new();
    if TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .is_err()
    {
        return String::new();
    }
    String::from_utf8(out).unwrap_or_default()
}
