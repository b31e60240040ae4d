//! Three gslbd regions gossiping on loopback, each probing its own real HTTP backend.

use std::sync::Arc;
use std::time::Duration;

use gslbd::app::App;
use gslbd::config;
use gslbd::gossip::keys::generate;
use gslbd::gossip::transport::Partition;
use gslbd::health::probe::NetProbes;

use super::backends::{self, Backend, Mode};

pub const PATIENCE: Duration = Duration::from_secs(20);
pub const REGIONS: [&str; 3] = ["eu", "us", "ap"];

pub struct Keys {
    pub cluster: String,
    pub seeds: Vec<String>,
    pub publics: Vec<String>,
}

pub fn keys() -> Keys {
    let mut keys = Keys {
        cluster: String::new(),
        seeds: Vec::new(),
        publics: Vec::new(),
    };
    for _ in REGIONS {
        let (cluster, seed, public) = generate().expect("keys");
        if keys.cluster.is_empty() {
            keys.cluster = cluster;
        }
        keys.seeds.push(seed);
        keys.publics.push(public);
    }
    keys
}

/// The config of region `REGIONS[me]`; `net` is a distinct 127.0.<net>.x range per test.
#[allow(
    clippy::too_many_arguments,
    reason = "a test helper mirroring the config's fields"
)]
pub fn region_config(
    me: usize,
    net: u8,
    port: u16,
    keys: &Keys,
    cluster_key: &str,
    signing: &str,
    seeds: &[String],
    server_extra: &str,
) -> String {
    let region_keys: Vec<String> = REGIONS
        .iter()
        .zip(&keys.publics)
        .map(|(r, k)| format!("{r} = \"{k}\""))
        .collect();
    let seeds: Vec<String> = seeds.iter().map(|s| format!("\"{s}\"")).collect();
    format!(
        r#"
local_region = "{region}"

[server]
listen = ["127.0.0.1:0"]
udp_workers = 1
{server_extra}

[probe]
kind = "http"
port = {port}
interval_ms = 100
timeout_ms = 80

[gossip]
listen = "127.0.0.1:0"
seeds = [{seeds}]
keys = ["{cluster_key}"]
signing_key = "{signing}"
interval_ms = 50
peer_suspect_ms = 800
peer_timeout_ms = 1600
region_keys = {{ {region_keys} }}

[zone]
name = "gslb.example.com"

[[regions]]
name = "eu"
nameserver = "ns-eu.gslb.example.com"
glue = ["127.0.10.1"]
[[regions]]
name = "us"
nameserver = "ns-us.gslb.example.com"
glue = ["127.0.20.1"]
[[regions]]
name = "ap"
nameserver = "ns-ap.gslb.example.com"
glue = ["127.0.30.1"]

[[services]]
name = "app.gslb.example.com"
strategy = "failover"
failover_order = ["eu", "us", "ap"]
targets = {{ eu = ["127.0.{net}.1"], us = ["127.0.{net}.2"], ap = ["127.0.{net}.3"] }}

[[services]]
name = "api.gslb.example.com"
strategy = "round-robin"
targets = {{ eu = ["127.0.{net}.1"], us = ["127.0.{net}.2"], ap = ["127.0.{net}.3"] }}
"#,
        region = REGIONS[me],
        seeds = seeds.join(", "),
        region_keys = region_keys.join(", "),
    )
}

pub struct Cluster {
    pub keys: Keys,
    pub net: u8,
    pub port: u16,
    pub backends: Vec<Backend>,
    pub nodes: Vec<Option<Node>>,
    /// Lines added to every node's `[server]` table.
    pub server_extra: String,
}

pub struct Node {
    pub app: App,
    pub dns: std::net::SocketAddr,
    pub partition: Arc<Partition>,
}

pub async fn start_node(text: &str) -> Node {
    let config = config::parse(text).expect("valid config");
    super::assert_probes_stay_local(&config);
    let partition = Arc::new(Partition::default());
    let app = App::start_with(config, None, Arc::new(NetProbes), Some(partition.clone()))
        .await
        .expect("node starts");
    let dns = app.dns_addrs()[0];
    Node {
        app,
        dns,
        partition,
    }
}

impl Cluster {
    pub async fn start(net: u8) -> Self {
        Self::start_with(net, "").await
    }

    /// As [`Cluster::start`], with `server_extra` added to every node's `[server]` table.
    pub async fn start_with(net: u8, server_extra: &str) -> Self {
        let first = backends::http(
            backends::bind(&format!("127.0.{net}.1"), 0).await,
            Mode::Status(200, "ok"),
        );
        let port = first.addr.port();
        let mut backends = vec![first];
        for host in 2..=3 {
            backends.push(backends::http(
                backends::bind(&format!("127.0.{net}.{host}"), port).await,
                Mode::Status(200, "ok"),
            ));
        }
        let mut cluster = Self {
            keys: keys(),
            net,
            port,
            backends,
            nodes: Vec::new(),
            server_extra: server_extra.to_string(),
        };
        for me in 0..3 {
            let node = cluster.start_region(me).await;
            cluster.nodes.push(Some(node));
        }
        cluster
    }

    pub fn seeds(&self) -> Vec<String> {
        self.nodes
            .iter()
            .flatten()
            .filter_map(|n| n.app.gossip().map(|g| g.local_addr.to_string()))
            .collect()
    }

    pub async fn start_region(&self, me: usize) -> Node {
        let text = region_config(
            me,
            self.net,
            self.port,
            &self.keys,
            &self.keys.cluster,
            &self.keys.seeds[me],
            &self.seeds(),
            &self.server_extra,
        );
        start_node(&text).await
    }

    pub fn node(&self, i: usize) -> &Node {
        self.nodes[i].as_ref().expect("node running")
    }

    pub fn addr(&self, region: usize) -> String {
        format!("127.0.{}.{}", self.net, region + 1)
    }

    pub async fn shutdown(mut self) {
        for node in self.nodes.drain(..).flatten() {
            node.app.shutdown().await;
        }
    }
}
