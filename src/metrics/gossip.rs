//! Gossip's metrics: datagrams and units refused (by reason), traffic, members seen alive, the
//! signed units held, and how long ago each remote region was last heard from.

use std::time::Duration;

use prometheus::{GaugeVec, IntCounter, IntGauge, Opts, Registry};

use super::{LabelCounters, register};
use crate::gossip::keys::Rejection;
use crate::gossip::report::ReportRejection;

/// Gossip's metrics.
pub struct GossipMetrics {
    /// Datagrams dropped before gossip reads them.
    packets_rejected: LabelCounters<Rejection>,
    /// Gossiped units and members refused after the transport.
    reports_rejected: LabelCounters<ReportRejection>,
    sent_bytes: IntCounter,
    received_bytes: IntCounter,
    /// Members this node sees alive, itself included.
    members: IntGauge,
    /// Bytes of signed units held, every region's.
    held_bytes: IntGauge,
    /// Seconds since each remote region's last verified heartbeat or report.
    region_last_seen_seconds: GaugeVec,
}

impl GossipMetrics {
    /// Registers the gossip metrics, every rejection reason at zero.
    pub(super) fn new(registry: &Registry) -> Self {
        Self {
            packets_rejected: LabelCounters::register(
                registry,
                "gslbd_gossip_packets_rejected_total",
                "Gossip datagrams dropped before gossip sees them, by reason",
                "reason",
            ),
            reports_rejected: LabelCounters::register(
                registry,
                "gslbd_gossip_reports_rejected_total",
                "Gossiped units and members refused (signature, replay, bounds, names), by reason",
                "reason",
            ),
            sent_bytes: register(
                registry,
                IntCounter::new("gslbd_gossip_sent_bytes_total", "Gossip bytes sent"),
            ),
            received_bytes: register(
                registry,
                IntCounter::new("gslbd_gossip_received_bytes_total", "Gossip bytes received"),
            ),
            members: register(
                registry,
                IntGauge::new(
                    "gslbd_gossip_members",
                    "Gossip members seen alive, this node included",
                ),
            ),
            held_bytes: register(
                registry,
                IntGauge::new(
                    "gslbd_gossip_held_bytes",
                    "Bytes of signed gossip units held, every region's, this node's own included",
                ),
            ),
            region_last_seen_seconds: register(
                registry,
                GaugeVec::new(
                    Opts::new(
                        "gslbd_gossip_region_last_seen_seconds",
                        "Seconds since a remote region was last heard from (since start if never)",
                    ),
                    &["region"],
                ),
            ),
        }
    }

    /// Counts one datagram dropped before gossip reads it.
    pub fn packet_rejected(&self, reason: Rejection) {
        self.packets_rejected.inc_by(reason, 1);
    }

    /// Counts one gossiped unit refused.
    pub fn report_rejected(&self, reason: ReportRejection) {
        self.reports_rejected.inc_by(reason, 1);
    }

    /// Counts `n` gossiped units refused at once.
    pub fn reports_rejected(&self, reason: ReportRejection, n: u64) {
        self.reports_rejected.inc_by(reason, n);
    }

    /// Adds bytes sent.
    pub fn add_sent_bytes(&self, bytes: u64) {
        self.sent_bytes.inc_by(bytes);
    }

    /// Adds bytes received.
    pub fn add_received_bytes(&self, bytes: u64) {
        self.received_bytes.inc_by(bytes);
    }

    /// Sets how many members this node sees alive, itself included.
    pub fn set_members(&self, alive: usize) {
        self.members.set(alive as i64);
    }

    /// Sets the bytes of signed units held.
    pub fn set_held_bytes(&self, bytes: usize) {
        self.held_bytes.set(bytes as i64);
    }

    /// Sets how long ago `region` was last heard from.
    pub fn set_region_last_seen(&self, region: &str, age: Duration) {
        self.region_last_seen_seconds
            .with_label_values(&[region])
            .set(age.as_secs_f64());
    }
}
