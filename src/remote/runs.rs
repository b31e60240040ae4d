//! The runs of one publisher, a gslbd instance of a remote region, and which of their values
//! are new. A run is one start of the instance: it draws a random epoch and numbers every value
//! it signs (`report::Stamp`). Everything here follows from those numbers and the order values
//! arrive in, never from a clock, so a publisher whose clock is behind, ahead, or stepped keeps
//! its place:
//! - a value is new when its sequence is above the last one held for its key in its run;
//!   anything else is a replay or a duplicate and changes nothing;
//! - a run is heard when its heartbeat advances: the first heartbeat of a run seen proves
//!   nothing (a replay of a dead run looks the same), the next higher one does;
//! - the run that speaks for the instance is the one heard last; while none has been heard,
//!   the one with the latest issue time (the publisher's clock breaks only that tie, and the
//!   first advancing heartbeat settles it);
//! - at most [`MAX_RUNS`] runs are remembered; the one heard longest ago is forgotten first, and
//!   values of a forgotten run arriving again are a first sight of a run that is not heard.

use std::collections::HashMap;
use std::time::Instant;

use hickory_proto::rr::Name;

use crate::gossip::report::{Observation, ServiceReport, Stamp};

/// Runs remembered per instance: the one speaking and a few it replaced.
pub const MAX_RUNS: usize = 4;

/// What a value did to its publisher's runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Taken {
    /// A heartbeat above the run's last one: the run is alive now.
    Heard,
    /// A new value, stored in its run.
    New,
    /// Not above the last sequence held for its key in its run.
    Replayed,
}

/// A value per key of a run: the sequence it came with, the value, when it arrived here.
pub type Values<V> = HashMap<Name, (u64, V, Instant)>;

/// One run: its heartbeat and its latest report and observation per service.
#[derive(Clone, Debug)]
pub struct Run {
    pub epoch: u64,
    /// The sequence of the latest heartbeat.
    alive: Option<u64>,
    /// When its heartbeat last advanced here.
    pub heard: Option<Instant>,
    /// The latest issue time seen (publisher's clock): a tie-break between runs never heard.
    issued_ms: u64,
    /// Per service: what the region says of itself.
    pub services: Values<ServiceReport>,
    /// Per service: what the region sees of the others' targets.
    pub observed: Values<Observation>,
}

impl Run {
    fn new(stamp: &Stamp) -> Self {
        Self {
            epoch: stamp.epoch,
            alive: None,
            heard: None,
            issued_ms: stamp.issued_ms,
            services: HashMap::new(),
            observed: HashMap::new(),
        }
    }

    /// The latest sequence of this run seen here.
    pub fn seq(&self) -> u64 {
        self.services
            .values()
            .map(|(seq, _, _)| *seq)
            .chain(self.observed.values().map(|(seq, _, _)| *seq))
            .chain(self.alive)
            .max()
            .unwrap_or(0)
    }
}

/// Holds `value` for `key` when `seq` is above the sequence held for it.
fn take<V>(values: &mut Values<V>, seq: u64, key: Name, value: V, at: Instant) -> Taken {
    match values.get(&key) {
        Some((held, _, _)) if seq <= *held => Taken::Replayed,
        _ => {
            values.insert(key, (seq, value, at));
            Taken::New
        }
    }
}

/// The runs of one instance.
#[derive(Clone, Debug, Default)]
pub struct Runs {
    runs: Vec<Run>,
}

impl Runs {
    /// A verified heartbeat of this instance.
    pub fn alive(&mut self, stamp: &Stamp, at: Instant) -> Taken {
        let run = self.run(stamp);
        match run.alive {
            Some(held) if stamp.seq <= held => Taken::Replayed,
            held => {
                run.alive = Some(stamp.seq);
                run.issued_ms = run.issued_ms.max(stamp.issued_ms);
                if held.is_some() {
                    run.heard = Some(at);
                    Taken::Heard
                } else {
                    Taken::New
                }
            }
        }
    }

    /// A verified report of this instance about `service`.
    pub fn report(
        &mut self,
        stamp: &Stamp,
        service: Name,
        report: ServiceReport,
        at: Instant,
    ) -> Taken {
        let run = self.run(stamp);
        let taken = take(&mut run.services, stamp.seq, service, report, at);
        if taken == Taken::New {
            run.issued_ms = run.issued_ms.max(stamp.issued_ms);
        }
        taken
    }

    /// A verified observation of this instance about `service`.
    pub fn observe(
        &mut self,
        stamp: &Stamp,
        service: Name,
        observation: Observation,
        at: Instant,
    ) -> Taken {
        let run = self.run(stamp);
        let taken = take(&mut run.observed, stamp.seq, service, observation, at);
        if taken == Taken::New {
            run.issued_ms = run.issued_ms.max(stamp.issued_ms);
        }
        taken
    }

