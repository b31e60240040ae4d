//! What other regions said about themselves (`svc:` reports) and saw of the others (`obs:`
//! observations), and how fresh it is.
//!
//! Pure: the state owner feeds it verified gossip and the time, the snapshot builder asks it
//! per (region, service). Which values are new, and which run of a region's instance speaks for
//! it, follow from the sequence numbers inside the signed values (`runs`), never from clocks. A
//! region is `Fresh` while its heartbeats advance, `Suspect` after `peer_suspect` without one
//! (its last report still answers, as Unknown) and `Stale` after `peer_timeout` (its targets
//! leave answers) — unless every other region is stale too: then this node is the one cut off,
//! and the last known state keeps serving (availability first). What observers say can
//! overrule all this (`region_health::observed`). Of a region's replicas, the first live one by
//! name speaks for it ([`RemoteView::refresh_leaders`]).

mod only;
pub mod runs;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hickory_proto::rr::Name;
use tracing::info;

use crate::gossip::report::{Observation, ReportRejection, ServiceReport, Stamp};
use crate::model::Region;
pub use only::remote_only_services;
use runs::{Run, Runs, Taken, Values};

/// Instances remembered per region: replicas beyond this are refused (a member holding the
/// region's key could otherwise make up instances without end).
pub const MAX_INSTANCES: usize = 16;

/// How recently a region was heard from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Freshness {
    Fresh,
    Suspect,
    Stale,
}

/// The run speaking for one instance of a remote region, as `/state` shows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RunInfo {
    pub instance: String,
    /// The run's epoch in hex (a new one at every start of the instance).
    pub epoch: String,
    /// The latest sequence number seen from it.
    pub seq: u64,
    /// Whether its heartbeat has advanced here yet.
    pub heard: bool,
}

/// What a verified value did to the view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// What the region says, or how fresh it is, may have changed.
    Changed,
    /// New, and the view is the same (a first heartbeat, an identical report).
    Unchanged,
    /// Refused, counted by reason; nothing changed.
    Ignored(ReportRejection),
}

#[derive(Clone, Debug, Default)]
struct RegionState {
    /// Per instance (replica) of the region.
    instances: HashMap<String, Runs>,
    /// The instance that speaks for the region: of those heard within `peer_suspect`, the
    /// first by name, so that every server picks the same one and two replicas that disagree
    /// for a moment never flip answers. `None` while none is live: then, per key, the value
    /// that arrived last among the instances' speaking runs.
    leader: Option<String>,
    /// When a heartbeat of the region last advanced here.
    last_heard: Option<Instant>,
    /// What the region says per service: the leader's report, else of its instances'
    /// speaking runs the report that arrived last.
    services: HashMap<Name, ServiceReport>,
    /// What the region sees of the other regions' targets per service, the same way.
    observed: HashMap<Name, Observation>,
}

impl RegionState {
    /// Recomputes `services` and `observed` from the instances' speaking runs, the leader's
    /// first; returns whether either changed.
    fn rebuild(&mut self) -> bool {
        let leader = self.leader.as_deref();
        let services = latest(&self.instances, leader, |run| &run.services);
        let observed = latest(&self.instances, leader, |run| &run.observed);
        let changed = services != self.services || observed != self.observed;
        self.services = services;
        self.observed = observed;
        changed
    }
}

/// Per key, the `leader` instance's value, else of the instances' speaking runs the value that
/// arrived last.
fn latest<V: Clone>(
    instances: &HashMap<String, Runs>,
    leader: Option<&str>,
    values: impl Fn(&Run) -> &Values<V>,
) -> HashMap<Name, V> {
    let mut latest: HashMap<&Name, (bool, Instant, &V)> = HashMap::new();
    for (instance, runs) in instances {
        let Some(run) = runs.speaking() else { continue };
        let leads = leader == Some(instance.as_str());
        for (name, (_, value, at)) in values(run) {
            let entry = latest.entry(name).or_insert((leads, *at, value));
            if (leads, *at) > (entry.0, entry.1) {
                *entry = (leads, *at, value);
            }
        }
    }
    latest
        .into_iter()
        .map(|(name, (_, _, value))| (name.clone(), value.clone()))
        .collect()
}

/// Reports of remote regions, by region name: names hold across reloads that add, remove or
/// reorder regions, where positions in the model would not.
#[derive(Clone, Debug)]
pub struct RemoteView {
    regions: HashMap<Region, RegionState>,
    started: Instant,
    pub peer_suspect: Duration,
    pub peer_timeout: Duration,
}

