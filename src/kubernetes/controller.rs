//! The controller loop: after each change the watches report (debounced), and every
//! `resolve_interval` for status host names, it reads the stores through the index, discovers
//! the services and sends them to the state owner when they changed. Outcomes are logged,
//! counted and told on the objects (Events) once per change, and so are hosts no service may
//! claim (`crate::ownership`); the state owner hears
//! `KubernetesSynced` after the first discovery that follows the core watches' first list.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::Sources;
use super::discover::Defaults;
use super::discover::{self, Decision, Discovery, HOST_REFUSED, Outcome, RefusedHost};
use super::recorder::Recorder;
use super::resolve::{self, resolve};
use super::sources::ObjectId;
use super::watch::WatchContext;
use crate::config::KubernetesSettings;
use crate::metrics::Metrics;
use crate::model::Region;
use crate::ownership::Refusal;
use crate::state::Event;

/// How long a burst of changes (an initial list, a rollout) may settle into one discovery.
const DEBOUNCE: Duration = Duration::from_millis(50);

/// After each change (debounced), and each new `defaults` (a reload), discovers and sends the
/// services; reports outcomes.
pub(super) async fn run(
    mut settings: KubernetesSettings,
    mut defaults: watch::Receiver<Defaults>,
    sources: Sources,
    context: WatchContext,
    events: mpsc::Sender<Event>,
    recorder: Option<Recorder>,
    metrics: Arc<Metrics>,
) {
    let mut synced = false;
    let mut resolved = resolve::Cache::new();
    let mut reported: BTreeMap<ObjectId, (Outcome, Vec<RefusedHost>)> = BTreeMap::new();
    let mut last_sent: Option<(Vec<crate::model::Service>, Vec<Region>)> = None;
    let mut tick = tokio::time::interval(settings.resolve_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = context.changed.notified() => tokio::time::sleep(DEBOUNCE).await,
            _ = tick.tick() => {}
            changed = defaults.changed() => {
                if changed.is_ok() {
                    settings.defaults = defaults.borrow_and_update().clone();
                }
            }
            _ = context.stop.cancelled() => return,
        }
        // Nothing is discovered before every core watch has listed: a store still empty
        // (EndpointSlices not listed yet) would make healthy backends look unready, and
        // that would be served and gossiped.
        if !sources.listed() {
            continue;
        }
        let claims = sources.claims();
        resolve(&claims, &mut resolved, settings.resolve_interval).await;
        let Discovery {
            services,
            decisions,
        } = discover::discover(
            claims,
            &sources.readiness(),
            &resolve::addresses(&resolved),
            &settings.defaults,
        );
        // Outcomes and refused hosts: log, count and tell each object once per change.
        let mut skipped: BTreeMap<(&'static str, &'static str), i64> = BTreeMap::new();
        let mut refused: BTreeMap<(&'static str, Refusal), i64> = BTreeMap::new();
        for (id, decision) in &decisions {
            if let Outcome::Skipped { reason, .. } = &decision.outcome {
                *skipped.entry((id.kind, reason)).or_default() += 1;
            }
            for host in &decision.refused {
                *refused.entry((id.kind, host.refusal)).or_default() += 1;
            }
            let told = reported.get(id);
            if told.map(|(outcome, _)| outcome) != Some(&decision.outcome) {
                report_outcome(id, decision, recorder.as_ref()).await;
            }
            if told.map(|(_, refused)| refused) != Some(&decision.refused) {
                report_refused(id, decision, recorder.as_ref()).await;
            }
        }
        reported = decisions
            .into_iter()
            .map(|(id, decision)| (id, (decision.outcome, decision.refused)))
            .collect();
        metrics.kubernetes.set_skipped(skipped);
        metrics.kubernetes.set_refused_hosts(refused);
        metrics.kubernetes.set_services(services.len());
        let regions: Vec<Region> = settings
            .defaults
            .regions
            .iter()
            .map(|r| r.name.clone())
            .collect();
        let sent = (services, regions);
        if last_sent.as_ref() != Some(&sent) {
            info!(services = sent.0.len(), "Kubernetes services discovered");
            last_sent = Some(sent.clone());
            let (services, regions) = sent;
            if events
                .send(Event::Discovered { services, regions })
                .await
                .is_err()
            {
                return;
            }
        }
        if !synced {
            info!("first Kubernetes discovery done");
            synced = true;
            if events.send(Event::KubernetesSynced).await.is_err() {
                return;
            }
        }
    }
}

/// Logs an object's new outcome and tells it on the object.
async fn report_outcome(id: &ObjectId, decision: &Decision, recorder: Option<&Recorder>) {
    match &decision.outcome {
        Outcome::Balanced { hosts } => {
            info!(object = %id, hosts = hosts.join(","), "Kubernetes object balanced")
        }
        Outcome::Skipped { reason, message } => {
            warn!(object = %id, reason, %message, "Kubernetes object skipped")
        }
    }
    if let Some(recorder) = recorder {
        recorder
            .publish(&decision.claim.reference, &decision.outcome)
            .await;
    }
}

/// Logs each host of the object that may not be balanced and, unless its outcome already says
/// so (no host left to balance), tells them on the object.
async fn report_refused(id: &ObjectId, decision: &Decision, recorder: Option<&Recorder>) {
    if decision.refused.is_empty() {
        return;
    }
    for host in &decision.refused {
        warn!(
            object = %id,
            host = %host.host,
            reason = host.refusal.as_str(),
            message = %host.message,
            "Kubernetes host refused"
        );
    }
    let said_by_outcome =
        matches!(&decision.outcome, Outcome::Skipped { reason, .. } if *reason == HOST_REFUSED);
    if let (Some(recorder), false) = (recorder, said_by_outcome) {
        recorder
            .publish_refused(&decision.claim.reference, &decision.refused)
            .await;
    }
}
