//! The owner of mutable state: one task receives events (a new model, probe verdicts and first
//! results, discovered services, remote reports), coalesces bursts, rebuilds the snapshot and
//! publishes it, with this region's report for gossip. Nothing else writes the `ArcSwap`; the
//! DNS path only reads it. What it holds and how events change it is `world`.

mod returns;
mod world;

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hickory_proto::rr::Name;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::gossip::local_report::Reports;
use crate::gossip::report::{DrainState, Observation, ServiceReport, Stamp};
use crate::health::{Plan, ProbeKey, Verdict};
use crate::metrics::Metrics;
use crate::model::{Model, Observe, Region, Service};
use crate::snapshot::Snapshot;
use crate::tasks::{OnEnd, Tasks};
use world::World;

/// Events arriving within this window of the first one share one rebuild.
const COALESCE: Duration = Duration::from_millis(10);
/// Under a stream of events (a large zone converging) the window grows to twice the last
/// rebuild's duration, up to this, so rebuilding never takes more than about a third of a core.
const MAX_COALESCE: Duration = Duration::from_millis(500);
/// How often remote regions' freshness is re-evaluated.
const FRESHNESS_TICK: Duration = Duration::from_millis(200);

/// What can change the world view.
#[derive(Debug)]
pub enum Event {
    /// A new validated model (config reload); `done` is told once it is published.
    Model {
        model: Box<Model>,
        done: Option<oneshot::Sender<()>>,
    },
    /// A probe's verdict changed (`at`: when the checker decided).
    Verdict {
        key: ProbeKey,
        verdict: Verdict,
        at: Instant,
    },
    /// The services discovered in Kubernetes (all of them, replacing the previous set), with
    /// the names of the regions their indexes refer to (the model may have changed since).
    Discovered {
        services: Vec<Service>,
        regions: Vec<Region>,
    },
    /// A verified heartbeat of a remote region.
    Heard { stamp: Stamp, at: Instant },
    /// A verified report of a remote region about one of its services.
    Report {
        stamp: Stamp,
        service: Name,
        report: ServiceReport,
        at: Instant,
    },
    /// A verified observation of a remote region: what its probes see of the other regions'
    /// targets of one service.
    Observed {
        stamp: Stamp,
        service: Name,
        observation: Observation,
        at: Instant,
    },
    /// A sibling replica's drain state (`gslbd drain` at another instance of this region).
    SiblingDrain { state: DrainState },
    /// A probe had its first result (after its verdict event, if that result made one).
    Probed { key: ProbeKey },
    /// Kubernetes discovery is complete for the first time: every watch listed and the
    /// discovered services were sent.
    KubernetesSynced,
    /// An operator drains (or undrains) this region, or one service in it (`gslbd drain`).
    Drain {
        change: DrainChange,
        /// Answered at once: `Err` when there is nothing to drain by that name.
        reply: oneshot::Sender<Result<(), DrainError>>,
        /// Told once the snapshot with the change serves.
        published: oneshot::Sender<()>,
    },
}

/// A drain or undrain of this region, or of one of its services when `service` is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DrainChange {
    /// The region named by the operator: it must be this node's (no node speaks for another).
    pub region: Region,
    pub service: Option<Name>,
    pub drained: bool,
}

/// Why a drain cannot apply.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DrainError {
    #[error("this node has no local_region: there is nothing of its own to drain")]
    NoLocalRegion,
    #[error("this node speaks for region {ours}, not {asked}: drain {asked} at its own gslbd")]
    NotOurRegion { asked: Region, ours: Region },
    #[error("region {0} has no service {1}")]
    UnknownService(Region, Name),
}

/// Handle to the owner task.
#[derive(Clone, Debug)]
pub struct StateHandle {
    events: mpsc::Sender<Event>,
    reports: Reports,
}

impl StateHandle {
    /// Replaces the model and waits until the new snapshot serves.
    pub async fn replace_model(&self, model: Model) {
        let (done, published) = oneshot::channel();
        let event = Event::Model {
            model: Box::new(model),
            done: Some(done),
        };
        if self.events.send(event).await.is_ok() {
            let _ = published.await;
        }
    }

