//! Turns this region's report into signed units: each service (and observation) in the shard
//! its name hashes to, every changed shard signed anew with the next sequence of the run, the
//! drain state in its slot, and a heartbeat carrying the digest of every slot's sequence, at
//! the cadence's pace and at once after any change.

use std::sync::Arc;
use std::time::Instant;

use tracing::{error, info};

use super::keys::SigningKey;
use super::local_report::LocalReport;
use super::report::{DrainState, ServiceReport, Stamp};
use super::unit::{self, Body, DRAIN_SLOT, RUN_SLOTS, SLOTS, Shard};
use crate::model::Region;
use crate::unix_ms;

/// Stamps the units of this run (this start of gslbd): a random epoch, drawn once, and the
/// next number of the run's sequence for every unit signed. Receivers order units by these,
/// not by the issue time, so no clock, ours or theirs, can hide or revive one.
pub struct Stamper {
    region: Region,
    instance: String,
    epoch: u64,
    seq: u64,
}

impl Stamper {
    pub fn new(region: Region, instance: String) -> Self {
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

    fn next(&mut self, issued_ms: u64) -> Stamp {
        self.seq += 1;
        Stamp {
            region: self.region.clone(),
            instance: self.instance.clone(),
            epoch: self.epoch,
            seq: self.seq,
            issued_ms,
        }
    }
}

/// What this run has published.
pub struct Publisher {
    stamper: Stamper,
    signing: Arc<SigningKey>,
    cluster: String,
    /// The report's shards as last seen: a shard the report did not replace is not looked at.
    seen: Vec<Arc<Shard>>,
    /// Each shard's content as last published, with the time each service's health last
    /// changed.
    shards: Vec<Shard>,
    drain: Option<DrainState>,
    /// The sequence of each slot's latest unit (0: never published).
    seqs: Vec<u64>,
    last_beat: Option<Instant>,
}

impl Publisher {
    pub fn new(stamper: Stamper, signing: Arc<SigningKey>, cluster: String) -> Self {
        Self {
            stamper,
            signing,
            cluster,
            seen: (0..SLOTS).map(|_| Arc::default()).collect(),
            shards: vec![Shard::default(); usize::from(SLOTS)],
            drain: None,
            seqs: vec![0; RUN_SLOTS],
            last_beat: None,
        }
    }

    /// The units of one publishing round: the shards `report` changes (when given), the drain
    /// state if changed, and a heartbeat if anything changed or `beat_every` has passed.
    pub fn round(
        &mut self,
        report: Option<&LocalReport>,
        beat_every: std::time::Duration,
    ) -> Vec<Arc<[u8]>> {
        let now = unix_ms();
        let mut units = Vec::new();
        if let Some(report) = report {
            // Only the shards the report replaced since the last round are looked at.
            for (slot, input) in report.shards().iter().enumerate() {
                if Arc::ptr_eq(input, &self.seen[slot]) {
                    continue;
                }
                self.seen[slot] = input.clone();
                let published = &self.shards[slot];
                let services = input
                    .services
                    .iter()
                    .map(|(name, report)| {
                        let changed_ms = match published.services.get(name) {
                            Some(old) if old.health == report.health => old.changed_ms,
                            _ => now,
                        };
                        let report = ServiceReport {
                            changed_ms,
                            ..report.clone()
                        };
                        (name.clone(), report)
                    })
                    .collect();
                let shard = Shard {
                    services,
                    observed: input.observed.clone(),
                };
                if shard == *published {
                    continue;
                }
                let stamp = self.stamper.next(now);
                match unit::sign(
                    &self.signing,
                    &self.cluster,
                    &stamp,
                    Some(slot as u16),
                    Body::Shard(&shard),
                ) {
                    Ok(bytes) => {
                        units.push(bytes);
                        self.seqs[slot] = stamp.seq;
                        self.shards[slot] = shard;
                    }
                    Err(failure) => {
                        // Tried again next round.
                        self.seen[slot] = Arc::default();
                        error!(slot, %failure, "cannot publish a shard of this region's services")
                    }
                }
            }
            if self.drain.as_ref() != Some(&report.drain) {
                let stamp = self.stamper.next(now);
                match unit::sign(
                    &self.signing,
                    &self.cluster,
                    &stamp,
                    Some(DRAIN_SLOT),
                    Body::Drain(&report.drain),
                ) {
                    Ok(bytes) => {
                        units.push(bytes);
                        self.seqs[usize::from(DRAIN_SLOT)] = stamp.seq;
                        self.drain = Some(report.drain.clone());
                    }
                    Err(failure) => error!(%failure, "cannot publish the drain state"),
                }
            }
        }
        let due = self.last_beat.is_none_or(|at| at.elapsed() >= beat_every);
        if !units.is_empty() || due {
            let stamp = self.stamper.next(now);
            let digest = unit::digest(&self.seqs);
            match unit::sign(
                &self.signing,
                &self.cluster,
                &stamp,
                None,
                Body::Heartbeat(digest),
            ) {
                Ok(bytes) => units.push(bytes),
                Err(failure) => error!(%failure, "cannot sign a heartbeat"),
            }
            self.last_beat = Some(Instant::now());
        }
        units
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gossip::keys::{RegionKeys, VerifyingKey, generate};
    use crate::gossip::store::{Change, Store};
    use crate::model::Health;
    use hickory_proto::rr::Name;
    use std::time::Duration;

    #[test]
    fn a_store_fed_every_round_holds_the_run_complete_and_sees_each_change_once() {
        let (_, seed, public) = generate().unwrap();
        let mut keys = RegionKeys::new();
        keys.insert("eu".into(), VerifyingKey::from_base64(&public).unwrap());
        let mut publisher = Publisher::new(
            Stamper::new(Region::new("eu"), "0".into()),
            Arc::new(SigningKey::from_base64(&seed).unwrap()),
            "c".into(),
        );
        let mut store = Store::new("c".into(), Arc::new(keys), Region::new("us"), "0".into());
        let mut report = LocalReport::default();
        for i in 0..100 {
            report.set_service(
                &Name::from_ascii(format!("svc-{i}.gslb.example.com.")).unwrap(),
                Some(ServiceReport {
                    health: Health::Healthy,
                    ..crate::gossip::store::gone(0)
                }),
            );
        }
        let mut apply = |units: Vec<Arc<[u8]>>| {
            let mut changes = Vec::new();
            for unit in units {
                changes.extend(store.accept(unit, Instant::now()).unwrap());
            }
            changes
        };
        let changes = apply(publisher.round(Some(&report), Duration::from_secs(1)));
        let reported: usize = changes
            .iter()
            .map(|c| match c {
                Change::Shard { services, .. } => services.len(),
                _ => 0,
            })
            .sum();
        assert_eq!(reported, 100);
        assert!(matches!(changes.last(), Some(Change::Heard(_))));
        // Nothing changed, no beat due: nothing to send.
        assert!(
            publisher
                .round(Some(&report), Duration::from_secs(60))
                .is_empty()
        );
        // One service fails: one shard and a heartbeat.
        let name = Name::from_ascii("svc-7.gslb.example.com.").unwrap();
        let failing = ServiceReport {
            health: Health::Unhealthy,
            ..report.service(&name).unwrap().clone()
        };
        report.set_service(&name, Some(failing));
        let units = publisher.round(Some(&report), Duration::from_secs(60));
        assert_eq!(units.len(), 2);
        let changes = apply(units);
        assert!(matches!(
            &changes[0],
            Change::Shard { services, .. } if services.len() == 1 && services[0].0 == name
        ));
        assert!(matches!(changes[1], Change::Heard(_)));
    }
}
