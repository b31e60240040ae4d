//! Services from Kubernetes: watches Ingresses, LoadBalancer Services, Gateway API HTTPRoutes
//! and Gateways, and EndpointSlices (kube-runtime watchers feeding reflector stores), and after
//! every change sends the state owner the whole set of discovered services.
//!
//! `annotations` parses what an object asks for, `sources` reads each kind, `discover` turns
//! claims into services deterministically, `recorder` tells users on their objects.
//!
//! The stores keep their content while the API server is unreachable (the watchers retry with
//! backoff), so the last known services keep serving; a watch that expired (410 Gone) relists
//! and the store is replaced atomically, so nothing is lost or duplicated.

pub mod annotations;
pub mod discover;
mod recorder;
pub mod sources;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service as KubeService;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use crate::config::KubernetesSettings;
use crate::metrics::Metrics;
use crate::state::Event;
use discover::{Discovery, Outcome};
use sources::Claim;

/// Why Kubernetes discovery cannot start.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    #[error("bad kubernetes.api_server {0:?}: {1}")]
    Url(String, String),
    #[error("no Kubernetes configuration (in-cluster or kubeconfig): {0}")]
    Config(String),
    #[error("cannot build the Kubernetes client: {0}")]
    Client(String),
}

/// The running discovery.
pub struct Kubernetes {
    synced: Arc<AtomicBool>,
    stop: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// The client `settings` ask for.
pub async fn client(settings: &KubernetesSettings) -> Result<Client, KubeError> {
    let config = match &settings.api_server {
        Some(url) => {
            let uri = url
                .parse()
                .map_err(|e: http::uri::InvalidUri| KubeError::Url(url.clone(), e.to_string()))?;
            kube::Config::new(uri)
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| KubeError::Config(e.to_string()))?,
    };
    Client::try_from(config).map_err(|e| KubeError::Client(e.to_string()))
}

/// Stores of one kind, one per watched namespace (or one for all).
struct Stores<K: Resource<DynamicType = D> + 'static, D: Clone + Eq + std::hash::Hash + 'static> {
    stores: Vec<Store<K>>,
}

impl<K, D> Stores<K, D>
where
    K: Resource<DynamicType = D> + Clone + 'static,
    D: Clone + Eq + std::hash::Hash + 'static,
{
    fn all(&self) -> Vec<Arc<K>> {
        self.stores.iter().flat_map(|s| s.state()).collect()
    }
}

/// Shared by the watch tasks.
#[derive(Clone)]
struct WatchContext {
    changed: Arc<Notify>,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
}

/// Starts one reflector per namespace for `apis`.
fn watch<K>(
    apis: Vec<Api<K>>,
    kind: &'static str,
    dyntype: K::DynamicType,
    context: &WatchContext,
    tasks: &mut Vec<tokio::task::JoinHandle<()>>,
) -> Stores<K, K::DynamicType>
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Clone + Eq + std::hash::Hash + Send + Sync + 'static,
{
    // Series start at zero, so rate() and alerts see them from the first scrape.
    for event in ["apply", "delete", "init", "init_apply", "init_done"] {
        context
            .metrics
            .kube_watch_events
            .with_label_values(&[kind, event]);
    }
    context.metrics.kube_watch_errors.with_label_values(&[kind]);
    let mut stores = Vec::new();
    for api in apis {
        let writer = reflector::store::Writer::new(dyntype.clone());
        stores.push(writer.as_reader());
        let context = context.clone();
        let stream = reflector::reflector(writer, watcher(api, watcher::Config::default()))
            .default_backoff();
        tasks.push(tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            let mut failing = false;
            loop {
                let next = tokio::select! {
                    next = stream.next() => next,
                    _ = context.stop.cancelled() => return,
                };
                let Some(event) = next else { return };
                match event {
                    Ok(event) => {
                        if failing {
                            info!(kind, "Kubernetes watch resumed");
                            failing = false;
                        }
                        let (name, notify) = match event {
                            watcher::Event::Apply(_) => ("apply", true),
                            watcher::Event::Delete(_) => ("delete", true),
                            watcher::Event::Init => ("init", false),
                            watcher::Event::InitApply(_) => ("init_apply", false),
                            watcher::Event::InitDone => ("init_done", true),
                        };
                        context
                            .metrics
                            .kube_watch_events
                            .with_label_values(&[kind, name])
                            .inc();
                        if notify {
                            context.changed.notify_one();
                        }
                    }
                    Err(error) => {
                        context
                            .metrics
                            .kube_watch_errors
                            .with_label_values(&[kind])
                            .inc();
                        if !failing {
                            warn!(kind, %error, "Kubernetes watch failing; serving the last known objects and retrying");
                            failing = true;
                        } else {
                            debug!(kind, %error, "Kubernetes watch still failing");
                        }
                    }
                }
            }
        }));
    }
    Stores { stores }
}

