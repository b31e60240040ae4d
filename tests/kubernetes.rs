//! Kubernetes discovery through a real `kube::Client` against a stand-in API server that speaks
//! the list/watch protocol (tests/common/kube_api.rs): the DNS answers gslbd gives over UDP as
//! Ingresses, EndpointSlices and annotations change; bad annotations and conflicts skipped and
//! reported (Events, metrics); watches that expire (410) or an API server that goes away.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::backends::{self, Backend, Mode};
use common::kube_api::FakeApi;
use common::*;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

const PATIENCE: Duration = Duration::from_secs(15);

fn config(api: &FakeApi, probe_port: u16) -> String {
    format!(
        r#"
local_region = "eu"

[server]
listen = ["127.0.0.1:0"]
udp_workers = 1
admin = "127.0.0.1:0"

[probe]
kind = "http"
port = {probe_port}
interval_ms = 200
timeout_ms = 150
rise = 1
fall = 2

[kubernetes]
api_server = "{url}"
resolve_interval_secs = 1

[zone]
name = "gslb.example.com"
ttl = 30

[[regions]]
name = "eu"
nameserver = "ns-eu.gslb.example.com"
glue = ["127.0.10.1"]

[[regions]]
name = "us"
nameserver = "ns-us.gslb.example.com"
glue = ["127.0.20.1"]
"#,
        url = api.url()
    )
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
async fn start(ips: &[&str], objects: Vec<Value>) -> Cluster {
    let api = FakeApi::start("127.0.0.1").await;
    let first = backends::http(backends::bind(ips[0], 0).await, Mode::Status(200, "ok"));
    let port = first.addr.port();
    let mut all = vec![first];
    for ip in &ips[1..] {
        all.push(backends::http(
            backends::bind(ip, port).await,
            Mode::Status(200, "ok"),
        ));
    }
    for object in objects {
        api.apply(object);
    }
    let server = start_text(&config(&api, port)).await;
    let admin = server.app.admin_addr().expect("admin");
    Cluster {
        api,
        server,
        admin,
        backends: all,
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

fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect admin");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The value of the sample named `name` whose labels hold every fragment.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> f64 {
    metrics
        .lines()
        .filter(|l| {
            l.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with(['{', ' ']))
                && labels.iter().all(|f| l.contains(f))
        })
        .filter_map(|l| l.rsplit_once(' ').and_then(|(_, v)| v.parse::<f64>().ok()))
        .sum()
}

const NOERROR: ResponseCode = ResponseCode::NoError;

#[tokio::test(flavor = "multi_thread")]
async fn answers_follow_ingresses_endpoints_and_annotations() {
    let app = "app.gslb.example.com";
    let cluster = start(
        &["127.0.70.1", "127.0.70.2"],
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
