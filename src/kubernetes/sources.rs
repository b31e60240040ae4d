//! What each kind of Kubernetes object says about a balanced host: its names, the addresses
//! that reach it in this cluster and the Services behind it. Pure: objects in, claims out.
//!
//! - networking.k8s.io/v1 Ingress: `spec.rules[].host`, addresses from
//!   `status.loadBalancer.ingress[]`, backends from the rules' and the default backend's
//!   Services.
//! - gateway.networking.k8s.io/v1 HTTPRoute: `spec.hostnames`, addresses from the parent
//!   Gateways' `status.addresses`, backends from `spec.rules[].backendRefs` (kind Service).
//! - v1 Service of type LoadBalancer: names from `gslbd.io/hostname`, addresses from
//!   `status.loadBalancer.ingress[]`, the Service itself as backend.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use k8s_openapi::api::core::v1::{LoadBalancerIngress, ObjectReference, Service};
use k8s_openapi::api::networking::v1::Ingress;
use kube::api::DynamicObject;
use kube::{Resource, ResourceExt};
use serde::Deserialize;

/// An object as events and logs name it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectId {
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for ObjectId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

/// What one object says.
#[derive(Clone, Debug)]
pub struct Claim {
    pub id: ObjectId,
    /// For Kubernetes Events.
    pub reference: ObjectReference,
    /// Creation time (RFC 3339 text sorts in time order), for deterministic conflicts.
    pub created: String,
    pub annotations: BTreeMap<String, String>,
    /// Host names as written (the zone filter comes later).
    pub hosts: Vec<String>,
    /// Addresses from the object's status.
    pub addresses: Vec<IpAddr>,
    /// Host names from the object's status, to resolve (cloud load balancers).
    pub hostnames: Vec<String>,
    /// Backend Services, in the object's namespace or another (HTTPRoute).
    pub backends: BTreeSet<(String, String)>,
}

fn claim_of<K: Resource<DynamicType = ()>>(object: &K, kind: &'static str) -> Claim {
    let meta = object.meta();
    Claim {
        id: ObjectId {
            kind,
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
        },
        reference: object.object_ref(&()),
        created: meta
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
        annotations: meta.annotations.clone().unwrap_or_default(),
        hosts: Vec::new(),
        addresses: Vec::new(),
        hostnames: Vec::new(),
        backends: BTreeSet::new(),
    }
}

fn load_balancer(claim: &mut Claim, ingress: &[LoadBalancerIngress]) {
    for entry in ingress {
        if let Some(ip) = entry.ip.as_deref().and_then(|ip| ip.parse().ok()) {
            claim.addresses.push(ip);
        } else if let Some(hostname) = &entry.hostname {
            claim.hostnames.push(hostname.clone());
        }
    }
}

/// An Ingress's claim.
pub fn ingress(object: &Ingress) -> Claim {
    let mut claim = claim_of(object, "Ingress");
    let namespace = claim.id.namespace.clone();
    if let Some(spec) = &object.spec {
        let mut backend = |b: &k8s_openapi::api::networking::v1::IngressBackend| {
            if let Some(service) = &b.service {
                claim
                    .backends
                    .insert((namespace.clone(), service.name.clone()));
            }
        };
        if let Some(default) = &spec.default_backend {
            backend(default);
        }
        for rule in spec.rules.iter().flatten() {
            for path in rule.http.iter().flat_map(|h| &h.paths) {
                backend(&path.backend);
            }
        }
        claim.hosts = spec
            .rules
            .iter()
            .flatten()
            .filter_map(|r| r.host.clone())
            .collect();
    }
    for entry in object
        .status
        .iter()
        .flat_map(|s| &s.load_balancer)
        .flat_map(|lb| lb.ingress.iter().flatten())
    {
        if let Some(ip) = entry.ip.as_deref().and_then(|ip| ip.parse().ok()) {
            claim.addresses.push(ip);
        } else if let Some(hostname) = &entry.hostname {
            claim.hostnames.push(hostname.clone());
        }
    }
    claim
}