/// One API per watched namespace, or one for all namespaces.
fn typed_apis<K>(client: &Client, scopes: &[Option<String>]) -> Vec<Api<K>>
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
{
    scopes
        .iter()
        .map(|scope| match scope {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        })
        .collect()
}

impl Kubernetes {
    /// Starts watching and discovering; services go to `events`.
    pub fn start(
        settings: KubernetesSettings,
        client: Client,
        events: mpsc::Sender<Event>,
        metrics: Arc<Metrics>,
    ) -> Self {
        let stop = CancellationToken::new();
        let context = WatchContext {
            changed: Arc::new(Notify::new()),
            metrics: metrics.clone(),
            stop: stop.clone(),
        };
        let mut tasks = Vec::new();
        let scopes: Vec<Option<String>> = if settings.namespaces.is_empty() {
            vec![None]
        } else {
            settings.namespaces.iter().cloned().map(Some).collect()
        };
        let ingresses = settings.ingresses.then(|| {
            watch(
                typed_apis::<Ingress>(&client, &scopes),
                "Ingress",
                (),
                &context,
                &mut tasks,
            )
        });
        let services = settings.load_balancer_services.then(|| {
            watch(
                typed_apis::<KubeService>(&client, &scopes),
                "Service",
                (),
                &context,
                &mut tasks,
            )
        });
        let slices = watch(
            typed_apis::<EndpointSlice>(&client, &scopes),
            "EndpointSlice",
            (),
            &context,
            &mut tasks,
        );
        let gateway_api = settings.gateway_api.then(|| {
            let dynamic = |kind: &str| {
                let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
                    "gateway.networking.k8s.io",
                    "v1",
                    kind,
                ));
                let apis: Vec<Api<DynamicObject>> = scopes
                    .iter()
                    .map(|scope| match scope {
                        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
                        None => Api::all_with(client.clone(), &resource),
                    })
                    .collect();
                (apis, resource)
            };
            let (route_apis, route_resource) = dynamic("HTTPRoute");
            let (gateway_apis, gateway_resource) = dynamic("Gateway");
            (
                watch(
                    route_apis,
                    "HTTPRoute",
                    route_resource,
                    &context,
                    &mut tasks,
                ),
                watch(
                    gateway_apis,
                    "Gateway",
                    gateway_resource,
                    &context,
                    &mut tasks,
                ),
            )
        });

        let recorder = settings
            .events
            .then(|| recorder::Recorder::new(client.clone()));
        let sources = Sources {
            ingresses,
            services,
            slices,
            gateway_api,
        };
        let synced = Arc::new(AtomicBool::new(false));
        tasks.push(tokio::spawn(run(
            settings,
            sources,
            context,
            events,
            recorder,
            metrics,
            synced.clone(),
        )));
        Self {
            synced,
            stop,
            tasks,
        }
    }

    /// Keeps the ExternalDNS `DNSEndpoint` `namespace/name` equal to `delegation` (server-side
    /// apply, field manager `gslbd`), retrying with backoff until the API server takes it.
    pub fn publish_delegation(
        &mut self,
        client: Client,
        delegation: &crate::delegation::Delegation,
        (namespace, name): (String, String),
    ) {
        let object = crate::delegation::external_dns::dns_endpoint(delegation, &name, &namespace);
        let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(
            "externaldns.k8s.io",
            "v1alpha1",
            "DNSEndpoint",
        ));
        let api: Api<DynamicObject> = Api::namespaced_with(client, &namespace, &resource);
        let stop = self.stop.clone();
        self.tasks.push(tokio::spawn(async move {
            let params = kube::api::PatchParams::apply("gslbd").force();
            let mut wait = Duration::from_secs(1);
            loop {
                match api
                    .patch(&name, &params, &kube::api::Patch::Apply(&object))
                    .await
                {
                    Ok(_) => {
                        info!(%namespace, %name, "ExternalDNS DNSEndpoint with the delegation applied");
                        return;
                    }
                    Err(error) => warn!(%namespace, %name, %error, retry_in = ?wait, "cannot apply the ExternalDNS DNSEndpoint (is ExternalDNS's CRD installed? RBAC?)"),
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stop.cancelled() => return,
                }
                wait = (wait * 2).min(Duration::from_secs(60));
            }
        }));
    }

    /// Set once every watch has listed and the first discovery reached the state owner.
    pub fn synced(&self) -> Arc<AtomicBool> {
        self.synced.clone()
    }

    /// Stops watching.
    pub async fn shutdown(self) {
        self.stop.cancel();
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

type DynStores = Stores<DynamicObject, ApiResource>;

struct Sources {
    ingresses: Option<Stores<Ingress, ()>>,
    services: Option<Stores<KubeService, ()>>,
    slices: Stores<EndpointSlice, ()>,
    gateway_api: Option<(DynStores, DynStores)>,
}

impl Sources {
    fn claims(&self) -> Vec<Claim> {
        let mut claims = Vec::new();
        for ingress in self.ingresses.iter().flat_map(|s| s.all()) {
            if annotations::wanted(
                ingress
                    .metadata
                    .annotations
                    .as_ref()
                    .unwrap_or(&BTreeMap::new()),
            ) {
                claims.push(sources::ingress(&ingress));
            }
        }
        for service in self.services.iter().flat_map(|s| s.all()) {
            if annotations::wanted(
                service
                    .metadata
                    .annotations
                    .as_ref()
                    .unwrap_or(&BTreeMap::new()),
            ) {
                claims.extend(sources::load_balancer_service(&service));
            }
        }
        if let Some((routes, gateways)) = &self.gateway_api {
            let gateways: BTreeMap<(String, String), DynamicObject> = gateways
                .all()
                .into_iter()
                .map(|g| {
                    (
                        (
                            g.metadata.namespace.clone().unwrap_or_default(),
                            g.metadata.name.clone().unwrap_or_default(),
                        ),
                        (*g).clone(),
                    )
                })
                .collect();
            for route in routes.all() {
                if annotations::wanted(
                    route
                        .metadata
                        .annotations
                        .as_ref()
                        .unwrap_or(&BTreeMap::new()),
                ) {
                    claims.push(sources::http_route(&route, &gateways));
                }
            }
        }
        claims
    }

    /// Whether the core watches (Ingress, Service, EndpointSlice) have completed their first
    /// list. Gateway API watches are left out: their CRDs may not be installed.
    fn listed(&self) -> bool {
        fn ready<
            K: Resource<DynamicType = D> + Clone + 'static,
            D: Clone + Eq + std::hash::Hash + 'static,
        >(
            stores: &Stores<K, D>,
        ) -> bool {
            stores.stores.iter().all(|s| {
                futures::FutureExt::now_or_never(s.wait_until_ready()).is_some_and(|r| r.is_ok())
            })
        }
        self.ingresses.as_ref().is_none_or(ready)
            && self.services.as_ref().is_none_or(ready)
            && ready(&self.slices)
    }

    /// (namespace, Service) → whether an EndpointSlice of it has a ready endpoint.
    fn readiness(&self) -> HashMap<(String, String), bool> {
        let mut ready: HashMap<(String, String), bool> = HashMap::new();
        for slice in self.slices.all() {
            let Some(service) = slice
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("kubernetes.io/service-name"))
            else {
                continue;
            };
            let key = (
                slice.metadata.namespace.clone().unwrap_or_default(),
                service.clone(),
            );
            // Ready when true or unset (Kubernetes' own reading of the condition).
            let any_ready = slice.endpoints.iter().any(|e| {
                !e.addresses.is_empty()
                    && e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true)
            });
            *ready.entry(key).or_default() |= any_ready;
        }
        ready
    }
}

