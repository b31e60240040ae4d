//! The owner of mutable state: one task receives events, rebuilds the snapshot and publishes
//! it. Nothing else writes the `ArcSwap`; the DNS path only reads it.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::{mpsc, oneshot};
use tracing::info;

use crate::model::Model;
use crate::snapshot::Snapshot;

/// What can change the world view.
#[derive(Debug)]
pub enum Event {
    /// A new validated model (config reload); `done` is told once it is published.
    Model {
        model: Box<Model>,
        done: Option<oneshot::Sender<()>>,
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
    let store = Arc::new(ArcSwap::from_pointee(Snapshot::build(
        &model,
        max_udp_payload,
    )));
    let (events, mut inbox) = mpsc::channel(64);
    let owner_store = store.clone();
    let task = tokio::spawn(async move {
        while let Some(event) = inbox.recv().await {
            match event {
                Event::Model { model, done } => {
                    let started = std::time::Instant::now();
                    let snapshot = Snapshot::build(&model, max_udp_payload);
                    owner_store.store(Arc::new(snapshot));
                    info!(
                        services = model.services.len(),
                        build_us = started.elapsed().as_micros() as u64,
                        "snapshot published"
                    );
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                }
            }
        }
    });
    (store, StateHandle { events }, task)
}
