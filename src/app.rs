//! The daemon assembled: state owner, snapshot store, DNS listeners, probe checker and gossip
//! node, with reload and shutdown. `main.rs` wires signals to it; tests run it in-process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tracing::{error, info, warn};

use crate::admin::{AdminServer, Readiness};
use crate::config::{self, Config, ConfigError, ServerSettings};
use crate::dns::server::{DnsServer, ServerError};
use crate::gossip::transport::Partition;
use crate::gossip::{Gossip, GossipError};
use crate::health::checker::Checker;
use crate::health::plan;
use crate::health::probe::{NetProbes, ProbeFactory};
use crate::kubernetes::Kubernetes;
use crate::metrics::{Metrics, ReloadResult};
use crate::snapshot::Snapshot;
use crate::state::{self, RemoteSettings, StateHandle};

/// Why gslbd could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Dns(#[from] ServerError),
    #[error(transparent)]
    Gossip(#[from] GossipError),
    #[error("kubernetes")]
    Kubernetes(#[from] crate::kubernetes::KubeError),
    #[error("cannot serve the admin endpoint on {addr}")]
    Admin {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// A running gslbd.
pub struct App {
    dns: DnsServer,
    store: Arc<ArcSwap<Snapshot>>,
    state: StateHandle,
    owner: tokio::task::JoinHandle<()>,
    checker: Checker,
    gossip: Option<Gossip>,
    gossip_settings: Option<crate::config::GossipSettings>,
    kubernetes: Option<Kubernetes>,
    kubernetes_settings: Option<crate::config::KubernetesSettings>,
    admin: Option<AdminServer>,
    metrics: Arc<Metrics>,
    settings: ServerSettings,
    config_path: Option<PathBuf>,
}

impl App {
    /// Builds the first snapshot, starts serving it and probing the local targets.
    pub async fn start(config: Config, config_path: Option<PathBuf>) -> Result<Self, StartError> {
        Self::start_with(config, config_path, Arc::new(NetProbes), None).await
    }

    /// As [`App::start`], with probes made by `probes` and, for tests, a gossip partition.
    pub async fn start_with(
        config: Config,
        config_path: Option<PathBuf>,
        probes: Arc<dyn ProbeFactory>,
        partition: Option<Arc<Partition>>,
    ) -> Result<Self, StartError> {
        let probe_plan = plan::plan(&config.model, true);
        let concurrency = config.model.probe_concurrency;
        let delegation = crate::delegation::Delegation::of(&config.model);
        let metrics = Arc::new(Metrics::with_options(config.server.per_service_metrics));
        let remote = config.gossip.as_ref().map(|g| RemoteSettings {
            peer_suspect: g.peer_suspect,
            peer_timeout: g.peer_timeout,
        });
        // The state owner sends the probe plan of every model it serves; the checker runs it.
        let (plans, plan_updates) = tokio::sync::watch::channel(Arc::new(probe_plan));
        let (store, state, owner) = state::start(
            config.model,
            config.server.max_udp_payload,
            remote,
            plans,
            metrics.clone(),
        );
        let gossip = match &config.gossip {
            Some(settings) => Some(
                Gossip::start(
                    settings,
                    state.reports(),
                    state.sender(),
                    partition,
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
        let dns = match DnsServer::start(&config.server, store.clone(), metrics.clone()).await {
            Ok(dns) => dns,
            Err(error) => {
                if let Some(gossip) = gossip {
                    gossip.shutdown().await;
                }
                return Err(error.into());
            }
        };
        let checker = Checker::start(
            plan_updates,
            probes,
            state.sender(),
            concurrency,
            metrics.clone(),
        );
        let kubernetes_settings = config.kubernetes.clone();
        let kubernetes = config
            .kubernetes
            .zip(kube_client)
            .map(|(settings, client)| {
                let endpoint = settings.dns_endpoint.clone();
                let mut kubernetes =
                    Kubernetes::start(settings, client.clone(), state.sender(), metrics.clone());
                if let Some(endpoint) = endpoint {
                    kubernetes.publish_delegation(client, &delegation, endpoint);
                }
                kubernetes
            });
        let admin = match config.server.admin {
            Some(addr) => {
                let ready = Readiness {
                    probes: checker.first_round(),
                    kubernetes: kubernetes.as_ref().map(Kubernetes::synced),
                };
                match AdminServer::start(addr, metrics.clone(), ready, store.clone()).await {
                    Ok(admin) => Some(admin),
                    Err(error) => {
                        dns.shutdown().await;
                        checker.shutdown().await;
                        if let Some(kubernetes) = kubernetes {
                            kubernetes.shutdown().await;
                        }
                        if let Some(gossip) = gossip {
                            gossip.shutdown().await;
                        }
                        return Err(StartError::Admin {
                            addr,
                            source: error,
                        });
                    }
                }
            }
            None => None,
        };
        Ok(Self {
            dns,
            store,
            state,
            owner,
            checker,
            gossip,
            gossip_settings: config.gossip,
            kubernetes,
            kubernetes_settings,
            admin,
            metrics,
            settings: config.server,
            config_path,
        })
    }

    /// Where the admin endpoint (/metrics, /healthz, /readyz) listens, if enabled.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|a| a.local_addr)
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
        &self.dns.local_addrs
    }

    /// The snapshot currently served.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.store.load_full()
    }

    /// Re-reads the config file given at start (SIGHUP). A bad file is refused with a log line
    /// and the current snapshot keeps serving.
    pub async fn reload(&self) -> Result<(), ConfigError> {
        let Some(path) = self.config_path.clone() else {
            warn!("reload asked, but gslbd was not started from a config file");
            return Ok(());
        };
        self.reload_from(&path).await
    }

    /// Loads `path` and serves it if it is valid.
    pub async fn reload_from(&self, path: &Path) -> Result<(), ConfigError> {
        let config = match config::load(path) {
            Ok(config) => config,
            Err(error) => {
                self.metrics.snapshots.config_reloaded(ReloadResult::Error);
                error!(path = %path.display(), %error, "config reload refused, still serving the previous config");
                return Err(error);
            }
        };
        if config.server != self.settings {
            warn!("[server] settings changed; they apply at the next restart");
        }
        if config.gossip != self.gossip_settings {
            warn!("[gossip] settings changed; they apply at the next restart");
        }
        if config.kubernetes != self.kubernetes_settings {
            warn!(
                "[kubernetes] settings (or the regions and zone they use) changed; they apply at the next restart"
            );
        }
        let services = config.model.services.len();
        self.state.replace_model(config.model).await;
        self.metrics.snapshots.config_reloaded(ReloadResult::Ok);
        info!(path = %path.display(), services, "config reloaded");
        Ok(())
    }

    /// Stops serving and waits for every task.
    pub async fn shutdown(self) {
        if let Some(admin) = self.admin {
            admin.shutdown().await;
        }
        self.dns.shutdown().await;
        if let Some(kubernetes) = self.kubernetes {
            kubernetes.shutdown().await;
        }
        if let Some(gossip) = self.gossip {
            gossip.shutdown().await;
        }
        self.checker.shutdown().await;
        drop(self.state);
        let _ = self.owner.await;
        info!("stopped");
    }
}
