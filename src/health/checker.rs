//! The probe scheduler: one task per distinct probe, each on its own interval with jitter and
//! a timeout, a shared bound on probes in flight, and verdict changes sent to the state owner.
//! A hanging target only ever holds its own task (and one permit, for at most its timeout).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::probe::{Probe, ProbeError, ProbeFactory, ProbeOutcome};
use super::rise_fall::RiseFall;
use super::{Plan, ProbeKey, Verdict};
use crate::metrics::Metrics;
use crate::model::ProbeSettings;
use crate::state::Event;

/// Handle to the running checker.
pub struct Checker {
    task: tokio::task::JoinHandle<()>,
    stop: CancellationToken,
    /// Probes of the current plan that have not finished their first round.
    pending_first: Arc<AtomicUsize>,
}

impl Checker {
    /// Starts probing the plans `plans` carries (the first one now, each new one when it comes);
    /// verdict changes go to `events`.
    pub fn start(
        mut updates: watch::Receiver<Arc<Plan>>,
        factory: Arc<dyn ProbeFactory>,
        events: mpsc::Sender<Event>,
        concurrency: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        let pending_first = Arc::new(AtomicUsize::new(updates.borrow().len()));
        let pending = pending_first.clone();
        let stop = CancellationToken::new();
        let task_stop = stop.clone();
        let context = Arc::new(ProbeContext {
            factory,
            permits: Semaphore::new(concurrency.max(1)),
            events,
            metrics,
        });
        let task = tokio::spawn(async move {
            let mut running: HashMap<ProbeKey, (ProbeSettings, CancellationToken)> = HashMap::new();
            // Only the first plan's probes count for readiness; reloads do not unready.
            let mut first_plan = true;
            loop {
                let plan = updates.borrow_and_update().clone();
                // Stop what left the plan or changed; start what is new.
                running.retain(|key, (settings, token)| {
                    let keep = plan.get(key) == Some(settings);
                    if !keep {
                        token.cancel();
                    }
                    keep
                });
                for (key, settings) in plan.iter() {
                    if running.contains_key(key) {
                        continue;
                    }
                    let token = task_stop.child_token();
                    tokio::spawn(run_probe(
                        key.clone(),
                        settings.clone(),
                        context.clone(),
                        token.clone(),
                        FirstRound(first_plan.then(|| pending.clone())),
                    ));
                    running.insert(key.clone(), (settings.clone(), token));
                }
                first_plan = false;
                info!(probes = running.len(), "probe plan applied");
                tokio::select! {
                    changed = updates.changed() => if changed.is_err() {
                        // No more plans will come: keep running this one until stopped.
                        task_stop.cancelled().await;
                        break;
                    },
                    _ = task_stop.cancelled() => break,
                }
            }
            for (_, token) in running.values() {
                token.cancel();
            }
        });
        Self {
            task,
            stop,
            pending_first,
        }
    }

    /// Shared count of probes still waiting for their first result (0: a full round done).
    pub fn first_round(&self) -> Arc<AtomicUsize> {
        self.pending_first.clone()
    }

    /// Stops every probe.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// A deterministic spread in [-10%, +10%] of `interval` for the `round`th probe of `key`, so
/// probes of many targets do not fire in lockstep.
fn jittered(interval: Duration, key: &ProbeKey, round: u64) -> Duration {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut hasher);
    round.hash(&mut hasher);
    let unit = (hasher.finish() % 2001) as f64 / 1000.0 - 1.0; // -1.0 ..= 1.0
    interval.mul_f64(1.0 + unit * 0.1)
}

/// Counts a probe of the first plan out of the readiness count once: at its first result, or
/// when it stops before one.
struct FirstRound(Option<Arc<AtomicUsize>>);

impl FirstRound {
    fn done(&mut self) {
        if let Some(pending) = self.0.take() {
            pending.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Drop for FirstRound {
    fn drop(&mut self) {
        self.done();
    }
}

/// What every probe task shares.
struct ProbeContext {
    factory: Arc<dyn ProbeFactory>,
    /// Bounds probes in flight.
    permits: Semaphore,
    events: mpsc::Sender<Event>,
    metrics: Arc<Metrics>,
}

async fn run_probe(
    key: ProbeKey,
    settings: ProbeSettings,
    context: Arc<ProbeContext>,
    stop: CancellationToken,
    mut first_round: FirstRound,
) {
    let ProbeContext {
        factory,
        permits,
        events,
        metrics,
    } = &*context;
    let probe: Result<Box<dyn Probe>, ProbeError> = factory.build(&key, &settings);
    if let Err(error) = &probe {
        warn!(probe = %key, %error, "probe cannot run; counting it as failing");
    }
    let mut rise_fall = RiseFall::new(settings.rise, settings.fall);
    // Whether the current run of results passes, and when its first probe started (Unix ms).
    let mut run: Option<(bool, u64)> = None;
    // The first probe goes out within a tenth of the interval: verdicts come fast at start.
    let mut next = Instant::now() + jittered(settings.interval, &key, 0) / 10;
    for round in 1.. {
        tokio::select! {
            _ = sleep_until_instant(next) => {}
            _ = stop.cancelled() => return,
        }
        next += jittered(settings.interval, &key, round);
        let result = {
            let _permit = tokio::select! {
                permit = permits.acquire() => match permit {
                    Ok(permit) => permit,
                    Err(_) => return,
                },
                _ = stop.cancelled() => return,
            };
            let started = Instant::now();
            let started_ms = crate::unix_ms();
            let result = match &probe {
                Ok(probe) => match tokio::time::timeout(settings.timeout, probe.check()).await {
                    Ok(result) => result,
                    Err(_) => Err(ProbeError::Timeout(settings.timeout)),
                },
                Err(error) => Err(error.clone()),
            };
            let outcome = result
                .as_ref()
                .map_or_else(ProbeError::outcome, |()| ProbeOutcome::Success);
            metrics.probes.observe(outcome, started.elapsed());
            if run.is_none_or(|(ok, _)| ok != result.is_ok()) {
                run = Some((result.is_ok(), started_ms));
            }
            result
        };
        if let Err(error) = &result {
            debug!(probe = %key, %error, "probe failed");
        }
        first_round.done();
        if let Some(transition) = rise_fall.observe(result.is_ok()) {
            let reason = match &result {
                Ok(()) => format!("{} consecutive successes", settings.rise),
                Err(error) => format!("{} consecutive failures, last: {error}", settings.fall),
            };
            info!(
                probe = %key,
                from = ?transition.from,
                to = ?transition.to,
                %reason,
                "target health changed"
            );
            let event = Event::Verdict {
                key: key.clone(),
                verdict: Verdict {
                    health: transition.to,
                    since_ms: run.map_or(0, |(_, since)| since),
                },
                at: std::time::Instant::now(),
            };
            if events.send(event).await.is_err() {
                return;
            }
        }
        // A slow probe must not make the next ones pile up.
        let now = Instant::now();
        if next < now {
            next = now;
        }
    }
}

async fn sleep_until_instant(deadline: Instant) {
    sleep(deadline.saturating_duration_since(Instant::now())).await;
}
