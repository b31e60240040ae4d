//! Cross-region gossip: each region publishes what it says of itself as signed units
//! (`unit`: shards of services, a drain state, heartbeats carrying a digest of them), ordered by
//! a per-run sequence inside the signature. foca gives membership, failure detection and the
//! relay of heartbeats (`member`); a node that lacks units a heartbeat announces asks a peer
//! for them (`wire`, `node`); every unit is verified before anything holds or relays it
//! (`store`). All of it travels sealed and fragmented (`transport`, `keys`). What changes goes
//! to the state owner as events; this module never touches the snapshot it serves from.

pub mod keys;
pub mod local_report;
pub mod member;
pub mod node;
pub mod publish;
pub mod report;
pub mod store;
pub mod transport;
pub mod unit;
pub mod wire;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::GossipSettings;
use crate::metrics::Metrics;
use crate::state::Event;
use crate::tasks::{OnEnd, Tasks};
use crate::unix_ms;
use local_report::Reports;
use member::Member;
use node::{Node, NodeParts};
use publish::{Publisher, Stamper};
use report::ReportRejection;
use store::{Change, Store};
use transport::{PeerFilter, SealedSocket, TransportStats};

/// How often the heartbeat is signed, at most: more often when `peer_suspect` is short
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

/// Counters of units after the transport let them in.
#[derive(Debug, Default)]
pub struct ReportStats {
    /// New units taken.
    pub accepted: AtomicU64,
    /// Units whose signature does not verify with their region's key.
    pub rejected_signature: AtomicU64,
    /// Units refused for any other reason, replays and duplicates included.
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
}

/// A running gossip node; it leaves the cluster when the daemon's tasks stop.
pub struct Gossip {
    pub transport_stats: Arc<TransportStats>,
    pub report_stats: Arc<ReportStats>,
    /// Where this node gossips.
    pub local_addr: SocketAddr,
    store: Arc<Mutex<Store>>,
}

impl Gossip {
    /// Joins the cluster and starts publishing this region's reports as `reports` gives them;
    /// traffic passes where `peers` allows.
    pub async fn start(
        tasks: &Tasks,
        settings: &GossipSettings,
        reports: Reports,
        events: mpsc::Sender<Event>,
        peers: Arc<dyn PeerFilter>,
        metrics: Arc<Metrics>,
    ) -> Result<Self, GossipError> {
        let transport_stats = Arc::new(TransportStats {
            metrics: Some(metrics.clone()),
            ..TransportStats::default()
        });
        let bind_error = |source| GossipError::Bind {
            addr: settings.listen,
            source,
        };
        let socket = SealedSocket::bind(
            settings.listen,
            settings.keyring.clone(),
            transport_stats.clone(),
            peers,
        )
        .map_err(bind_error)?;
        let bound = socket.local_addr().map_err(bind_error)?;
        // Binding port 0 (tests) means advertising the port actually bound.
        let advertise = if settings.advertise.port() == 0 {
            SocketAddr::new(settings.advertise.ip(), bound.port())
        } else {
            settings.advertise
        };
        let identity = Member::signed(
            advertise,
            settings.region.as_str(),
            &settings.instance,
            unix_ms(),
            &settings.signing_key,
            &settings.cluster,
        );
        let store = Arc::new(Mutex::new(Store::new(
            settings.cluster.clone(),
            settings.region_keys.clone(),
            settings.region.clone(),
            settings.instance.clone(),
        )));
        let (seeds_tx, seeds) = watch::channel(Vec::new());
        tasks.spawn(node::resolve_seeds(
            settings.seeds.clone(),
            seeds_tx,
            tasks.stopping(),
        ));
        let (changes_tx, changes) = mpsc::channel(1024);
        let (published_tx, published) = mpsc::channel(16);
        let node = Node::new(NodeParts {
            socket,
            identity,
            signing: settings.signing_key.clone(),
            cluster: settings.cluster.clone(),
            region_keys: settings.region_keys.clone(),
            seeds,
            store: store.clone(),
            changes: changes_tx,
            interval: settings.interval,
            metrics: metrics.clone(),
        });
        info!(
            region = %settings.region,
            instance = %settings.instance,
            %advertise,
            seeds = ?settings.seeds,
            "gossip started"
        );
        let report_stats = Arc::new(ReportStats::default());
        tasks.supervise(
            "gossip node",
            OnEnd::Exit,
            node.run(published, settings.interval, tasks.stopping()),
        );
        tasks.supervise(
            "gossip receive",
            OnEnd::Exit,
            receive(
                changes,
                events,
                report_stats.clone(),
                metrics.clone(),
                tasks.stopping(),
            ),
        );
        let publisher = Publisher::new(
            Stamper::new(settings.region.clone(), settings.instance.clone()),
            settings.signing_key.clone(),
            settings.cluster.clone(),
        );
        tasks.supervise(
            "gossip publish",
            OnEnd::Exit,
            publish(
                publisher,
                reports,
                published_tx,
                Cadence::of(settings.interval, settings.peer_suspect),
                tasks.stopping(),
            ),
        );
        Ok(Self {
            transport_stats,
            report_stats,
            local_addr: advertise,
            store,
        })
    }

