//! The zone's signing, read from the served snapshot's signer when Prometheus scrapes:
//! signatures made (each one a cache miss of the answer path, which signs nothing it signed
//! before in the same window), signed RRsets cached, and the keys with what they do. Nothing is
//! exported for an unsigned zone. A reload with other keys starts a new signer, so the counter
//! starts again from zero (Prometheus' `rate` takes such resets).

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntCounter, IntGauge, IntGaugeVec, Opts};

use crate::snapshot::Snapshot;

const MADE: (&str, &str) = (
    "gslbd_dnssec_signatures_total",
    "RRSIGs made by online signing (answers whose RRset had no cached signature for the current window), since the keys were loaded",
);
const CACHED: (&str, &str) = (
    "gslbd_dnssec_signature_cache_entries",
    "Signed RRsets kept for reuse",
);
const KEYS: (&str, &str) = (
    "gslbd_dnssec_key",
    "The zone's DNSKEY set: 1 per key, by key tag, algorithm, SEP flag and whether it signs (0 published only)",
);

/// Renders the signing metrics of the snapshot last published.
pub struct DnssecCollector {
    current: Arc<ArcSwapOption<Snapshot>>,
    descs: Vec<Desc>,
}

impl DnssecCollector {
    pub(super) fn new(current: Arc<ArcSwapOption<Snapshot>>) -> Self {
        let descs = [(MADE, vec![]), (CACHED, vec![]), (KEYS, key_labels())]
            .into_iter()
            .map(|((name, help), labels)| {
                Desc::new(name.into(), help.into(), labels, Default::default())
                    .expect("valid metric description")
            })
            .collect();
        Self { current, descs }
    }
}

const KEY_LABELS: [&str; 3] = ["key_tag", "algorithm", "sep"];

fn key_labels() -> Vec<String> {
    KEY_LABELS.into_iter().map(String::from).collect()
}

impl Collector for DnssecCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(snapshot) = self.current.load_full() else {
            return Vec::new();
        };
        let Some(signer) = &snapshot.zone.signer else {
            return Vec::new();
        };
        let made = IntCounter::new(MADE.0, MADE.1).expect("valid metric");
        made.inc_by(signer.signatures_made());
        let cached = IntGauge::new(CACHED.0, CACHED.1).expect("valid metric");
        cached.set(signer.cached() as i64);
        let keys = IntGaugeVec::new(Opts::new(KEYS.0, KEYS.1), &KEY_LABELS).expect("valid metric");
        for (i, key) in signer.keys().iter().enumerate() {
            let tag = key.tag.to_string();
            let algorithm = u8::from(key.algorithm()).to_string();
            let sep = if key.is_sep() { "true" } else { "false" };
            keys.with_label_values(&[tag.as_str(), algorithm.as_str(), sep])
                .set(i64::from(signer.signs(i)));
        }
        let mut families = made.collect();
        families.extend(cached.collect());
        families.extend(keys.collect());
        families
    }
}
