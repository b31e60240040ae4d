//! The per (service, region) gauges — health, addresses, addresses not found down — read from
//! the served snapshot when Prometheus scrapes, so that they hold no memory between scrapes.
//! A zone of more services than the limit (`[server] service_metrics_limit`) exports none of
//! them: 100 000 services × 10 regions would be three million series. The per-region totals
//! (`gslbd_region_services`, `gslbd_services_unavailable`) are exported at any size.

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, IntGaugeVec, Opts};

use super::published::{health_value, service_label};
use crate::snapshot::Snapshot;

const HEALTH: (&str, &str) = (
    "gslbd_service_region_health",
    "Health of a service in a region as this server answers it: 1 healthy, 0.5 unknown (answered, unconfirmed), 0 unhealthy (only while the zone has at most server.service_metrics_limit services)",
);
const TARGETS: (&str, &str) = (
    "gslbd_service_region_targets",
    "Addresses of a service in a region, a host-name target counting as one (only while the zone has at most server.service_metrics_limit services)",
);
const HEALTHY_TARGETS: (&str, &str) = (
    "gslbd_service_region_healthy_targets",
    "Addresses of a service in a region not found down, answered while the region is in; a host-name target counts as one while its region is not found down (only while the zone has at most server.service_metrics_limit services)",
);

/// Renders the per (service, region) gauges of the snapshot last published.
pub struct ServiceRegionCollector {
    current: Arc<ArcSwapOption<Snapshot>>,
    limit: usize,
    descs: Vec<Desc>,
}

impl ServiceRegionCollector {
    /// A collector of `current` for zones of at most `limit` services.
    pub(super) fn new(current: Arc<ArcSwapOption<Snapshot>>, limit: usize) -> Self {
        let descs = [HEALTH, TARGETS, HEALTHY_TARGETS]
            .iter()
            .map(|(name, help)| {
                Desc::new(
                    name.to_string(),
                    help.to_string(),
                    vec!["service".into(), "region".into()],
                    Default::default(),
                )
                .expect("valid metric description")
            })
            .collect();
        Self {
            current,
            limit,
            descs,
        }
    }
}

impl Collector for ServiceRegionCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Some(snapshot) = self.current.load_full() else {
            return Vec::new();
        };
        if snapshot.services.len() > self.limit {
            return Vec::new();
        }
        let labels = ["service", "region"];
        let gauge = |(name, help): (&str, &str)| {
            GaugeVec::new(Opts::new(name, help), &labels).expect("valid metric")
        };
        let int_gauge = |(name, help): (&str, &str)| {
            IntGaugeVec::new(Opts::new(name, help), &labels).expect("valid metric")
        };
        let (health, targets, healthy) = (
            gauge(HEALTH),
            int_gauge(TARGETS),
            int_gauge(HEALTHY_TARGETS),
        );
        for service in &snapshot.services {
            let name = service_label(service.name());
            for answer in &service.regions {
                let values = [name.as_str(), snapshot.regions[answer.region].as_str()];
                health
                    .with_label_values(&values)
                    .set(health_value(answer.health));
                // A host-name target is one target, found down with its region.
                let (all, answerable) = match answer.cname {
                    Some(_) => (1, i64::from(answer.health.is_available())),
                    None => (answer.all.len() as i64, answer.addresses.len() as i64),
                };
                targets.with_label_values(&values).set(all);
                healthy.with_label_values(&values).set(answerable);
            }
        }
        let mut families = health.collect();
        families.extend(targets.collect());
        families.extend(healthy.collect());
        families
    }
}
