//! The owner of mutable state: one task receives events (a new model, probe verdicts, remote
//! reports), coalesces bursts, rebuilds the snapshot and publishes it. Nothing else writes the
//! `ArcSwap`; the DNS path only reads it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hickory_proto::rr::Name;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use crate::gossip::local_report::{self, LocalReport};
use crate::gossip::report::ServiceReport;
use crate::health::{Plan, ProbeKey, Verdict, Verdicts, plan};
use crate::metrics::{Metrics, SnapshotWatch};
use crate::model::{Model, Region, RegionIndex, Service};
use crate::region_health::{Inputs, RemoteInputs};
use crate::remote::{Freshness, RemoteView, remote_only_services};
use crate::snapshot::Snapshot;

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
    /// The services discovered in Kubernetes (all of them, replacing the previous set).
    Discovered { services: Vec<Service> },
    /// A verified heartbeat of a remote region.
    Heard {
        region: Region,
        issued_ms: u64,
        at: Instant,
    },
    /// A verified report of a remote region about one of its services.
    Report {
        region: Region,
        service: Name,
        issued_ms: u64,
        report: ServiceReport,
        at: Instant,
    },
}

/// Handle to the owner task.
#[derive(Clone, Debug)]
pub struct StateHandle {
    events: mpsc::Sender<Event>,
    reports: watch::Receiver<Arc<LocalReport>>,
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

    /// Where sources send their events.
    pub fn sender(&self) -> mpsc::Sender<Event> {
        self.events.clone()
    }

    /// This region's report, as of the latest snapshot (for gossip).
    pub fn reports(&self) -> watch::Receiver<Arc<LocalReport>> {
        self.reports.clone()
    }
}

/// Gossip timing the owner needs; `None` when gossip is off.
#[derive(Clone, Copy, Debug)]
pub struct RemoteSettings {
    pub peer_suspect: Duration,
    pub peer_timeout: Duration,
}

/// What the owner holds.
struct World {
    /// The config's model.
    base: Model,
    /// Services discovered in Kubernetes.
    discovered: Vec<Service>,
    /// `base` with the discovered services whose names the config does not hold: what is served.
    model: Model,
    /// Where the probe plan of `model` goes (the checker).
    plans: watch::Sender<Arc<Plan>>,
    /// Where this region's report goes with each snapshot (gossip).
    reports: watch::Sender<Arc<LocalReport>>,
    /// Names of the config's and discovered services (others come from remote reports).
    local_names: HashSet<Name>,
    /// A report about a service this region does not define came in: `model` is recomputed
    /// before the next snapshot.
    remote_services_changed: bool,
    verdicts: Verdicts,
    remote: Option<RemoteView>,
    freshness: HashMap<RegionIndex, Freshness>,
    max_udp_payload: u16,
    metrics: Arc<Metrics>,
    watch: SnapshotWatch,
}

impl World {
    /// Recomputes the served model from the config's and the discovered services, and hands
    /// its probe plan to the checker.
    fn merge(&mut self) {
        let mut model = self.base.clone();
        let configured: HashSet<Name> = model.services.iter().map(|s| s.name.clone()).collect();
        for service in &self.discovered {
            if configured.contains(&service.name) {
                debug!(service = %service.name, "defined in the config too: the config's wins");
            } else {
                model.services.push(service.clone());
            }
        }
        self.local_names = model.services.iter().map(|s| s.name.clone()).collect();
        if let Some(view) = &self.remote {
            let remote =
                remote_only_services(view, &model.regions, model.local_region, &self.local_names);
            if !remote.is_empty() {
                debug!(services = remote.len(), "services only other regions serve");
            }
            model.services.extend(remote);
        }
        self.remote_services_changed = false;
        self.model = model;
        let planned = plan::plan(&self.model, true);
        // Verdicts of probes the new model no longer runs are stale.
        self.verdicts.retain(|key, _| planned.contains_key(key));
        self.plans.send_if_modified(|current| {
            if **current == planned {
                false
            } else {
                *current = Arc::new(planned);
                true
            }
        });
    }

    /// Builds, publishes and accounts for a new snapshot; returns how long the build took.
    fn publish(&mut self, store: &ArcSwap<Snapshot>) -> Duration {
        let started = Instant::now();
        if self.remote_services_changed {
            self.merge();
        }
        let snapshot = Arc::new(self.snapshot());
        store.store(snapshot.clone());
        self.publish_report();
        let took = started.elapsed();
        self.metrics.snapshots.built(took);
        self.watch
            .published(&self.metrics.snapshots, &snapshot, crate::unix_ms());
        took
    }