/// Resolves the status host names of `claims` that are due; keeps the last answer on failure.
async fn resolve(
    claims: &[Claim],
    cache: &mut HashMap<String, (Vec<IpAddr>, tokio::time::Instant)>,
    every: Duration,
) {
    let now = tokio::time::Instant::now();
    let mut wanted: Vec<&String> = claims.iter().flat_map(|c| &c.hostnames).collect();
    wanted.sort();
    wanted.dedup();
    cache.retain(|name, _| wanted.contains(&name));
    for name in wanted {
        if cache
            .get(name)
            .is_some_and(|(_, at)| now.duration_since(*at) < every)
        {
            continue;
        }
        let lookup = tokio::net::lookup_host((name.as_str(), 0));
        match tokio::time::timeout(Duration::from_secs(5), lookup).await {
            Ok(Ok(found)) => {
                let mut addresses: Vec<IpAddr> = found.map(|a| a.ip()).collect();
                addresses.sort();
                addresses.dedup();
                debug!(%name, ?addresses, "load balancer host name resolved");
                cache.insert(name.clone(), (addresses, now));
            }
            result => {
                let error = match result {
                    Ok(Err(error)) => error.to_string(),
                    _ => "timed out".to_string(),
                };
                warn!(%name, %error, "cannot resolve a load balancer host name; keeping its last addresses");
                let last = cache.remove(name).map(|(a, _)| a).unwrap_or_default();
                cache.insert(name.clone(), (last, now));
            }
        }
    }
}

