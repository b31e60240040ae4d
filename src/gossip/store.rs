//! The verified units this node holds: per region, per instance, per run, the latest heartbeat
//! and the latest unit of every slot. It decides what is new (by the signed sequence, never a
//! clock), what it changes (the services of a shard that differ from the shard it replaces),
//! when a run is complete (its heartbeat's digest matches the slots held), and what to serve a
//! peer that asks. Everything it holds verified against its region's key; every bound is here:
//! instances per region, runs per instance, bytes per region.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hickory_proto::rr::Name;

use super::keys::RegionKeys;
use super::report::{DrainState, Observation, ReportRejection, ServiceReport, Stamp};
use super::unit::{self, Digest, Kind, RUN_SLOTS, Shard, Unit};
use crate::model::{Health, Region};

/// Instances a region may have at once (replicas, and names of restarted pods).
pub const MAX_INSTANCES: usize = crate::remote::MAX_INSTANCES;
/// Runs kept per instance: the one speaking and a few it replaced.
pub const MAX_RUNS: usize = crate::remote::runs::MAX_RUNS;
/// Bytes of units held per region (a 10 000-service region holds about 0.3 MB).
pub const MAX_REGION_BYTES: usize = 32 * 1024 * 1024;
/// An instance silent this long may be forgotten to make room for another.
const FORGET_AFTER: Duration = Duration::from_secs(600);

/// One run of one instance.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RunId {
    pub region: Region,
    pub instance: String,
    pub epoch: u64,
}

impl RunId {
    pub fn of(stamp: &Stamp) -> Self {
        Self {
            region: stamp.region.clone(),
            instance: stamp.instance.clone(),
            epoch: stamp.epoch,
        }
    }
}

/// What a new unit changes, for the state owner.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A heartbeat above the run's last one, once the run is complete: the region is alive.
    Heard(Stamp),
    /// The services and observations of a shard that differ from what the run said before;
    /// a service gone from the shard is reported unhealthy without addresses, an observation
    /// gone is empty.
    Shard {
        stamp: Stamp,
        services: Vec<(Name, ServiceReport)>,
        observed: Vec<(Name, Observation)>,
    },
    /// A sibling replica's drain state.
    Drain(DrainState),
}

/// A peer's request: the slots of a run above the sequences it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Want {
    pub run: RunId,
    /// The sequence of the run's heartbeat it holds (0: none).
    pub heartbeat: u64,
    /// Held sequences of the slots it holds any of, by slot.
    pub held: Vec<(u16, u64)>,
}

struct Run {
    epoch: u64,
    heartbeat: Option<(u64, Digest, Stamp)>,
    slots: Vec<Option<Unit>>,
    seqs: Vec<u64>,
    digest: Digest,
    heartbeat_unit: Option<Unit>,
    /// Whether the slots held ever matched a heartbeat's digest: until then heartbeats are
    /// held back, so a region counts as heard only once what it published is here.
    complete: bool,
    /// The latest heartbeat held back while incomplete.
    held_back: Option<Stamp>,
    /// When something new of this run last arrived.
    touched: Instant,
    bytes: usize,
}

impl Run {
    fn new(epoch: u64, now: Instant) -> Self {
        let seqs = vec![0; RUN_SLOTS];
        Self {
            epoch,
            heartbeat: None,
            slots: vec![None; RUN_SLOTS],
            digest: unit::digest(&seqs),
            seqs,
            heartbeat_unit: None,
            complete: false,
            held_back: None,
            touched: now,
            bytes: 0,
        }
    }

    fn in_sync(&self) -> bool {
        self.heartbeat
            .as_ref()
            .is_some_and(|(_, digest, _)| *digest == self.digest)
    }

    /// After a new unit: a run that became complete passes on the heartbeat it held back.
    fn settle(&mut self, changes: &mut Vec<Change>) {
        if self.in_sync() && !self.complete {
            self.complete = true;
            if let Some(stamp) = self.held_back.take() {
                changes.push(Change::Heard(stamp));
            }
        }
    }
}

#[derive(Default)]
struct RegionUnits {
    instances: HashMap<String, Vec<Run>>,
    bytes: usize,
}

