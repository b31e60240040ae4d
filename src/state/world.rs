//! What the state owner holds and how each event changes it: the config's model merged with
//! discovered and remote-only services, probe verdicts, remote reports and their freshness,
//! and readiness. Pure but for logs and metrics: the owner task in `mod.rs` feeds it events and
//! the time, and publishes what it builds.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hickory_proto::rr::Name;
use smallvec::SmallVec;
use tokio::sync::{oneshot, watch};
use tracing::{debug, info, warn};

use super::returns::Returns;
use super::{DrainChange, DrainError, Event, Setup};
use crate::dns::Identity;
use crate::gossip::local_report::{self, LocalReport, Reports};
use crate::gossip::report::{DrainState, Stamp};
use crate::health::{Plan, ProbeKey, Verdicts, plan};
use crate::metrics::{Metrics, SnapshotWatch};
use crate::model::{Model, Observe, Region, RegionIndex, Service};
use crate::ownership;
use crate::region_health::{self, Inputs, RemoteInputs};
use crate::remote::{Freshness, Outcome, RemoteView, remote_only_services};
use crate::snapshot::transitions::{self, Transition};
use crate::snapshot::{KubernetesSync, Node, Readiness, Snapshot};

/// How many changes of health and freshness are kept for operators (`/events`, `/ui`).
const MAX_TRANSITIONS: usize = 300;

/// How many (region, name) pairs of refused remote reports are remembered so as to log each
/// once; past it, refusals are only counted (a member flooding names cannot grow it further).
const MAX_REFUSED_LOGGED: usize = 1024;

/// What the owner holds.
pub(super) struct World {
    /// The config's model.
    base: Model,
    /// Services discovered in Kubernetes, and the regions their indexes refer to.
    discovered: Vec<Arc<Service>>,
    discovered_regions: Vec<Region>,
    /// `base` with the discovered services whose names the config does not hold: what is served.
    model: Model,
    /// Where the probe plan of `model` goes (the checker).
    plans: watch::Sender<Arc<Plan>>,
    /// Where this region's report goes with each snapshot (gossip).
    reports: watch::Sender<Option<Arc<LocalReport>>>,
    /// Names of the services of `model` only other regions' reports define (they come last).
    remote_only: HashSet<Name>,
    /// A report about a service this region does not define came in: `model` is recomputed
    /// before the next snapshot.
    remote_services_changed: bool,
    verdicts: Verdicts,
    remote: Option<RemoteView>,
    /// Probes of the other regions' targets (gossip on, observing on).
    observe: Option<Observe>,
    /// A remote report changed since the plan was last sent: observed addresses may have too.
    replan: bool,
    /// Until when readiness waits for every remote region to be heard (start plus
    /// `peer_suspect`): a node that starts while a region is down learns it from gossip or
    /// from its own probes of that region before it takes traffic.
    first_exchange: Option<Instant>,
    /// (region, name) of remote reports refused by the ownership rule and logged: each is
    /// logged once (counted every time), up to [`MAX_REFUSED_LOGGED`].
    refused_logged: HashSet<(Region, Name)>,
    freshness: HashMap<Region, Freshness>,
    /// Probes of the first plan without a first result yet (readiness).
    warming: HashSet<ProbeKey>,
    /// With Kubernetes discovery: where the first discovery stands, and until when readiness
    /// waits for it.
    kubernetes: Option<(KubernetesSync, Instant)>,
    /// What an operator drained at run time (this region's own targets), at this replica or
    /// another of the region.
    drained: Drained,
    /// This node's instance name (with gossip).
    instance: String,
    /// Regions out or coming back, per service (slow start, failback delay).
    returns: Returns,
    /// The last [`MAX_TRANSITIONS`] changes of health and freshness, oldest first.
    transitions: VecDeque<Transition>,
    max_udp_payload: u16,
    identity: Arc<Identity>,
    metrics: Arc<Metrics>,
    watch: SnapshotWatch,
    /// Which services' answers events changed since the last snapshot was published.
    changed: Changed,
    /// Which services (positions in `model.services`) each probe's verdict concerns.
    probe_users: HashMap<ProbeKey, SmallVec<[usize; 2]>>,
    /// The snapshot published last (the one serving), and the model it was built from.
    served: Option<(Arc<Snapshot>, Model)>,
}

/// What changed since the last snapshot: the next one builds only the services this may have
/// changed, and shares the others with it.
#[derive(Debug, Default)]
struct Changed {
    /// Services whose inputs changed (a probe verdict, a report, an observation, a drain).
    services: BTreeSet<Name>,
    /// The model changed: services are matched to the served ones by name, and those that
    /// are the same (one `Arc`) with unchanged inputs are shared.
    model: bool,
    /// Every service's inputs may have changed (a region's freshness, which run speaks).
    all: bool,
}

/// `services` with each one equal to one of `current` (by name, then content) replaced by that
/// one's `Arc`, so that snapshots share what did not change.
fn share_unchanged(current: &[Arc<Service>], services: Vec<Arc<Service>>) -> Vec<Arc<Service>> {
    let current: HashMap<&Name, &Arc<Service>> = current.iter().map(|s| (&s.name, s)).collect();
    services
        .into_iter()
        .map(|service| match current.get(&service.name) {
            Some(&same) if **same == *service => same.clone(),
            _ => service,
        })
        .collect()
}

/// This region drained whole, or some of its services: run-time state, shared with the
/// region's other replicas (the latest change wins: `version`, then `by`), lost when every
/// replica restarts (a drain that must outlive that goes in the config: `health = { eu =
/// "unhealthy" }`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Drained {
    region: bool,
    services: BTreeSet<Name>,
    /// One above the highest version seen when an operator changed it here.
    version: u64,
    /// The instance where it was last changed.
    by: String,
}

impl Drained {
    fn covers(&self, service: &Name) -> bool {
        self.region || self.services.contains(service)
    }
}