    /// The run that speaks for the instance: heard last, else issued last.
    pub fn speaking(&self) -> Option<&Run> {
        self.runs
            .iter()
            .max_by_key(|run| (run.heard, run.issued_ms, run.epoch))
    }

    /// The run of `stamp`, remembered from now on if it is new.
    fn run(&mut self, stamp: &Stamp) -> &mut Run {
        let at = match self.runs.iter().position(|r| r.epoch == stamp.epoch) {
            Some(at) => at,
            None => {
                if self.runs.len() >= MAX_RUNS {
                    // Forget the run heard longest ago (never heard counts as longest).
                    let oldest = (0..self.runs.len())
                        .min_by_key(|&i| (self.runs[i].heard, self.runs[i].issued_ms))
                        .unwrap_or(0);
                    self.runs.swap_remove(oldest);
                }
                self.runs.push(Run::new(stamp));
                self.runs.len() - 1
            }
        };
        &mut self.runs[at]
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::fixtures::name;
    use crate::model::{Health, Region};
    use crate::remote::tests::report;

    fn stamp(epoch: u64, seq: u64, issued_ms: u64) -> Stamp {
        Stamp {
            region: Region::new("us"),
            instance: "0".to_string(),
            epoch,
            seq,
            issued_ms,
        }
    }

    #[test]
    fn a_run_is_heard_when_its_heartbeat_advances_and_never_by_a_replay() {
        let t0 = Instant::now();
        let mut runs = Runs::default();
        assert_eq!(runs.alive(&stamp(1, 5, 0), t0), Taken::New);
        assert_eq!(runs.speaking().unwrap().heard, None);
        assert_eq!(runs.alive(&stamp(1, 5, 0), t0), Taken::Replayed);
        assert_eq!(runs.alive(&stamp(1, 4, 9_999), t0), Taken::Replayed);
        assert_eq!(runs.alive(&stamp(1, 6, 0), t0), Taken::Heard);
        assert_eq!(runs.speaking().unwrap().heard, Some(t0));
    }

    #[test]
    fn reports_are_new_only_above_the_sequence_held_for_their_service() {
        let t0 = Instant::now();
        let mut runs = Runs::default();
        let (app, web) = (name("app.gslb.example.com."), name("web.gslb.example.com."));
        // A run's values arrive in any order the first time (gossip sends keys, not history).
        assert_eq!(
            runs.report(&stamp(1, 9, 0), app.clone(), report(Health::Healthy), t0),
            Taken::New
        );
        assert_eq!(
            runs.report(&stamp(1, 3, 0), web.clone(), report(Health::Healthy), t0),
            Taken::New
        );
        assert_eq!(
            runs.report(&stamp(1, 8, 0), app.clone(), report(Health::Unhealthy), t0),
            Taken::Replayed
        );
        assert_eq!(
            runs.report(&stamp(1, 9, 0), app.clone(), report(Health::Healthy), t0),
            Taken::Replayed
        );
        assert_eq!(
            runs.speaking().unwrap().services[&app].1.health,
            Health::Healthy
        );
        assert_eq!(runs.speaking().unwrap().seq(), 9);
    }

    #[test]
    fn the_run_heard_last_speaks_whatever_the_clocks_said() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(1);
        let mut runs = Runs::default();
        // Epoch 1 ran with a clock a day ahead; epoch 2 is the restart, clock corrected.
        let day = 86_400_000;
        runs.alive(&stamp(1, 1, 10 + day), t0);
        runs.alive(&stamp(1, 2, 11 + day), t0);
        runs.alive(&stamp(2, 1, 20), t1);
        assert_eq!(
            runs.speaking().unwrap().epoch,
            1,
            "heard beats issued later"
        );
        assert_eq!(runs.alive(&stamp(2, 2, 21), t1), Taken::Heard);
        assert_eq!(runs.speaking().unwrap().epoch, 2);
        // The old run's values replayed change nothing; a new one of it is kept aside.
        assert_eq!(runs.alive(&stamp(1, 2, 11 + day), t1), Taken::Replayed);
        assert_eq!(runs.speaking().unwrap().epoch, 2);
    }

    #[test]
    fn before_any_run_is_heard_the_latest_issued_speaks() {
        let t0 = Instant::now();
        let mut runs = Runs::default();
        runs.alive(&stamp(2, 1, 500), t0);
        runs.alive(&stamp(1, 7, 100), t0);
        assert_eq!(runs.speaking().unwrap().epoch, 2);
    }

    #[test]
    fn at_most_max_runs_are_remembered_and_the_speaking_one_stays() {
        let t0 = Instant::now();
        let mut runs = Runs::default();
        runs.alive(&stamp(100, 1, 0), t0);
        runs.alive(&stamp(100, 2, 0), t0);
        for epoch in 0..10 {
            runs.alive(&stamp(epoch, 1, 1_000), t0);
        }
        assert_eq!(runs.runs.len(), MAX_RUNS);
        assert_eq!(runs.speaking().unwrap().epoch, 100);
    }
}
