//! Services from Kubernetes: watches Ingresses, LoadBalancer Services, Gateway API HTTPRoutes
//! and Gateways, and EndpointSlices, and after every change sends the state owner the whole
//! set of discovered services. The shape is watch → pure index → served answers:
//!
//! - `client`: the `kube::Client` from the settings, and why it cannot be built ([`KubeError`]).
//! - `watch`: kube-runtime watchers feeding reflector stores, one task per kind and namespace.
//! - `index`: pure, from the stores' objects to claims and backend Service readiness.
//! - `annotations`: what an object's annotations ask for; `sources`: what each kind claims.
//! - `discover`: pure, claims to services and an outcome per object, deterministically.
//! - `resolve`: status host names (cloud load balancers) to addresses, cached.
//! - `controller`: the loop that runs discovery after each change and reports outcomes.
//! - `recorder`: tells users on their objects (Kubernetes Events).
//!
//! The ExternalDNS `DNSEndpoint` publisher lives with the delegation
//! (`crate::delegation::dns_endpoint`); [`Kubernetes`] runs it as one of its tasks.
//!
//! The stores keep their content while the API server is unreachable (the watchers retry with
//! backoff), so the last known services keep serving; a watch that expired (410 Gone) relists
//! and the store is replaced atomically, so nothing is lost or duplicated.

pub mod annotations;
mod client;
mod controller;
pub mod discover;
mod index;
mod recorder;
mod resolve;
pub mod sources;
mod watch;

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service as KubeService;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::Client;
use kube::api::{ApiResource, DynamicObject};
use tokio::sync::{Notify, mpsc};

pub use client::{KubeError, client};
pub use watch::WatchEvent;

use crate::config::KubernetesSettings;
use crate::delegation::{self, Delegation};
use crate::metrics::Metrics;
use crate::state::Event;
use crate::tasks::{OnEnd, Tasks};
use sources::Claim;
use watch::{Stores, WatchContext, gateway_api_apis, typed_apis, watch};

/// Kubernetes discovery: its watches and controller run as tasks of the daemon.
pub struct Kubernetes;

impl Kubernetes {
    /// Starts watching and discovering on `tasks`; services, and the first complete discovery,
    /// go to `events`. What discovered services start from follows `defaults` (a reload may
    /// change the zone's defaults and regions; the rest of the settings need a restart).
    pub fn start(
        tasks: &Tasks,
        settings: KubernetesSettings,
        defaults: tokio::sync::watch::Receiver<discover::Defaults>,
        client: Client,
        events: mpsc::Sender<Event>,
        metrics: Arc<Metrics>,
    ) {
        let context = WatchContext {
            changed: Arc::new(Notify::new()),
            metrics: metrics.clone(),
            stop: tasks.stopping(),
        };
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
                tasks,
            )
        });
        let services = settings.load_balancer_services.then(|| {
            watch(
                typed_apis::<KubeService>(&client, &scopes),
                "Service",
                (),
                &context,
                tasks,
            )
        });
        let slices = watch(
            typed_apis::<EndpointSlice>(&client, &scopes),
            "EndpointSlice",
            (),
            &context,
            tasks,
        );
        let gateway_api = settings.gateway_api.then(|| {
            let (route_apis, route_resource) = gateway_api_apis(&client, &scopes, "HTTPRoute");
            let (gateway_apis, gateway_resource) = gateway_api_apis(&client, &scopes, "Gateway");
            (
                watch(route_apis, "HTTPRoute", route_resource, &context, tasks),
                watch(gateway_apis, "Gateway", gateway_resource, &context, tasks),
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
        tasks.supervise(
            "kubernetes discovery",
            OnEnd::FailHealth,
            controller::run(
                settings, defaults, sources, context, events, recorder, metrics,
            ),
        );
    }

    /// Keeps the ExternalDNS `DNSEndpoint` `namespace/name` equal to `delegation` (see
    /// [`delegation::dns_endpoint::publish`]), as a task of `tasks`.
    pub fn publish_delegation(
        tasks: &Tasks,
        client: Client,
        delegation: &Delegation,
        endpoint: (String, String),
    ) {
        tasks.spawn(delegation::dns_endpoint::publish(
            client,
            delegation,
            endpoint,
            tasks.stopping(),
        ));
    }
}

type DynStores = Stores<DynamicObject, ApiResource>;

/// The stores of every watched kind; `None` for a kind the settings leave out.
struct Sources {
    ingresses: Option<Stores<Ingress, ()>>,
    services: Option<Stores<KubeService, ()>>,
    slices: Stores<EndpointSlice, ()>,
    /// HTTPRoutes and Gateways.
    gateway_api: Option<(DynStores, DynStores)>,
}

impl Sources {
    /// The claims of the objects the stores hold now (see [`index::claims`]). HTTPRoutes
    /// claim only once their and the Gateways' watches have listed (a route without its
    /// Gateway's addresses would be skipped, then balanced, for nothing).
    fn claims(&self) -> Vec<Claim> {
        let ingresses = self.ingresses.as_ref().map(Stores::all);
        let services = self.services.as_ref().map(Stores::all);
        let (routes, gateways) = match &self.gateway_api {
            Some((routes, gateways)) if routes.listed() && gateways.listed() => {
                (routes.all(), gateways.all())
            }
            _ => (Vec::new(), Vec::new()),
        };
        index::claims(&index::Objects {
            ingresses: ingresses.as_deref().unwrap_or_default(),
            services: services.as_deref().unwrap_or_default(),
            routes: &routes,
            gateways: &gateways,
        })
    }

    /// Whether the core watches (Ingress, Service, EndpointSlice) have completed their first
    /// list. Gateway API watches are left out: their CRDs may not be installed.
    fn listed(&self) -> bool {
        self.ingresses.as_ref().is_none_or(Stores::listed)
            && self.services.as_ref().is_none_or(Stores::listed)
            && self.slices.listed()
    }

    /// (namespace, Service) → whether an EndpointSlice of it has a ready endpoint.
    fn readiness(&self) -> HashMap<(String, String), bool> {
        index::readiness(&self.slices.all())
    }
}

/// The `[kubernetes]` settings of a small two-region config (zone `gslb.example.com`), for
/// unit tests.
#[cfg(test)]
fn test_settings() -> KubernetesSettings {
    crate::fixtures::config("[kubernetes]")
        .kubernetes
        .expect("a [kubernetes] table")
}