/// The units held, and who this node is.
pub struct Store {
    cluster: String,
    keys: Arc<RegionKeys>,
    local_region: Region,
    local_instance: String,
    regions: HashMap<Region, RegionUnits>,
    /// [`MAX_REGION_BYTES`]; smaller in tests.
    max_region_bytes: usize,
}

impl Store {
    pub fn new(
        cluster: String,
        keys: Arc<RegionKeys>,
        local_region: Region,
        local_instance: String,
    ) -> Self {
        Self {
            cluster,
            keys,
            local_region,
            local_instance,
            regions: HashMap::new(),
            max_region_bytes: MAX_REGION_BYTES,
        }
    }

    /// Whether a stamp is of this node's own run (or an earlier run of this instance).
    pub fn is_local(&self, stamp: &Stamp) -> bool {
        stamp.region == self.local_region && stamp.instance == self.local_instance
    }

    /// Whether verified unit bytes are of this node's own instance.
    pub fn is_local_unit(&self, bytes: &[u8]) -> bool {
        unit::origin_of(bytes).is_some_and(|(region, instance)| {
            region == self.local_region.as_str() && instance == self.local_instance
        })
    }

    /// Takes a unit this node's own run signed: held to serve to peers, changes nothing.
    pub fn publish(&mut self, bytes: Arc<[u8]>, now: Instant) -> Result<(), ReportRejection> {
        let unit = unit::verify(bytes, &self.cluster, &self.keys)?;
        self.hold(unit, now).map(|_| ())
    }

    /// Takes a unit received from a peer. `Ok` with what it changes (nothing for a unit of
    /// this node's own run, which peers relay back); `Err` with why it was refused, a replay
    /// included.
    pub fn accept(
        &mut self,
        bytes: Arc<[u8]>,
        now: Instant,
    ) -> Result<Vec<Change>, ReportRejection> {
        // A unit not above what is held changes nothing, whatever its signature: refused
        // before the signature is checked, so a flood of replays costs little.
        if let Some(old) = self.not_new(&unit::peek(&bytes)?) {
            return Err(old);
        }
        let unit = unit::verify(bytes, &self.cluster, &self.keys)?;
        if self.is_local(&unit.header.stamp) {
            return Ok(Vec::new());
        }
        self.hold(unit, now)
    }

    /// Why a unit with this header is not new: the same sequence as held for its slot (or
    /// heartbeat) is a duplicate, a lower one a replay.
    fn not_new(&self, header: &unit::Header) -> Option<ReportRejection> {
        let stamp = &header.stamp;
        let run = self
            .regions
            .get(&stamp.region)?
            .instances
            .get(&stamp.instance)?
            .iter()
            .find(|run| run.epoch == stamp.epoch)?;
        let held = match header.slot {
            None => run.heartbeat.as_ref().map_or(0, |(seq, _, _)| *seq),
            Some(slot) => run.seqs.get(usize::from(slot)).copied().unwrap_or(0),
        };
        old_news(stamp.seq, held)
    }

