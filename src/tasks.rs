//! The daemon's task tree: one cancellation token and one tracker that every long-lived task is
//! spawned on (state owner, DNS transports, probes, gossip, Kubernetes watches, admin), so that
//! stopping is one `cancel` and one `wait`, whatever was started and whether start-up finished.

use std::future::Future;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Where the daemon's tasks run, and how they learn that it stops.
#[derive(Clone, Debug, Default)]
pub struct Tasks {
    stop: CancellationToken,
    tracker: TaskTracker,
}

impl Tasks {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Runs `task` on the runtime, tracked: shutdown waits for it.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.tracker.spawn(task)
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

    /// Stops every task and waits until all have ended.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}
