//! The probe scheduler: one task per distinct probe, each on its own interval with jitter and
//! a timeout, a shared bound on probes in flight, and verdict changes (and each probe's first
//! result, for readiness) sent to the state owner.
//! A hanging target only ever holds its own task (and one permit, for at most its timeout).
//! The probes run on their own runtime at a lower CPU priority (`runtime`); the scheduler
//! itself, which only follows the plan, runs with the rest of the daemon.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc, watch};
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::probe::{Probe, ProbeError, ProbeFactory, ProbeOutcome};
use super::rise_fall::RiseFall;
use super::runtime::ProbeRuntime;
use super::{Plan, ProbeKey, Verdict};
use crate::metrics::Metrics;
use crate::model::ProbeSettings;
use crate::state::Event;
use crate::tasks::{OnEnd, Tasks};

/// Starts probing the plans `plans` carries (the first one now, each new one when it comes),
/// tracked by `tasks`, on `runtime`; verdict changes, and each probe's first result, go to
/// `events`.
pub fn start(
    tasks: &Tasks,
    mut plans: watch::Receiver<Arc<Plan>>,
    factory: Arc<dyn ProbeFactory>,
    events: mpsc::Sender<Event>,
    concurrency: usize,
    metrics: Arc<Metrics>,
    runtime: ProbeRuntime,
) {
    let context = Arc::new(ProbeContext {
        factory,
        permits: Semaphore::new(concurrency.max(1)),
        events,
        metrics,
    });
    let probes = tasks.clone();
    tasks.supervise("probe scheduler", OnEnd::Exit, async move {
        let stopping = probes.stopping();
        let mut running: HashMap<ProbeKey, (ProbeSettings, CancellationToken)> = HashMap::new();
        loop {
            let plan = plans.borrow_and_update().clone();
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
                let token = probes.child_token();
                // A probe that stops leaves its target's last verdict standing: /healthz says so.
                probes.supervise_until_on(
                    runtime.handle(),
                    format!("probe {key}"),
                    OnEnd::FailHealth,
                    token.clone(),
                    run_probe(
                        key.clone(),
                        settings.clone(),
                        context.clone(),
                        token.clone(),
                    ),
                );
                running.insert(key.clone(), (settings.clone(), token));
            }
            info!(probes = running.len(), "probe plan applied");
            tokio::select! {
                changed = plans.changed() => if changed.is_err() {
                    // No more plans will come: keep running this one until stopped.
                    stopping.cancelled().await;
                    break;
                },
                _ = stopping.cancelled() => break,
            }
        }
    });
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
        // After its verdict, if any: once every first result is in, answers reflect them all.
        if round == 1
            && events
                .send(Event::Probed { key: key.clone() })
                .await
                .is_err()
        {
            return;
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
