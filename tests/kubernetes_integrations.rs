//! Kubernetes discovery beyond Ingresses, against the stand-in API server: Gateway API
//! HTTPRoutes and LoadBalancer Services balanced too, two clusters (regions) that discover and
//! gossip and fail over together, and the delegation published as an ExternalDNS DNSEndpoint.

mod common;

use std::time::{Duration, Instant};

use common::backends::{self, Mode};
use common::kube_api::FakeApi;
use common::kube_cluster::{NOERROR, PATIENCE, config, ingress, slice, start};
use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::json;

/// Gateway API HTTPRoutes take their addresses from the parent Gateway's status, and
/// LoadBalancer Services name their host by annotation; status host names are resolved.
#[tokio::test(flavor = "multi_thread")]
async fn http_routes_and_load_balancer_services_are_balanced_too() {
    let gateway = json!({
        "kind": "Gateway",
        "metadata": {"name": "edge", "namespace": "infra"},
        "spec": {"gatewayClassName": "example", "listeners": [{"name": "http", "port": 80, "protocol": "HTTP"}]},
        "status": {"addresses": [{"type": "IPAddress", "value": "127.0.74.1"}]},
    });
    let route = json!({
        "kind": "HTTPRoute",
        "metadata": {"name": "shop", "namespace": "shop",
                     "annotations": {"gslbd.io/strategy": "failover", "gslbd.io/failover-order": "eu,us"}},
        "spec": {
            "parentRefs": [{"name": "edge", "namespace": "infra"}],
            "hostnames": ["route.gslb.example.com"],
            "rules": [{"backendRefs": [{"name": "web", "port": 80}]}],
        },
    });
    let service = json!({
        "kind": "Service",
        "metadata": {"name": "tcp-app", "namespace": "shop",
                     "annotations": {"gslbd.io/strategy": "round-robin",
                                     "k8gb.io/hostname": "lb.gslb.example.com",
                                     "gslbd.io/probe-scheme": "none"}},
        "spec": {"type": "LoadBalancer", "ports": [{"port": 5432}]},
        "status": {"loadBalancer": {"ingress": [{"hostname": "localhost"}]}},
    });
    let mut tcp_slice = slice("tcp-app", true);
    tcp_slice["metadata"]["name"] = json!("tcp-app-x1");
    let plain_service = json!({
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"type": "ClusterIP", "ports": [{"port": 80}]},
    });
    let cluster = start(
        ["127.0.74.1"],
        vec![
            gateway,
            route,
            service,
            plain_service,
            slice("web", true),
            tcp_slice,
        ],
    )
    .await;
    cluster
        .until("route.gslb.example.com", (NOERROR, &["127.0.74.1"]))
        .await;
    // "localhost" resolves to loopback addresses (from /etc/hosts: nothing leaves the host).
    cluster
        .until("lb.gslb.example.com", (NOERROR, &["127.0.0.1"]))
        .await;
    // The route's backend loses its endpoints: down; the Service's own are separate.
    cluster.api.apply(slice("web", false));
    cluster
        .until("route.gslb.example.com", (NOERROR, &["127.0.74.1"]))
        .await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, body) = http_get(cluster.admin, "/explain?name=route&client=192.0.2.1");
        if body.contains("0 of 1 backend Services") {
            // Failover with every region down answers fail-open by default.
            assert!(body.contains("fail-open"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "{body}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(
        cluster.answer("lb.gslb.example.com", RecordType::A).1,
        ["127.0.0.1"]
    );
    cluster.stop().await;
}

/// The README's two-cluster example: eu and us each run gslbd against their own API server,
/// with the same annotated Ingress; gossip carries each region's addresses and health, so
/// both servers answer alike and fail over together when eu's backends lose their endpoints.
/// A host annotated in one cluster only is answered by both servers too.
#[tokio::test(flavor = "multi_thread")]
async fn two_clusters_fail_over_together() {
    let keys = common::cluster::keys();
    let app = "app.gslb.example.com";
    let annotations = [
        ("gslbd.io/strategy", "failover"),
        ("gslbd.io/primary-region", "eu"),
        ("gslbd.io/ttl", "5"),
    ];
    let [first, second] =
        backends::http_on_one_port(["127.0.75.1", "127.0.75.2"], Mode::Status(200, "ok")).await;
    let port = first.addr.port();
    let mut apis = Vec::new();
    let mut nodes: Vec<TestServer> = Vec::new();
    for (i, (region, ip)) in [("eu", "127.0.75.1"), ("us", "127.0.75.2")]
        .iter()
        .enumerate()
    {
        let api = FakeApi::start("127.0.0.1").await;
        api.apply(ingress("web", &[app], &annotations, &[ip], "web"));
        api.apply(slice("web", true));
        let seeds: Vec<String> = nodes
            .iter()
            .filter_map(|n| n.app.gossip().map(|g| g.local_addr.to_string()))
            .collect();
        let mut config = config(&api, port).seen_from(region);
        config.gossip = Some(keys.gossip(i, &["eu", "us"], "127.0.0.1:0", &seeds));
        nodes.push(start_config(&config).await);
        apis.push(api);
    }
    for node in &nodes {
        wait_for_answer(node.addr, app, PATIENCE, |a| a == ["127.0.75.1"]).await;
    }
    // eu's backend Service loses its ready endpoints: both servers move to us.
    apis[0].apply(slice("web", false));
    for node in &nodes {
        wait_for_answer(node.addr, app, PATIENCE, |a| a == ["127.0.75.2"]).await;
    }
    apis[0].apply(slice("web", true));
    for node in &nodes {
        wait_for_answer(node.addr, app, PATIENCE, |a| a == ["127.0.75.1"]).await;
    }

    // A host annotated in us's cluster only: eu's server answers it too, the same way (the
    // rules travel in us's report); deleted, it is gone from both.
    let only = "only-us.gslb.example.com";
    apis[1].apply(ingress(
        "only-us",
        &[only],
        &[("gslbd.io/strategy", "round-robin"), ("gslbd.io/ttl", "9")],
        &["127.0.75.2"],
        "web",
    ));
    for node in &nodes {
        wait_for_answer(node.addr, only, PATIENCE, |a| a == ["127.0.75.2"]).await;
        let reply = udp(node.addr, &query(only, RecordType::A));
        assert_eq!(reply.answers[0].ttl, 9);
    }
    apis[1].delete("Ingress", "shop", "only-us");
    for node in &nodes {
        let deadline = Instant::now() + PATIENCE;
        while udp(node.addr, &query(only, RecordType::A))
            .metadata
            .response_code
            != ResponseCode::NXDomain
        {
            assert!(Instant::now() < deadline, "{only} still served");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
    for node in nodes {
        node.app.shutdown().await;
    }
    for api in apis {
        api.stop();
    }
    first.stop();
    second.stop();
}

/// With `dns_endpoint`, gslbd keeps an ExternalDNS DNSEndpoint with the zone's NS set and
/// glue (server-side apply), for an ExternalDNS to publish in the parent zone.
#[tokio::test(flavor = "multi_thread")]
async fn the_delegation_is_published_as_an_external_dns_endpoint() {
    let api = FakeApi::start("127.0.0.1").await;
    let mut config = config(&api, 9);
    let kubernetes = config.kubernetes.as_mut().expect("kubernetes");
    kubernetes.dns_endpoint = Some("gslbd/gslbd-delegation".into());
    let server = start_config(&config).await;
    let deadline = Instant::now() + PATIENCE;
    let (target, content_type, object) = loop {
        if let Some(applied) = api.applied().pop() {
            break applied;
        }
        assert!(Instant::now() < deadline, "no DNSEndpoint applied");
        tokio::time::sleep(Duration::from_millis(30)).await;
    };
    assert!(
        target.starts_with(
            "/apis/externaldns.k8s.io/v1alpha1/namespaces/gslbd/dnsendpoints/gslbd-delegation?"
        ) && target.contains("fieldManager=gslbd"),
        "{target}"
    );
    assert_eq!(content_type, "application/apply-patch+yaml");
    assert_eq!(object["kind"], "DNSEndpoint");
    assert_eq!(
        object["spec"]["endpoints"],
        json!([
            {"dnsName": "gslb.example.com", "recordType": "NS", "recordTTL": 3600,
             "targets": ["ns-eu.gslb.example.com", "ns-us.gslb.example.com"]},
            {"dnsName": "ns-eu.gslb.example.com", "recordType": "A", "recordTTL": 3600,
             "targets": ["127.0.10.1"]},
            {"dnsName": "ns-us.gslb.example.com", "recordType": "A", "recordTTL": 3600,
             "targets": ["127.0.20.1"]},
        ])
    );
    server.app.shutdown().await;
    api.stop();
}

/// `gslbd.io/target-name` (k8gb issue 1800): the region's target is a host name, answered as a
/// CNAME: a fixed one, or (`status`) the load balancer's host name from the object's status,
/// answered as it is instead of resolved.
#[tokio::test(flavor = "multi_thread")]
async fn a_target_name_annotation_answers_a_cname() {
    let fixed = ingress(
        "fixed",
        &["fixed.gslb.example.com"],
        &[
            ("gslbd.io/strategy", "round-robin"),
            ("gslbd.io/target-name", "LB-7.eu-west-1.elb.example.net"),
            ("gslbd.io/probe-scheme", "none"),
        ],
        &["127.0.75.1"],
        "web",
    );
    let mut from_status = ingress(
        "status",
        &["status.gslb.example.com"],
        &[
            ("gslbd.io/strategy", "round-robin"),
            ("gslbd.io/target-name", "status"),
            ("gslbd.io/probe-scheme", "none"),
        ],
        &[],
        "web",
    );
    from_status["status"]["loadBalancer"]["ingress"] = json!([{"hostname": "localhost"}]);
    let inside = ingress(
        "inside",
        &["inside.gslb.example.com"],
        &[
            ("gslbd.io/strategy", "round-robin"),
            ("gslbd.io/target-name", "fixed.gslb.example.com"),
        ],
        &["127.0.75.1"],
        "web",
    );
    let cluster = start(
        ["127.0.75.1"],
        vec![fixed, from_status, inside, slice("web", true)],
    )
    .await;
    let cname = |name: &str| {
        let reply = udp(cluster.server.addr, &query(name, RecordType::A));
        let answers: Vec<String> = reply
            .answers
            .iter()
            .map(|r| format!("{} {}", r.record_type(), r.data))
            .collect();
        (reply.metadata.response_code, answers)
    };
    let deadline = Instant::now() + PATIENCE;
    loop {
        let got = [
            cname("fixed.gslb.example.com"),
            cname("status.gslb.example.com"),
        ];
        let want = [
            (
                NOERROR,
                vec!["CNAME lb-7.eu-west-1.elb.example.net.".to_string()],
            ),
            (NOERROR, vec!["CNAME localhost.".to_string()]),
        ];
        if got == want {
            break;
        }
        assert!(Instant::now() < deadline, "still {got:?}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // A name inside the zone is refused: the object is skipped, and says why.
    assert_eq!(cname("inside.gslb.example.com").0, ResponseCode::NXDomain);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let events = cluster.api.events();
        let found = events.iter().find(|e| e["regarding"]["name"] == "inside");
        if let Some(event) = found {
            assert_eq!(event["reason"], "BadAnnotation", "{event}");
            let note = event["note"].as_str().expect("note");
            assert!(note.contains("inside the zone"), "{note}");
            break;
        }
        assert!(Instant::now() < deadline, "no Event: {events:?}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    cluster.stop().await;
}