impl World {
    /// The owner's state before any event.
    pub(super) fn new(setup: Setup) -> Self {
        let Setup {
            model,
            max_udp_payload,
            identity,
            remote,
            plans,
            kubernetes,
            metrics,
        } = setup;
        let warming = plans.borrow().keys().cloned().collect();
        let now = Instant::now();
        let mut world = Self {
            base: model.clone(),
            discovered: Vec::new(),
            discovered_regions: Vec::new(),
            remote_only: HashSet::new(),
            remote_services_changed: false,
            model,
            plans,
            reports: watch::channel(None).0,
            verdicts: Verdicts::new(),
            remote: remote
                .as_ref()
                .map(|r| RemoteView::new(now, r.peer_suspect, r.peer_timeout)),
            observe: remote.as_ref().and_then(|r| r.observe),
            replan: false,
            first_exchange: remote.as_ref().map(|r| now + r.peer_suspect),
            instance: remote.map(|r| r.instance).unwrap_or_default(),
            refused_logged: HashSet::new(),
            freshness: HashMap::new(),
            warming,
            kubernetes: kubernetes
                .map(|timeout| (KubernetesSync::Listing, Instant::now() + timeout)),
            drained: Drained::default(),
            returns: Returns::default(),
            transitions: VecDeque::new(),
            max_udp_payload,
            identity,
            metrics,
            watch: SnapshotWatch::default(),
            changed: Changed::default(),
            probe_users: HashMap::new(),
            served: None,
        };
        world.refresh_freshness(Instant::now());
        if let Some((sync, _)) = world.kubernetes {
            world.metrics.kubernetes.set_sync_state(sync);
        }
        world
    }

    /// The first snapshot, accounted for and with its report handed to gossip.
    pub(super) fn first_snapshot(&mut self) -> Arc<Snapshot> {
        let started = Instant::now();
        self.probe_users = self.users();
        let (first, _) = self.serving_snapshot(None);
        let first = Arc::new(first);
        self.served = Some((first.clone(), self.model.clone()));
        let took = started.elapsed();
        info!(
            services = self.services(),
            build_us = took.as_micros() as u64,
            "first snapshot built"
        );
        self.metrics.snapshots.built(took);
        self.watch
            .published(&self.metrics.snapshots, &first, crate::unix_ms());
        first
    }

    /// Where gossip follows this region's report.
    pub(super) fn reports(&self) -> Reports {
        self.reports.subscribe()
    }

    /// Services in the served model.
    pub(super) fn services(&self) -> usize {
        self.model.services.len()
    }

    /// Recomputes the served model from the config's and the discovered services, and hands
    /// its probe plan to the checker.
    pub(super) fn merge(&mut self) {
        let mut model = self.base.clone();
        let configured: HashSet<Name> = model.services.iter().map(|s| s.name.clone()).collect();
        let same_regions = self
            .discovered_regions
            .iter()
            .eq(model.regions.iter().map(|r| &r.name));
        for service in &self.discovered {
            if configured.contains(&service.name) {
                debug!(service = %service.name, "defined in the config too: the config's wins");
            } else if let Err(refusal) =
                ownership::may_claim(&service.name, &model.zone.origin, &model.regions)
            {
                // Discovered before a reload made the name the zone's own (a nameserver added):
                // discovery runs again with the new regions and reports it on its object.
                debug!(service = %service.name, reason = refusal.as_str(), "discovered name no longer claimable");
            } else if same_regions {
                model.services.push(service.clone());
            } else {
                // Discovered before a reload changed the regions: follow them by name.
                model.services.push(Arc::new(
                    service.remap(&self.discovered_regions, &model.regions),
                ));
            }
        }

        if let Some(local) = model.local_region {
            for service in &mut model.services {
                let drained = self.drained.covers(&service.name);
                let differs = |t: &crate::model::Target| t.region == local && t.drained != drained;
                if service.targets.iter().any(differs) {
                    for target in Arc::make_mut(service).targets.iter_mut() {
                        if differs(target) {
                            target.drained = drained;
                        }
                    }
                }
            }
        }
        if let Some(view) = &self.remote {
            let local: HashSet<&Name> = model.services.iter().map(|s| &s.name).collect();
            let remote = remote_only_services(view, &model, &local);
            self.remote_only = remote.iter().map(|s| s.name.clone()).collect();
            if !remote.is_empty() {
                debug!(services = remote.len(), "services only other regions serve");
            }
            model.services.extend(remote.into_iter().map(Arc::new));
        }
        self.remote_services_changed = false;
        self.model = model;
        self.changed.model = true;
        self.send_plan(true);
    }

    /// The position of the service named `name` in the served model, when the model has not
    /// changed since the last snapshot.
    fn position(&self, name: &Name) -> Option<usize> {
        let (served, _) = self.served.as_ref().filter(|_| !self.changed.model)?;
        match served.node(name) {
            Some(Node::Service(index)) => Some(index.get())
                .filter(|&i| self.model.services.get(i).is_some_and(|s| s.name == *name)),
            _ => None,
        }
    }

    /// Whether the config or discovery defines a service named `name` (not only another
    /// region's report).
    fn is_local(&self, name: &Name) -> bool {
        if self.remote_only.contains(name) {
            return false;
        }
        // The served snapshot says where the service is, unless the model changed since.
        self.position(name).is_some()
            || (self.changed.model && self.model.services.iter().any(|s| s.name == *name))
    }

    /// Takes a drain or undrain of the service `name` into the served model, that service
    /// alone; the whole model is merged again if it is not found there.
    fn redrain(&mut self, name: &Name) {
        let (Some(local), Some(index)) = (self.model.local_region, self.position(name)) else {
            return self.merge();
        };
        let drained = self.drained.covers(name);
        let service = Arc::make_mut(&mut self.model.services[index]);
        for target in service.targets.iter_mut().filter(|t| t.region == local) {
            target.drained = drained;
        }
        self.changed.services.insert(name.clone());
    }