impl RemoteView {
    pub fn new(started: Instant, peer_suspect: Duration, peer_timeout: Duration) -> Self {
        Self {
            regions: HashMap::new(),
            started,
            peer_suspect,
            peer_timeout,
        }
    }

    /// A verified heartbeat, received at `at`. `Changed` when it advanced its run: the region
    /// was heard.
    pub fn heard(&mut self, stamp: &Stamp, at: Instant) -> Outcome {
        self.take(stamp, |runs| runs.alive(stamp, at), at)
    }

    /// A verified report about `service`, received at `at`.
    pub fn report(
        &mut self,
        stamp: &Stamp,
        service: Name,
        report: ServiceReport,
        at: Instant,
    ) -> Outcome {
        let key = service.clone();
        let expected = report.clone();
        let outcome = self.take(stamp, |runs| runs.report(stamp, service, report, at), at);
        self.held(
            outcome,
            stamp,
            |state| &mut state.services,
            |run| &run.services,
            key,
            expected,
        )
    }

    /// A verified observation about `service`, received at `at`.
    pub fn observe(
        &mut self,
        stamp: &Stamp,
        service: Name,
        observation: Observation,
        at: Instant,
    ) -> Outcome {
        let key = service.clone();
        let expected = observation.clone();
        let outcome = self.take(
            stamp,
            |runs| runs.observe(stamp, service, observation, at),
            at,
        );
        self.held(
            outcome,
            stamp,
            |state| &mut state.observed,
            |run| &run.observed,
            key,
            expected,
        )
    }

    /// After a new value taken into its run: it changes what the region says if its run
    /// speaks, its instance leads the region or the leader has no value for the key (`latest`),
    /// and it differs.
    fn held<V: PartialEq>(
        &mut self,
        outcome: Outcome,
        stamp: &Stamp,
        said: impl FnOnce(&mut RegionState) -> &mut HashMap<Name, V>,
        values: impl Fn(&Run) -> &Values<V>,
        key: Name,
        value: V,
    ) -> Outcome {
        if outcome != Outcome::Unchanged {
            return outcome;
        }
        let Some(state) = self.regions.get_mut(&stamp.region) else {
            return outcome;
        };
        let speaks = state
            .instances
            .get(&stamp.instance)
            .and_then(Runs::speaking)
            .is_some_and(|run| run.epoch == stamp.epoch);
        if !speaks {
            return Outcome::Ignored(ReportRejection::Superseded);
        }
        let overruled = state.leader.as_ref().is_some_and(|leader| {
            *leader != stamp.instance
                && state
                    .instances
                    .get(leader)
                    .and_then(Runs::speaking)
                    .is_some_and(|run| values(run).contains_key(&key))
        });
        if overruled {
            return Outcome::Unchanged;
        }
        let said = said(state);
        if said.get(&key) == Some(&value) {
            return Outcome::Unchanged;
        }
        said.insert(key, value);
        Outcome::Changed
    }

    /// Applies `take` to the runs of `stamp`'s instance; handles a change of speaking run.
    fn take(
        &mut self,
        stamp: &Stamp,
        take: impl FnOnce(&mut Runs) -> Taken,
        at: Instant,
    ) -> Outcome {
        let state = self.regions.entry(stamp.region.clone()).or_default();
        if !state.instances.contains_key(&stamp.instance) && state.instances.len() >= MAX_INSTANCES
        {
            return Outcome::Ignored(ReportRejection::TooManyInstances);
        }
        let before = state
            .instances
            .get(&stamp.instance)
            .and_then(Runs::speaking)
            .map(|run| run.epoch);
        let runs = state.instances.entry(stamp.instance.clone()).or_default();
        let taken = take(runs);
        let after = runs.speaking().map(|run| run.epoch);
        if taken == Taken::Replayed {
            return Outcome::Ignored(ReportRejection::Replayed);
        }
        let heard = taken == Taken::Heard;
        if heard {
            state.last_heard = Some(state.last_heard.map_or(at, |t| t.max(at)));
        }
        if before != after {
            if before.is_some() {
                info!(
                    region = %stamp.region,
                    instance = %stamp.instance,
                    "a new run of a remote instance speaks for it (it restarted)"
                );
            }
            if state.rebuild() {
                return Outcome::Changed;
            }
        }
        if heard {
            Outcome::Changed
        } else {
            Outcome::Unchanged
        }
    }

