//! Prometheus metrics, behind one small module so the rest of the code only calls typed
//! methods. Names follow Prometheus conventions: `gslbd_` prefix, base units, `_total`.
//!
//! The DNS hot path never touches a label map: counters per (transport, qtype, rcode) are
//! resolved once here into a fixed table, and the UDP loop adds a batch's counts at once.

mod published;

pub use published::{SnapshotWatch, health_value, service_label};

use std::time::Duration;

use hickory_proto::op::ResponseCode;

use crate::dns::answer::Served;
use crate::dns::select::AnswerResult;
use crate::dns::{DropReason, Transport};
use crate::gossip::keys::Rejection;
use crate::gossip::report::ReportRejection;
use crate::health::probe::ProbeOutcome;
use crate::label_enum::label_enum;
use crate::model::StrategyKind;
use hickory_proto::rr::RecordType;
use prometheus::{
    Encoder, GaugeVec, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Query types counted apart; everything else is `other`.
const QTYPES: [(&str, Option<RecordType>); 7] = [
    ("A", Some(RecordType::A)),
    ("AAAA", Some(RecordType::AAAA)),
    ("SOA", Some(RecordType::SOA)),
    ("NS", Some(RecordType::NS)),
    ("ANY", Some(RecordType::ANY)),
    ("TXT", Some(RecordType::TXT)),
    ("other", None),
];
/// Response codes counted apart; everything else is `other`.
const RCODES: [&str; 7] = [
    "NOERROR", "NXDOMAIN", "REFUSED", "FORMERR", "NOTIMP", "SERVFAIL", "other",
];

label_enum! {
    /// How a config reload ended; the names are metric label values.
    pub enum ReloadResult {
        /// The new config is served.
        Ok = "ok",
        /// The file was refused; the previous config keeps serving.
        Error = "error",
    }
}

/// Index of a query type in the counter table.
pub fn qtype_index(rtype: RecordType) -> usize {
    QTYPES
        .iter()
        .position(|(_, t)| *t == Some(rtype))
        .unwrap_or(QTYPES.len() - 1)
}

/// Index of a response code in the counter table.
pub fn rcode_index(rcode: ResponseCode) -> usize {
    match rcode {
        ResponseCode::NoError => 0,
        ResponseCode::NXDomain => 1,
        ResponseCode::Refused => 2,
        ResponseCode::FormErr => 3,
        ResponseCode::NotImp => 4,
        ResponseCode::ServFail => 5,
        _ => 6,
    }
}

/// Per-batch query counts, indexed [qtype][rcode]; flushed with [`Metrics::add_queries`].
pub type QueryCounts = [[u64; RCODES.len()]; QTYPES.len()];

/// Per-batch service answer counts, indexed [`StrategyKind`][`AnswerResult`].
#[derive(Clone, Copy, Debug, Default)]
pub struct AnswerCounts([[u64; AnswerResult::ALL.len()]; StrategyKind::ALL.len()]);

impl AnswerCounts {
    /// Counts one answer.
    pub fn add(&mut self, served: &Served) {
        self.0[served.strategy as usize][served.result as usize] += 1;
    }
}

/// gslbd's metrics.
pub struct Metrics {
    registry: Registry,
    /// [transport][qtype][rcode]
    queries: Vec<Vec<Vec<IntCounter>>>,
    dropped: IntCounterVec,
    pub snapshot_builds: IntCounter,
    pub snapshot_build_seconds: Histogram,
    pub config_reloads: IntCounterVec,
    /// Probe results by outcome (`success`, `connect`, `timeout`, `status`, `body`, ...).
    pub probe_results: IntCounterVec,
    pub probe_duration_seconds: Histogram,
    /// Gossip datagrams dropped before chitchat, by reason.
    pub gossip_packets_rejected: IntCounterVec,
    /// Gossiped values refused after the transport, by reason.
    pub gossip_reports_rejected: IntCounterVec,
    pub gossip_sent_bytes: IntCounter,
    pub gossip_received_bytes: IntCounter,
    /// Gossip members this node sees alive, itself included.
    pub gossip_members: prometheus::IntGauge,
    /// Seconds since each remote region's last verified heartbeat or report.
    pub region_last_seen_seconds: prometheus::GaugeVec,
    /// Time spent answering a query (parse to encoded bytes on the UDP fast path).
    pub answer_duration_seconds: Histogram,
    /// [strategy][result]
    answers: Vec<Vec<IntCounter>>,
    /// Answers per service, when `[server] per_service_metrics` is on.
    pub service_answers: Option<IntCounterVec>,
    /// Per (service, region): 1 healthy, 0.5 unknown, 0 unhealthy.
    pub service_region_health: GaugeVec,
    pub service_region_targets: IntGaugeVec,
    pub service_region_healthy_targets: IntGaugeVec,
    /// A region's first failing probe → the first snapshot without it, by failed region.
    pub failover_seconds: HistogramVec,
    /// Kubernetes watch events by kind and event (apply, delete, init, init_apply, init_done).
    pub kube_watch_events: IntCounterVec,
    /// Kubernetes watch errors (API unreachable, 410 Gone, decoding), by kind.
    pub kube_watch_errors: IntCounterVec,
    /// Objects skipped (bad annotations, conflicts, no host in the zone), by kind and reason.
    pub kube_objects_skipped: IntGaugeVec,
    /// Services discovered from Kubernetes.
    pub kube_services: prometheus::IntGauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// Metrics without per-service answer counters.
    pub fn new() -> Self {
        Self::with_options(false)
    }

    /// Metrics; `per_service` adds answer counters labelled by service (one series per
    /// service, strategy and result: mind the cardinality of large zones).
    pub fn with_options(per_service: bool) -> Self {
        let registry = Registry::new();
        let queries_vec = IntCounterVec::new(
            Opts::new(
                "gslbd_dns_queries_total",
                "DNS queries answered, by transport, query type and response code",
            ),
            &["transport", "qtype", "rcode"],
        )
        .expect("valid metric");
        let dropped = IntCounterVec::new(
            Opts::new(
                "gslbd_dns_dropped_total",
                "DNS packets not answered, by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let snapshot_builds = IntCounter::new(
            "gslbd_snapshot_builds_total",
            "Snapshots built and published",
        )
        .expect("valid metric");
        let snapshot_build_seconds = Histogram::with_opts(
            HistogramOpts::new("gslbd_snapshot_build_seconds", "Time to build a snapshot").buckets(
                vec![
                    0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1.0,
                ],
            ),
        )
        .expect("valid metric");
        let config_reloads = IntCounterVec::new(
            Opts::new("gslbd_config_reloads_total", "Config reloads, by result"),
            &["result"],
        )
        .expect("valid metric");
        let probe_results = IntCounterVec::new(
            Opts::new("gslbd_probe_results_total", "Probe results, by outcome"),
            &["result"],
        )
        .expect("valid metric");
        let probe_duration_seconds = Histogram::with_opts(
            HistogramOpts::new("gslbd_probe_duration_seconds", "Time a probe took").buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
            ]),
        )
        .expect("valid metric");
        let gossip_packets_rejected = IntCounterVec::new(
            Opts::new(
                "gslbd_gossip_packets_rejected_total",
                "Gossip datagrams dropped before gossip sees them, by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let gossip_reports_rejected = IntCounterVec::new(
            Opts::new(
                "gslbd_gossip_reports_rejected_total",
                "Gossiped values refused (signature, region, format), by reason",
            ),
            &["reason"],
        )
        .expect("valid metric");
        let gossip_sent_bytes =
            IntCounter::new("gslbd_gossip_sent_bytes_total", "Gossip bytes sent")
                .expect("valid metric");
        let gossip_received_bytes =
            IntCounter::new("gslbd_gossip_received_bytes_total", "Gossip bytes received")
                .expect("valid metric");
        let gossip_members = prometheus::IntGauge::new(
            "gslbd_gossip_members",
            "Gossip members seen alive, this node included",
        )
        .expect("valid metric");
        let region_last_seen_seconds = prometheus::GaugeVec::new(
            Opts::new(
                "gslbd_gossip_region_last_seen_seconds",
                "Seconds since a remote region was last heard from (since start if never)",
            ),
            &["region"],
        )
        .expect("valid metric");
        let answer_duration_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "gslbd_dns_answer_duration_seconds",
                "Time spent answering a query: parse, answer and encode on the UDP fast path, answer on hickory's path",
            )
            .buckets(vec![
                0.000_001, 0.000_002, 0.000_005, 0.000_01, 0.000_02, 0.000_05, 0.000_1, 0.000_25,
                0.000_5, 0.001, 0.005,
            ]),
        )
        .expect("valid metric");
        let answers_vec = IntCounterVec::new(
            Opts::new(
                "gslbd_dns_answers_total",
                "A/AAAA questions about services, by the service's strategy and how they were answered (healthy regions, fail_open, none)",
            ),
            &["strategy", "result"],
        )
        .expect("valid metric");
        let service_answers = per_service.then(|| {
            IntCounterVec::new(
                Opts::new(
                    "gslbd_dns_service_answers_total",
                    "A/AAAA questions per service, by strategy and result (server.per_service_metrics)",
                ),
                &["service", "strategy", "result"],
            )
            .expect("valid metric")
        });
        let service_region_health = GaugeVec::new(
            Opts::new(
                "gslbd_service_region_health",
                "Health of a service in a region as this server answers it: 1 healthy, 0.5 unknown (answered, unconfirmed), 0 unhealthy",
            ),
            &["service", "region"],
        )
        .expect("valid metric");
        let service_region_targets = IntGaugeVec::new(
            Opts::new(
                "gslbd_service_region_targets",
                "Addresses of a service in a region",
            ),
            &["service", "region"],
        )
        .expect("valid metric");
        let service_region_healthy_targets = IntGaugeVec::new(
            Opts::new(
                "gslbd_service_region_healthy_targets",
                "Addresses of a service in a region not found down (answered while the region is in)",
            ),
            &["service", "region"],
        )
        .expect("valid metric");
        let failover_seconds = HistogramVec::new(
            HistogramOpts::new(
                "gslbd_failover_seconds",
                "Failover latency: from a region's first failing probe (its report's timestamp) to the first snapshot this server publishes without it, by failed region",
            )
            .buckets(vec![
                0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 60.0, 120.0,
            ]),
            &["region"],
        )
        .expect("valid metric");
        let kube_watch_events = IntCounterVec::new(
            Opts::new(
                "gslbd_kubernetes_watch_events_total",
                "Kubernetes watch events, by kind and event (apply, delete, init, init_apply, init_done)",
            ),
            &["kind", "event"],
        )
        .expect("valid metric");
        let kube_watch_errors = IntCounterVec::new(
            Opts::new(
                "gslbd_kubernetes_watch_errors_total",
                "Kubernetes watch errors (API server unreachable, expired watches, bad objects), by kind",
            ),
            &["kind"],
        )
        .expect("valid metric");
        let kube_objects_skipped = IntGaugeVec::new(
            Opts::new(
                "gslbd_kubernetes_objects_skipped",
                "Annotated Kubernetes objects skipped, by kind and reason (BadAnnotation, HostConflict, NoHostInZone, NoHostname)",
            ),
            &["kind", "reason"],
        )
        .expect("valid metric");
        let kube_services = prometheus::IntGauge::new(
            "gslbd_kubernetes_services",
            "Services discovered from Kubernetes",
        )
        .expect("valid metric");
        let mut extra: Vec<Box<dyn prometheus::core::Collector>> = Vec::new();
        if let Some(service_answers) = &service_answers {
            extra.push(Box::new(service_answers.clone()));
        }
        for metric in [
            Box::new(queries_vec.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(answers_vec.clone()),
            Box::new(service_region_health.clone()),
            Box::new(service_region_targets.clone()),
            Box::new(service_region_healthy_targets.clone()),
            Box::new(failover_seconds.clone()),
            Box::new(kube_watch_events.clone()),
            Box::new(kube_watch_errors.clone()),
            Box::new(kube_objects_skipped.clone()),
            Box::new(kube_services.clone()),
            Box::new(region_last_seen_seconds.clone()),
            Box::new(answer_duration_seconds.clone()),
            Box::new(dropped.clone()),
            Box::new(snapshot_builds.clone()),
            Box::new(snapshot_build_seconds.clone()),
            Box::new(config_reloads.clone()),
            Box::new(probe_results.clone()),
            Box::new(probe_duration_seconds.clone()),
            Box::new(gossip_packets_rejected.clone()),
            Box::new(gossip_reports_rejected.clone()),
            Box::new(gossip_sent_bytes.clone()),
            Box::new(gossip_received_bytes.clone()),
            Box::new(gossip_members.clone()),
        ]
        .into_iter()
        .chain(extra)
        {
            registry.register(metric).expect("metric names are unique");
        }
        let queries = Transport::ALL
            .iter()
            .map(|transport| {
                QTYPES
                    .iter()
                    .map(|(qtype, _)| {
                        RCODES
                            .iter()
                            .map(|rcode| {
                                queries_vec.with_label_values(&[transport.as_str(), qtype, rcode])
                            })
                            .collect()
                    })
                    .collect()
            })
            .collect();
        // Known label values start at zero, so rate() and alerts see a series from the start.
        for reason in DropReason::ALL {
            dropped.with_label_values(&[reason.as_str()]);
        }
        for result in ReloadResult::ALL {
            config_reloads.with_label_values(&[result.as_str()]);
        }
        for outcome in ProbeOutcome::ALL {
            probe_results.with_label_values(&[outcome.as_str()]);
        }
        for reason in Rejection::ALL {
            gossip_packets_rejected.with_label_values(&[reason.as_str()]);
        }
        for reason in ReportRejection::ALL {
            gossip_reports_rejected.with_label_values(&[reason.as_str()]);
        }
        let answers = StrategyKind::ALL
            .iter()
            .map(|strategy| {
                AnswerResult::ALL
                    .iter()
                    .map(|result| {
                        answers_vec.with_label_values(&[strategy.as_str(), result.as_str()])
                    })
                    .collect()
            })
            .collect();
        Self {
            answers,
            service_answers,
            service_region_health,
            service_region_targets,
            service_region_healthy_targets,
            failover_seconds,
            kube_watch_events,
            kube_watch_errors,
            kube_objects_skipped,
            kube_services,
            registry,
            queries,
            dropped,
            snapshot_builds,
            snapshot_build_seconds,
            config_reloads,
            probe_results,
            probe_duration_seconds,
            gossip_packets_rejected,
            gossip_reports_rejected,
            gossip_sent_bytes,
            gossip_received_bytes,
            gossip_members,
            region_last_seen_seconds,
            answer_duration_seconds,
        }
    }

    /// Adds a batch of query counts for `transport`.
    pub fn add_queries(&self, transport: Transport, counts: &QueryCounts) {
        for (q, row) in counts.iter().enumerate() {
            for (r, &n) in row.iter().enumerate() {
                if n > 0 {
                    self.queries[transport as usize][q][r].inc_by(n);
                }
            }
        }
    }

    /// Adds a batch of service answer counts.
    pub fn add_answers(&self, counts: &AnswerCounts) {
        for (s, row) in counts.0.iter().enumerate() {
            for (r, &n) in row.iter().enumerate() {
                if n > 0 {
                    self.answers[s][r].inc_by(n);
                }
            }
        }
    }

    /// Counts the answers of one batch per service (`served`: (service, strategy, result)
    /// triples from one snapshot). Does nothing unless per-service metrics are on.
    pub fn add_service_answers(&self, snapshot: &crate::snapshot::Snapshot, served: &[Served]) {
        let Some(vec) = &self.service_answers else {
            return;
        };
        for served in served {
            if let Some(service) = snapshot.services.get(served.service.get()) {
                vec.with_label_values(&[
                    service_label(&service.name).as_str(),
                    served.strategy.as_str(),
                    served.result.as_str(),
                ])
                .inc();
            }
        }
    }

    /// Whether answers are also counted per service.
    pub fn per_service(&self) -> bool {
        self.service_answers.is_some()
    }

    /// Counts one answered query.
    pub fn add_query(&self, transport: Transport, rtype: RecordType, rcode: ResponseCode) {
        self.queries[transport as usize][qtype_index(rtype)][rcode_index(rcode)].inc();
    }

    /// Counts packets not answered.
    pub fn add_dropped(&self, reason: DropReason, n: u64) {
        if n > 0 {
            self.dropped.with_label_values(&[reason.as_str()]).inc_by(n);
        }
    }

    /// Records one snapshot build.
    pub fn snapshot_built(&self, took: Duration) {
        self.snapshot_builds.inc();
        self.snapshot_build_seconds.observe(took.as_secs_f64());
    }

    /// The registry, for collectors registered elsewhere.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Text exposition format (version 0.0.4).
    pub fn encode(&self) -> String {
        let mut out = Vec::new();
        let families = self.registry.gather();
        if TextEncoder::new().encode(&families, &mut out).is_err() {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
