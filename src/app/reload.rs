//! Reloading the config file, all or nothing: a file that does not validate, or that changes
//! a setting the running subsystems were started with (`[server]`, `[gossip]`, `local_region`,
//! `[kubernetes]` but its defaults), is refused with a log line naming what and why, and the
//! previous config keeps serving. Everything else applies at once to every subsystem: the
//! model (services, zone, regions added, removed or reordered: remote reports and discovered
//! services follow regions by name) to the state owner, the zone's defaults and regions to
//! Kubernetes discovery.

use std::path::Path;

use tracing::{error, info, warn};

use super::App;
use crate::config::{
    self, Config, ConfigError, GossipSettings, KubernetesSettings, ServerSettings,
};
use crate::metrics::ReloadResult;
use crate::model::Region;

/// Why a reload changed nothing.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "{} changed, which applies only at a restart: restart gslbd to apply the new config (nothing was reloaded)",
        .0.join(", ")
    )]
    NeedsRestart(Vec<&'static str>),
}

/// The settings the running subsystems were started with.
#[derive(Debug)]
pub(super) struct Started {
    server: ServerSettings,
    gossip: Option<GossipSettings>,
    local_region: Option<Region>,
    kubernetes: Option<KubernetesSettings>,
}

impl Started {
    pub(super) fn of(config: &Config) -> Self {
        Self {
            server: config.server.clone(),
            gossip: config.gossip.clone(),
            local_region: local_region(config),
            kubernetes: config.kubernetes.clone(),
        }
    }

    /// The settings of `config` that differ from these and need a restart, by config name.
    fn needs_restart(&self, config: &Config) -> Vec<&'static str> {
        let mut changed = Vec::new();
        if config.server != self.server {
            changed.push("[server]");
        }
        if local_region(config) != self.local_region {
            changed.push("local_region");
        }
        if config.gossip != self.gossip {
            changed.push("[gossip]");
        }
        // Discovery takes new defaults (zone TTL, regions, probe) live; the rest is how it
        // watches.
        let watching = |k: &KubernetesSettings| KubernetesSettings {
            defaults: config
                .kubernetes
                .as_ref()
                .map_or_else(|| k.defaults.clone(), |new| new.defaults.clone()),
            ..k.clone()
        };
        if config.kubernetes.as_ref().map(watching) != self.kubernetes.as_ref().map(watching) {
            changed.push("[kubernetes]");
        }
        changed
    }
}

fn local_region(config: &Config) -> Option<Region> {
    config
        .model
        .local_region
        .map(|local| config.model.regions[local].name.clone())
}

impl App {
    /// Re-reads the config file given at start (SIGHUP). A refused file changes nothing (see
    /// [`App::reload_from`]).
    pub async fn reload(&self) -> Result<(), ReloadError> {
        let Some(path) = self.config_path.clone() else {
            warn!("reload asked, but gslbd was not started from a config file");
            return Ok(());
        };
        self.reload_from(&path).await
    }

    /// Loads `path` and serves it, all or nothing: an invalid file, or one that changes a
    /// setting needing a restart, is refused with a log line and the previous config keeps
    /// serving.
    pub async fn reload_from(&self, path: &Path) -> Result<(), ReloadError> {
        let checked = config::load(path)
            .map_err(ReloadError::from)
            .map(|mut config| {
                self.overrides.apply(&mut config);
                config
            })
            .and_then(|config| match self.started.needs_restart(&config) {
                changed if changed.is_empty() => Ok(config),
                changed => Err(ReloadError::NeedsRestart(changed)),
            });
        let config = match checked {
            Ok(config) => config,
            Err(error) => {
                self.metrics.snapshots.config_reloaded(ReloadResult::Error);
                error!(path = %path.display(), %error, "config reload refused, still serving the previous config");
                return Err(error);
            }
        };
        if let (Some(defaults), Some(kubernetes)) = (&self.kubernetes_defaults, &config.kubernetes)
        {
            defaults.send_replace(kubernetes.defaults.clone());
        }
        let services = config.model.services.len();
        self.state.replace_model(config.model).await;
        self.metrics.snapshots.config_reloaded(ReloadResult::Ok);
        info!(path = %path.display(), services, "config reloaded");
        Ok(())
    }
}
