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

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use k8s_openapi::api::core::v1::ServiceSpec;
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};
    use k8s_openapi::api::networking::v1::{
        HTTPIngressPath, HTTPIngressRuleValue, IngressBackend, IngressLoadBalancerIngress,
        IngressLoadBalancerStatus, IngressRule, IngressServiceBackend, IngressSpec, IngressStatus,
    };
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
    use serde_json::json;

    use super::*;
    use crate::kubernetes::discover::{self, Outcome};
    use crate::model::Strategy;

    const ROUND_ROBIN: (&str, &str) = ("gslbd.io/strategy", "round-robin");
    const GEO: (&str, &str) = ("gslbd.io/strategy", "geo");
    /// When the objects of a test were created, unless the test is about their age.
    const CREATED: &str = "2024-01-01T00:00:00Z";

    /// Metadata of `name` in namespace `shop`, created at `created` (RFC 3339).
    fn meta(name: &str, created: &str, annotations: &[(&str, &str)]) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some("shop".to_string()),
            creation_timestamp: Some(serde_json::from_value(json!(created)).expect("RFC 3339")),
            annotations: (!annotations.is_empty()).then(|| {
                annotations
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect()
            }),
            ..ObjectMeta::default()
        }
    }

    /// An Ingress routing `hosts` to Service `web`, its load balancer at 192.0.2.10.
    fn ingress(
        name: &str,
        created: &str,
        annotations: &[(&str, &str)],
        hosts: &[&str],
    ) -> Arc<Ingress> {
        let backend = IngressBackend {
            service: Some(IngressServiceBackend {
                name: "web".to_string(),
                port: None,
            }),
            resource: None,
        };
        let rules = hosts
            .iter()
            .map(|host| IngressRule {
                host: Some(host.to_string()),
                http: Some(HTTPIngressRuleValue {
                    paths: vec![HTTPIngressPath {
                        backend: backend.clone(),
                        path: Some("/".to_string()),
                        path_type: "Prefix".to_string(),
                    }],
                }),
            })
            .collect();
        Arc::new(Ingress {
            metadata: meta(name, created, annotations),
            spec: Some(IngressSpec {
                rules: Some(rules),
                ..IngressSpec::default()
            }),
            status: Some(IngressStatus {
                load_balancer: Some(IngressLoadBalancerStatus {
                    ingress: Some(vec![IngressLoadBalancerIngress {
                        ip: Some("192.0.2.10".to_string()),
                        ..IngressLoadBalancerIngress::default()
                    }]),
                }),
            }),
        })
    }

    /// A Service of `type_`.
    fn service(name: &str, type_: &str, annotations: &[(&str, &str)]) -> Arc<Service> {
        Arc::new(Service {
            metadata: meta(name, CREATED, annotations),
            spec: Some(ServiceSpec {
                type_: Some(type_.to_string()),
                ..ServiceSpec::default()
            }),
            status: None,
        })
    }

    /// An endpoint with `addresses` and the ready condition `ready` (`None`: unset).
    fn endpoint(addresses: &[&str], ready: Option<bool>) -> Endpoint {
        Endpoint {
            addresses: addresses.iter().map(|a| a.to_string()).collect(),
            conditions: Some(EndpointConditions {
                ready,
                ..EndpointConditions::default()
            }),
            ..Endpoint::default()
        }
    }

    /// An EndpointSlice labelled for Service `service` (unlabelled when `None`).
    fn slice(name: &str, service: Option<&str>, endpoints: Vec<Endpoint>) -> Arc<EndpointSlice> {
        let mut metadata = meta(name, CREATED, &[]);
        metadata.labels = service.map(|s| [(SERVICE_NAME_LABEL.to_string(), s.to_string())].into());
        Arc::new(EndpointSlice {
            address_type: "IPv4".to_string(),
            endpoints,
            metadata,
            ports: None,
        })
    }

    /// A Gateway API object of `kind` from its manifest's remaining fields.
    fn gateway_api(kind: &str, mut manifest: serde_json::Value) -> Arc<DynamicObject> {
        manifest["apiVersion"] = json!("gateway.networking.k8s.io/v1");
        manifest["kind"] = json!(kind);
        Arc::new(serde_json::from_value(manifest).expect("a valid object"))
    }

    /// What one claim says, as text, to compare whole.
    #[derive(Debug, PartialEq)]
    struct Said {
        id: String,
        hosts: Vec<String>,
        addresses: Vec<String>,
        hostnames: Vec<String>,
        /// `namespace/name`.
        backends: Vec<String>,
    }

    fn said(claim: &Claim) -> Said {
        Said {
            id: claim.id.to_string(),
            hosts: claim.hosts.clone(),
            addresses: claim.addresses.iter().map(IpAddr::to_string).collect(),
            hostnames: claim.hostnames.clone(),
            backends: claim
                .backends
                .iter()
                .map(|(namespace, name)| format!("{namespace}/{name}"))
                .collect(),
        }
    }

    fn texts(items: &[&str]) -> Vec<String> {
        items.iter().map(|item| item.to_string()).collect()
    }

    /// An EndpointSlice of Service `web`.
    fn web_slice(name: &str, endpoints: Vec<Endpoint>) -> Arc<EndpointSlice> {
        slice(name, Some("web"), endpoints)
    }

    /// Whether `slices` make Service shop/web ready (`None`: no slice of it).
    fn web_readiness(slices: &[Arc<EndpointSlice>]) -> Option<bool> {
        readiness(slices)
            .get(&("shop".to_string(), "web".to_string()))
            .copied()
    }

    #[test]
    fn unannotated_objects_give_no_claim() {
        let ingresses = [
            ingress("plain", CREATED, &[], &["a.gslb.example.com"]),
            ingress(
                "other",
                CREATED,
                &[("example.com/team", "shop")],
                &["b.gslb.example.com"],
            ),
        ];
        let services = [service("lb", "LoadBalancer", &[])];
        let routes = [gateway_api(
            "HTTPRoute",
            json!({"metadata": {"name": "r", "namespace": "shop"},
                   "spec": {"hostnames": ["c.gslb.example.com"]}}),
        )];
        let objects = Objects {
            ingresses: &ingresses,
            services: &services,
            routes: &routes,
            gateways: &[],
        };
        assert!(claims(&objects).is_empty());
    }

    #[test]
    fn annotated_ingress_claims_its_hosts_addresses_and_backends() {
        let ingresses = [ingress(
            "shop",
            CREATED,
            &[ROUND_ROBIN],
            &["a.gslb.example.com", "b.gslb.example.com"],
        )];
        let claims = claims(&Objects {
            ingresses: &ingresses,
            ..Objects::default()
        });
        let expected = Said {
            id: "Ingress shop/shop".to_string(),
            hosts: texts(&["a.gslb.example.com", "b.gslb.example.com"]),
            addresses: texts(&["192.0.2.10"]),
            hostnames: Vec::new(),
            backends: texts(&["shop/web"]),
        };
        assert_eq!(claims.iter().map(said).collect::<Vec<_>>(), [expected]);
    }

    #[test]
    fn only_annotated_load_balancer_services_claim() {
        let services = [
            service("lb", "LoadBalancer", &[ROUND_ROBIN]),
            service("internal", "ClusterIP", &[ROUND_ROBIN]),
        ];
        let claims = claims(&Objects {
            services: &services,
            ..Objects::default()
        });
        let ids: Vec<String> = claims.iter().map(|c| c.id.to_string()).collect();
        assert_eq!(ids, ["Service shop/lb"]);
    }

    #[test]
    fn http_route_takes_its_parent_gateways_addresses() {
        let gateways = [
            gateway_api(
                "Gateway",
                json!({"metadata": {"name": "edge", "namespace": "infra"},
                       "status": {"addresses": [{"type": "IPAddress", "value": "192.0.2.74"},
                                                {"type": "Hostname", "value": "lb.example.net"}]}}),
            ),
            gateway_api(
                "Gateway",
                json!({"metadata": {"name": "unrelated", "namespace": "infra"},
                       "status": {"addresses": [{"value": "192.0.2.99"}]}}),
            ),
        ];
        let routes = [gateway_api(
            "HTTPRoute",
            json!({"metadata": {"name": "shop", "namespace": "shop",
                                "annotations": {"gslbd.io/strategy": "failover"}},
                   "spec": {"parentRefs": [{"name": "edge", "namespace": "infra"}],
                            "hostnames": ["route.gslb.example.com"],
                            "rules": [{"backendRefs": [{"name": "web"}]}]}}),
        )];
        let claims = claims(&Objects {
            routes: &routes,
            gateways: &gateways,
            ..Objects::default()
        });
        let expected = Said {
            id: "HTTPRoute shop/shop".to_string(),
            hosts: texts(&["route.gslb.example.com"]),
            addresses: texts(&["192.0.2.74"]),
            hostnames: texts(&["lb.example.net"]),
            backends: texts(&["shop/web"]),
        };
        assert_eq!(claims.iter().map(said).collect::<Vec<_>>(), [expected]);
    }

    #[test]
    fn endpoint_ready_or_with_the_condition_unset_counts_as_ready() {
        let mut no_conditions = endpoint(&["10.0.0.1"], None);
        no_conditions.conditions = None;
        let ready = [
            endpoint(&["10.0.0.1"], Some(true)),
            endpoint(&["10.0.0.1"], None),
            no_conditions,
        ];
        for endpoint in ready {
            let slices = [web_slice("web-1", vec![endpoint.clone()])];
            assert_eq!(web_readiness(&slices), Some(true), "{endpoint:?}");
        }
    }

    #[test]
    fn endpoint_not_ready_or_without_addresses_is_not_ready() {
        let not_ready = [
            vec![endpoint(&["10.0.0.1"], Some(false))],
            vec![endpoint(&[], Some(true))],
            Vec::new(),
        ];
        for endpoints in not_ready {
            let slices = [web_slice("web-1", endpoints.clone())];
            assert_eq!(web_readiness(&slices), Some(false), "{endpoints:?}");
        }
    }

    #[test]
    fn a_service_is_ready_when_any_of_its_slices_is() {
        let slices = [
            web_slice("web-1", vec![endpoint(&["10.0.0.1"], Some(false))]),
            web_slice("web-2", vec![endpoint(&["10.0.0.2"], Some(true))]),
        ];
        assert_eq!(web_readiness(&slices), Some(true));
        // Either order: a later unready slice does not undo an earlier ready one.
        let reversed = [slices[1].clone(), slices[0].clone()];
        assert_eq!(web_readiness(&reversed), Some(true));
    }

    #[test]
    fn slices_without_the_service_name_label_are_ignored() {
        let slices = [slice(
            "orphan",
            None,
            vec![endpoint(&["10.0.0.1"], Some(true))],
        )];
        assert!(readiness(&slices).is_empty());
    }

    #[test]
    fn host_conflict_the_older_ingress_wins() {
        let defaults = crate::kubernetes::test_settings().defaults;
        let ingresses = [
            ingress(
                "newer",
                "2024-06-01T00:00:00Z",
                &[GEO],
                &["shop.gslb.example.com"],
            ),
            ingress("older", CREATED, &[ROUND_ROBIN], &["shop.gslb.example.com"]),
        ];
        let claims = claims(&Objects {
            ingresses: &ingresses,
            ..Objects::default()
        });
        let discovery = discover::discover(claims, &HashMap::new(), &HashMap::new(), &defaults);
        assert_eq!(discovery.services.len(), 1);
        assert_eq!(discovery.services[0].strategy, Strategy::RoundRobin);
        let outcome = |name: &str| {
            discovery
                .decisions
                .iter()
                .find(|(id, _)| id.name == name)
                .map(|(_, decision)| decision.outcome.clone())
        };
        assert_eq!(
            outcome("older"),
            Some(Outcome::Balanced {
                hosts: vec!["shop.gslb.example.com".to_string()]
            })
        );
        match outcome("newer") {
            Some(Outcome::Skipped { reason, message }) => {
                assert_eq!(reason, "HostConflict");
                assert!(message.contains("Ingress shop/older"), "{message}");
            }
            other => panic!("the newer Ingress should be skipped, got {other:?}"),
        }
    }

    /// Discovers from `objects` with the test settings' defaults (zone `gslb.example.com`, eu's
    /// nameserver `ns-eu.gslb.example.com` inside it).
    fn discover_objects(objects: &Objects<'_>) -> discover::Discovery {
        let defaults = crate::kubernetes::test_settings().defaults;
        discover::discover(claims(objects), &HashMap::new(), &HashMap::new(), &defaults)
    }

    /// (host, reason) of each refused host of the object named `name`.
    fn refused(discovery: &discover::Discovery, name: &str) -> Vec<(String, &'static str)> {
        discovery
            .decisions
            .iter()
            .find(|(id, _)| id.name == name)
            .map(|(_, decision)| {
                decision
                    .refused
                    .iter()
                    .map(|r| (r.host.clone(), r.refusal.as_str()))
                    .collect()
            })
            .unwrap_or_default()
    }

    #[test]
    fn hosts_no_service_may_claim_are_refused_and_the_others_balanced() {
        let ingresses = [ingress(
            "hijack",
            CREATED,
            &[ROUND_ROBIN],
            &[
                "ns-eu.gslb.example.com",
                "gslb.example.com",
                "*.gslb.example.com",
                "shop.example.org",
                "shop.gslb.example.com",
            ],
        )];
        let discovery = discover_objects(&Objects {
            ingresses: &ingresses,
            ..Objects::default()
        });
        let names: Vec<String> = discovery
            .services
            .iter()
            .map(|s| s.name.to_string())
            .collect();
        assert_eq!(names, ["shop.gslb.example.com."]);
        assert_eq!(
            refused(&discovery, "hijack"),
            [
                ("ns-eu.gslb.example.com".to_string(), "nameserver"),
                ("gslb.example.com".to_string(), "apex"),
                ("*.gslb.example.com".to_string(), "wildcard"),
            ],
            "outside the zone is ignored, not refused"
        );
        let decision = &discovery.decisions.values().next().expect("one object");
        assert_eq!(
            decision.outcome,
            Outcome::Balanced {
                hosts: vec!["shop.gslb.example.com".to_string()]
            }
        );
        assert!(
            decision.refused[0]
                .message
                .contains("ns-eu.gslb.example.com cannot be balanced: it is a nameserver name"),
            "{:?}",
            decision.refused
        );
    }

    #[test]
    fn an_object_whose_hosts_in_the_zone_are_all_refused_is_skipped_saying_why() {
        // A LoadBalancer Service naming the apex through k8gb's hostname annotation.
        let services = [service(
            "lb",
            "LoadBalancer",
            &[
                ROUND_ROBIN,
                ("k8gb.io/hostname", "GSLB.example.com.,www.example.org"),
            ],
        )];
        let discovery = discover_objects(&Objects {
            services: &services,
            ..Objects::default()
        });
        assert!(discovery.services.is_empty());
        assert_eq!(
            refused(&discovery, "lb"),
            [("GSLB.example.com".to_string(), "apex")]
        );
        match &discovery
            .decisions
            .values()
            .next()
            .expect("one object")
            .outcome
        {
            Outcome::Skipped { reason, message } => {
                assert_eq!(*reason, discover::HOST_REFUSED);
                assert!(message.contains("it is the zone apex"), "{message}");
            }
            other => panic!("the Service should be skipped, got {other:?}"),
        }
    }
}