/// A LoadBalancer Service's claim (its names come from annotations), or `None` for other types.
pub fn load_balancer_service(object: &Service) -> Option<Claim> {
    let spec = object.spec.as_ref()?;
    if spec.type_.as_deref() != Some("LoadBalancer") {
        return None;
    }
    let mut claim = claim_of(object, "Service");
    claim
        .backends
        .insert((claim.id.namespace.clone(), claim.id.name.clone()));
    if let Some(ingress) = object
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
    {
        load_balancer(&mut claim, ingress);
    }
    Some(claim)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RouteSpec {
    #[serde(default)]
    hostnames: Vec<String>,
    #[serde(default)]
    parent_refs: Vec<Ref>,
    #[serde(default)]
    rules: Vec<RouteRule>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RouteRule {
    #[serde(default)]
    backend_refs: Vec<Ref>,
}

#[derive(Debug, Default, Deserialize)]
struct Ref {
    name: String,
    namespace: Option<String>,
    kind: Option<String>,
    group: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct GatewayStatus {
    #[serde(default)]
    addresses: Vec<GatewayAddress>,
}

#[derive(Debug, Default, Deserialize)]
struct GatewayAddress {
    #[serde(rename = "type")]
    kind: Option<String>,
    value: String,
}

/// An HTTPRoute's claim, with addresses from its parent Gateways (`gateways`: by namespace and
/// name).
pub fn http_route(
    object: &DynamicObject,
    gateways: &BTreeMap<(String, String), DynamicObject>,
) -> Claim {
    let meta = &object.metadata;
    let namespace = meta.namespace.clone().unwrap_or_default();
    let mut claim = Claim {
        id: ObjectId {
            kind: "HTTPRoute",
            namespace: namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
        },
        reference: ObjectReference {
            api_version: Some("gateway.networking.k8s.io/v1".to_string()),
            kind: Some("HTTPRoute".to_string()),
            name: meta.name.clone(),
            namespace: meta.namespace.clone(),
            uid: meta.uid.clone(),
            resource_version: meta.resource_version.clone(),
            field_path: None,
        },
        created: meta
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string())
            .unwrap_or_default(),
        annotations: object.annotations().clone(),
        hosts: Vec::new(),
        addresses: Vec::new(),
        hostnames: Vec::new(),
        backends: BTreeSet::new(),
    };
    let spec: RouteSpec = object
        .data
        .get("spec")
        .and_then(|s| RouteSpec::deserialize(s).ok())
        .unwrap_or_default();
    claim.hosts = spec.hostnames;
    for rule in &spec.rules {
        for backend in &rule.backend_refs {
            let is_service = backend.kind.as_deref().is_none_or(|k| k == "Service")
                && backend.group.as_deref().is_none_or(str::is_empty);
            if is_service {
                claim.backends.insert((
                    backend
                        .namespace
                        .clone()
                        .unwrap_or_else(|| namespace.clone()),
                    backend.name.clone(),
                ));
            }
        }
    }
    for parent in &spec.parent_refs {
        if parent.kind.as_deref().is_some_and(|k| k != "Gateway") {
            continue;
        }
        let key = (
            parent
                .namespace
                .clone()
                .unwrap_or_else(|| namespace.clone()),
            parent.name.clone(),
        );
        let Some(gateway) = gateways.get(&key) else {
            continue;
        };
        let status: GatewayStatus = gateway
            .data
            .get("status")
            .and_then(|s| GatewayStatus::deserialize(s).ok())
            .unwrap_or_default();
        for address in status.addresses {
            match address.kind.as_deref() {
                Some("Hostname") => claim.hostnames.push(address.value),
                _ => {
                    if let Ok(ip) = address.value.parse() {
                        claim.addresses.push(ip);
                    }
                }
            }
        }
    }
    claim
}