    fn inputs(&self) -> Inputs<'_> {
        Inputs {
            verdicts: &self.verdicts,
            remote: self.remote.as_ref().map(|view| RemoteInputs {
                view,
                freshness: &self.freshness,
            }),
        }
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot::build(&self.model, self.max_udp_payload, &self.inputs())
    }

    /// Hands gossip this region's report of the served model, when it changed.
    fn publish_report(&self) {
        let report = local_report::build(&self.model, &self.inputs());
        self.reports.send_if_modified(|current| {
            if **current == report {
                false
            } else {
                *current = Arc::new(report);
                true
            }
        });
    }

    fn region_index(&self, region: &Region) -> Option<RegionIndex> {
        RegionIndex::of(&self.model.regions, region.as_str())
    }

    /// Applies one event; returns whether the view may have changed.
    fn apply(&mut self, event: Event, done: &mut Vec<oneshot::Sender<()>>) -> bool {
        match event {
            Event::Model { model, done: tell } => {
                self.base = *model;
                self.merge();
                done.extend(tell);
                self.refresh_freshness(Instant::now());
                true
            }
            Event::Discovered { services } => {
                if services == self.discovered {
                    return false;
                }
                self.discovered = services;
                self.merge();
                true
            }
            Event::Verdict { key, verdict, .. } => {
                self.verdicts.insert(key, verdict) != Some(verdict)
            }
            Event::Heard {
                region,
                issued_ms,
                at,
            } => {
                let (Some(index), Some(view)) = (self.region_index(&region), self.remote.as_mut())
                else {
                    return false;
                };
                view.heard(index, issued_ms, at) && self.refresh_freshness(Instant::now())
            }
            Event::Report {
                region,
                service,
                issued_ms,
                report,
                at,
            } => {
                let (Some(index), Some(view)) = (self.region_index(&region), self.remote.as_mut())
                else {
                    return false;
                };
                if !self.local_names.contains(&service) {
                    self.remote_services_changed = true;
                }
                let changed = view.report(index, service, issued_ms, report, at);
                self.refresh_freshness(Instant::now()) | changed
            }
        }
    }

    /// Recomputes remote freshness; logs and returns whether any region changed class.
    fn refresh_freshness(&mut self, now: Instant) -> bool {
        let Some(view) = &self.remote else {
            return false;
        };
        let remote: Vec<RegionIndex> = RegionIndex::all(self.model.regions.len())
            .filter(|&i| Some(i) != self.model.local_region)
            .collect();
        let next = view.effective(&remote, now);
        for &region in &remote {
            let age = now.saturating_duration_since(view.last_heard(region));
            self.metrics
                .gossip
                .set_region_last_seen(self.model.regions[region].name.as_str(), age);
        }
        let mut changed = false;
        for (&region, &to) in &next {
            let from = self.freshness.get(&region).copied();
            if from != Some(to) {
                changed = true;
                let name = &self.model.regions[region].name;
                match to {
                    Freshness::Fresh if from.is_some() => {
                        info!(region = %name, ?from, "region reports again; re-admitted")
                    }
                    Freshness::Fresh => {}
                    Freshness::Suspect => warn!(
                        region = %name,
                        after = ?view.peer_suspect,
                        "no report from region; suspect (still answered, as unknown)"
                    ),
                    Freshness::Stale => warn!(
                        region = %name,
                        after = ?view.peer_timeout,
                        "no report from region; stale, its targets leave answers"
                    ),
                }
            }
        }
        self.freshness = next;
        changed
    }
}

/// Publishes the first snapshot and starts the owner task.
pub fn start(
    model: Model,
    max_udp_payload: u16,
    remote: Option<RemoteSettings>,
    plans: watch::Sender<Arc<Plan>>,
    metrics: Arc<Metrics>,
) -> (
    Arc<ArcSwap<Snapshot>>,
    StateHandle,
    tokio::task::JoinHandle<()>,
) {
    let mut world = World {
        base: model.clone(),
        discovered: Vec::new(),
        local_names: model.services.iter().map(|s| s.name.clone()).collect(),
        remote_services_changed: false,
        model,
        plans,
        reports: watch::channel(Arc::default()).0,
        verdicts: Verdicts::new(),
        remote: remote.map(|r| RemoteView::new(Instant::now(), r.peer_suspect, r.peer_timeout)),
        freshness: HashMap::new(),
        max_udp_payload,
        metrics: metrics.clone(),
        watch: SnapshotWatch::default(),
    };
    world.refresh_freshness(Instant::now());
    let started = Instant::now();
    let first = Arc::new(world.snapshot());
    world.publish_report();
    metrics.snapshots.built(started.elapsed());
    world
        .watch
        .published(&metrics.snapshots, &first, crate::unix_ms());
    let store = Arc::new(ArcSwap::new(first));
    let reports = world.reports.subscribe();
    let (events, mut inbox) = mpsc::channel(1024);
    let owner_store = store.clone();
    let task = tokio::spawn(async move {
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
                    if world.refresh_freshness(Instant::now()) {
                        world.publish(&owner_store);
                        info!("snapshot published after a freshness change");
                    }
                    continue;
                }
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
                last_build = world.publish(&owner_store);
                let delay = oldest.map(|at| at.elapsed());
                info!(
                    events,
                    services = world.model.services.len(),
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
    });
    (store, StateHandle { events, reports }, task)
}

fn event_time(event: &Event) -> Option<Instant> {
    match event {
        Event::Verdict { at, .. } | Event::Heard { at, .. } | Event::Report { at, .. } => Some(*at),
        Event::Model { .. } | Event::Discovered { .. } => None,
    }
}
