//! The probes' own async runtime: its worker threads (one per core, as the daemon's runtime)
//! and the blocking threads it starts for name lookups run at a lower CPU priority than the
//! rest of the daemon, so that probing many targets does not take the CPU from the threads
//! that answer DNS queries when they share a core. The priority is nice + [`NICE_STEP`], not
//! the lowest: under a flood that keeps every core busy, the probes still get their share
//! (about a tenth of a core against each busy thread at the daemon's own nice), so a healthy
//! target is not failed for want of CPU.

use std::sync::Arc;

use tokio::runtime::{Handle, Runtime};
use tracing::warn;

/// How much nicer than the daemon the probe threads run. A thread at nice + 10 weighs about a
/// tenth of one at the daemon's nice with Linux's scheduler.
pub const NICE_STEP: i32 = 10;

/// The name of the probe runtime's threads, as `/proc/PID/task/*/comm` gives it.
pub const THREAD_NAME: &str = "gslbd-probes";

/// The probe runtime. Dropping the last clone stops it without waiting for its tasks (so it
/// may be dropped anywhere, an async context included): the probes end with the daemon.
#[derive(Clone, Debug)]
pub struct ProbeRuntime {
    runtime: Arc<Background>,
}

impl ProbeRuntime {
    /// Starts the runtime and its worker threads.
    pub fn start() -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .thread_name(THREAD_NAME)
            .on_thread_start(lower_priority)
            .enable_all()
            .build()?;
        Ok(Self {
            runtime: Arc::new(Background(Some(runtime))),
        })
    }

    /// Where to spawn the probes.
    pub fn handle(&self) -> &Handle {
        self.runtime
            .0
            .as_ref()
            .expect("the runtime is only taken out when dropped")
            .handle()
    }
}

#[derive(Debug)]
struct Background(Option<Runtime>);

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Raises the calling thread's nice value by [`NICE_STEP`] (at most 19). On Linux the nice
/// value is per thread. A failure (a sandbox that forbids it) leaves the thread as it was.
fn lower_priority() {
    let thread = Some(rustix::thread::gettid());
    let lowered = rustix::process::getpriority_process(thread)
        .and_then(|nice| rustix::process::setpriority_process(thread, (nice + NICE_STEP).min(19)));
    if let Err(error) = lowered {
        warn!(%error, "cannot lower the probe thread's CPU priority: probes run at the daemon's");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_threads_run_nicer_than_the_daemon() {
        let daemon = rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        let probes = ProbeRuntime::start().unwrap();
        let (name, nice) = probes.handle().block_on(async {
            tokio::spawn(async {
                let thread = std::thread::current();
                let nice =
                    rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
                (thread.name().map(str::to_owned), nice)
            })
            .await
            .unwrap()
        });
        assert_eq!(name.as_deref(), Some(THREAD_NAME));
        assert_eq!(nice, (daemon + NICE_STEP).min(19));
        let unchanged =
            rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap();
        assert_eq!(unchanged, daemon, "the caller's thread keeps its priority");
    }

    #[tokio::test]
    async fn the_runtime_may_be_dropped_in_an_async_context() {
        let probes = ProbeRuntime::start().unwrap();
        let task = probes.handle().spawn(std::future::pending::<()>());
        drop(probes);
        assert!(task.await.unwrap_err().is_cancelled());
    }
}