    fn hold(&mut self, unit: Unit, now: Instant) -> Result<Vec<Change>, ReportRejection> {
        let stamp = unit.header.stamp.clone();
        let own_region = stamp.region == self.local_region;
        let max_region_bytes = self.max_region_bytes;
        let region = self.regions.entry(stamp.region.clone()).or_default();
        if !region.instances.contains_key(&stamp.instance) {
            if region.instances.len() >= MAX_INSTANCES {
                let silent = region
                    .instances
                    .iter()
                    .filter(|(_, runs)| {
                        runs.iter()
                            .all(|run| now.duration_since(run.touched) > FORGET_AFTER)
                    })
                    .map(|(name, _)| name.clone())
                    .next();
                let Some(silent) = silent else {
                    return Err(ReportRejection::TooManyInstances);
                };
                if let Some(runs) = region.instances.remove(&silent) {
                    region.bytes -= runs.iter().map(|run| run.bytes).sum::<usize>();
                }
            }
            region.instances.insert(stamp.instance.clone(), Vec::new());
        }
        let runs = region
            .instances
            .get_mut(&stamp.instance)
            .ok_or(ReportRejection::Malformed)?;
        let index = match runs.iter().position(|run| run.epoch == stamp.epoch) {
            Some(index) => index,
            None => {
                if runs.len() >= MAX_RUNS
                    && let Some((oldest, _)) =
                        runs.iter().enumerate().min_by_key(|(_, run)| run.touched)
                {
                    region.bytes -= runs.remove(oldest).bytes;
                }
                runs.push(Run::new(stamp.epoch, now));
                runs.len() - 1
            }
        };
        let run = &mut runs[index];
        let mut changes = Vec::new();
        match (unit.header.kind, unit.header.slot) {
            (Kind::Heartbeat, _) => {
                let held = run.heartbeat.as_ref().map_or(0, |(seq, _, _)| *seq);
                if let Some(old) = old_news(stamp.seq, held) {
                    return Err(old);
                }
                let digest = unit.digest()?;
                let size = unit.bytes.len();
                let before = run.heartbeat_unit.as_ref().map_or(0, |u| u.bytes.len());
                run.heartbeat = Some((stamp.seq, digest, stamp.clone()));
                run.heartbeat_unit = Some(unit);
                run.bytes = run.bytes + size - before;
                region.bytes = region.bytes + size - before;
                run.touched = now;
                if !own_region {
                    if run.complete {
                        changes.push(Change::Heard(stamp));
                    } else {
                        run.held_back = Some(stamp);
                    }
                }
            }
            (_, Some(slot)) => {
                let slot = usize::from(slot);
                if let Some(old) = old_news(stamp.seq, run.seqs[slot]) {
                    return Err(old);
                }
                let size = unit.bytes.len();
                let before = run.slots[slot].as_ref().map_or(0, |u| u.bytes.len());
                if region.bytes + size - before > max_region_bytes {
                    return Err(ReportRejection::RegionFull);
                }
                match unit.header.kind {
                    Kind::Drain if own_region => changes.push(Change::Drain(unit.drain()?)),
                    Kind::Drain => {
                        unit.drain()?;
                    }
                    _ if own_region => {
                        unit.shard()?;
                    }
                    _ => {
                        let new = unit.shard()?;
                        let old = match &run.slots[slot] {
                            Some(old) => old.shard().unwrap_or_default(),
                            None => Shard::default(),
                        };
                        changes.push(shard_change(stamp.clone(), &old, new)?);
                    }
                }
                run.slots[slot] = Some(unit);
                run.seqs[slot] = stamp.seq;
                run.digest = unit::digest(&run.seqs);
                run.bytes = run.bytes + size - before;
                region.bytes = region.bytes + size - before;
                run.touched = now;
            }
            (_, None) => return Err(ReportRejection::Malformed),
        }
        if !own_region {
            run.settle(&mut changes);
        }
        Ok(changes)
    }

    /// Runs that sent something new within `recent` whose heartbeat says they published
    /// slots not held here, with what to ask for.
    pub fn wants(&self, now: Instant, recent: Duration) -> Vec<Want> {
        let mut wants = Vec::new();
        for (region, units) in &self.regions {
            for (instance, runs) in &units.instances {
                if *region == self.local_region && *instance == self.local_instance {
                    continue;
                }
                for run in runs {
                    if run.heartbeat.is_none()
                        || run.in_sync()
                        || now.duration_since(run.touched) > recent
                    {
                        continue;
                    }
                    wants.push(Want {
                        run: RunId {
                            region: region.clone(),
                            instance: instance.clone(),
                            epoch: run.epoch,
                        },
                        heartbeat: run.heartbeat.as_ref().map_or(0, |(seq, _, _)| *seq),
                        held: held(&run.seqs),
                    });
                }
            }
        }
        wants
    }

