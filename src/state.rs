//! The owner of mutable state: one task receives events (a new model, probe verdicts),
//! coalesces bursts, rebuilds the snapshot and publishes it. Nothing else writes the
//! `ArcSwap`; the DNS path only reads it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info};

use crate::health::plan;
use crate::health::{ProbeKey, Verdicts};
use crate::model::{Health, Model};
use crate::snapshot::Snapshot;

/// Events arriving within this window of the first one share one rebuild.
const COALESCE: Duration = Duration::from_millis(10);

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
        health: Health,
        at: Instant,
    },
}

/// Handle to the owner task.
#[derive(Clone, Debug)]
pub struct StateHandle {
    events: mpsc::Sender<Event>,
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
}

/// What the owner holds.
struct World {
    model: Model,
    verdicts: Verdicts,
    max_udp_payload: u16,
}

impl World {
    fn snapshot(&self) -> Snapshot {
        Snapshot::build(&self.model, self.max_udp_payload, &self.verdicts)
    }

    /// Applies one event; returns whether the view may have changed.
    fn apply(&mut self, event: Event, done: &mut Vec<oneshot::Sender<()>>) -> bool {
        match event {
            Event::Model { model, done: tell } => {
                self.model = *model;
                // Verdicts of probes the new model no longer runs are stale.
                let planned = plan::plan(&self.model, false);
                self.verdicts.retain(|key, _| planned.contains_key(key));
                done.extend(tell);
                true
            }
            Event::Verdict { key, health, .. } => self.verdicts.insert(key, health) != Some(health),
        }
    }
}

/// Publishes the first snapshot and starts the owner task.
pub fn start(
    model: Model,
    max_udp_payload: u16,
) -> (
    Arc<ArcSwap<Snapshot>>,
    StateHandle,
    tokio::task::JoinHandle<()>,
) {
    let mut world = World {
        model,
        verdicts: Verdicts::new(),
        max_udp_payload,
    };
    let store = Arc::new(ArcSwap::from_pointee(world.snapshot()));
    let (events, mut inbox) = mpsc::channel(1024);
    let owner_store = store.clone();
    let task = tokio::spawn(async move {
        while let Some(first) = inbox.recv().await {
            let oldest = event_time(&first);
            let mut done = Vec::new();
            let mut changed = world.apply(first, &mut done);
            let mut events = 1;
            let deadline = tokio::time::Instant::now() + COALESCE;
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
                let started = Instant::now();
                owner_store.store(Arc::new(world.snapshot()));
                let delay = oldest.map(|at| at.elapsed());
                info!(
                    events,
                    services = world.model.services.len(),
                    build_us = started.elapsed().as_micros() as u64,
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
    (store, StateHandle { events }, task)
}

fn event_time(event: &Event) -> Option<Instant> {
    match event {
        Event::Verdict { at, .. } => Some(*at),
        Event::Model { .. } => None,
    }
}
