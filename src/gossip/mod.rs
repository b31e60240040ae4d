//! Cross-region gossip on chitchat: each region publishes signed reports about itself
//! (`report`), over an authenticated, fragmenting transport (`transport`, `keys`), and learns
//! every other region's. Verified reports go to the state owner as events; this module never
//! touches the snapshot it serves from except to read what to publish.

pub mod keys;
pub mod local_report;
pub mod report;
pub mod transport;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chitchat::{ChitchatConfig, ChitchatId, FailureDetectorConfig};
use hickory_proto::rr::Name;
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::GossipSettings;
use crate::metrics::Metrics;
use crate::model::{Health, Region};
use crate::state::Event;
use crate::tasks::{OnEnd, Tasks};
use crate::unix_ms;
use keys::{RegionKeys, SigningKey};
use local_report::LocalReport;
use report::{
    ALIVE_KEY, DRAIN_KEY, DrainState, OBSERVED_PREFIX, Observation, ReportError, SERVICE_PREFIX,
    ServiceReport, Verified,
};
use transport::{PeerFilter, SealedTransport, TransportStats};

/// How often the heartbeat value is re-signed, at most: more often when `peer_suspect` is short
/// ([`Cadence`]).
const ALIVE_EVERY: Duration = Duration::from_secs(1);

/// How often the publisher runs and re-signs the heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cadence {
    /// A publishing round: the gossip interval.
    round: Duration,
    /// The heartbeat period: a third of `peer_suspect`, so that a region turns suspect only
    /// after missing about three heartbeats, within [gossip interval, 1 s].
    alive: Duration,
}

impl Cadence {
    fn of(interval: Duration, peer_suspect: Duration) -> Self {
        Self {
            round: interval,
            alive: (peer_suspect / 3).clamp(interval, ALIVE_EVERY.max(interval)),
        }
    }
}

/// Counters of reports refused after the transport let them in.
#[derive(Debug, Default)]
pub struct ReportStats {
    pub accepted: AtomicU64,
    pub rejected_signature: AtomicU64,
    pub rejected_other: AtomicU64,
}

