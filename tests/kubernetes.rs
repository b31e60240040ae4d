//! Kubernetes discovery through a real `kube::Client` against a stand-in API server that speaks
//! the list/watch protocol (tests/common/kube_api.rs): the DNS answers gslbd gives over UDP as
//! Ingresses, EndpointSlices and annotations change; bad annotations and conflicts skipped and
//! reported (Events, metrics); watches that expire (410) or an API server that goes away.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::backends::{self, Backend, Mode};
use common::config::{ConfigFile, Kubernetes, Probe};
use common::kube_api::FakeApi;
use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

const PATIENCE: Duration = Duration::from_secs(15);

/// Region eu of eu and us, discovering from `api`, probing over HTTP on `probe_port`.
fn config(api: &FakeApi, probe_port: u16) -> ConfigFile {
    let mut config = ConfigFile::minimal(&["eu", "us"]).seen_from("eu");
    config.server.admin = Some("127.0.0.1:0".into());
    config.probe = Probe::http(probe_port, 200, 150).rise_fall(1, 2);
    config.kubernetes = Some(Kubernetes {
        api_server: Some(api.url()),
        resolve_interval_secs: Some(1),
        ..Kubernetes::default()
    });
    config.zone.ttl = Some(30);
    config
}

fn ingress(
    name: &str,
    hosts: &[&str],
    annotations: &[(&str, &str)],
    ips: &[&str],
    backend: &str,
) -> Value {
    let annotations: serde_json::Map<String, Value> = annotations
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let rules: Vec<Value> = hosts
        .iter()
        .map(|host| {
            json!({"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
                "backend": {"service": {"name": backend, "port": {"number": 80}}}}]}})
        })
        .collect();
    let ingress: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip})).collect();
    json!({
        "kind": "Ingress",
        "metadata": {"name": name, "namespace": "shop", "annotations": annotations},
        "spec": {"rules": rules},
        "status": {"loadBalancer": {"ingress": ingress}},
    })
}

/// The EndpointSlice of Service `service`, with one endpoint, ready or not.
fn slice(service: &str, ready: bool) -> Value {
    json!({
        "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-x1"), "namespace": "shop",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["198.51.100.100"], "conditions": {"ready": ready}}],
        "ports": [{"port": 8080, "protocol": "TCP"}],
    })
}

struct Cluster {
    api: FakeApi,
    server: TestServer,
    admin: SocketAddr,
    backends: Vec<Backend>,
}

/// A fake API server holding `objects`, HTTP backends on `ips` (one port), and gslbd.
async fn start<const N: usize>(ips: [&str; N], objects: Vec<Value>) -> Cluster {
    let api = FakeApi::start("127.0.0.1").await;
    let all = backends::http_on_one_port(ips, Mode::Status(200, "ok")).await;
    let port = all[0].addr.port();
    for object in objects {
        api.apply(object);
    }
    let server = start_config(&config(&api, port)).await;
    let admin = server.app.admin_addr().expect("admin");
    Cluster {
        api,
        server,
        admin,
        backends: Vec::from(all),
    }
}

impl Cluster {
    fn answer(&self, name: &str, rtype: RecordType) -> (ResponseCode, Vec<String>, Option<u32>) {
        let reply = udp(self.server.addr, &query(name, rtype));
        let mut got = addresses(&reply);
        got.sort();
        (
            reply.metadata.response_code,
            got,
            reply.answers.first().map(|r| r.ttl),
        )
    }

    /// Waits until `name` answers `want` (rcode, sorted addresses).
    async fn until(&self, name: &str, want: (ResponseCode, &[&str])) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (rcode, got, _) = self.answer(name, RecordType::A);
            if rcode == want.0 && got == want.1 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name}: still {rcode:?} {got:?}, want {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }

    fn metrics(&self) -> String {
        http_get(self.admin, "/metrics").1
    }

    async fn stop(self) {
        self.server.app.shutdown().await;
        self.api.stop();
        for backend in self.backends {
            backend.stop();
        }
    }
}

const NOERROR: ResponseCode = ResponseCode::NoError;