    /// When `region` was last heard from; our own start if never.
    pub fn last_heard(&self, region: &Region) -> Instant {
        self.regions
            .get(region)
            .and_then(|s| s.last_heard)
            .unwrap_or(self.started)
    }

    /// Whether `region`'s heartbeat has ever advanced here.
    pub fn ever_heard(&self, region: &Region) -> bool {
        self.regions
            .get(region)
            .is_some_and(|s| s.last_heard.is_some())
    }

    /// How fresh `region` is at `now`. Never heard: counted from our own start.
    pub fn freshness(&self, region: &Region, now: Instant) -> Freshness {
        let age = now.saturating_duration_since(self.last_heard(region));
        if age >= self.peer_timeout {
            Freshness::Stale
        } else if age >= self.peer_suspect {
            Freshness::Suspect
        } else {
            Freshness::Fresh
        }
    }

    /// Re-elects each region's speaking instance at `now` (the first by name of those heard
    /// within `peer_suspect`); returns whether what any region says changed.
    pub fn refresh_leaders(&mut self, now: Instant) -> bool {
        let mut changed = false;
        for (region, state) in &mut self.regions {
            let leader = state
                .instances
                .iter()
                .filter(|(_, runs)| {
                    runs.speaking()
                        .and_then(|run| run.heard)
                        .is_some_and(|heard| {
                            now.saturating_duration_since(heard) < self.peer_suspect
                        })
                })
                .map(|(instance, _)| instance)
                .min()
                .cloned();
            if leader != state.leader {
                if state.instances.len() > 1 {
                    info!(%region, from = ?state.leader, to = ?leader, "instance speaking for the region changed");
                }
                state.leader = leader;
                changed |= state.rebuild();
            }
        }
        changed
    }

    /// Freshness of every remote region, with the all-stale rule applied.
    pub fn effective(&self, remote_regions: &[Region], now: Instant) -> HashMap<Region, Freshness> {
        let raw: HashMap<Region, Freshness> = remote_regions
            .iter()
            .map(|r| (r.clone(), self.freshness(r, now)))
            .collect();
        let all_stale = !raw.is_empty() && raw.values().all(|f| *f == Freshness::Stale);
        if all_stale {
            // We are the one cut off: keep serving what we last knew.
            raw.into_keys().map(|r| (r, Freshness::Suspect)).collect()
        } else {
            raw
        }
    }

    /// Every (region, service, report) held.
    pub fn reported(&self) -> impl Iterator<Item = (&Region, &Name, &ServiceReport)> {
        self.regions.iter().flat_map(|(region, state)| {
            state
                .services
                .iter()
                .map(move |(name, report)| (region, name, report))
        })
    }

    /// What `region` says about `service`.
    pub fn service(&self, region: &Region, service: &Name) -> Option<&ServiceReport> {
        self.regions.get(region)?.services.get(service)
    }

    /// What `region`'s probes see of the other regions' targets of `service`.
    pub fn observation(&self, region: &Region, service: &Name) -> Option<&Observation> {
        self.regions.get(region)?.observed.get(service)
    }

