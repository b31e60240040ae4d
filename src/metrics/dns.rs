//! The DNS side's metrics: queries by transport, query type and response code, datagrams not
//! answered, answers rate-limited, time spent answering, service answers by strategy and
//! result (per service too when `[server] per_service_metrics` is on), and TCP connections:
//! open, refused, closed and accept failures ([`TcpMetrics`]).
//!
//! The hot path never touches a label map: the query and answer counters are resolved once
//! here into fixed tables, and the UDP loop adds a batch's counts at once.

use std::time::Duration;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use prometheus::local::LocalHistogram;
use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

use super::{LabelCounters, histogram, register, service_label};
use crate::dns::answer::Served;
use crate::dns::rrl::{AnswerClass, Limited};
use crate::dns::select::AnswerResult;
use crate::dns::tcp::{AcceptError, Closed, Refusal};
use crate::dns::{DropReason, Transport};
use crate::model::StrategyKind;
use crate::snapshot::Snapshot;

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

/// Per-batch query counts, `counts[qtype][rcode]` by [`qtype_index`] and [`rcode_index`];
/// flushed with [`DnsMetrics::add_queries`].
pub type QueryCounts = [[u64; RCODES.len()]; QTYPES.len()];

/// Per-batch service answer counts, by [`StrategyKind`] and [`AnswerResult`]; flushed with
/// [`DnsMetrics::add_answers`].
#[derive(Clone, Copy, Debug, Default)]
pub struct AnswerCounts([[u64; AnswerResult::ALL.len()]; StrategyKind::ALL.len()]);

impl AnswerCounts {
    /// Counts one answer.
    pub fn add(&mut self, served: &Served) {
        self.0[served.strategy as usize][served.result as usize] += 1;
    }
}

/// Per-batch counts of rate-limited answers, by [`AnswerClass`] and [`Limited`]; flushed with
/// [`DnsMetrics::add_rate_limited`].
#[derive(Clone, Copy, Debug, Default)]
pub struct RateLimitCounts([[u64; Limited::ALL.len()]; AnswerClass::ALL.len()]);

impl RateLimitCounts {
    /// Counts one limited answer.
    pub fn add(&mut self, class: AnswerClass, what: Limited) {
        self.0[class as usize][what as usize] += 1;
    }
}

/// The DNS side's metrics.
pub struct DnsMetrics {
    /// `queries[transport][qtype][rcode]`, indexed like [`QueryCounts`] after the transport.
    queries: [[[IntCounter; RCODES.len()]; QTYPES.len()]; Transport::ALL.len()],
    dropped: LabelCounters<DropReason>,
    /// Parse to encoded bytes on the UDP fast path, the answer on hickory's path.
    answer_duration_seconds: Histogram,
    /// `answers[strategy][result]`, indexed like [`AnswerCounts`].
    answers: [[IntCounter; AnswerResult::ALL.len()]; StrategyKind::ALL.len()],
    /// Answers per service, when `[server] per_service_metrics` is on.
    service_answers: Option<IntCounterVec>,
    /// `rate_limited[class][what]`, indexed like [`RateLimitCounts`].
    rate_limited: [[IntCounter; Limited::ALL.len()]; AnswerClass::ALL.len()],
    /// TCP connections.
    pub tcp: TcpMetrics,
}

