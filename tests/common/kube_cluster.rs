//! One gslbd region discovering from a stand-in Kubernetes API server ([`FakeApi`]), with
//! HTTP backends to probe: the harness of the Kubernetes tests.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::RecordType;
use serde_json::{Value, json};

use super::backends::{self, Backend, Mode};
use super::config::{ConfigFile, Kubernetes, Probe};
use super::kube_api::FakeApi;
use super::{TestServer, addresses, http_get, query, start_config, udp};

pub const PATIENCE: Duration = Duration::from_secs(15);

/// Region eu of eu and us, discovering from `api`, probing over HTTP on `probe_port`.
pub fn config(api: &FakeApi, probe_port: u16) -> ConfigFile {
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

/// An annotated Ingress in namespace `shop` routing `hosts` to Service `backend`, with load
/// balancer addresses `ips`.
pub fn ingress(
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
pub fn slice(service: &str, ready: bool) -> Value {
    json!({
        "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-x1"), "namespace": "shop",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["198.51.100.100"], "conditions": {"ready": ready}}],
        "ports": [{"port": 8080, "protocol": "TCP"}],
    })
}

pub struct Cluster {
    pub api: FakeApi,
    pub server: TestServer,
    pub admin: SocketAddr,
    pub backends: Vec<Backend>,
}

/// A fake API server holding `objects`, HTTP backends on `ips` (one port), and gslbd.
pub async fn start<const N: usize>(ips: [&str; N], objects: Vec<Value>) -> Cluster {
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
    pub fn answer(
        &self,
        name: &str,
        rtype: RecordType,
    ) -> (ResponseCode, Vec<String>, Option<u32>) {
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
    pub async fn until(&self, name: &str, want: (ResponseCode, &[&str])) {
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

    pub fn metrics(&self) -> String {
        http_get(self.admin, "/metrics").1
    }

    pub async fn stop(self) {
        self.server.app.shutdown().await;
        self.api.stop();
        for backend in self.backends {
            backend.stop();
        }
    }
}

pub const NOERROR: ResponseCode = ResponseCode::NoError;