    /// Which services each probe of the plan concerns.
    fn users(&self) -> HashMap<ProbeKey, SmallVec<[usize; 2]>> {
        let inputs = self.inputs();
        let observed =
            |service, target| region_health::observed_addresses(service, target, &inputs);
        plan::users(
            &self.model,
            self.observe
                .is_some()
                .then_some(&observed as &dyn Fn(_, _) -> _),
        )
    }

    /// Hands the checker the probes of the served model: this region's targets and, when
    /// observing, the other regions' (with the addresses their reports give).
    fn send_plan(&mut self, warn_conflicts: bool) {
        let mut planned = plan::plan(&self.model, warn_conflicts);
        if let Some(observe) = self.observe {
            let inputs = self.inputs();
            plan::observing(
                &mut planned,
                &self.model,
                observe.interval,
                |service, target| region_health::observed_addresses(service, target, &inputs),
            );
        }
        self.replan = false;
        self.probe_users = self.users();
        // Verdicts of probes the new model no longer runs are stale, and their first results
        // no longer awaited.
        self.verdicts.retain(|key, _| planned.contains_key(key));
        self.warming.retain(|key| planned.contains_key(key));
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
    pub(super) fn publish(&mut self, store: &ArcSwap<Snapshot>) -> Duration {
        let started = Instant::now();
        if self.remote_services_changed {
            self.merge();
        } else if self.replan && self.observe.is_some() {
            // Reports may have brought other regions' addresses to observe.
            self.send_plan(false);
        }
        let previous = store.load_full();
        let (mut snapshot, rebuilt) = self.serving_snapshot(Some(&previous));
        let changes = transitions::between(&previous, &snapshot, crate::unix_ms());
        if !changes.is_empty() {
            self.transitions.extend(changes);
            let excess = self.transitions.len().saturating_sub(MAX_TRANSITIONS);
            self.transitions.drain(..excess);
        }
        snapshot.transitions = Arc::new(self.transitions.iter().cloned().collect());
        let snapshot = Arc::new(snapshot);
        store.store(snapshot.clone());
        // The model the snapshot was built from: only the services rebuilt changed in it.
        match (self.served.take(), &rebuilt) {
            (Some((_, mut model)), Some(rebuilt)) => {
                for &index in rebuilt {
                    model.services[index] = self.model.services[index].clone();
                }
                self.served = Some((snapshot.clone(), model));
            }
            _ => self.served = Some((snapshot.clone(), self.model.clone())),
        }
        self.publish_report(rebuilt.as_deref());
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
                regions: &self.model.regions,
                quorum: self.observe.map(|o| o.quorum),
            }),
        }
    }

    /// The snapshot to serve, with the regions coming back marked: `previous` rebuilt for the
    /// services events changed, or built whole.
    /// Also returns the positions of the services rebuilt, when not built whole.
    fn serving_snapshot(&mut self, previous: Option<&Snapshot>) -> (Snapshot, Option<Vec<usize>>) {
        let changed = std::mem::take(&mut self.changed);
        let before = self.served.as_ref().map(|(_, model)| model);
        let inputs = self.inputs();
        let (mut snapshot, services) = match (previous, before) {
            (Some(previous), Some(before)) if !changed.all && changed.model => {
                let shared = Snapshot::build_sharing(
                    &self.model,
                    self.max_udp_payload,
                    &inputs,
                    previous,
                    before,
                    &changed.services,
                );
                (shared, None)
            }
            (Some(previous), Some(_)) if !changed.all => {
                let services: Vec<usize> = changed
                    .services
                    .iter()
                    .filter_map(|name| match previous.node(name) {
                        Some(Node::Service(index)) => Some(index.get()),
                        _ => None,
                    })
                    .collect();
                let rebuilt = previous.rebuilt(&self.model, &inputs, &services);
                (rebuilt, Some(services))
            }
            _ => (
                Snapshot::build(&self.model, self.max_udp_payload, &inputs),
                None,
            ),
        };
        snapshot.readiness = self.readiness();
        snapshot.identity = self.identity.clone();
        self.returns
            .mark(&mut snapshot, services.as_deref(), crate::unix_ms());
        (snapshot, services)
    }

    /// The snapshot of the served model, built whole.
    #[cfg(test)]
    pub(super) fn snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot::build(&self.model, self.max_udp_payload, &self.inputs());
        snapshot.readiness = self.readiness();
        snapshot
    }

    fn readiness(&self) -> Readiness {
        Readiness {
            probes_pending: self.warming.len(),
            kubernetes: self.kubernetes.map(|(sync, _)| sync),
            regions_unheard: self.unheard(Instant::now()),
        }
    }

    /// Hands gossip this region's first report (the owner task's first act, so that the DNS
    /// listeners start while it is built).
    pub(super) fn first_report(&self) {
        let started = Instant::now();
        self.publish_report(None);
        if self.remote.is_some() {
            info!(
                services = self.services(),
                build_us = started.elapsed().as_micros() as u64,
                "first gossip report built"
            );
        }
    }

    /// Hands gossip this region's report of the served model, when it changed (without
    /// gossip, there is no one to hand it to): the last one with the services at `rebuilt`
    /// (positions in the model, which did not change) reported again, or built whole.
    pub(super) fn publish_report(&self, rebuilt: Option<&[usize]>) {
        if self.remote.is_none() {
            return;
        }
        let last = self.reports.borrow().clone();
        let mut report = match (rebuilt, last) {
            (Some(positions), Some(last)) => {
                let mut report = LocalReport::clone(&last);
                report.update(&self.model, &self.inputs(), positions);
                report
            }
            _ => local_report::build(&self.model, &self.inputs()),
        };
        report.drain = DrainState {
            region: self.drained.region,
            services: self.drained.services.iter().map(Name::to_string).collect(),
            version: self.drained.version,
            by: self.drained.by.clone(),
        };
        self.reports.send_if_modified(|current| {
            if current.as_deref() == Some(&report) {
                false
            } else {
                *current = Some(Arc::new(report));
                true
            }
        });
    }

    fn region_index(&self, region: &Region) -> Option<RegionIndex> {
        RegionIndex::of(&self.model.regions, region.as_str())
    }

    /// Applies one event; returns whether the view may have changed.
    pub(super) fn apply(&mut self, event: Event, done: &mut Vec<oneshot::Sender<()>>) -> bool {
        match event {
            Event::Model {
                mut model,
                done: tell,
            } => {
                // Services as served keep their `Arc`: a reload shares what did not change.
                model.services = share_unchanged(&self.model.services, model.services);
                // So does the signer with the same keys: its signatures stay cached.
                if model.zone.signer == self.base.zone.signer {
                    model.zone.signer = self.base.zone.signer.clone();
                }
                self.base = *model;
                self.merge();
                done.extend(tell);
                self.refresh_freshness(Instant::now());
                true
            }
            Event::Discovered { services, regions } => {
                if services.iter().eq(self.discovered.iter().map(|s| &**s))
                    && regions == self.discovered_regions
                {
                    return false;
                }
                // Services discovered as before keep their `Arc`: the snapshot shares them.
                let services = services.into_iter().map(Arc::new).collect();
                self.discovered = share_unchanged(&self.discovered, services);
                self.discovered_regions = regions;
                self.merge();
                true
            }
            Event::Verdict { key, verdict, .. } => {
                let changed = self.verdicts.insert(key.clone(), verdict) != Some(verdict);
                if changed {
                    for &index in self.probe_users.get(&key).into_iter().flatten() {
                        if let Some(service) = self.model.services.get(index) {
                            self.changed.services.insert(service.name.clone());
                        }
                    }
                }
                changed
            }
            Event::Probed { key } => self.warming.remove(&key),
            Event::KubernetesSynced => match &mut self.kubernetes {
                Some((sync, _)) if *sync != KubernetesSync::Synced => {
                    if *sync == KubernetesSync::NotListed {
                        info!("every Kubernetes watch listed: discovered services now served");
                    }
                    *sync = KubernetesSync::Synced;
                    self.metrics.kubernetes.set_sync_state(*sync);
                    true
                }
                _ => false,
            },
            Event::SiblingDrain { state } => self.sibling_drain(state),
            Event::Drain {
                change,
                reply,
                published,
            } => {
                let service = change.service.clone();
                let result = self.drain(change);
                let changed = result == Ok(true);
                let _ = reply.send(result.map(|_| ()));
                if changed {
                    match service {
                        Some(service) => self.redrain(&service),
                        None => self.merge(),
                    }
                    done.push(published);
                }
                changed
            }
            Event::Heard { stamp, at } => {
                let (Some(_), Some(view)) =
                    (self.region_index(&stamp.region), self.remote.as_mut())
                else {
                    return false;
                };
                let first = !view.ever_heard(&stamp.region);
                let outcome = view.heard(&stamp, at);
                let now = Instant::now();
                // A region heard for the first time while readiness waits for it.
                let awaited = first
                    && view.ever_heard(&stamp.region)
                    && self.first_exchange.is_some_and(|until| now < until);
                self.counted(outcome) && (self.refresh_freshness(now) | awaited)
            }
            Event::Report {
                stamp,
                service,
                report,
                at,
            } => {
                if !self.admits(&stamp, &service) {
                    return false;
                }
                if !self.is_local(&service) {
                    self.remote_services_changed = true;
                }
                let Some(view) = self.remote.as_mut() else {
                    return false;
                };
                let outcome = view.report(&stamp, service.clone(), report, at);
                if outcome == Outcome::Changed {
                    self.changed.services.insert(service);
                }
                self.replan |= outcome == Outcome::Changed;
                self.counted(outcome) | self.refresh_freshness(Instant::now())
            }
            Event::Observed {
                stamp,
                service,
                observation,
                at,
            } => {
                if !self.admits(&stamp, &service) {
                    return false;
                }
                let Some(view) = self.remote.as_mut() else {
                    return false;
                };
                let outcome = view.observe(&stamp, service.clone(), observation, at);
                if outcome == Outcome::Changed {
                    self.changed.services.insert(service);
                }
                self.counted(outcome) | self.refresh_freshness(Instant::now())
            }
        }
    }

    /// Whether a remote value about `service` is for this node: gossip on, from a region of
    /// the model, about a name a service may claim.
    fn admits(&mut self, stamp: &Stamp, service: &Name) -> bool {
        self.remote.is_some()
            && self.region_index(&stamp.region).is_some()
            && self.claimable(stamp, service)
    }

    /// Whether a service named `service` may be claimed in the zone; a refusal of a remote
    /// value about it is counted, and logged once per (region, name).
    fn claimable(&mut self, stamp: &Stamp, service: &Name) -> bool {
        let Err(refusal) =
            ownership::may_claim(service, &self.model.zone.origin, &self.model.regions)
        else {
            return true;
        };
        self.metrics.gossip.report_rejected(refusal.into());
        let first = self.refused_logged.len() < MAX_REFUSED_LOGGED
            && self
                .refused_logged
                .insert((stamp.region.clone(), service.clone()));
        if first {
            warn!(
                region = %stamp.region,
                service = %service,
                reason = refusal.as_str(),
                why = refusal.why(&self.model.zone.origin),
                "remote report refused: no service may claim this name"
            );
        }
        false
    }

    /// Remote regions not heard from yet, while readiness waits for them.
    fn unheard(&self, now: Instant) -> usize {
        let (Some(view), Some(until)) = (&self.remote, self.first_exchange) else {
            return 0;
        };
        if now >= until {
            return 0;
        }
        RegionIndex::all(self.model.regions.len())
            .filter(|&i| Some(i) != self.model.local_region)
            .filter(|&i| !view.ever_heard(&self.model.regions[i].name))
            .count()
    }

    /// Records a drain or undrain; returns whether anything changed.
    fn drain(&mut self, change: DrainChange) -> Result<bool, DrainError> {
        let Some(local) = self.model.local_region else {
            return Err(DrainError::NoLocalRegion);
        };
        let ours = self.model.regions[local].name.clone();
        if change.region != ours {
            return Err(DrainError::NotOurRegion {
                asked: change.region,
                ours,
            });
        }
        let before = self.drained.clone();
        match change.service {
            None => self.drained.region = change.drained,
            Some(service) => {
                let served = self
                    .model
                    .services
                    .iter()
                    .any(|s| s.name == service && s.targets.iter().any(|t| t.region == local));
                if !served && !self.drained.services.contains(&service) {
                    return Err(DrainError::UnknownService(ours, service));
                }
                if change.drained {
                    self.drained.services.insert(service);
                } else {
                    self.drained.services.remove(&service);
                }
            }
        }
        if self.drained == before {
            return Ok(false);
        }
        self.drained.version += 1;
        self.drained.by = self.instance.clone();
        info!(whole_region = self.drained.region, services = ?self.drained.services, "drain changed");
        self.metrics
            .snapshots
            .set_drained(self.drained.region, &self.drained.services);
        Ok(true)
    }

    /// Takes a sibling replica's drain state when it is later than ours; returns whether what
    /// is drained changed.
    fn sibling_drain(&mut self, state: DrainState) -> bool {
        if state.order() <= (self.drained.version, self.drained.by.as_str()) {
            return false;
        }
        let services: BTreeSet<Name> = state
            .services
            .iter()
            .filter_map(|name| Name::from_ascii(name).ok())
            .map(|name| name.to_lowercase())
            .collect();
        let changed = self.drained.region != state.region || self.drained.services != services;
        self.drained = Drained {
            region: state.region,
            services,
            version: state.version,
            by: state.by,
        };
        if changed {
            info!(whole_region = self.drained.region, services = ?self.drained.services, by = %self.drained.by, "drain changed at another replica of this region; taken");
            self.metrics
                .snapshots
                .set_drained(self.drained.region, &self.drained.services);
            self.merge();
        }
        changed
    }

    /// Counts a remote value refused by the view; returns whether the view changed.
    fn counted(&self, outcome: Outcome) -> bool {
        match outcome {
            Outcome::Changed => true,
            Outcome::Unchanged => false,
            Outcome::Ignored(reason) => {
                self.metrics.gossip.report_rejected(reason);
                false
            }
        }
    }

    /// Stops waiting for the first Kubernetes discovery once its timeout passed (the API
    /// server unreachable at start): ready with the config's services while the watches keep
    /// retrying. Returns whether readiness changed.
    pub(super) fn refresh_kubernetes(&mut self, now: Instant) -> bool {
        match &mut self.kubernetes {
            Some((sync @ KubernetesSync::Listing, deadline)) if now >= *deadline => {
                *sync = KubernetesSync::NotListed;
                self.metrics.kubernetes.set_sync_state(*sync);
                warn!(
                    "Kubernetes watches not listed in time (API server unreachable?): ready with the config's services; discovery keeps retrying"
                );
                true
            }
            _ => false,
        }
    }

    /// Recomputes remote freshness; logs and returns whether any region changed class.
    pub(super) fn refresh_freshness(&mut self, now: Instant) -> bool {
        let Some(view) = &mut self.remote else {
            return false;
        };
        let leaders_changed = view.refresh_leaders(now);
        let remote: Vec<Region> = RegionIndex::all(self.model.regions.len())
            .filter(|&i| Some(i) != self.model.local_region)
            .map(|i| self.model.regions[i].name.clone())
            .collect();
        let next = view.effective(&remote, now);
        for region in &remote {
            let age = now.saturating_duration_since(view.last_heard(region));
            self.metrics
                .gossip
                .set_region_last_seen(region.as_str(), age);
        }
        let mut changed = false;
        for (name, &to) in &next {
            let from = self.freshness.get(name).copied();
            if from != Some(to) {
                changed = true;
                match to {
                    Freshness::Fresh if from.is_some() => {
                        info!(region = %name, ?from, "region heard again (its heartbeat advanced); re-admitted")
                    }
                    Freshness::Fresh => {}
                    Freshness::Suspect => warn!(
                        region = %name,
                        after = ?view.peer_suspect,
                        "no advancing heartbeat from region; suspect (still answered, as unknown)"
                    ),
                    Freshness::Stale => warn!(
                        region = %name,
                        after = ?view.peer_timeout,
                        "no advancing heartbeat from region; stale, its targets leave answers"
                    ),
                }
            }
        }
        self.freshness = next;
        self.replan |= leaders_changed;
        if changed | leaders_changed {
            // A region's freshness, or which of its runs speaks, moves all its services.
            self.changed.all = true;
        }
        changed | leaders_changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::gossip::report::ServiceReport;
    use crate::health::Verdict;
    use crate::model::Health;
    use crate::state::RemoteSettings;

    /// One service, probed by TCP at two eu addresses.
    const APP: &str = r#"
        services = [
            { name = "app.gslb.example.com", strategy = "round-robin", ttl = 30,
              probe = { kind = "tcp", port = 80 },
              targets = { eu = ["127.0.0.1", "127.0.0.2"], us = ["198.51.100.1"] } },
        ]
    "#;

    fn world(kubernetes: bool, gossip: bool) -> World {
        world_of(APP, kubernetes, gossip)
    }

    /// A world on the fixture config extended by `config`.
    pub(super) fn world_of(config: &str, kubernetes: bool, gossip: bool) -> World {
        let model = fixtures::config(config).model;
        let (plans, _) = watch::channel(Arc::new(plan::plan(&model, false)));
        let remote = gossip.then_some(RemoteSettings {
            instance: "0".to_string(),
            peer_suspect: Duration::from_secs(5),
            peer_timeout: Duration::from_secs(15),
            observe: None,
        });
        World::new(Setup {
            model,
            max_udp_payload: 1232,
            identity: Arc::default(),
            remote,
            plans,
            kubernetes: kubernetes.then_some(SYNC_TIMEOUT),
            metrics: Arc::new(Metrics::new()),
        })
    }

    const SYNC_TIMEOUT: Duration = Duration::from_secs(30);

    fn apply(world: &mut World, event: Event) -> bool {
        world.apply(event, &mut Vec::new())
    }

    fn names(world: &World) -> Vec<String> {
        world
            .model
            .services
            .iter()
            .map(|s| s.name.to_string())
            .collect()
    }

    fn region_names(model: &Model) -> Vec<Region> {
        model.regions.iter().map(|r| r.name.clone()).collect()
    }

    fn keys(world: &World) -> Vec<ProbeKey> {
        world.plans.borrow().keys().cloned().collect()
    }

    #[test]
    fn discovered_services_join_the_config_s_which_win_on_a_shared_name() {
        let mut world = world(false, false);
        let mut same_name = (*world.base.services[0]).clone();
        same_name.ttl = 5;
        let mut other = same_name.clone();
        other.name = fixtures::name("web.gslb.example.com.");
        let discovered = vec![same_name, other];
        let regions = region_names(&world.base);
        assert!(apply(
            &mut world,
            Event::Discovered {
                services: discovered.clone(),
                regions: regions.clone(),
            }
        ));
        assert_eq!(
            names(&world),
            ["app.gslb.example.com.", "web.gslb.example.com."]
        );
        assert_eq!(world.model.services[0].ttl, 30, "the config's app");
        assert_eq!(keys(&world).len(), 2, "the plan follows the served model");
        assert!(
            !apply(
                &mut world,
                Event::Discovered {
                    services: discovered,
                    regions
                }
            ),
            "the same set again is no change"
        );
    }

    #[test]
    fn discovered_services_follow_their_regions_by_name_through_a_reload() {
        let mut world = world(false, false);
        let mut discovered = (*world.base.services[0]).clone();
        discovered.name = fixtures::name("web.gslb.example.com.");
        let regions = region_names(&world.base);
        apply(
            &mut world,
            Event::Discovered {
                services: vec![discovered],
                regions,
            },
        );
        // The reload puts us first and drops ap.
        let mut model = world.base.clone();
        model.regions = vec![model.regions[1].clone(), model.regions[0].clone()];
        model.local_region = Some(crate::fixtures::US);
        model.services.clear();
        model.geo = crate::model::GeoTable::default();
        apply(
            &mut world,
            Event::Model {
                model: Box::new(model),
                done: None,
            },
        );
        let web = &world.model.services[0];
        let by_region: Vec<(String, String)> = web
            .targets
            .iter()
            .map(|t| {
                (
                    world.model.regions[t.region].name.to_string(),
                    t.addresses[0].to_string(),
                )
            })
            .collect();
        assert_eq!(
            by_region,
            [
                ("us".into(), "198.51.100.1".into()),
                ("eu".into(), "127.0.0.1".into())
            ]
        );
        // The snapshot builds (no index out of bounds) and answers eu's target as eu's.
        let snapshot = world.snapshot();
        assert_eq!(
            snapshot.regions[snapshot.services[0].regions[1].region].as_str(),
            "eu"
        );
    }

    #[test]
    fn verdicts_and_awaited_results_of_probes_left_out_of_the_plan_are_dropped() {
        let mut world = world(false, false);
        let [first, second] = <[ProbeKey; 2]>::try_from(keys(&world)).expect("two probes");
        let verdict = Verdict {
            health: Health::Unhealthy,
            since_ms: 1,
        };
        assert!(apply(
            &mut world,
            Event::Verdict {
                key: first.clone(),
                verdict,
                at: Instant::now(),
            }
        ));
        let mut model = world.base.clone();
        use crate::model::Addresses;
        let target = &mut Arc::make_mut(&mut model.services[0]).targets[0];
        target.addresses = Addresses::new(&target.addresses[..1]);
        apply(
            &mut world,
            Event::Model {
                model: Box::new(model),
                done: None,
            },
        );
        assert_eq!(keys(&world), std::slice::from_ref(&first));
        assert_eq!(world.verdicts.get(&first), Some(&verdict), "still planned");
        assert!(!world.warming.contains(&second), "no longer awaited");
        let mut model = world.base.clone();
        model.services.clear();
        apply(
            &mut world,
            Event::Model {
                model: Box::new(model),
                done: None,
            },
        );
        assert!(world.verdicts.is_empty() && world.warming.is_empty());
    }

    #[test]
    fn readiness_waits_for_each_first_probe_result_and_the_first_discovery() {
        let mut world = world(true, false);
        let keys = keys(&world);
        let readiness = |world: &World| world.snapshot().readiness;
        assert_eq!(
            readiness(&world),
            Readiness {
                probes_pending: 2,
                kubernetes: Some(KubernetesSync::Listing),
                regions_unheard: 0,
            }
        );
        assert!(apply(
            &mut world,
            Event::Probed {
                key: keys[0].clone()
            }
        ));
        assert!(
            !apply(
                &mut world,
                Event::Probed {
                    key: keys[0].clone()
                }
            ),
            "once"
        );
        assert!(apply(&mut world, Event::KubernetesSynced));
        assert!(apply(
            &mut world,
            Event::Probed {
                key: keys[1].clone()
            }
        ));
        assert_eq!(readiness(&world).waiting_for(), None);
    }

    #[test]
    fn an_api_server_unreachable_at_start_stops_holding_readiness_after_the_timeout() {
        let mut world = world(true, false);
        for key in keys(&world) {
            apply(&mut world, Event::Probed { key });
        }
        let sync = |world: &World| world.snapshot().readiness.kubernetes;
        let started = Instant::now();
        assert!(!world.refresh_kubernetes(started), "within the timeout");
        assert_eq!(sync(&world), Some(KubernetesSync::Listing));
        assert!(world.snapshot().readiness.waiting_for().is_some());
        assert!(world.refresh_kubernetes(started + SYNC_TIMEOUT + Duration::from_secs(1)));
        assert_eq!(sync(&world), Some(KubernetesSync::NotListed));
        assert_eq!(
            world.snapshot().readiness.waiting_for(),
            None,
            "ready without it"
        );
        // The watches list later: discovery is served from then on.
        assert!(apply(&mut world, Event::KubernetesSynced));
        assert_eq!(sync(&world), Some(KubernetesSync::Synced));
        assert!(!world.refresh_kubernetes(started + SYNC_TIMEOUT * 2));
    }

    /// A report with a spec, as a region serving a service the others do not sends it.
    fn report_with_spec() -> ServiceReport {
        let spec = crate::gossip::report::ServiceSpec {
            strategy: crate::model::StrategyKind::RoundRobin,
            order: Vec::new(),
            weights: Default::default(),
            pick: None,
            ttl: 7,
            all_down: crate::model::AllDownPolicy::FailOpen,
        };
        ServiceReport {
            health: Health::Healthy,
            addresses: vec!["198.51.100.9".parse().expect("an address")],
            down: Vec::new(),
            name: None,
            changed_ms: 1,
            failing_since_ms: None,
            drained: false,
            weight: None,
            spec: Some(spec),
        }
    }

    #[test]
    fn remote_reports_about_names_no_service_may_claim_are_refused_and_counted() {
        use crate::snapshot::Node;

        let mut world = world(false, true);
        let mut report = |name: &str, seq: u64| {
            apply(
                &mut world,
                Event::Report {
                    stamp: crate::remote::tests::stamp("us", 1, seq + 1),
                    service: fixtures::name(name),
                    report: report_with_spec(),
                    at: Instant::now(),
                },
            )
        };
        for (seq, name) in [
            "gslb.example.com.",
            "ns-eu.gslb.example.com.",
            "*.gslb.example.com.",
            "app.example.org.",
        ]
        .into_iter()
        .enumerate()
        {
            assert!(!report(name, seq as u64), "{name} changes nothing");
        }
        assert!(!report("gslb.example.com.", 9), "nor does it again");
        assert!(report("fine.gslb.example.com.", 10), "the rest applies");
        world.publish(&ArcSwap::from_pointee(world.snapshot()));
        assert_eq!(
            names(&world),
            ["app.gslb.example.com.", "fine.gslb.example.com."]
        );
        let snapshot = world.snapshot();
        let node = |name: &str| snapshot.node(&fixtures::name(name)).cloned();
        assert!(matches!(node("gslb.example.com."), Some(Node::Apex)));
        assert!(matches!(
            node("ns-eu.gslb.example.com."),
            Some(Node::Host(_))
        ));
        let metrics = world.metrics.encode();
        for (reason, count) in [
            ("apex", 2),
            ("nameserver", 1),
            ("wildcard", 1),
            ("outside_zone", 1),
        ] {
            let line =
                format!("gslbd_gossip_reports_rejected_total{{reason=\"{reason}\"}} {count}\n");
            assert!(metrics.contains(&line), "{line} in {metrics}");
        }
        assert_eq!(
            world.refused_logged.len(),
            4,
            "logged once per (region, name)"
        );
    }

    #[test]
    fn a_service_only_another_region_reports_is_served_after_its_report() {
        let mut world = world(false, true);
        let report = report_with_spec();
        let only_us = fixtures::name("only-us.gslb.example.com.");
        assert!(apply(
            &mut world,
            Event::Report {
                stamp: crate::remote::tests::stamp("us", 1, 1),
                service: only_us.clone(),
                report,
                at: Instant::now(),
            }
        ));
        world.publish(&ArcSwap::from_pointee(world.snapshot()));
        assert_eq!(
            names(&world),
            ["app.gslb.example.com.", "only-us.gslb.example.com."]
        );
        assert_eq!(
            world.model.services[1].ttl, 7,
            "with the reporting region's rules"
        );
    }

    #[test]
    fn a_drain_made_at_a_sibling_replica_is_taken_when_it_is_the_later_one() {
        let mut world = world(false, true);
        let drained = |world: &World| (world.drained.region, world.drained.services.len());
        let sibling = |region: bool, services: &[&str], version: u64| Event::SiblingDrain {
            state: DrainState {
                region,
                services: services.iter().map(|s| s.to_string()).collect(),
                version,
                by: "1".to_string(),
            },
        };
        assert!(
            apply(&mut world, sibling(true, &[], 1)),
            "drained at replica 1"
        );
        assert_eq!(drained(&world), (true, 0));
        assert!(
            world.model.services[0].targets.iter().any(|t| t.drained),
            "the region's targets are drained here too"
        );
        // Undrained here: version 2, by this instance ("0"), which replica 1 will take.
        let (reply, _answer) = oneshot::channel();
        let (published, _served) = oneshot::channel();
        let undrain = Event::Drain {
            change: DrainChange {
                region: Region::new("eu"),
                service: None,
                drained: false,
            },
            reply,
            published,
        };
        assert!(apply(&mut world, undrain));
        assert_eq!(drained(&world), (false, 0));
        assert_eq!((world.drained.version, world.drained.by.as_str()), (2, "0"));
        // Replica 1's old state again (a replay, or its report before it heard ours): nothing.
        assert!(!apply(&mut world, sibling(true, &[], 1)));
        // A later change at replica 1: one service drained.
        assert!(apply(
            &mut world,
            sibling(false, &["app.gslb.example.com."], 3)
        ));
        assert_eq!(drained(&world), (false, 1));
    }
}

