//! The daemon assembled: state owner, snapshot store and DNS listeners, with reload and
//! shutdown. `main.rs` wires signals to it; tests run it in-process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use tracing::{error, info, warn};

use crate::config::{self, Config, ConfigError, ServerSettings};
use crate::dns::server::{DnsServer, ServerError};
use crate::health::checker::Checker;
use crate::health::plan;
use crate::health::probe::{NetProbes, ProbeFactory};
use crate::snapshot::Snapshot;
use crate::state::{self, StateHandle};

/// A running gslbd.
pub struct App {
    dns: DnsServer,
    store: Arc<ArcSwap<Snapshot>>,
    state: StateHandle,
    owner: tokio::task::JoinHandle<()>,
    checker: Checker,
    settings: ServerSettings,
    config_path: Option<PathBuf>,
}

impl App {
    /// Builds the first snapshot, starts serving it and probing the local targets.
    pub async fn start(config: Config, config_path: Option<PathBuf>) -> Result<Self, ServerError> {
        Self::start_with(config, config_path, Arc::new(NetProbes)).await
    }

    /// As [`App::start`], with probes made by `probes`.
    pub async fn start_with(
        config: Config,
        config_path: Option<PathBuf>,
        probes: Arc<dyn ProbeFactory>,
    ) -> Result<Self, ServerError> {
        let probe_plan = plan::plan(&config.model, true);
        let concurrency = config.model.probe_concurrency;
        let (store, state, owner) = state::start(config.model, config.server.max_udp_payload);
        let dns = DnsServer::start(&config.server, store.clone()).await?;
        let checker = Checker::start(probe_plan, probes, state.sender(), concurrency);
        Ok(Self {
            dns,
            store,
            state,
            owner,
            checker,
            settings: config.server,
            config_path,
        })
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
                error!(path = %path.display(), %error, "config reload refused, still serving the previous config");
                return Err(error);
            }
        };
        if config.server != self.settings {
            warn!("[server] settings changed; they apply at the next restart");
        }
        let services = config.model.services.len();
        let probe_plan = plan::plan(&config.model, true);
        self.state.replace_model(config.model).await;
        self.checker.update(probe_plan);
        info!(path = %path.display(), services, "config reloaded");
        Ok(())
    }

    /// Stops serving and waits for every task.
    pub async fn shutdown(self) {
        self.dns.shutdown().await;
        self.checker.shutdown().await;
        drop(self.state);
        let _ = self.owner.await;
        info!("stopped");
    }
}