    /// The speaking run of each instance of `region`, by instance.
    pub fn runs(&self, region: &Region) -> Vec<RunInfo> {
        let Some(state) = self.regions.get(region) else {
            return Vec::new();
        };
        let mut runs: Vec<RunInfo> = state
            .instances
            .iter()
            .filter_map(|(instance, runs)| {
                let run = runs.speaking()?;
                Some(RunInfo {
                    instance: instance.clone(),
                    epoch: format!("{:016x}", run.epoch),
                    seq: run.seq(),
                    heard: run.heard.is_some(),
                })
            })
            .collect();
        runs.sort_by(|a, b| a.instance.cmp(&b.instance));
        runs
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::fixtures::name;
    use crate::model::Health;

    /// A stamp of instance `0` of `region`.
    pub(crate) fn stamp(region: &str, epoch: u64, seq: u64) -> Stamp {
        Stamp {
            region: Region::new(region),
            instance: "0".to_string(),
            epoch,
            seq,
            issued_ms: 0,
        }
    }

    fn view(start: Instant) -> RemoteView {
        RemoteView::new(start, Duration::from_secs(5), Duration::from_secs(15))
    }

    pub(crate) fn report(health: Health) -> ServiceReport {
        ServiceReport {
            health,
            addresses: vec!["192.0.2.1".parse().unwrap()],
            down: vec![],
            name: None,
            changed_ms: 1,
            failing_since_ms: None,
            drained: false,
            spec: None,
            weight: None,
        }
    }

    /// Two advancing heartbeats of `region`'s run `epoch` at `at`: heard.
    fn beat(v: &mut RemoteView, region: &str, epoch: u64, seq: u64, at: Instant) {
        v.heard(&stamp(region, epoch, seq), at);
        assert_eq!(
            v.heard(&stamp(region, epoch, seq + 1), at),
            Outcome::Changed
        );
    }

    #[test]
    fn regions_age_from_fresh_to_suspect_to_stale_and_return_at_once() {
        let t0 = Instant::now();
        let us = Region::new("us");
        let mut v = view(t0);
        assert_eq!(v.freshness(&us, t0), Freshness::Fresh);
        beat(&mut v, "us", 1, 1, t0);
        let at = |s| t0 + Duration::from_secs(s);
        assert_eq!(v.freshness(&us, at(4)), Freshness::Fresh);
        assert_eq!(v.freshness(&us, at(6)), Freshness::Suspect);
        assert_eq!(v.freshness(&us, at(16)), Freshness::Stale);
        assert_eq!(v.heard(&stamp("us", 1, 3), at(20)), Outcome::Changed);
        assert_eq!(v.freshness(&us, at(20)), Freshness::Fresh);
        // A replayed heartbeat does not revive it, old or the latest.
        for seq in [2, 3] {
            assert_eq!(
                v.heard(&stamp("us", 1, seq), at(40)),
                Outcome::Ignored(ReportRejection::Replayed)
            );
        }
        assert_eq!(v.freshness(&us, at(40)), Freshness::Stale);
    }

    #[test]
    fn a_first_heartbeat_proves_nothing_and_reports_never_refresh() {
        let t0 = Instant::now();
        let us = Region::new("us");
        let mut v = view(t0);
        let late = t0 + Duration::from_secs(30);
        // A dead run's last values, replayed to a node that never saw them.
        assert_eq!(v.heard(&stamp("us", 1, 10), late), Outcome::Unchanged);
        let app = name("app.gslb.example.com.");
        v.report(&stamp("us", 1, 9), app, report(Health::Healthy), late);
        assert_eq!(v.freshness(&us, late), Freshness::Stale);
    }

    #[test]
    fn when_every_other_region_is_stale_the_last_state_keeps_serving() {
        let t0 = Instant::now();
        let (us, ap) = (Region::new("us"), Region::new("ap"));
        let mut v = view(t0);
        beat(&mut v, "us", 1, 1, t0);
        beat(&mut v, "ap", 1, 1, t0);
        let late = t0 + Duration::from_secs(30);
        let eff = v.effective(&[us.clone(), ap.clone()], late);
        assert_eq!(eff[&us], Freshness::Suspect);
        assert_eq!(eff[&ap], Freshness::Suspect);
        v.heard(&stamp("ap", 1, 3), late);
        let eff = v.effective(&[us.clone(), ap.clone()], late);
        assert_eq!(eff[&us], Freshness::Stale);
        assert_eq!(eff[&ap], Freshness::Fresh);
    }

    #[test]
    fn reports_apply_in_sequence_order_and_replays_change_nothing() {
        let t0 = Instant::now();
        let us = Region::new("us");
        let mut v = view(t0);
        let app = name("app.gslb.example.com.");
        let mut send =
            |seq, health| v.report(&stamp("us", 1, seq), app.clone(), report(health), t0);
        assert_eq!(send(10, Health::Unhealthy), Outcome::Changed);
        assert_eq!(
            send(5, Health::Healthy),
            Outcome::Ignored(ReportRejection::Replayed)
        );
        assert_eq!(send(11, Health::Unhealthy), Outcome::Unchanged);
        assert_eq!(send(12, Health::Healthy), Outcome::Changed);
        assert_eq!(v.service(&us, &app).unwrap().health, Health::Healthy);
    }

    #[test]
    fn a_restart_with_the_clock_behind_speaks_at_once_and_its_old_run_is_superseded() {
        let t0 = Instant::now();
        let us = Region::new("us");
        let mut v = view(t0);
        let app = name("app.gslb.example.com.");
        let old = |seq| Stamp {
            issued_ms: 1_000_000,
            ..stamp("us", 7, seq)
        };
        let new = |seq| Stamp {
            issued_ms: 880_000, // 120 s behind
            ..stamp("us", 8, seq)
        };
        v.heard(&old(1), t0);
        v.heard(&old(2), t0);
        v.report(&old(3), app.clone(), report(Health::Healthy), t0);
        // The restart: its first values lose the tie (issued earlier) until its heartbeat
        // advances.
        let t1 = t0 + Duration::from_secs(1);
        v.heard(&new(1), t1);
        assert_eq!(
            v.report(&new(2), app.clone(), report(Health::Unhealthy), t1),
            Outcome::Ignored(ReportRejection::Superseded)
        );
        assert_eq!(v.service(&us, &app).unwrap().health, Health::Healthy);
        assert_eq!(v.heard(&new(3), t1), Outcome::Changed);
        assert_eq!(v.service(&us, &app).unwrap().health, Health::Unhealthy);
        let runs = v.runs(&us);
        assert_eq!(runs.len(), 1);
        assert_eq!(
            (
                runs[0].instance.as_str(),
                runs[0].epoch.as_str(),
                runs[0].seq
            ),
            ("0", "0000000000000008", 3)
        );
        // The old run's last values replayed: nothing.
        assert_eq!(
            v.report(&old(3), app.clone(), report(Health::Healthy), t1),
            Outcome::Ignored(ReportRejection::Replayed)
        );
        assert_eq!(v.service(&us, &app).unwrap().health, Health::Unhealthy);
    }

    #[test]
    fn instances_beyond_the_cap_are_refused() {
        let t0 = Instant::now();
        let mut v = view(t0);
        for i in 0..MAX_INSTANCES + 3 {
            let stamp = Stamp {
                instance: i.to_string(),
                ..stamp("us", 1, 1)
            };
            let outcome = v.heard(&stamp, t0);
            if i < MAX_INSTANCES {
                assert_eq!(outcome, Outcome::Unchanged);
            } else {
                assert_eq!(outcome, Outcome::Ignored(ReportRejection::TooManyInstances));
            }
        }
    }

    #[test]
    fn of_live_replicas_the_first_by_name_speaks_until_it_falls_silent() {
        let t0 = Instant::now();
        let us = Region::new("us");
        let mut v = view(t0);
        let app = name("app.gslb.example.com.");
        let of = |instance: &str, seq| Stamp {
            instance: instance.to_string(),
            ..stamp("us", 9, seq)
        };
        for instance in ["1", "0"] {
            v.heard(&of(instance, 1), t0);
            v.heard(&of(instance, 2), t0);
        }
        assert!(
            !v.refresh_leaders(t0),
            "no report yet: nothing said changes"
        );
        v.report(&of("0", 3), app.clone(), report(Health::Healthy), t0);
        // Replica 1 disagrees, and arrives last: replica 0 still speaks.
        let later = t0 + Duration::from_secs(1);
        assert_eq!(
            v.report(&of("1", 3), app.clone(), report(Health::Unhealthy), later),
            Outcome::Unchanged
        );
        assert_eq!(v.service(&us, &app).unwrap().health, Health::Healthy);
        // Replica 0 falls silent; 1 keeps beating: past peer_suspect, 1 speaks.
        let silent = t0 + Duration::from_secs(6);
        v.heard(&of("1", 4), silent);
        assert!(v.refresh_leaders(silent));
        assert_eq!(v.service(&us, &app).unwrap().health, Health::Unhealthy);
        assert_eq!(
            v.freshness(&us, silent),
            Freshness::Fresh,
            "the region lives on"
        );
    }

    #[test]
    fn of_two_instances_the_report_that_arrived_last_speaks() {
        let t0 = Instant::now();
        let us = Region::new("us");
        let mut v = view(t0);
        let app = name("app.gslb.example.com.");
        let one = Stamp {
            instance: "1".to_string(),
            ..stamp("us", 5, 1)
        };
        v.report(&stamp("us", 4, 1), app.clone(), report(Health::Healthy), t0);
        v.report(
            &one,
            app.clone(),
            report(Health::Unhealthy),
            t0 + Duration::from_secs(1),
        );
        assert_eq!(v.service(&us, &app).unwrap().health, Health::Unhealthy);
    }
}