#[tokio::test(flavor = "multi_thread")]
async fn answers_follow_ingresses_endpoints_and_annotations() {
    let app = "app.gslb.example.com";
    let cluster = start(
        ["127.0.70.1", "127.0.70.2"],
        vec![
            ingress(
                "web",
                &[app, "www.example.org"],
                &[
                    ("gslbd.io/strategy", "round-robin"),
                    ("gslbd.io/all-down", "empty"),
                ],
                &["127.0.70.1"],
                "web",
            ),
            slice("web", true),
        ],
    )
    .await;
    cluster.until(app, (NOERROR, &["127.0.70.1"])).await;
    let deadline = Instant::now() + PATIENCE;
    while http_get(cluster.admin, "/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The ingress controller gets a second address: both are answered (after their probe).
    cluster.api.apply(ingress(
        "web",
        &[app],
        &[
            ("gslbd.io/strategy", "round-robin"),
            ("gslbd.io/all-down", "empty"),
        ],
        &["127.0.70.1", "127.0.70.2"],
        "web",
    ));
    cluster
        .until(app, (NOERROR, &["127.0.70.1", "127.0.70.2"]))
        .await;

    // The backend Service loses its ready endpoints: the region is down (no answer), though
    // the ingress probe still passes; and back.
    cluster.api.apply(slice("web", false));
    cluster.until(app, (NOERROR, &[])).await;
    let (_, body) = http_get(cluster.admin, "/explain?name=app&client=192.0.2.1");
    assert!(
        body.contains("0 of 1 backend Services have ready endpoints"),
        "{body}"
    );
    cluster.api.apply(slice("web", true));
    cluster
        .until(app, (NOERROR, &["127.0.70.1", "127.0.70.2"]))
        .await;

    // One address's ingress stops answering: the probe takes it out.
    cluster.backends[1].set(Mode::Status(503, "down"));
    cluster.until(app, (NOERROR, &["127.0.70.1"])).await;

    // Annotations change: TTL (k8gb's alias), then the strategy.
    cluster.api.apply(ingress(
        "web",
        &[app],
        &[
            ("k8gb.io/strategy", "failover"),
            ("k8gb.io/primary-geotag", "eu"),
            ("k8gb.io/dns-ttl-seconds", "7"),
        ],
        &["127.0.70.1", "127.0.70.2"],
        "web",
    ));
    let deadline = Instant::now() + PATIENCE;
    loop {
        let (_, got, ttl) = cluster.answer(app, RecordType::A);
        if ttl == Some(7) {
            assert_eq!(got, ["127.0.70.1"]);
            break;
        }
        assert!(Instant::now() < deadline, "TTL still {ttl:?}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let (_, state) = http_get(cluster.admin, "/state");
    let state: Value = serde_json::from_str(&state).expect("JSON");
    let service = state["services"]
        .as_array()
        .expect("services")
        .iter()
        .find(|s| s["name"] == "app.gslb.example.com.")
        .expect("app in /state")
        .clone();
    assert_eq!(service["strategy"], "failover");
    assert_eq!(service["order"], json!(["eu", "us"]));

    // Hosts outside the zone are not served; the Ingress gone, the name goes.
    assert_eq!(
        cluster.answer("www.example.org", RecordType::A).0,
        ResponseCode::Refused
    );
    cluster.api.delete("Ingress", "shop", "web");
    cluster.until(app, (ResponseCode::NXDomain, &[])).await;

    let metrics = cluster.metrics();
    assert!(
        sample(
            &metrics,
            "gslbd_kubernetes_watch_events_total",
            &["kind=\"Ingress\"", "event=\"apply\""]
        ) >= 2.0,
        "{metrics}"
    );
    assert!(
        sample(
            &metrics,
            "gslbd_kubernetes_watch_events_total",
            &["kind=\"Ingress\"", "event=\"delete\""]
        ) >= 1.0
    );
    assert_eq!(sample(&metrics, "gslbd_kubernetes_services", &[]), 0.0);
    let events = cluster.api.events();
    assert!(
        events
            .iter()
            .any(|e| e["reason"] == "Balanced" && e["regarding"]["name"] == "web"),
        "{events:?}"
    );
    cluster.stop().await;
}

/// One Ingress per class of bad annotation, beside a good one: each is skipped with a Warning
/// Event naming the annotation, a log line and a metric; the good one keeps working.
#[tokio::test(flavor = "multi_thread")]
async fn each_class_of_bad_annotation_skips_only_its_object_and_says_why() {
    let good = ingress(
        "good",
        &["good.gslb.example.com"],
        &[("gslbd.io/strategy", "round-robin")],
        &["127.0.71.1"],
        "web",
    );
    // (object name, annotations, key at fault)
    type Bad<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
    let bad: &[Bad<'_>] = &[
        (
            "strategy",
            &[("gslbd.io/strategy", "random")],
            "gslbd.io/strategy",
        ),
        (
            "region",
            &[
                ("gslbd.io/strategy", "failover"),
                ("gslbd.io/primary-region", "mars"),
            ],
            "gslbd.io/primary-region",
        ),
        (
            "order",
            &[("gslbd.io/strategy", "failover")],
            "gslbd.io/failover-order",
        ),
        (
            "weights",
            &[
                ("gslbd.io/strategy", "weighted"),
                ("gslbd.io/weights", "eu=lots"),
            ],
            "gslbd.io/weights",
        ),
        (
            "ttl",
            &[
                ("gslbd.io/strategy", "geo"),
                ("k8gb.io/dns-ttl-seconds", "-1"),
            ],
            "k8gb.io/dns-ttl-seconds",
        ),
        (
            "address",
            &[
                ("gslbd.io/strategy", "geo"),
                ("k8gb.io/exposed-ip-addresses", "10.0.0.999"),
            ],
            "k8gb.io/exposed-ip-addresses",
        ),
        (
            "probe",
            &[
                ("gslbd.io/strategy", "geo"),
                ("gslbd.io/probe-scheme", "ftp"),
            ],
            "gslbd.io/probe-scheme",
        ),
        (
            "policy",
            &[
                ("gslbd.io/strategy", "geo"),
                ("gslbd.io/health-policy", "most"),
            ],
            "gslbd.io/health-policy",
        ),
    ];
    let mut objects = vec![good, slice("web", true)];
    for (name, annotations, _) in bad {
        objects.push(ingress(
            name,
            &[&format!("{name}.gslb.example.com")],
            annotations,
            &["127.0.71.1"],
            "web",
        ));
    }
    // Outside the zone entirely.
    objects.push(ingress(
        "elsewhere",
        &["shop.example.org"],
        &[("gslbd.io/strategy", "geo")],
        &["127.0.71.1"],
        "web",
    ));
    let cluster = start(["127.0.71.1"], objects).await;
    cluster
        .until("good.gslb.example.com", (NOERROR, &["127.0.71.1"]))
        .await;
    for (name, _, key) in bad {
        let host = format!("{name}.gslb.example.com");
        assert_eq!(
            cluster.answer(&host, RecordType::A).0,
            ResponseCode::NXDomain,
            "{host}"
        );
        let deadline = Instant::now() + PATIENCE;
        loop {
            let events = cluster.api.events();
            let found = events.iter().find(|e| e["regarding"]["name"] == *name);
            if let Some(event) = found {
                assert_eq!(event["type"], "Warning", "{event}");
                assert_eq!(event["reason"], "BadAnnotation", "{event}");
                let note = event["note"].as_str().expect("note");
                assert!(note.contains(key), "{name}: {note}");
                assert_eq!(event["regarding"]["kind"], "Ingress");
                assert_eq!(event["regarding"]["namespace"], "shop");
                break;
            }
            assert!(Instant::now() < deadline, "no Event for {name}: {events:?}");
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
    }
    let metrics = cluster.metrics();
    assert_eq!(
        sample(
            &metrics,
            "gslbd_kubernetes_objects_skipped",
            &["kind=\"Ingress\"", "reason=\"BadAnnotation\""]
        ),
        bad.len() as f64,
        "{metrics}"
    );
    assert_eq!(
        sample(
            &metrics,
            "gslbd_kubernetes_objects_skipped",
            &["reason=\"NoHostInZone\""]
        ),
        1.0
    );
    assert_eq!(sample(&metrics, "gslbd_kubernetes_services", &[]), 1.0);

    // Fixing an object's annotation brings its host in.
    cluster.api.apply(ingress(
        "ttl",
        &["ttl.gslb.example.com"],
        &[
            ("gslbd.io/strategy", "geo"),
            ("k8gb.io/dns-ttl-seconds", "60"),
        ],
        &["127.0.71.1"],
        "web",
    ));
    cluster
        .until("ttl.gslb.example.com", (NOERROR, &["127.0.71.1"]))
        .await;
    cluster.stop().await;
}

/// Two Ingresses claim one host: the same settings share it; different settings, the older
/// object wins whatever the order they arrive in, and the other is told why.
#[tokio::test(flavor = "multi_thread")]
async fn two_objects_claiming_one_host_resolve_deterministically() {
    let host = "shared.gslb.example.com";
    let with_time = |mut object: Value, created: &str| {
        object["metadata"]["creationTimestamp"] = json!(created);
        object
    };
    // The newer one is listed first.
    let newer = with_time(
        ingress(
            "newer",
            &[host],
            &[("gslbd.io/strategy", "round-robin"), ("gslbd.io/ttl", "11")],
            &["127.0.72.2"],
            "web",
        ),
        "2026-03-01T00:00:00Z",
    );
    let older = with_time(
        ingress(
            "older",
            &[host],
            &[("gslbd.io/strategy", "round-robin"), ("gslbd.io/ttl", "22")],
            &["127.0.72.1"],
            "web",
        ),
        "2026-02-01T00:00:00Z",
    );
    let cluster = start(
        ["127.0.72.1", "127.0.72.2"],
        vec![newer, older.clone(), slice("web", true)],
    )
    .await;
    cluster.until(host, (NOERROR, &["127.0.72.1"])).await;
    assert_eq!(cluster.answer(host, RecordType::A).2, Some(22));
    let deadline = Instant::now() + PATIENCE;
    loop {
        let events = cluster.api.events();
        if let Some(event) = events
            .iter()
            .find(|e| e["regarding"]["name"] == "newer" && e["reason"] == "HostConflict")
        {
            let note = event["note"].as_str().expect("note");
            assert!(note.contains("Ingress shop/older"), "{note}");
            break;
        }
        assert!(Instant::now() < deadline, "no conflict Event: {events:?}");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(
        sample(
            &cluster.metrics(),
            "gslbd_kubernetes_objects_skipped",
            &["reason=\"HostConflict\""]
        ),
        1.0
    );
    // The newer one takes the same settings: both addresses serve the host.
    cluster.api.apply(with_time(
        ingress(
            "newer",
            &[host],
            &[("gslbd.io/strategy", "round-robin"), ("gslbd.io/ttl", "22")],
            &["127.0.72.2"],
            "web",
        ),
        "2026-03-01T00:00:00Z",
    ));
    cluster
        .until(host, (NOERROR, &["127.0.72.1", "127.0.72.2"]))
        .await;
    cluster.stop().await;
}

/// The API server goes away: the last known services keep answering and the watches retry;
/// it comes back after its history was compacted (410 Gone): the watches list again, and the
/// changes made meanwhile are applied without losing or duplicating services.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_api_server_and_expired_watches_lose_nothing() {
    let a = "a.gslb.example.com";
    let b = "b.gslb.example.com";
    let annotations = [("gslbd.io/strategy", "round-robin")];
    let cluster = start(
        ["127.0.73.1", "127.0.73.2"],
        vec![
            ingress("a", &[a], &annotations, &["127.0.73.1"], "web"),
            ingress("b", &[b], &annotations, &["127.0.73.2"], "web"),
            slice("web", true),
        ],
    )
    .await;
    cluster.until(a, (NOERROR, &["127.0.73.1"])).await;
    cluster.until(b, (NOERROR, &["127.0.73.2"])).await;

    cluster.api.set_down(true).await;
    let deadline = Instant::now() + PATIENCE;
    while sample(
        &cluster.metrics(),
        "gslbd_kubernetes_watch_errors_total",
        &[],
    ) < 1.0
    {
        assert!(
            Instant::now() < deadline,
            "no watch error counted: {:?}",
            cluster.api.requests()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Still answering from the last known state.
    for _ in 0..5 {
        assert_eq!(cluster.answer(a, RecordType::A).1, ["127.0.73.1"]);
        assert_eq!(cluster.answer(b, RecordType::A).1, ["127.0.73.2"]);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Meanwhile: b is deleted, c is created, a moves; the history is compacted.
    cluster.api.delete("Ingress", "shop", "b");
    cluster.api.apply(ingress(
        "c",
        &["c.gslb.example.com"],
        &annotations,
        &["127.0.73.2"],
        "web",
    ));
    cluster
        .api
        .apply(ingress("a", &[a], &annotations, &["127.0.73.2"], "web"));
    cluster.api.compact();
    let lists_before = cluster
        .api
        .requests()
        .iter()
        .filter(|r| r.starts_with("LIST /apis/networking.k8s.io/v1/ingresses"))
        .count();
    cluster.api.set_down(false).await;

    cluster.until(a, (NOERROR, &["127.0.73.2"])).await;
    cluster.until(b, (ResponseCode::NXDomain, &[])).await;
    cluster
        .until("c.gslb.example.com", (NOERROR, &["127.0.73.2"]))
        .await;
    let lists_after = cluster
        .api
        .requests()
        .iter()
        .filter(|r| r.starts_with("LIST /apis/networking.k8s.io/v1/ingresses"))
        .count();
    assert!(lists_after > lists_before, "the watch listed again");
    // Exactly the two live services, once each.
    let (_, state) = http_get(cluster.admin, "/state");
    let state: Value = serde_json::from_str(&state).expect("JSON");
    let mut names: Vec<&str> = state["services"]
        .as_array()
        .expect("services")
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    names.sort();
    assert_eq!(names, ["a.gslb.example.com.", "c.gslb.example.com."]);
    cluster.stop().await;
}

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
