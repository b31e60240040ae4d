//! The daemon assembled: state owner, snapshot store, DNS listeners, probe checker, gossip
//! node, Kubernetes discovery and admin endpoint, all running as one task tree ([`Tasks`]),
//! with reload (`reload.rs`: all or nothing) and shutdown. [`run`] is the daemon; `main.rs`
//! gives it the signals, tests run it (or [`App`]) in-process.

mod reload;

pub use reload::ReloadError;
use reload::Started;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use arc_swap::ArcSwap;
use futures::{Stream, StreamExt};
use tokio::sync::watch;
use tracing::info;

use crate::admin::AdminServer;
use crate::config::Config;
use crate::dns::Identity;
use crate::dns::server::{DnsServer, ServerError};
use crate::gossip::transport::{OpenNetwork, PeerFilter};
use crate::gossip::{Gossip, GossipError};
use crate::health::probe::{NetProbes, ProbeFactory};
use crate::health::runtime::ProbeRuntime;
use crate::health::{checker, plan};
use crate::kubernetes::Kubernetes;
use crate::kubernetes::discover::Defaults;
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use crate::state::{self, RemoteSettings, StateHandle};
use crate::tasks::{TaskName, Tasks};

/// Why gslbd could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Dns(#[from] ServerError),
    #[error(transparent)]
    Gossip(#[from] GossipError),
    #[error("kubernetes")]
    Kubernetes(#[from] crate::kubernetes::KubeError),
    #[error("cannot start the probes' runtime")]
    ProbeRuntime(#[source] std::io::Error),
    #[error("cannot serve the admin endpoint on {addr}")]
    Admin {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// How gslbd reaches out: health probes and gossip peers. The real network by default; tests
/// give probes that answer as told, or cut gossip links between in-process nodes.
#[derive(Clone)]
pub struct Outbound {
    pub probes: Arc<dyn ProbeFactory>,
    pub peers: Arc<dyn PeerFilter>,
}

impl Default for Outbound {
    fn default() -> Self {
        Self {
            probes: Arc::new(NetProbes),
            peers: Arc::new(OpenNetwork),
        }
    }
}

/// A critical task ended before the daemon was told to stop (see `tasks`): it stopped.
#[derive(Debug, thiserror::Error)]
#[error("the critical task {0:?} stopped, so gslbd stopped")]
pub struct TaskFailed(pub TaskName);

/// Why the daemon ended other than by being told to.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Start(#[from] StartError),
    #[error(transparent)]
    Task(#[from] TaskFailed),
}

/// What the command line replaces in the config file: at start, and in every reloaded file.
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--listen`: DNS listen addresses instead of `server.listen` (when not empty).
    pub listen: Vec<SocketAddr>,
}

impl Overrides {
    /// `config` as the command line has it.
    pub fn apply(&self, config: &mut Config) {
        if !self.listen.is_empty() {
            config.server.listen = self.listen.clone();
        }
    }
}

/// Runs gslbd on `config` (with `overrides` applied) until `shutdown` completes or a critical
/// task fails; each item of `reloads` re-reads `config_path` (a refused config is logged and
/// changes nothing).
pub async fn run(
    mut config: Config,
    config_path: Option<PathBuf>,
    overrides: Overrides,
    shutdown: impl Future<Output = ()>,
    reloads: impl Stream<Item = ()>,
) -> Result<(), RunError> {
    overrides.apply(&mut config);
    let mut app = App::start(config, config_path).await?;
    app.overrides = overrides;
    app.run(shutdown, reloads).await?;
    Ok(())
}

/// A running gslbd.
pub struct App {
    tasks: Tasks,
    dns_addrs: Vec<SocketAddr>,
    admin_addr: Option<SocketAddr>,
    store: Arc<ArcSwap<Snapshot>>,
    state: StateHandle,
    gossip: Option<Gossip>,
    /// What the running subsystems were started with: a reload may not change it.
    started: Started,
    /// Where Kubernetes discovery takes new defaults from (zone defaults, regions) on reload.
    kubernetes_defaults: Option<watch::Sender<Defaults>>,
    metrics: Arc<Metrics>,
    config_path: Option<PathBuf>,
    /// Applied to every reloaded file as at start.
    overrides: Overrides,
}

impl App {
    /// Builds the first snapshot, starts serving it and probing the local targets.
    pub async fn start(config: Config, config_path: Option<PathBuf>) -> Result<Self, StartError> {
        Self::start_with(config, config_path, Outbound::default()).await
    }

    /// As [`App::start`], reaching out through `outbound`. If any part cannot start, what
    /// started stops again before the error returns.
    pub async fn start_with(
        config: Config,
        config_path: Option<PathBuf>,
        outbound: Outbound,
    ) -> Result<Self, StartError> {
        let tasks = Tasks::new();
        match Self::start_on(&tasks, config, config_path, outbound).await {
            Ok(app) => Ok(app),
            Err(error) => {
                tasks.shutdown().await;
                Err(error)
            }
        }
    }

    async fn start_on(
        tasks: &Tasks,
        config: Config,
        config_path: Option<PathBuf>,
        outbound: Outbound,
    ) -> Result<Self, StartError> {
        let started = Started::of(&config);
        let observe = config.gossip.as_ref().and_then(|g| g.observe);
        let probe_plan = plan::at_start(&config.model, observe, true);
        let concurrency = config.model.probe_concurrency;
        let delegation = crate::delegation::Delegation::of(&config.model);
        let metrics = Arc::new(Metrics::with_options(
            config.server.per_service_metrics,
            config.server.service_metrics_limit,
        ));
        let remote = config.gossip.as_ref().map(|g| RemoteSettings {
            instance: g.instance.clone(),
            peer_suspect: g.peer_suspect,
            peer_timeout: g.peer_timeout,
            observe,
        });
        // The state owner sends the probe plan of every model it serves; the checker runs it.
        let (plans, plan_updates) = tokio::sync::watch::channel(Arc::new(probe_plan));
        let (store, state) = state::start(
            tasks,
            state::Setup {
                model: config.model,
                max_udp_payload: config.server.max_udp_payload,
                identity: Arc::new(Identity::of(&config.server)),
                remote,
                plans,
                kubernetes: config.kubernetes.as_ref().map(|k| k.sync_timeout),
                metrics: metrics.clone(),
            },
        );
        let gossip = match &config.gossip {
            Some(settings) => Some(
                Gossip::start(
                    tasks,
                    settings,
                    state.reports(),
                    state.sender(),
                    outbound.peers,
                    metrics.clone(),
                )
                .await?,
            ),
            None => None,
        };
        let kube_client = match &config.kubernetes {
            Some(settings) => Some(crate::kubernetes::client(settings).await?),
            None => None,
        };
        let dns = DnsServer::start(&config.server, store.clone(), metrics.clone(), tasks).await?;
        checker::start(
            tasks,
            plan_updates,
            outbound.probes,
            state.sender(),
            concurrency,
            metrics.clone(),
            ProbeRuntime::start().map_err(StartError::ProbeRuntime)?,
        );
        let mut kubernetes_defaults = None;
        if let (Some(settings), Some(client)) = (config.kubernetes, kube_client) {
            if let Some(endpoint) = settings.dns_endpoint.clone() {
                Kubernetes::publish_delegation(tasks, client.clone(), &delegation, endpoint);
            }
            let (defaults, follow) = watch::channel(settings.defaults.clone());
            kubernetes_defaults = Some(defaults);
            let events = state.sender();
            Kubernetes::start(tasks, settings, follow, client, events, metrics.clone());
        }
        let admin_addr = match config.server.admin {
            Some(addr) => Some(
                AdminServer::start(
                    tasks,
                    addr,
                    metrics.clone(),
                    store.clone(),
                    Some(state.clone()),
                )
                .await
                .map_err(|source| StartError::Admin { addr, source })?,
            ),
            None => None,
        };
        Ok(Self {
            tasks: tasks.clone(),
            dns_addrs: dns.local_addrs,
            admin_addr,
            store,
            state,
            gossip,
            started,
            kubernetes_defaults,
            metrics,
            config_path,
            overrides: Overrides::default(),
        })
    }

    /// Serves until `shutdown` completes, re-reading the config file at each item of
    /// `reloads`; then stops.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()>,
        reloads: impl Stream<Item = ()>,
    ) -> Result<(), TaskFailed> {
        let mut shutdown = std::pin::pin!(shutdown);
        let mut reloads = std::pin::pin!(reloads);
        let mut reloading = true;
        let mut fatal = self.tasks.fatal();
        let failed = loop {
            tokio::select! {
                reload = reloads.next(), if reloading => match reload {
                    // A refused config is logged by reload and changes nothing.
                    Some(()) => { let _ = self.reload().await; }
                    None => reloading = false,
                },
                () = &mut shutdown => break None,
                changed = fatal.changed() => {
                    if changed.is_ok() && let Some(task) = fatal.borrow_and_update().clone() {
                        break Some(task);
                    }
                }
            }
        };
        info!("shutting down");
        self.shutdown().await;
        match failed {
            Some(task) => Err(TaskFailed(task)),
            None => Ok(()),
        }
    }

    /// The daemon's task tree (supervision: what failed, what runs).
    pub fn tasks(&self) -> &Tasks {
        &self.tasks
    }

    /// Where the admin endpoint (/metrics, /healthz, /readyz) listens, if enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The running gossip node, if any.
    pub fn gossip(&self) -> Option<&Gossip> {
        self.gossip.as_ref()
    }

    /// Where DNS is served (ports resolved).
    pub fn dns_addrs(&self) -> &[SocketAddr] {
        &self.dns_addrs
    }

    /// The snapshot currently served.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.store.load_full()
    }

    /// Stops serving and waits for every task.
    pub async fn shutdown(self) {
        self.tasks.shutdown().await;
        info!("stopped");
    }
}