/// Why gossip cannot start.
#[derive(Debug, thiserror::Error)]
pub enum GossipError {
    #[error("cannot bind gossip to {addr}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// chitchat reports its errors as `anyhow` errors.
    #[error("cannot start the gossip node")]
    Start(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A running gossip node; it leaves the cluster when the daemon's tasks stop.
pub struct Gossip {
    pub transport_stats: Arc<TransportStats>,
    pub report_stats: Arc<ReportStats>,
    /// Where this node gossips.
    pub local_addr: SocketAddr,
}

impl Gossip {
    /// Joins the cluster and starts publishing this region's reports as `reports` gives them;
    /// traffic passes where `peers` allows.
    pub async fn start(
        tasks: &Tasks,
        settings: &GossipSettings,
        reports: watch::Receiver<Arc<LocalReport>>,
        events: mpsc::Sender<Event>,
        peers: Arc<dyn PeerFilter>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, GossipError> {
        let transport_stats = Arc::new(TransportStats {
            metrics: Some(metrics.clone()),
            ..TransportStats::default()
        });
        let transport =
            SealedTransport::new(settings.keyring.clone(), transport_stats.clone(), peers);

        // Binding port 0 (tests) means advertising the port actually bound: bind first.
        let bind_error = |source| GossipError::Bind {
            addr: settings.listen,
            source,
        };
        let probe = tokio::net::UdpSocket::bind(settings.listen)
            .await
            .map_err(bind_error)?;
        let bound = probe.local_addr().map_err(bind_error)?;
        drop(probe);
        let advertise = if settings.advertise.port() == 0 {
            SocketAddr::new(settings.advertise.ip(), bound.port())
        } else {
            settings.advertise
        };
        let generation = unix_ms();
        let node_id = format!("{}/{}", settings.region, settings.instance);
        let config = ChitchatConfig {
            chitchat_id: ChitchatId::new(node_id.clone(), generation, advertise),
            cluster_id: settings.cluster.clone(),
            gossip_interval: settings.interval,
            listen_addr: bound,
            seed_nodes: settings.seeds.clone(),
            failure_detector_config: FailureDetectorConfig {
                initial_interval: settings.interval,
                dead_node_grace_period: Duration::from_secs(3600),
                ..FailureDetectorConfig::default()
            },
            marked_for_deletion_grace_period: Duration::from_secs(3600),
            catchup_callback: None,
            extra_liveness_predicate: None,
        };
        let handle = chitchat::spawn_chitchat(config, Vec::new(), &transport)
            .await
            .map_err(|error| GossipError::Start(error.into()))?;
        info!(node = %node_id, %advertise, seeds = ?settings.seeds, "gossip started");

        let (changes_tx, changes) = mpsc::unbounded_channel::<(String, String, String)>();
        let listener = handle
            .chitchat()
            .lock()
            .await
            .subscribe_event("", move |event| {
                // Runs under chitchat's lock: hand the value over and return.
                let _ = changes_tx.send((
                    event.node.node_id.to_string(),
                    event.key.to_string(),
                    event.value.to_string(),
                ));
            });

        let report_stats = Arc::new(ReportStats::default());
        let identity = Identity {
            region: settings.region.clone(),
            instance: settings.instance.clone(),
            cluster: settings.cluster.clone(),
        };
        tasks.supervise(
            "gossip receive",
            OnEnd::Exit,
            receive(
                changes,
                identity.clone(),
                settings.region_keys.clone(),
                events,
                report_stats.clone(),
                metrics.clone(),
                tasks.stopping(),
            ),
        );
        tasks.supervise(
            "gossip publish",
            OnEnd::Exit,
            publish(
                handle.chitchat(),
                reports,
                identity,
                settings.signing_key.clone(),
                Cadence::of(settings.interval, settings.peer_suspect),
                metrics,
                tasks.stopping(),
            ),
        );
        let stopping = tasks.stopping();
        tasks.spawn(async move {
            stopping.cancelled().await;
            // The subscription ends first: nothing more reaches the receiver.
            drop(listener);
            let _ = handle.shutdown().await;
        });
        Ok(Self {
            transport_stats,
            report_stats,
            local_addr: advertise,
        })
    }
}

/// Who this node speaks for, and in which cluster.
#[derive(Clone, Debug)]
struct Identity {
    region: Region,
    instance: String,
    cluster: String,
}

/// Stamps the values of this run (this start of gslbd): a random epoch, drawn once, and the
/// next number of the run's sequence for every value signed. Receivers order values by these,
/// not by the issue time, so no clock, ours or theirs, can hide or revive a value.
struct Stamper {
    region: Region,
    instance: String,
    epoch: u64,
    seq: u64,
}

impl Stamper {
    fn new(region: Region, instance: String) -> Self {
        let epoch = ring::rand::generate::<[u8; 8]>(&ring::rand::SystemRandom::new())
            .map(|random| u64::from_be_bytes(random.expose()))
            // The system's random source failing is not worth stopping for: the clock then.
            .unwrap_or_else(|_| unix_ms());
        info!(%region, %instance, epoch, "gossip run started");
        Self {
            region,
            instance,
            epoch,
            seq: 0,
        }
    }

    fn next(&mut self, issued_ms: u64) -> report::Stamp {
        self.seq += 1;
        report::Stamp {
            region: self.region.clone(),
            instance: self.instance.clone(),
            epoch: self.epoch,
            seq: self.seq,
            issued_ms,
        }
    }
}

/// Publishes changed service reports and observations every round, and a heartbeat at the
/// cadence's pace.
async fn publish(
    chitchat: Arc<tokio::sync::Mutex<chitchat::Chitchat>>,
    mut reports: watch::Receiver<Arc<LocalReport>>,
    Identity {
        region,
        instance,
        cluster,
    }: Identity,
    signing: Arc<SigningKey>,
    cadence: Cadence,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut stamper = Stamper::new(region, instance);
    let mut published: BTreeMap<Name, ServiceReport> = BTreeMap::new();
    let mut observed: BTreeMap<Name, Observation> = BTreeMap::new();
    let mut drain: Option<DrainState> = None;
    // The first report counts as changed: it is published at the first tick.
    reports.mark_changed();
    let mut last_alive: Option<Instant> = None;
    let mut tick = tokio::time::interval(cadence.round);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let now = unix_ms();
        let mut updates: Vec<(String, String)> = Vec::new();
        // Reports change only when the state owner publishes new ones: diff only then.
        let unchanged = !reports.has_changed().unwrap_or(false);
        let current = if unchanged {
            Arc::default()
        } else {
            reports.borrow_and_update().clone()
        };
        for (name, report) in &current.services {
            let changed_ms = match published.get(name) {
                Some(old) if old.health == report.health => old.changed_ms,
                _ => now,
            };
            let report = ServiceReport {
                changed_ms,
                ..report.clone()
            };
            if published.get(name) != Some(&report) {
                let key = format!("{SERVICE_PREFIX}{name}");
                updates.push((
                    key.clone(),
                    report::sign(&signing, &cluster, &stamper.next(now), &key, &report),
                ));
                published.insert(name.clone(), report);
            }
        }
        // A service gone from our config: publish that we no longer serve it.
        let gone: Vec<Name> = if unchanged {
            Vec::new()
        } else {
            published
                .keys()
                .filter(|n| !current.services.contains_key(*n))
                .cloned()
                .collect()
        };
        for name in gone {
            let report = ServiceReport {
                health: Health::Unhealthy,
                addresses: Vec::new(),
                down: Vec::new(),
                changed_ms: now,
                failing_since_ms: None,
                drained: false,
                weight: None,
                spec: None,
            };
            let key = format!("{SERVICE_PREFIX}{name}");
            updates.push((
                key.clone(),
                report::sign(&signing, &cluster, &stamper.next(now), &key, &report),
            ));
            published.remove(&name);
        }
        for (name, observation) in &current.observed {
            if observed.get(name) != Some(observation) {
                let key = format!("{OBSERVED_PREFIX}{name}");
                updates.push((
                    key.clone(),
                    report::sign(&signing, &cluster, &stamper.next(now), &key, observation),
                ));
                observed.insert(name.clone(), observation.clone());
            }
        }
        // A service no longer observed: publish that we see nothing of it.
        let unobserved: Vec<Name> = if unchanged {
            Vec::new()
        } else {
            observed
                .keys()
                .filter(|n| !current.observed.contains_key(*n))
                .cloned()
                .collect()
        };
        for name in unobserved {
            let key = format!("{OBSERVED_PREFIX}{name}");
            let nothing = Observation::new();
            updates.push((
                key.clone(),
                report::sign(&signing, &cluster, &stamper.next(now), &key, &nothing),
            ));
            observed.remove(&name);
        }
        if !unchanged && drain.as_ref() != Some(&current.drain) {
            updates.push((
                DRAIN_KEY.to_string(),
                report::sign(
                    &signing,
                    &cluster,
                    &stamper.next(now),
                    DRAIN_KEY,
                    &current.drain,
                ),
            ));
            drain = Some(current.drain.clone());
        }
        if last_alive.is_none_or(|at| at.elapsed() >= cadence.alive) {
            updates.push((
                ALIVE_KEY.to_string(),
                report::sign(&signing, &cluster, &stamper.next(now), ALIVE_KEY, &()),
            ));
            last_alive = Some(Instant::now());
        }
        let mut chitchat = chitchat.lock().await;
        metrics.gossip.set_members(chitchat.live_nodes().count());
        if !updates.is_empty() {
            let count = updates.len();
            let state = chitchat.self_node_state();
            for (key, value) in updates {
                state.set(key, value);
            }
            debug!(values = count, "gossip values published");
        }
    }
}

/// Verifies what other regions publish and hands it to the state owner.
async fn receive(
    mut changes: mpsc::UnboundedReceiver<(String, String, String)>,
    Identity {
        region: local,
        instance,
        cluster,
    }: Identity,
    region_keys: Arc<RegionKeys>,
    events: mpsc::Sender<Event>,
    stats: Arc<ReportStats>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    loop {
        let (node, key, value) = tokio::select! {
            change = changes.recv() => match change {
                Some(change) => change,
                None => return,
            },
            _ = stop.cancelled() => return,
        };
        let region = report::region_of_node(&node);
        let at = Instant::now();
        if region == local.as_str() {
            // Of our own region, only a sibling replica's drain state matters to us.
            if key != DRAIN_KEY || report::instance_of_node(&node) == instance {
                continue;
            }
            match report::verify::<DrainState>(&value, &cluster, &node, &key, &region_keys) {
                Ok(Verified { value, .. }) => {
                    stats.accepted.fetch_add(1, Ordering::Relaxed);
                    if events
                        .send(Event::SiblingDrain { state: value })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                Err(error) => {
                    stats.rejected_signature.fetch_add(1, Ordering::Relaxed);
                    metrics.gossip.report_rejected(error.rejection());
                    warn!(%node, %key, reason = error.as_str(), %error, "gossiped value rejected");
                }
            }
            continue;
        }
        let event = if key == ALIVE_KEY {
            report::verify::<()>(&value, &cluster, &node, &key, &region_keys)
                .map(|v| Event::Heard { stamp: v.stamp, at })
        } else if let Some(service) = key.strip_prefix(SERVICE_PREFIX) {
            let Some(name) = service_name(service, &stats, &metrics) else {
                continue;
            };
            report::verify::<ServiceReport>(&value, &cluster, &node, &key, &region_keys).map(
                |Verified { stamp, value }| Event::Report {
                    stamp,
                    service: name,
                    report: value,
                    at,
                },
            )
        } else if let Some(service) = key.strip_prefix(OBSERVED_PREFIX) {
            let Some(name) = service_name(service, &stats, &metrics) else {
                continue;
            };
            report::verify::<Observation>(&value, &cluster, &node, &key, &region_keys).map(
                |Verified { stamp, value }| Event::Observed {
                    stamp,
                    service: name,
                    observation: value,
                    at,
                },
            )
        } else {
            continue;
        };
        match event {
            Ok(event) => {
                stats.accepted.fetch_add(1, Ordering::Relaxed);
                if events.send(event).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                let counter = match error {
                    ReportError::BadSignature | ReportError::WrongRegion { .. } => {
                        &stats.rejected_signature
                    }
                    _ => &stats.rejected_other,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                metrics.gossip.report_rejected(error.rejection());
                warn!(%node, %key, reason = error.as_str(), %error, "gossiped value rejected");
            }
        }
    }
}

/// The service name of a gossip key, lowercase and fully qualified; a key that is not a DNS
/// name is counted and refused before any verification.
fn service_name(key: &str, stats: &ReportStats, metrics: &Metrics) -> Option<Name> {
    let Ok(mut name) = Name::from_ascii(key) else {
        stats.rejected_other.fetch_add(1, Ordering::Relaxed);
        metrics
            .gossip
            .report_rejected(report::ReportRejection::BadName);
        return None;
    };
    // Keys are written fully qualified; one without the final dot means the same name.
    name.set_fqdn(true);
    Some(name.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_heartbeat_beats_three_times_per_peer_suspect_at_most_once_a_second() {
        let ms = Duration::from_millis;
        let alive = |interval, suspect| Cadence::of(ms(interval), ms(suspect)).alive;
        assert_eq!(alive(250, 5_000), ms(1_000), "defaults: once a second");
        assert_eq!(alive(50, 900), ms(300), "a short peer_suspect beats faster");
        assert_eq!(alive(50, 100), ms(50), "never faster than the gossip round");
        assert_eq!(
            alive(2_000, 60_000),
            ms(2_000),
            "nor than a slow round allows"
        );
    }
}
