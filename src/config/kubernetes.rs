//! `[kubernetes]`: which objects to discover services from and where. Discovered objects
//! become this region's targets, so the table needs `local_region`.

use std::time::Duration;

use serde::Deserialize;

use super::default_true;
use super::problems::Problems;
use crate::kubernetes::discover::Defaults;
use crate::model::RegionIndex;

/// Where and what to discover in Kubernetes (`[kubernetes]`).
#[derive(Clone, Debug, PartialEq)]
pub struct KubernetesSettings {
    /// API server URL (e.g. `http://127.0.0.1:8001` from `kubectl proxy`); in-cluster config
    /// or the kubeconfig when `None`.
    pub api_server: Option<String>,
    /// Namespaces to watch; every namespace when empty.
    pub namespaces: Vec<String>,
    pub ingresses: bool,
    pub load_balancer_services: bool,
    /// Gateway API HTTPRoutes and Gateways.
    pub gateway_api: bool,
    /// How often host names in load balancer statuses are resolved again.
    pub resolve_interval: Duration,
    /// How long `/readyz` waits for the first discovery (every core watch listed); after it,
    /// the server is ready with the config's services while discovery keeps retrying.
    pub sync_timeout: Duration,
    /// Publish Kubernetes Events on the objects (what was balanced, what was skipped and why).
    pub events: bool,
    /// Keep an ExternalDNS `DNSEndpoint` (namespace, name) with the zone's delegation.
    pub dns_endpoint: Option<(String, String)>,
    /// What discovered services start from.
    pub defaults: Defaults,
}

/// `[kubernetes]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawKubernetes {
    api_server: Option<String>,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default = "default_true")]
    ingresses: bool,
    #[serde(default = "default_true")]
    load_balancer_services: bool,
    #[serde(default = "default_true")]
    gateway_api: bool,
    #[serde(default = "default_resolve_interval")]
    resolve_interval_secs: u64,
    #[serde(default = "default_sync_timeout")]
    sync_timeout_secs: u64,
    #[serde(default = "default_true")]
    events: bool,
    dns_endpoint: Option<String>,
}

fn default_resolve_interval() -> u64 {
    30
}
/// Half of the deploy manifests' 60 s startup probe: an API server down at start leaves the
/// pod ready (serving the config's services), not killed.
fn default_sync_timeout() -> u64 {
    30
}

impl RawKubernetes {
    /// Validates the table; `defaults` builds what discovered services start from, given the
    /// index of the local region.
    pub(super) fn validate(
        &self,
        local_region: Option<RegionIndex>,
        defaults: impl FnOnce(RegionIndex) -> Defaults,
        problems: &mut Problems,
    ) -> Option<KubernetesSettings> {
        let Some(local) = local_region else {
            problems.add(
                "kubernetes",
                "needs local_region: discovered objects are this region's targets",
            );
            return None;
        };
        if self.resolve_interval_secs == 0 {
            problems.add("kubernetes.resolve_interval_secs", "must be positive");
        }
        if !(1..=3600).contains(&self.sync_timeout_secs) {
            problems.add("kubernetes.sync_timeout_secs", "must be between 1 and 3600");
        }
        if let Some(url) = &self.api_server
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            problems.add(
                "kubernetes.api_server",
                format!("{url:?} is not an http:// or https:// URL"),
            );
        }
        if !(self.ingresses || self.load_balancer_services || self.gateway_api) {
            problems.add("kubernetes", "every source is off: nothing to discover");
        }
        let dns_endpoint = self
            .dns_endpoint
            .as_ref()
            .and_then(|text| match text.split_once('/') {
                Some((ns, name)) if !ns.is_empty() && !name.is_empty() => {
                    Some((ns.to_string(), name.to_string()))
                }
                _ => {
                    problems.add(
                        "kubernetes.dns_endpoint",
                        format!("{text:?} is not namespace/name"),
                    );
                    None
                }
            });
        Some(KubernetesSettings {
            dns_endpoint,
            api_server: self.api_server.clone(),
            namespaces: self.namespaces.clone(),
            ingresses: self.ingresses,
            load_balancer_services: self.load_balancer_services,
            gateway_api: self.gateway_api,
            resolve_interval: Duration::from_secs(self.resolve_interval_secs.max(1)),
            sync_timeout: Duration::from_secs(self.sync_timeout_secs.clamp(1, 3600)),
            events: self.events,
            defaults: defaults(local),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::fixture::Fixture;

    /// The fixture with `local_region = "eu"` and a `[kubernetes]` table of `keys`.
    fn kubernetes(keys: &str) -> Fixture {
        Fixture::new()
            .top(r#"local_region = "eu""#)
            .table(&format!("[kubernetes]\n{keys}"))
    }

    #[test]
    fn an_empty_table_discovers_every_source_in_every_namespace() {
        let config = kubernetes("").config();
        let settings = config.kubernetes.expect("kubernetes settings");
        assert!(settings.ingresses && settings.load_balancer_services && settings.gateway_api);
        assert!(settings.events);
        assert!(settings.namespaces.is_empty());
        assert_eq!(settings.api_server, None);
        assert_eq!(settings.dns_endpoint, None);
        assert_eq!(settings.resolve_interval, Duration::from_secs(30));
        assert_eq!(settings.sync_timeout, Duration::from_secs(30));
    }

    #[test]
    fn discovered_services_start_from_the_zone_and_the_local_region() {
        let config = kubernetes(r#"dns_endpoint = "gslb/delegation""#).config();
        let settings = config.kubernetes.expect("kubernetes settings");
        assert_eq!(
            settings.dns_endpoint,
            Some(("gslb".to_string(), "delegation".to_string()))
        );
        let defaults = settings.defaults;
        assert_eq!(defaults.zone, config.model.zone.origin);
        assert_eq!(defaults.regions, config.model.regions);
        assert_eq!(defaults.local_region, crate::fixtures::EU);
        assert_eq!(defaults.ttl, 30);
        assert_eq!(defaults.probe.interval, Duration::from_secs(1));
    }

    #[test]
    fn kubernetes_needs_the_local_region() {
        Fixture::new().table("[kubernetes]").assert_refused(
            "kubernetes",
            "needs local_region: discovered objects are this region's targets",
        );
    }

    #[test]
    fn the_api_server_is_an_http_or_https_url() {
        kubernetes(r#"api_server = "127.0.0.1:8001""#).assert_refused(
            "kubernetes.api_server",
            r#""127.0.0.1:8001" is not an http:// or https:// URL"#,
        );
        let config = kubernetes(r#"api_server = "https://k8s.example.net""#).config();
        let settings = config.kubernetes.expect("kubernetes settings");
        assert_eq!(
            settings.api_server.as_deref(),
            Some("https://k8s.example.net")
        );
    }

    #[test]
    fn at_least_one_source_is_on() {
        kubernetes("ingresses = false\nload_balancer_services = false\ngateway_api = false")
            .assert_refused("kubernetes", "every source is off: nothing to discover");
    }

    #[test]
    fn the_dns_endpoint_is_namespace_slash_name() {
        for bad in ["delegation", "gslb/", "/delegation"] {
            kubernetes(&format!("dns_endpoint = {bad:?}")).assert_refused(
                "kubernetes.dns_endpoint",
                &format!("{bad:?} is not namespace/name"),
            );
        }
        kubernetes("resolve_interval_secs = 0")
            .assert_refused("kubernetes.resolve_interval_secs", "must be positive");
        kubernetes("sync_timeout_secs = 0")
            .assert_refused("kubernetes.sync_timeout_secs", "between 1 and 3600");
    }
}
