//! The daemon's task tree: one cancellation token and one tracker that every long-lived task is
//! spawned on (state owner, DNS transports, probes, gossip, Kubernetes watches, admin), so that
//! stopping is one `cancel` and one `wait`, whatever was started and whether start-up finished.
//!
//! Supervision: a task spawned with [`Tasks::supervise`] must run until the daemon stops. If it
//! ends or panics before that, what happens is declared with it ([`OnEnd`]): the daemon stops
//! and exits non-zero naming the task, or `/healthz` fails naming it (the daemon still answers
//! from what it knows; the orchestrator restarts it). With the release profile's
//! `panic = "abort"` a panic ends the process at once instead (exit status 134), after the
//! panic hook has logged it with the thread's name.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use futures::FutureExt;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::error;

/// What it means when a supervised task ends before the daemon stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnEnd {
    /// Answers would go wrong without it (the state owner, the DNS transports, gossip, the
    /// probe scheduler, the admin endpoint): the daemon stops and exits non-zero.
    Exit,
    /// The daemon still answers from what it last knew (one probe, a Kubernetes watch):
    /// `/healthz` fails, naming the task, so the orchestrator restarts it.
    FailHealth,
}

/// A task's name, as logs and `/healthz` give it.
pub type TaskName = Cow<'static, str>;

#[derive(Debug, Default)]
struct Supervision {
    /// Every supervised task spawned, for the record (`/healthz`, tests).
    started: Mutex<BTreeSet<TaskName>>,
    /// `OnEnd::FailHealth` tasks that ended.
    failed: Mutex<BTreeSet<TaskName>>,
}

/// Where the daemon's tasks run, and how they learn that it stops.
#[derive(Clone, Debug)]
pub struct Tasks {
    stop: CancellationToken,
    tracker: TaskTracker,
    supervision: Arc<Supervision>,
    /// The first `OnEnd::Exit` task that ended: the daemon stops.
    fatal: watch::Sender<Option<TaskName>>,
}

impl Default for Tasks {
    fn default() -> Self {
        Self {
            stop: CancellationToken::new(),
            tracker: TaskTracker::new(),
            supervision: Arc::default(),
            fatal: watch::channel(None).0,
        }
    }
}

impl Tasks {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `task` on the runtime, tracked: shutdown waits for it. For tasks that may end
    /// on their own (a publisher done once it succeeded); see [`Tasks::supervise`].
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
    }

    /// Runs `task`, tracked and supervised: if it ends or panics before the daemon stops,
    /// `on_end` says what follows, and the log names the task.
    pub fn supervise<F>(&self, name: impl Into<TaskName>, on_end: OnEnd, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.supervise_until(name, on_end, self.stop.clone(), task);
    }

    /// As [`Tasks::supervise`], for a task that may also end when `done` is cancelled (a
    /// probe the plan no longer holds); `done` should be a child of [`Tasks::stopping`].
    pub fn supervise_until<F>(
        &self,
        name: impl Into<TaskName>,
        on_end: OnEnd,
        done: CancellationToken,
        task: F,
    ) where
        F: Future<Output = ()> + Send + 'static,
    {
        self.supervise_until_on(&Handle::current(), name, on_end, done, task);
    }

    /// As [`Tasks::supervise_until`], on the runtime `runtime` rather than the current one
    /// (the probes' own).
    pub fn supervise_until_on<F>(
        &self,
        runtime: &Handle,
        name: impl Into<TaskName>,
        on_end: OnEnd,
        done: CancellationToken,
        task: F,
    ) where
        F: Future<Output = ()> + Send + 'static,
    {
        let name = name.into();
        lock(&self.supervision.started).insert(name.clone());
        let tasks = self.clone();
        let watched = async move {
            let outcome = AssertUnwindSafe(task).catch_unwind().await;
            if done.is_cancelled() || tasks.is_stopping() {
                return;
            }
            let how = if outcome.is_ok() { "ended" } else { "panicked" };
            match on_end {
                OnEnd::Exit => {
                    error!(task = %name, how, "a critical task stopped: gslbd stops");
                    tasks.fatal.send_if_modified(|fatal| {
                        fatal.is_none() && {
                            *fatal = Some(name);
                            true
                        }
                    });
                }
                OnEnd::FailHealth => {
                    error!(task = %name, how, "a task stopped: /healthz fails until a restart");
                    lock(&tasks.supervision.failed).insert(name);
                }
            }
        };
        self.tracker.spawn_on(watched, runtime);
    }

    /// Cancelled when the daemon stops: every task selects on it.
    pub fn stopping(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// A token cancelled when the daemon stops, or earlier by its holder (one probe, one watch).
    pub fn child_token(&self) -> CancellationToken {
        self.stop.child_token()
    }

    /// Whether the daemon is stopping.
    pub fn is_stopping(&self) -> bool {
        self.stop.is_cancelled()
    }

    /// Follows the first critical task that ended (`None` while all run).
    pub fn fatal(&self) -> watch::Receiver<Option<TaskName>> {
        self.fatal.subscribe()
    }

    /// Supervised tasks that ended while they should run: what `/healthz` reports.
    pub fn failed(&self) -> Vec<TaskName> {
        let mut failed: Vec<TaskName> = lock(&self.supervision.failed).iter().cloned().collect();
        failed.extend(self.fatal.borrow().clone());
        failed
    }

    /// Every supervised task started so far, by name.
    pub fn supervised(&self) -> Vec<TaskName> {
        lock(&self.supervision.started).iter().cloned().collect()
    }

    /// Stops every task and waits until all have ended.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// The set behind `mutex`; a panic elsewhere while it was held poisons nothing we rely on.
fn lock(mutex: &Mutex<BTreeSet<TaskName>>) -> std::sync::MutexGuard<'_, BTreeSet<TaskName>> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lets spawned tasks run to their end.
    async fn settle(tasks: &Tasks) {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let _ = tasks;
    }

    #[tokio::test]
    async fn a_critical_task_that_ends_or_panics_is_fatal_and_named() {
        for (name, task) in [
            ("returns", futures::future::ready(()).boxed()),
            ("panics", async { panic!("injected") }.boxed()),
        ] {
            let tasks = Tasks::new();
            tasks.supervise(name, OnEnd::Exit, task);
            settle(&tasks).await;
            assert_eq!(tasks.fatal().borrow().as_deref(), Some(name));
            assert_eq!(tasks.failed(), [name]);
            tasks.shutdown().await;
        }
    }

    #[tokio::test]
    async fn a_fail_health_task_that_ends_is_reported_not_fatal() {
        let tasks = Tasks::new();
        tasks.supervise("probe tcp://127.0.0.1:80", OnEnd::FailHealth, async {});
        let stopping = tasks.stopping();
        tasks.supervise(
            "runs",
            OnEnd::Exit,
            async move { stopping.cancelled().await },
        );
        settle(&tasks).await;
        assert_eq!(*tasks.fatal().borrow(), None);
        assert_eq!(tasks.failed(), ["probe tcp://127.0.0.1:80"]);
        assert_eq!(
            tasks.supervised(),
            ["probe tcp://127.0.0.1:80", "runs"],
            "every supervised task is on record"
        );
        tasks.shutdown().await;
    }

    #[tokio::test]
    async fn tasks_ending_because_the_daemon_stops_are_no_failure() {
        let tasks = Tasks::new();
        let stopping = tasks.stopping();
        tasks.supervise("owner", OnEnd::Exit, async move {
            stopping.cancelled().await;
        });
        tasks.shutdown().await;
        assert_eq!(*tasks.fatal().borrow(), None);
        assert!(tasks.failed().is_empty());
    }
}