    /// Applies a drain or undrain and waits until the snapshot with it serves.
    pub async fn drain(&self, change: DrainChange) -> Result<(), DrainError> {
        let (reply, answer) = oneshot::channel();
        let (published, served) = oneshot::channel();
        let event = Event::Drain {
            change,
            reply,
            published,
        };
        if self.events.send(event).await.is_err() {
            return Ok(()); // stopping: nothing serves any more
        }
        answer.await.unwrap_or(Ok(()))?;
        let _ = served.await;
        Ok(())
    }

    /// Where sources send their events.
    pub fn sender(&self) -> mpsc::Sender<Event> {
        self.events.clone()
    }

    /// This region's report, as of the latest snapshot (for gossip).
    pub fn reports(&self) -> Reports {
        self.reports.clone()
    }
}

/// Gossip settings the owner needs; `None` when gossip is off.
#[derive(Clone, Debug)]
pub struct RemoteSettings {
    /// This node's instance name within its region (drains are versioned by it).
    pub instance: String,
    pub peer_suspect: Duration,
    pub peer_timeout: Duration,
    /// Probes of the other regions' targets; `None` when off.
    pub observe: Option<Observe>,
}

/// What the owner starts from.
pub struct Setup {
    pub model: Model,
    pub max_udp_payload: u16,
    /// NSID and cookie secrets (server settings); every snapshot carries them.
    pub identity: Arc<crate::dns::Identity>,
    /// `None` without gossip.
    pub remote: Option<RemoteSettings>,
    /// Where the probe plan of each served model goes; the plan it holds is the first one,
    /// whose probes readiness waits for.
    pub plans: watch::Sender<Arc<Plan>>,
    /// With Kubernetes discovery: how long readiness waits for the first discovery.
    pub kubernetes: Option<Duration>,
    pub metrics: Arc<Metrics>,
}

/// Publishes the first snapshot and starts the owner task on `tasks`.
pub fn start(tasks: &Tasks, setup: Setup) -> (Arc<ArcSwap<Snapshot>>, StateHandle) {
    let mut world = World::new(setup);
    let store = Arc::new(ArcSwap::new(world.first_snapshot()));
    let reports = world.reports();
    let (events, inbox) = mpsc::channel(1024);
    tasks.supervise(
        "state owner",
        OnEnd::Exit,
        run(world, inbox, store.clone(), tasks.stopping()),
    );
    (store, StateHandle { events, reports })
}