impl DnsMetrics {
    /// Registers the DNS metrics; `per_service` adds the per-service answer counters.
    pub(super) fn new(registry: &Registry, per_service: bool) -> Self {
        let queries = register(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "gslbd_dns_queries_total",
                    "DNS queries answered, by transport, query type and response code",
                ),
                &["transport", "qtype", "rcode"],
            ),
        );
        let answer_duration_seconds = histogram(
            registry,
            "gslbd_dns_answer_duration_seconds",
            "Time spent answering a query: parse, answer and encode on the UDP fast path, answer on hickory's path",
            &[
                0.000_001, 0.000_002, 0.000_005, 0.000_01, 0.000_02, 0.000_05, 0.000_1, 0.000_25,
                0.000_5, 0.001, 0.005,
            ],
        );
        let answers = register(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "gslbd_dns_answers_total",
                    "A/AAAA questions about services, by the service's strategy and how they were answered (healthy regions, fail_open, none)",
                ),
                &["strategy", "result"],
            ),
        );
        let service_answers = per_service.then(|| {
            register(
                registry,
                IntCounterVec::new(
                    Opts::new(
                        "gslbd_dns_service_answers_total",
                        "A/AAAA questions per service, by strategy and result (server.per_service_metrics)",
                    ),
                    &["service", "strategy", "result"],
                ),
            )
        });
        let rate_limited = register(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "gslbd_dns_rate_limited_total",
                    "UDP answers over the response rate limit (server.rrl), by class of answer and what was done: slipped (sent truncated) or dropped",
                ),
                &["class", "action"],
            ),
        );
        Self {
            queries: std::array::from_fn(|t| {
                std::array::from_fn(|q| {
                    std::array::from_fn(|r| {
                        queries.with_label_values(&[
                            Transport::ALL[t].as_str(),
                            QTYPES[q].0,
                            RCODES[r],
                        ])
                    })
                })
            }),
            dropped: LabelCounters::register(
                registry,
                "gslbd_dns_dropped_total",
                "DNS packets not answered, by reason",
                "reason",
            ),
            answer_duration_seconds,
            answers: std::array::from_fn(|s| {
                std::array::from_fn(|r| {
                    answers.with_label_values(&[
                        StrategyKind::ALL[s].as_str(),
                        AnswerResult::ALL[r].as_str(),
                    ])
                })
            }),
            service_answers,
            rate_limited: std::array::from_fn(|c| {
                std::array::from_fn(|w| {
                    rate_limited.with_label_values(&[
                        AnswerClass::ALL[c].as_str(),
                        Limited::ALL[w].as_str(),
                    ])
                })
            }),
            tcp: TcpMetrics::new(registry),
        }
    }

    /// Adds a batch of rate-limited answer counts.
    pub fn add_rate_limited(&self, counts: &RateLimitCounts) {
        add_table(&self.rate_limited, &counts.0);
    }

    /// Adds a batch of query counts for `transport`.
    pub fn add_queries(&self, transport: Transport, counts: &QueryCounts) {
        add_table(&self.queries[transport as usize], counts);
    }

    /// Counts one answered query.
    pub fn add_query(&self, transport: Transport, rtype: RecordType, rcode: ResponseCode) {
        self.queries[transport as usize][qtype_index(rtype)][rcode_index(rcode)].inc();
    }

    /// Counts one query answered on its own (TCP, hickory's UDP path): its (qtype, rcode)
    /// counter indexes, the service answer it gave, and the time it took.
    pub fn add_answered(
        &self,
        snapshot: &Snapshot,
        transport: Transport,
        (qtype, rcode): (usize, usize),
        served: Option<Served>,
        took: Duration,
    ) {
        self.queries[transport as usize][qtype][rcode].inc();
        if let Some(served) = served {
            let mut answers = AnswerCounts::default();
            answers.add(&served);
            self.add_answers(&answers);
            self.add_service_answers(snapshot, &[served]);
        }
        self.observe_answer(took);
    }

    /// Counts `n` datagrams not answered.
    pub fn add_dropped(&self, reason: DropReason, n: u64) {
        if n > 0 {
            self.dropped.inc_by(reason, n);
        }
    }

    /// Adds a batch of service answer counts.
    pub fn add_answers(&self, counts: &AnswerCounts) {
        add_table(&self.answers, &counts.0);
    }

    /// Counts the answers of one batch per service (`served`: (service, strategy, result)
    /// triples from one snapshot). Does nothing unless per-service metrics are on.
    pub fn add_service_answers(&self, snapshot: &Snapshot, served: &[Served]) {
        let Some(vec) = &self.service_answers else {
            return;
        };
        for served in served {
            if let Some(service) = snapshot.services.get(served.service.get()) {
                vec.with_label_values(&[
                    service_label(service.name()).as_str(),
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

    /// Records the time one answer took.
    pub fn observe_answer(&self, took: Duration) {
        self.answer_duration_seconds.observe(took.as_secs_f64());
    }

    /// A batch-local view of the answer time histogram: observing takes no shared write, and
    /// the batch reaches the registry at `flush`.
    pub fn answer_durations(&self) -> LocalHistogram {
        self.answer_duration_seconds.local()
    }
}

/// TCP connections: open now and at most, refused, closed, and accept failures.
pub struct TcpMetrics {
    open: IntGauge,
    max: IntGauge,
    refused: LabelCounters<Refusal>,
    closed: LabelCounters<Closed>,
    accept_errors: LabelCounters<AcceptError>,
}

impl TcpMetrics {
    fn new(registry: &Registry) -> Self {
        Self {
            open: register(
                registry,
                IntGauge::new("gslbd_dns_tcp_connections", "DNS TCP connections open"),
            ),
            max: register(
                registry,
                IntGauge::new(
                    "gslbd_dns_tcp_connections_max",
                    "DNS TCP connections allowed at once: server.tcp.max_connections, lowered to leave file descriptors for probes, gossip and admin",
                ),
            ),
            refused: LabelCounters::register(
                registry,
                "gslbd_dns_tcp_refused_total",
                "DNS TCP connections reset at once for want of room, by the limit reached: total, per_network",
                "reason",
            ),
            closed: LabelCounters::register(
                registry,
                "gslbd_dns_tcp_closed_total",
                "DNS TCP connections ended, by why: idle, read_timeout, write_timeout, query_limit, peer, error, shutdown",
                "reason",
            ),
            accept_errors: LabelCounters::register(
                registry,
                "gslbd_dns_tcp_accept_errors_total",
                "Failed accepts of DNS TCP connections (each followed by a 100 ms pause but for aborted connections), by reason",
                "reason",
            ),
        }
    }

    /// The gauge of open connections, which the admission table keeps.
    pub fn open_gauge(&self) -> IntGauge {
        self.open.clone()
    }

    /// Records the connection cap in force.
    pub fn set_max(&self, max: usize) {
        self.max.set(i64::try_from(max).unwrap_or(i64::MAX));
    }

    /// Counts a connection refused.
    pub fn add_refused(&self, refusal: Refusal) {
        self.refused.inc_by(refusal, 1);
    }

    /// Counts a connection ended.
    pub fn add_closed(&self, closed: Closed) {
        self.closed.inc_by(closed, 1);
    }

    /// Counts a failed accept.
    pub fn add_accept_error(&self, error: AcceptError) {
        self.accept_errors.inc_by(error, 1);
    }
}

/// Adds a batch's table of counts to the counters of the same shape.
fn add_table<const C: usize>(counters: &[[IntCounter; C]], counts: &[[u64; C]]) {
    for (row, counts) in counters.iter().zip(counts) {
        for (counter, &n) in row.iter().zip(counts) {
            if n > 0 {
                counter.inc_by(n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_query_type_and_response_code_has_a_row_other_taking_the_rest() {
        assert_eq!(QTYPES[qtype_index(RecordType::AAAA)].0, "AAAA");
        assert_eq!(QTYPES[qtype_index(RecordType::MX)].0, "other");
        assert_eq!(RCODES[rcode_index(ResponseCode::NXDomain)], "NXDOMAIN");
        assert_eq!(RCODES[rcode_index(ResponseCode::BADCOOKIE)], "other");
    }

    #[test]
    fn batches_add_to_the_series_of_their_transport_and_labels() {
        let registry = Registry::new();
        let metrics = DnsMetrics::new(&registry, false);
        let mut counts = QueryCounts::default();
        counts[qtype_index(RecordType::A)][rcode_index(ResponseCode::NoError)] = 3;
        metrics.add_queries(Transport::Tcp, &counts);
        metrics.add_query(Transport::Udp, RecordType::MX, ResponseCode::Refused);
        metrics.add_dropped(DropReason::NotAQuery, 2);
        let text = crate::metrics::encode(&registry);
        for line in [
            r#"gslbd_dns_queries_total{qtype="A",rcode="NOERROR",transport="tcp"} 3"#,
            r#"gslbd_dns_queries_total{qtype="A",rcode="NOERROR",transport="udp"} 0"#,
            r#"gslbd_dns_queries_total{qtype="other",rcode="REFUSED",transport="udp"} 1"#,
            r#"gslbd_dns_dropped_total{reason="not_a_query"} 2"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in:\n{text}");
        }
    }
}