/// After each change (debounced), discovers and sends the services; reports outcomes.
async fn run(
    settings: KubernetesSettings,
    sources: Sources,
    context: WatchContext,
    events: mpsc::Sender<Event>,
    recorder: Option<recorder::Recorder>,
    metrics: Arc<Metrics>,
    synced: Arc<AtomicBool>,
) {
    let mut resolved: HashMap<String, (Vec<IpAddr>, tokio::time::Instant)> = HashMap::new();
    let mut reported: BTreeMap<sources::ObjectId, Outcome> = BTreeMap::new();
    let mut last_sent: Option<Vec<crate::model::Service>> = None;
    let mut tick = tokio::time::interval(settings.resolve_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = context.changed.notified() => {
                // Let a burst (an initial list, a rollout) settle into one discovery.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            _ = tick.tick() => {}
            _ = context.stop.cancelled() => return,
        }
        let claims = sources.claims();
        resolve(&claims, &mut resolved, settings.resolve_interval).await;
        let addresses: HashMap<String, Vec<IpAddr>> = resolved
            .iter()
            .map(|(name, (addresses, _))| (name.clone(), addresses.clone()))
            .collect();
        let Discovery { services, outcomes } =
            discover::discover(claims, &sources.readiness(), &addresses, &settings.defaults);
        // Outcomes: log, count and tell each object once per change.
        let mut skipped: BTreeMap<(&'static str, &'static str), i64> = BTreeMap::new();
        for (id, (claim, outcome)) in &outcomes {
            if let Outcome::Skipped { reason, .. } = outcome {
                *skipped.entry((id.kind, reason)).or_default() += 1;
            }
            if reported.get(id) == Some(outcome) {
                continue;
            }
            match outcome {
                Outcome::Balanced { hosts } => {
                    info!(object = %id, hosts = hosts.join(","), "Kubernetes object balanced")
                }
                Outcome::Skipped { reason, message } => {
                    warn!(object = %id, reason, %message, "Kubernetes object skipped")
                }
            }
            if let Some(recorder) = &recorder {
                recorder.publish(&claim.reference, outcome).await;
            }
        }
        reported = outcomes.into_iter().map(|(id, (_, o))| (id, o)).collect();
        metrics.kube_objects_skipped.reset();
        for ((kind, reason), count) in skipped {
            metrics
                .kube_objects_skipped
                .with_label_values(&[kind, reason])
                .set(count);
        }
        metrics.kube_services.set(services.len() as i64);
        if last_sent.as_ref() != Some(&services) {
            info!(services = services.len(), "Kubernetes services discovered");
            last_sent = Some(services.clone());
            if events.send(Event::Discovered { services }).await.is_err() {
                return;
            }
        }
        if !synced.load(Ordering::Relaxed) && sources.listed() {
            info!("first Kubernetes discovery done");
            synced.store(true, Ordering::Relaxed);
        }
    }
}