    /// What to send for `want`, at most `budget` bytes of units (always one if any): the
    /// newer heartbeat, then every slot above the sequence the peer holds. `true` when more
    /// remain.
    pub fn serve(&self, want: &Want, budget: usize) -> (Vec<Arc<[u8]>>, bool) {
        let Some(run) = self
            .regions
            .get(&want.run.region)
            .and_then(|region| region.instances.get(&want.run.instance))
            .and_then(|runs| runs.iter().find(|run| run.epoch == want.run.epoch))
        else {
            return (Vec::new(), false);
        };
        let mut peer = vec![0u64; RUN_SLOTS];
        for (slot, seq) in &want.held {
            if let Some(held) = peer.get_mut(usize::from(*slot)) {
                *held = *seq;
            }
        }
        let newer_heartbeat = run
            .heartbeat_unit
            .as_ref()
            .filter(|unit| unit.header.stamp.seq > want.heartbeat);
        let slots = run
            .slots
            .iter()
            .zip(&peer)
            .filter_map(|(unit, seq)| unit.as_ref().filter(|u| u.header.stamp.seq > *seq));
        let mut out = Vec::new();
        let mut size = 0;
        for unit in newer_heartbeat.into_iter().chain(slots) {
            if !out.is_empty() && size + unit.bytes.len() > budget {
                return (out, true);
            }
            size += unit.bytes.len();
            out.push(unit.bytes.clone());
        }
        (out, false)
    }

    /// The heartbeat digest of a run held (this node's own included).
    pub fn digest(&self, run: &RunId) -> Option<Digest> {
        self.regions
            .get(&run.region)?
            .instances
            .get(&run.instance)?
            .iter()
            .find(|r| r.epoch == run.epoch)
            .map(|r| r.digest)
    }

    /// Bytes of units held, all regions.
    pub fn bytes(&self) -> usize {
        self.regions.values().map(|r| r.bytes).sum()
    }
}

/// Why a unit numbered `seq` is not new against `held` (0: nothing held).
fn old_news(seq: u64, held: u64) -> Option<ReportRejection> {
    match seq.cmp(&held) {
        std::cmp::Ordering::Greater => None,
        std::cmp::Ordering::Equal => Some(ReportRejection::Duplicate),
        std::cmp::Ordering::Less => Some(ReportRejection::Replayed),
    }
}

/// Sequences of the slots held, sparse.
fn held(seqs: &[u64]) -> Vec<(u16, u64)> {
    seqs.iter()
        .enumerate()
        .filter(|(_, seq)| **seq > 0)
        .map(|(slot, seq)| (slot as u16, *seq))
        .collect()
}

/// What a shard changes against the one it replaces.
fn shard_change(stamp: Stamp, old: &Shard, new: Shard) -> Result<Change, ReportRejection> {
    let issued_ms = stamp.issued_ms;
    Ok(Change::Shard {
        services: changed(&old.services, &new.services, || gone(issued_ms))?,
        observed: changed(&old.observed, &new.observed, Observation::new)?,
        stamp,
    })
}

/// The entries of `new` that differ from `old`, and `left()` for each name gone from it.
fn changed<V: Clone + PartialEq>(
    old: &BTreeMap<String, V>,
    new: &BTreeMap<String, V>,
    left: impl Fn() -> V,
) -> Result<Vec<(Name, V)>, ReportRejection> {
    let name = |text: &str| {
        let mut name = Name::from_ascii(text).map_err(|_| ReportRejection::BadName)?;
        name.set_fqdn(true);
        Ok::<_, ReportRejection>(name.to_lowercase())
    };
    let mut out = Vec::new();
    for (text, value) in new {
        if old.get(text) != Some(value) {
            out.push((name(text)?, value.clone()));
        }
    }
    for text in old.keys() {
        if !new.contains_key(text) {
            out.push((name(text)?, left()));
        }
    }
    Ok(out)
}

