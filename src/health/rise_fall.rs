//! Rise/fall thresholds: a target changes state only after enough consecutive results agree.

use crate::model::Health;

/// A change of verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transition {
    pub from: Health,
    pub to: Health,
}

/// One target's verdict, from consecutive probe results.
#[derive(Clone, Debug)]
pub struct RiseFall {
    rise: u32,
    fall: u32,
    state: Health,
    successes: u32,
    failures: u32,
}

impl RiseFall {
    /// Starts `Unknown`: the first verdict needs `rise` successes or `fall` failures.
    pub fn new(rise: u32, fall: u32) -> Self {
        Self {
            rise: rise.max(1),
            fall: fall.max(1),
            state: Health::Unknown,
            successes: 0,
            failures: 0,
        }
    }

    /// The current verdict.
    pub fn state(&self) -> Health {
        self.state
    }

    /// Records one probe result; returns the transition it causes, if any.
    pub fn observe(&mut self, ok: bool) -> Option<Transition> {
        if ok {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
        } else {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
        }
        let next = if ok && self.successes >= self.rise {
            Health::Healthy
        } else if !ok && self.failures >= self.fall {
            Health::Unhealthy
        } else {
            self.state
        };
        (next != self.state).then(|| {
            let transition = Transition {
                from: self.state,
                to: next,
            };
            self.state = next;
            transition
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Health::*;

    fn states(rise: u32, fall: u32, results: &[bool]) -> Vec<Health> {
        let mut rise_fall = RiseFall::new(rise, fall);
        results
            .iter()
            .map(|&ok| {
                rise_fall.observe(ok);
                rise_fall.state()
            })
            .collect()
    }

    #[test]
    fn needs_rise_successes_and_fall_failures_in_a_row() {
        let t = true;
        let f = false;
        assert_eq!(
            states(2, 2, &[t, t, f, t, f, f, t, f, t, t]),
            vec![
                Unknown, Healthy, Healthy, Healthy, Healthy, Unhealthy, Unhealthy, Unhealthy,
                Unhealthy, Healthy
            ]
        );
        assert_eq!(
            states(1, 3, &[f, f, f, t]),
            vec![Unknown, Unknown, Unhealthy, Healthy]
        );
    }

    #[test]
    fn reports_each_transition_once() {
        let mut rise_fall = RiseFall::new(2, 2);
        assert_eq!(rise_fall.observe(true), None);
        assert_eq!(
            rise_fall.observe(true),
            Some(Transition {
                from: Unknown,
                to: Healthy
            })
        );
        assert_eq!(rise_fall.observe(true), None);
        assert_eq!(rise_fall.observe(false), None);
        assert_eq!(
            rise_fall.observe(false),
            Some(Transition {
                from: Healthy,
                to: Unhealthy
            })
        );
        assert_eq!(rise_fall.observe(false), None);
    }
}
