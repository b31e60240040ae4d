//! Three gslbd regions gossiping on loopback, each probing its own real HTTP backend.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use gslbd::app::{App, Outbound};
use gslbd::gossip::keys::generate;
use gslbd::gossip::transport::PeerFilter;

use super::backends::{self, Backend, Mode};
use super::config::{ConfigFile, Gossip, Probe, Service};

pub const PATIENCE: Duration = Duration::from_secs(20);
pub const REGIONS: [&str; 3] = ["eu", "us", "ap"];

/// Gossip keys of a test cluster: one cluster key, a signing seed and public key per region.
pub struct Keys {
    pub cluster: String,
    pub seeds: Vec<String>,
    pub publics: Vec<String>,
}

/// Fresh keys for the three `REGIONS`.
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

impl Keys {
    /// A `[gossip]` table for region `REGIONS[me]` in a cluster of `regions` (names from
    /// `REGIONS`): these keys, `seeds`, listening on `listen`, gossiping every 50 ms.
    pub fn gossip(&self, me: usize, regions: &[&str], listen: &str, seeds: &[String]) -> Gossip {
        let region_keys = regions
            .iter()
            .map(|region| {
                let i = REGIONS
                    .iter()
                    .position(|r| r == region)
                    .expect("a region of REGIONS");
                (region.to_string(), self.publics[i].clone())
            })
            .collect();
        Gossip {
            listen: listen.into(),
            seeds: seeds.to_vec(),
            keys: vec![self.cluster.clone()],
            signing_key: Some(self.seeds[me].clone()),
            region_keys,
            interval_ms: Some(50),
            ..Gossip::default()
        }
    }
}

/// The config of region `REGIONS[me]`; `net` is a distinct 127.0.<net>.x range per test.
pub fn region_config(me: usize, net: u8, port: u16, keys: &Keys, seeds: &[String]) -> ConfigFile {
    let mut config = ConfigFile::minimal(&REGIONS).seen_from(REGIONS[me]);
    config.probe = Probe::http(port, 100, 80);
    config.gossip = Some(Gossip {
        peer_suspect_ms: Some(800),
        peer_timeout_ms: Some(1600),
        ..keys.gossip(me, &REGIONS, "127.0.0.1:0", seeds)
    });
    // Region i's backend listens on 127.0.<net>.<i + 1>.
    let mut app = Service::failover("app.gslb.example.com", &REGIONS);
    let mut api = Service::round_robin("api.gslb.example.com");
    for (i, region) in REGIONS.iter().enumerate() {
        let addr = format!("127.0.{net}.{}", i + 1);
        app = app.target(region, &[&addr]);
        api = api.target(region, &[addr]);
    }
    config.services = vec![app, api];
    config
}

/// Turns observing (probes of the other regions' targets) off: the owner's word alone.
pub fn no_observers(config: &mut ConfigFile) {
    if let Some(gossip) = config.gossip.as_mut() {
        gossip.observe_interval_ms = Some(0);
    }
}

pub struct Cluster {
    pub keys: Keys,
    pub net: u8,
    pub port: u16,
    pub backends: Vec<Backend>,
    pub nodes: Vec<Option<Node>>,
    /// Applied to every node's config before it starts.
    pub customize: fn(&mut ConfigFile),
}

pub struct Node {
    pub app: App,
    pub dns: std::net::SocketAddr,
    pub partition: Arc<Partition>,
}

/// Gossip peers whose traffic a node drops both ways: cuts the network between in-process
/// nodes.
#[derive(Debug, Default)]
pub struct Partition {
    blocked: RwLock<HashSet<SocketAddr>>,
}

impl Partition {
    pub fn block(&self, peer: SocketAddr) {
        self.blocked.write().expect("lock").insert(peer);
    }

    pub fn heal(&self) {
        self.blocked.write().expect("lock").clear();
    }
}

impl PeerFilter for Partition {
    fn allows(&self, peer: SocketAddr) -> bool {
        !self.blocked.read().expect("lock").contains(&peer)
    }
}

/// Starts one node on `config`, with real probes and a partition the test can close.
pub async fn start_node(config: &ConfigFile) -> Node {
    start_node_text(&config.to_toml()).await
}

/// [`start_node`] on a whole config text (for text the typed [`ConfigFile`] cannot write).
pub async fn start_node_text(text: &str) -> Node {
    let config = gslbd::config::parse(text).expect("test config is valid");
    super::assert_probes_stay_local(&config);
    let partition = Arc::new(Partition::default());
    let outbound = Outbound {
        peers: partition.clone(),
        ..Outbound::default()
    };
    let app = App::start_with(config, None, outbound)
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
        Self::start_with(net, |_| {}).await
    }

    /// As [`Cluster::start`], with `customize` applied to every node's config.
    pub async fn start_with(net: u8, customize: fn(&mut ConfigFile)) -> Self {
        let ips = [1, 2, 3].map(|host| format!("127.0.{net}.{host}"));
        let backends =
            backends::http_on_one_port(ips.each_ref().map(String::as_str), Mode::Status(200, "ok"))
                .await;
        let port = backends[0].addr.port();
        let mut cluster = Self {
            keys: keys(),
            net,
            port,
            backends: Vec::from(backends),
            nodes: Vec::new(),
            customize,
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
        let mut config = region_config(me, self.net, self.port, &self.keys, &self.seeds());
        (self.customize)(&mut config);
        start_node(&config).await
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