    /// Bytes of signed units this node holds (every region's, its own included).
    pub fn held_bytes(&self) -> usize {
        self.store.lock().map_or(0, |store| store.bytes())
    }
}

/// Publishes this region's report as it changes, and a heartbeat at the cadence's pace.
async fn publish(
    mut publisher: Publisher,
    mut reports: Reports,
    units: mpsc::Sender<Vec<Arc<[u8]>>>,
    cadence: Cadence,
    stop: CancellationToken,
) {
    // Nothing, not even a heartbeat, before the state owner's first report; that one counts
    // as changed, to be published at the first tick.
    tokio::select! {
        first = reports.wait_for(Option::is_some) => if first.is_err() { return },
        _ = stop.cancelled() => return,
    }
    reports.mark_changed();
    let mut tick = tokio::time::interval(cadence.round);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.cancelled() => return,
        }
        let changed = reports.has_changed().unwrap_or(false);
        let report = changed
            .then(|| reports.borrow_and_update().clone())
            .flatten();
        let round = publisher.round(report.as_deref(), cadence.alive);
        if !round.is_empty() && units.send(round).await.is_err() {
            return;
        }
    }
}

/// Hands what other regions' new units change to the state owner, and counts refusals.
async fn receive(
    mut changes: mpsc::Receiver<Result<Vec<Change>, ReportRejection>>,
    events: mpsc::Sender<Event>,
    stats: Arc<ReportStats>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    loop {
        let result = tokio::select! {
            change = changes.recv() => match change {
                Some(change) => change,
                None => return,
            },
            _ = stop.cancelled() => return,
        };
        let changes = match result {
            Ok(changes) => changes,
            Err(rejection) => {
                let counter = match rejection {
                    ReportRejection::BadSignature => &stats.rejected_signature,
                    _ => &stats.rejected_other,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                metrics.gossip.report_rejected(rejection);
                if !matches!(
                    rejection,
                    ReportRejection::Replayed | ReportRejection::Duplicate
                ) {
                    warn!(reason = rejection.as_str(), "gossiped unit rejected");
                }
                continue;
            }
        };
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        let at = Instant::now();
        for change in changes {
            let sent = match change {
                Change::Heard(stamp) => events.send(Event::Heard { stamp, at }).await,
                Change::Drain(state) => events.send(Event::SiblingDrain { state }).await,
                Change::Shard {
                    stamp,
                    services,
                    observed,
                } => {
                    let mut sent = Ok(());
                    for (service, report) in services {
                        sent = sent.and(
                            events
                                .send(Event::Report {
                                    stamp: stamp.clone(),
                                    service,
                                    report,
                                    at,
                                })
                                .await,
                        );
                    }
                    for (service, observation) in observed {
                        sent = sent.and(
                            events
                                .send(Event::Observed {
                                    stamp: stamp.clone(),
                                    service,
                                    observation,
                                    at,
                                })
                                .await,
                        );
                    }
                    sent
                }
            };
            if sent.is_err() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gossip::keys::{SigningKey, generate};
    use crate::gossip::local_report::LocalReport;
    use crate::model::Region;

    #[tokio::test(start_paused = true)]
    async fn nothing_is_published_before_the_first_report_and_it_goes_at_the_next_tick() {
        let (_, seed, _) = generate().unwrap();
        let publisher = Publisher::new(
            Stamper::new(Region::new("eu"), "0".into()),
            Arc::new(SigningKey::from_base64(&seed).unwrap()),
            "c".into(),
        );
        let (reports, watched) = watch::channel(None);
        let (units, mut sent) = mpsc::channel(16);
        let cadence = Cadence::of(Duration::from_millis(100), Duration::from_secs(3));
        let stop = CancellationToken::new();
        tokio::spawn(publish(publisher, watched, units, cadence, stop.clone()));

        // Ten heartbeat periods without a report: not one unit.
        tokio::time::sleep(cadence.alive * 10).await;
        assert!(sent.try_recv().is_err(), "nothing before the first report");

        reports.send_replace(Some(Arc::new(LocalReport::default())));
        let first = tokio::time::timeout(cadence.round * 2, sent.recv())
            .await
            .expect("published at the next tick")
            .expect("the publisher runs");
        assert!(!first.is_empty());
        stop.cancel();
    }

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