#[cfg(test)]
mod rebuilt {
    use std::time::Instant;

    use super::*;
    use crate::fixtures;
    use crate::gossip::report::ServiceReport;
    use crate::health::Verdict;
    use crate::model::Health;

    /// a and b share a probe (127.0.0.2:80); c has its own; every service is in us too.
    const SERVICES: &str = r#"
        probe = { kind = "tcp", port = 80 }
        services = [
            { name = "a.gslb.example.com", strategy = "round-robin",
              targets = { eu = ["127.0.0.2"], us = ["198.51.100.1"] } },
            { name = "b.gslb.example.com", strategy = "failover", failover_order = ["eu", "us"],
              targets = { eu = ["127.0.0.2", "127.0.0.3"], us = ["198.51.100.2"] } },
            { name = "c.gslb.example.com", strategy = "round-robin",
              targets = { eu = ["127.0.0.4"], us = ["198.51.100.3"] } },
        ]
    "#;

    /// What a snapshot answers, service by service (the marks of regions coming back left
    /// out: a snapshot built whole has none).
    fn answers(snapshot: &Snapshot) -> Vec<String> {
        snapshot
            .services
            .iter()
            .map(|s| {
                let regions: Vec<String> = s
                    .regions
                    .iter()
                    .map(|r| {
                        format!(
                            "{:?} {:?} {:?} {:?} {} {:?}",
                            r.health,
                            r.why,
                            r.addresses,
                            r.all,
                            r.weight,
                            r.down_since_ms()
                        )
                    })
                    .collect();
                format!("{} {:?}", s.name(), regions)
            })
            .collect()
    }