/// A service its region no longer serves.
pub fn gone(now_ms: u64) -> ServiceReport {
    ServiceReport {
        health: Health::Unhealthy,
        addresses: Vec::new(),
        down: Vec::new(),
        name: None,
        changed_ms: now_ms,
        failing_since_ms: None,
        drained: false,
        weight: None,
        spec: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gossip::keys::{SigningKey, VerifyingKey, generate};
    use crate::gossip::unit::{Body, shard_of, sign};

    struct Region {
        signing: SigningKey,
        epoch: u64,
        seq: u64,
        seqs: Vec<u64>,
    }

    impl Region {
        fn stamp(&mut self) -> Stamp {
            self.seq += 1;
            Stamp {
                region: crate::model::Region::new("eu"),
                instance: "0".into(),
                epoch: self.epoch,
                seq: self.seq,
                issued_ms: 1,
            }
        }

        fn shard(&mut self, names: &[(&str, Health)]) -> (Arc<[u8]>, u16) {
            let mut shard = Shard::default();
            let slot = shard_of(&Name::from_ascii(names[0].0).unwrap());
            for (name, health) in names {
                shard.services.insert(
                    name.to_string(),
                    ServiceReport {
                        health: *health,
                        ..gone(1)
                    },
                );
            }
            let stamp = self.stamp();
            self.seqs[usize::from(slot)] = stamp.seq;
            (
                sign(&self.signing, "c", &stamp, Some(slot), Body::Shard(&shard)).unwrap(),
                slot,
            )
        }

        fn heartbeat(&mut self) -> Arc<[u8]> {
            let stamp = self.stamp();
            let digest = unit::digest(&self.seqs);
            sign(&self.signing, "c", &stamp, None, Body::Heartbeat(digest)).unwrap()
        }
    }

    fn setup() -> (Region, Store) {
        let (_, seed, public) = generate().unwrap();
        let mut keys = RegionKeys::new();
        keys.insert("eu".into(), VerifyingKey::from_base64(&public).unwrap());
        let store = Store::new(
            "c".into(),
            Arc::new(keys),
            crate::model::Region::new("us"),
            "0".into(),
        );
        let region = Region {
            signing: SigningKey::from_base64(&seed).unwrap(),
            epoch: 3,
            seq: 0,
            seqs: vec![0; RUN_SLOTS],
        };
        (region, store)
    }

    fn heard(changes: &[Change]) -> bool {
        changes.iter().any(|c| matches!(c, Change::Heard(_)))
    }

    #[test]
    fn a_run_is_heard_only_once_what_its_heartbeat_announces_is_held() {
        let (mut eu, mut store) = setup();
        let now = Instant::now();
        let (shard, _) = eu.shard(&[("app.gslb.example.com.", Health::Healthy)]);
        let beat = eu.heartbeat();
        // The heartbeat first: held back, and the run is wanted.
        assert_eq!(store.accept(beat.clone(), now), Ok(vec![]));
        let wants = store.wants(now, Duration::from_secs(5));
        assert_eq!(wants.len(), 1);
        assert_eq!(wants[0].held, vec![]);
        // The shard it announced arrives: the held-back heartbeat passes.
        let changes = store.accept(shard.clone(), now).unwrap();
        assert!(heard(&changes), "{changes:?}");
        assert!(store.wants(now, Duration::from_secs(5)).is_empty());
        // Duplicates and replays change nothing.
        assert_eq!(store.accept(shard, now), Err(ReportRejection::Duplicate));
        assert_eq!(
            store.accept(beat.clone(), now),
            Err(ReportRejection::Duplicate)
        );
        assert!(heard(&store.accept(eu.heartbeat(), now).unwrap()));
        assert_eq!(store.accept(beat, now), Err(ReportRejection::Replayed));
    }

    #[test]
    fn a_new_shard_reports_what_changed_and_what_left() {
        let (mut eu, mut store) = setup();
        let now = Instant::now();
        let a = "app.gslb.example.com.";
        // Another name of the same shard.
        let slot = shard_of(&Name::from_ascii(a).unwrap());
        let b = (0..)
            .map(|i| format!("s{i}.gslb.example.com."))
            .find(|n| shard_of(&Name::from_ascii(n.as_str()).unwrap()) == slot)
            .unwrap();
        let (first, _) = eu.shard(&[(a, Health::Healthy), (&b, Health::Healthy)]);
        let (second, _) = eu.shard(&[(a, Health::Unhealthy)]);
        store.accept(first, now).unwrap();
        let changes = store.accept(second, now).unwrap();
        let Change::Shard { services, .. } = &changes[0] else {
            panic!("{changes:?}")
        };
        let names: Vec<(String, Health, usize)> = services
            .iter()
            .map(|(n, r)| (n.to_ascii(), r.health, r.addresses.len()))
            .collect();
        assert_eq!(
            names,
            vec![
                (a.to_string(), Health::Unhealthy, 0),
                (b.clone(), Health::Unhealthy, 0)
            ]
        );
    }

    #[test]
    fn a_peer_is_served_what_it_lacks_within_the_budget() {
        let (mut eu, mut store) = setup();
        let now = Instant::now();
        let mut units = Vec::new();
        for i in 0..20 {
            let (unit, _) = eu.shard(&[(&format!("svc-{i}.gslb.example.com."), Health::Healthy)]);
            units.push(unit);
        }
        let beat = eu.heartbeat();
        for unit in &units {
            store.accept(unit.clone(), now).unwrap();
        }
        store.accept(beat, now).unwrap();
        let run = RunId {
            region: crate::model::Region::new("eu"),
            instance: "0".into(),
            epoch: 3,
        };
        let want = Want {
            run: run.clone(),
            heartbeat: 0,
            held: Vec::new(),
        };
        let (all, more) = store.serve(&want, usize::MAX);
        assert!(!more);
        let distinct_slots = eu.seqs.iter().filter(|s| **s > 0).count();
        assert_eq!(all.len(), distinct_slots + 1, "the heartbeat and each slot");
        let (some, more) = store.serve(&want, 1);
        assert_eq!((some.len(), more), (1, true));
        // A peer holding everything gets nothing.
        let full = Want {
            run,
            heartbeat: u64::MAX,
            held: held(&eu.seqs),
        };
        assert_eq!(store.serve(&full, usize::MAX).0.len(), 0);
    }

    #[test]
    fn a_region_holds_at_most_its_bytes_and_a_replacement_frees_what_it_replaces() {
        let (mut eu, mut store) = setup();
        let now = Instant::now();
        let (first, slot) = eu.shard(&[("a.gslb.example.com.", Health::Healthy)]);
        store.max_region_bytes = first.len() * 3;
        store.accept(first.clone(), now).unwrap();
        // Other shards until the region is full.
        let mut refused = None;
        for i in 0..50 {
            let name = format!("s{i}.gslb.example.com.");
            if shard_of(&Name::from_ascii(name.as_str()).unwrap()) == slot {
                continue;
            }
            let (unit, _) = eu.shard(&[(&name, Health::Healthy)]);
            if let Err(rejection) = store.accept(unit, now) {
                refused = Some(rejection);
                break;
            }
        }
        assert_eq!(refused, Some(ReportRejection::RegionFull));
        let held = store.bytes();
        assert!(held <= first.len() * 3, "{held}");
        // A newer unit of a slot held replaces it: the bytes are the new unit's, not both.
        let (again, _) = eu.shard(&[("a.gslb.example.com.", Health::Unhealthy)]);
        store.accept(again.clone(), now).unwrap();
        assert_eq!(store.bytes(), held - first.len() + again.len());
    }

    #[test]
    fn instances_and_runs_are_bounded() {
        let (mut eu, mut store) = setup();
        let now = Instant::now();
        for epoch in 0..10 {
            eu.epoch = epoch;
            store.accept(eu.heartbeat(), now).unwrap();
        }
        let runs = store.regions[&crate::model::Region::new("eu")].instances["0"].len();
        assert_eq!(runs, MAX_RUNS);
        let signing = eu.signing;
        for i in 0..MAX_INSTANCES + 3 {
            let stamp = Stamp {
                region: crate::model::Region::new("eu"),
                instance: format!("i{i}"),
                epoch: 1,
                seq: 1,
                issued_ms: 1,
            };
            let unit = sign(&signing, "c", &stamp, None, Body::Heartbeat([0; 8])).unwrap();
            let result = store.accept(unit, now);
            if i + 1 >= MAX_INSTANCES {
                assert_eq!(result, Err(ReportRejection::TooManyInstances), "{i}");
            } else {
                assert!(result.is_ok(), "{i}");
            }
        }
    }
}
