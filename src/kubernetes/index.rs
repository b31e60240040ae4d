//! The index: what the watched objects mean for balancing, as a pure function of the stores'
//! contents. Which objects are annotated for balancing and what they claim (`sources` reads
//! each kind), and which backend Services have a ready endpoint. No client, no I/O: the
//! watches fill the stores, the controller reads them through here, and tests drive it with
//! objects built in code.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::DynamicObject;
use kube::{Resource, ResourceExt};

use super::annotations;
use super::sources::{self, Claim};

/// The label that ties an EndpointSlice to its Service.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The objects the stores hold, by kind (empty for a kind that is not watched).
#[derive(Clone, Copy, Default)]
pub struct Objects<'a> {
    pub ingresses: &'a [Arc<Ingress>],
    /// Services of every type; only LoadBalancer ones can claim.
    pub services: &'a [Arc<Service>],
    /// Gateway API HTTPRoutes.
    pub routes: &'a [Arc<DynamicObject>],
    /// Gateway API Gateways, for the addresses of the routes' parents.
    pub gateways: &'a [Arc<DynamicObject>],
}

/// Whether the object's annotations ask for global balancing.
fn is_wanted(object: &impl Resource) -> bool {
    annotations::wanted(object.annotations())
}

/// The claims of every object annotated for balancing (Ingresses, then LoadBalancer Services,
/// then HTTPRoutes).
pub fn claims(objects: &Objects<'_>) -> Vec<Claim> {
    let mut claims: Vec<Claim> = objects
        .ingresses
        .iter()
        .filter(|ingress| is_wanted(ingress.as_ref()))
        .map(|ingress| sources::ingress(ingress))
        .collect();
    claims.extend(
        objects
            .services
            .iter()
            .filter(|service| is_wanted(service.as_ref()))
            .filter_map(|service| sources::load_balancer_service(service)),
    );
    let gateways: BTreeMap<(String, String), DynamicObject> = objects
        .gateways
        .iter()
        .map(|gateway| {
            let key = (
                gateway.namespace().unwrap_or_default(),
                gateway.metadata.name.clone().unwrap_or_default(),
            );
            (key, DynamicObject::clone(gateway))
        })
        .collect();
    claims.extend(
        objects
            .routes
            .iter()
            .filter(|route| is_wanted(route.as_ref()))
            .map(|route| sources::http_route(route, &gateways)),
    );
    claims
}

/// (namespace, Service) → whether an EndpointSlice of it has a ready endpoint. Slices without
/// the `kubernetes.io/service-name` label belong to no Service and are left out.
pub fn readiness(slices: &[Arc<EndpointSlice>]) -> HashMap<(String, String), bool> {
    let mut ready: HashMap<(String, String), bool> = HashMap::new();
    for slice in slices {
        let Some(service) = slice.labels().get(SERVICE_NAME_LABEL) else {
            continue;
        };
        let key = (slice.namespace().unwrap_or_default(), service.clone());
        // Ready when true or unset (Kubernetes' own reading of the condition).
        let any_ready = slice.endpoints.iter().any(|e| {
            !e.addresses.is_empty() && e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(true)
        });
        *ready.entry(key).or_default() |= any_ready;
    }
    ready
}