    fn verdict(address: &str, health: Health) -> Event {
        Event::Verdict {
            key: crate::health::ProbeKey {
                kind: crate::model::ProbeKind::Tcp,
                endpoint: crate::health::probe_key::Endpoint::Addr(
                    format!("{address}:80").parse().expect("socket address"),
                ),
                host: String::new(),
                path: String::new(),
            },
            verdict: Verdict {
                health,
                since_ms: 1,
            },
            at: Instant::now(),
        }
    }

    #[test]
    fn a_snapshot_rebuilt_for_the_services_events_changed_answers_as_one_built_whole() {
        let mut world = super::tests::world_of(SERVICES, false, true);
        let store = ArcSwap::new(world.first_snapshot());
        let us_report = |health: Health, seq: u64| Event::Report {
            stamp: crate::remote::tests::stamp("us", 1, seq),
            service: fixtures::name("c.gslb.example.com."),
            report: ServiceReport {
                health,
                addresses: vec!["198.51.100.3".parse().expect("address")],
                down: Vec::new(),
                name: None,
                changed_ms: seq,
                failing_since_ms: None,
                drained: false,
                weight: None,
                spec: None,
            },
            at: Instant::now(),
        };
        let drain = |drained: bool| {
            let (reply, _) = oneshot::channel();
            let (published, _) = oneshot::channel();
            Event::Drain {
                change: DrainChange {
                    region: Region::new("eu"),
                    service: Some(fixtures::name("b.gslb.example.com.")),
                    drained,
                },
                reply,
                published,
            }
        };
        let steps: Vec<(Event, &[usize])> = vec![
            (verdict("127.0.0.2", Health::Healthy), &[0, 1]),
            (verdict("127.0.0.3", Health::Unhealthy), &[1]),
            (verdict("127.0.0.4", Health::Healthy), &[2]),
            (verdict("127.0.0.2", Health::Unhealthy), &[0, 1]),
            (drain(true), &[1]),
            (us_report(Health::Unhealthy, 2), &[2]),
            (us_report(Health::Healthy, 3), &[2]),
            (drain(false), &[1]),
        ];
        for (step, (event, expected)) in steps.into_iter().enumerate() {
            let before = store.load_full();
            assert!(world.apply(event, &mut Vec::new()), "step {step} changes");
            let names: BTreeSet<Name> = expected
                .iter()
                .map(|&i| world.model.services[i].name.clone())
                .collect();
            assert_eq!(world.changed.services, names, "step {step}");
            assert!(!world.changed.model && !world.changed.all, "step {step}");
            world.publish(&store);
            let served = store.load_full();
            assert!(served.same_services(&before), "step {step}: rebuilt");
            assert_eq!(
                served.changed_since(&before).expect("same services"),
                expected.to_vec(),
                "step {step}: only those built again"
            );
            assert_eq!(answers(&served), answers(&world.snapshot()), "step {step}");
            assert_ne!(
                answers(&served),
                answers(&before),
                "step {step} moves an answer"
            );
        }
        // A reload of the same config shares every service and the name table; one changing
        // one service builds that one.
        let reload = |world: &mut World, model: Model| {
            let before = store.load_full();
            let event = Event::Model {
                model: Box::new(model),
                done: None,
            };
            assert!(world.apply(event, &mut Vec::new()));
            world.publish(&store);
            let served = store.load_full();
            assert_eq!(answers(&served), answers(&world.snapshot()));
            served.changed_since(&before)
        };
        let config = fixtures::config(SERVICES).model;
        assert_eq!(
            reload(&mut world, config.clone()),
            Some(vec![]),
            "all shared"
        );
        let mut changed = config.clone();
        Arc::make_mut(&mut changed.services[2]).ttl = 5;
        assert_eq!(
            reload(&mut world, changed),
            Some(vec![2]),
            "c alone rebuilt"
        );
        let mut renamed = config;
        Arc::make_mut(&mut renamed.services[0]).name = fixtures::name("z.gslb.example.com.");
        assert_eq!(
            reload(&mut world, renamed),
            None,
            "another name: a new name table"
        );

        // A region's freshness moves every service: built whole.
        world.changed.all = true;
        let before = store.load_full();
        world.publish(&store);
        assert!(!store.load().same_services(&before));
    }
}