/// The owner's loop: takes events until every sender is gone or the daemon stops.
async fn run(
    mut world: World,
    mut inbox: mpsc::Receiver<Event>,
    store: Arc<ArcSwap<Snapshot>>,
    stopping: CancellationToken,
) {
    world.first_report();
    let mut last_build = Duration::ZERO;
    let mut tick = tokio::time::interval(FRESHNESS_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let first = tokio::select! {
            event = inbox.recv() => match event {
                Some(event) => event,
                None => break,
            },
            _ = tick.tick() => {
                let now = Instant::now();
                if world.refresh_freshness(now) | world.refresh_kubernetes(now) {
                    world.publish(&store);
                    info!("snapshot published after a freshness or readiness change");
                }
                continue;
            }
            _ = stopping.cancelled() => break,
        };
        let oldest = event_time(&first);
        let mut done = Vec::new();
        let mut changed = world.apply(first, &mut done);
        let mut events = 1;
        let window = COALESCE.max(last_build * 2).min(MAX_COALESCE);
        let deadline = tokio::time::Instant::now() + window;
        loop {
            tokio::select! {
                next = inbox.recv() => match next {
                    Some(event) => {
                        changed |= world.apply(event, &mut done);
                        events += 1;
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline) => break,
            }
        }
        if changed {
            last_build = world.publish(&store);
            let delay = oldest.map(|at| at.elapsed());
            info!(
                events,
                services = world.services(),
                build_us = last_build.as_micros() as u64,
                publish_delay_us = delay.map(|d| d.as_micros() as u64),
                "snapshot published"
            );
        } else {
            debug!(events, "no change; snapshot kept");
        }
        for tell in done {
            let _ = tell.send(());
        }
    }
}

fn event_time(event: &Event) -> Option<Instant> {
    match event {
        Event::Verdict { at, .. }
        | Event::Heard { at, .. }
        | Event::Report { at, .. }
        | Event::Observed { at, .. } => Some(*at),
        Event::Model { .. }
        | Event::Discovered { .. }
        | Event::Probed { .. }
        | Event::KubernetesSynced
        | Event::SiblingDrain { .. }
        | Event::Drain { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::health::{ProbeKey, plan};
    use crate::model::Health;

    /// Three services, each probed by TCP at its own eu address.
    const PROBED: &str = r#"
        probe = { kind = "tcp", port = 80 }
        services = [
            { name = "a.gslb.example.com", strategy = "round-robin",
              targets = { eu = ["127.0.0.1"], us = ["198.51.100.1"] } },
            { name = "b.gslb.example.com", strategy = "round-robin",
              targets = { eu = ["127.0.0.2"], us = ["198.51.100.2"] } },
            { name = "c.gslb.example.com", strategy = "round-robin",
              targets = { eu = ["127.0.0.3"], us = ["198.51.100.3"] } },
        ]
    "#;

    struct Owner {
        tasks: Tasks,
        store: Arc<ArcSwap<Snapshot>>,
        state: StateHandle,
        metrics: Arc<Metrics>,
        keys: Vec<ProbeKey>,
    }

    fn start_owner() -> Owner {
        let model = fixtures::config(PROBED).model;
        let keys = model
            .services
            .iter()
            .map(|s| ProbeKey::for_target(s, s.targets[0].addresses[0]).expect("probed"))
            .collect();
        let (plans, _) = watch::channel(Arc::new(plan::plan(&model, false)));
        let metrics = Arc::new(Metrics::new());
        let tasks = Tasks::new();
        let setup = Setup {
            model,
            max_udp_payload: 1232,
            identity: Arc::default(),
            remote: None,
            plans,
            kubernetes: None,
            metrics: metrics.clone(),
        };
        let (store, state) = start(&tasks, setup);
        Owner {
            tasks,
            store,
            state,
            metrics,
            keys,
        }
    }

    fn down(key: &ProbeKey) -> Event {
        Event::Verdict {
            key: key.clone(),
            verdict: Verdict {
                health: Health::Unhealthy,
                since_ms: 1,
            },
            at: Instant::now(),
        }
    }

    impl Owner {
        async fn send(&self, event: Event) {
            self.state.sender().send(event).await.expect("owner runs");
        }

        /// Lets the owner's coalescing window pass (paused time advances on its own).
        async fn settle(&self) {
            tokio::time::sleep(COALESCE * 2).await;
        }

        fn builds(&self) -> u64 {
            self.metrics.snapshots.builds()
        }

        fn unhealthy(&self) -> usize {
            let snapshot = self.store.load();
            snapshot
                .services
                .iter()
                .filter(|s| s.regions[0].health == Health::Unhealthy)
                .count()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_burst_of_events_is_one_rebuild_and_a_repeat_is_none() {
        let owner = start_owner();
        assert_eq!(owner.builds(), 1, "the first snapshot");
        for key in &owner.keys {
            owner.send(down(key)).await;
        }
        owner.settle().await;
        assert_eq!(owner.unhealthy(), 3, "every verdict of the burst is served");
        assert_eq!(owner.builds(), 2, "one rebuild for the burst");

        // The same verdicts again change nothing: no rebuild.
        for key in &owner.keys {
            owner.send(down(key)).await;
        }
        owner.settle().await;
        assert_eq!(owner.builds(), 2);
        owner.tasks.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn events_further_apart_than_the_window_are_rebuilt_apart() {
        let owner = start_owner();
        owner.send(down(&owner.keys[0])).await;
        owner.settle().await;
        assert_eq!((owner.unhealthy(), owner.builds()), (1, 2));
        owner.send(down(&owner.keys[1])).await;
        owner.settle().await;
        assert_eq!((owner.unhealthy(), owner.builds()), (2, 3));
        owner.tasks.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_model_is_served_before_replace_model_returns() {
        let owner = start_owner();
        let mut model = fixtures::config(PROBED).model;
        model.services.truncate(1);
        owner.state.replace_model(model).await;
        assert_eq!(owner.store.load().services.len(), 1);
        owner.tasks.shutdown().await;
    }

    #[tokio::test(start_paused = true)]
    async fn the_owner_stops_with_the_tasks() {
        let owner = start_owner();
        owner.tasks.shutdown().await;
        assert!(
            owner
                .state
                .sender()
                .send(down(&owner.keys[0]))
                .await
                .is_err(),
            "nobody takes events once stopped"
        );
    }
}
