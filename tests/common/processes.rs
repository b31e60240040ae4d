//! Regions as real processes with default health and gossip settings: each region a
//! `gslbd run` and an HTTP backend (Python's `http.server`, Debian's python3), on the
//! region's own 127.0.<net>.x addresses, killed with SIGKILL.

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::cluster::{Keys, REGIONS, keys};
use super::config::{ConfigFile, Gossip, Probe, Service};

const DNS_PORT: u16 = 5300;
const ADMIN_PORT: u16 = 8053;
const GOSSIP_PORT: u16 = 7946;
const BACKEND_PORT: u16 = 8080;
/// The service every region serves, round-robin over the healthy regions.
pub const API: &str = "api.gslb.example.com";

/// A child process, killed with SIGKILL when dropped.
pub struct Spawned(Option<Child>);

impl Spawned {
    /// `kill -9`, and reaped.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// Regions `REGIONS[..count]` of one test, on 127.0.`net`.x: region i's gslbd on
/// 127.0.net.(i+1), its backend on 127.0.net.(i+11).
pub struct Regions {
    pub names: Vec<&'static str>,
    net: u8,
    keys: Keys,
    dir: tempfile::TempDir,
}

impl Regions {
    pub fn new(net: u8, count: usize) -> Self {
        Self {
            names: REGIONS[..count].to_vec(),
            net,
            keys: keys(),
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn ip(&self, i: usize) -> String {
        format!("127.0.{}.{}", self.net, i + 1)
    }

    pub fn dns(&self, i: usize) -> SocketAddr {
        format!("{}:{DNS_PORT}", self.ip(i))
            .parse()
            .expect("address")
    }

    pub fn admin(&self, i: usize) -> SocketAddr {
        format!("{}:{ADMIN_PORT}", self.ip(i))
            .parse()
            .expect("address")
    }

    /// Region i's backend address: what its target answers.
    pub fn backend(&self, i: usize) -> String {
        format!("127.0.{}.{}", self.net, i + 11)
    }

    /// Every region's backend address, sorted as answers are.
    pub fn all(&self) -> Vec<String> {
        self.only(&(0..self.names.len()).collect::<Vec<_>>())
    }

    /// The backend addresses of regions `alive`, sorted as answers are.
    pub fn only(&self, alive: &[usize]) -> Vec<String> {
        let mut addresses: Vec<String> = alive.iter().map(|&i| self.backend(i)).collect();
        addresses.sort();
        addresses
    }

    /// Region i's config: defaults but for addresses, keys and the one service.
    pub fn config(&self, i: usize) -> ConfigFile {
        let mut config = ConfigFile::minimal(&self.names).seen_from(self.names[i]);
        config.server.listen = vec![self.dns(i).to_string()];
        config.server.admin = Some(self.admin(i).to_string());
        config.probe = Probe {
            kind: Some("http".into()),
            port: Some(BACKEND_PORT),
            ..Probe::default()
        };
        let seeds: Vec<String> = (0..self.names.len())
            .filter(|&j| j != i)
            .map(|j| format!("{}:{GOSSIP_PORT}", self.ip(j)))
            .collect();
        let listen = format!("{}:{GOSSIP_PORT}", self.ip(i));
        config.gossip = Some(Gossip {
            interval_ms: None,
            ..self.keys.gossip(i, &self.names, &listen, &seeds)
        });
        let mut api = Service::round_robin(API);
        for (j, region) in self.names.iter().enumerate() {
            api = api.target(region, &[self.backend(j)]);
        }
        config.services = vec![api];
        config
    }

    /// Starts region i's gslbd on its config.
    pub fn start_gslbd(&self, i: usize) -> Spawned {
        self.start_gslbd_with(i, &self.config(i))
    }

    /// Starts region i's gslbd on `config`.
    pub fn start_gslbd_with(&self, i: usize, config: &ConfigFile) -> Spawned {
        super::assert_probes_stay_local(&config.parse());
        let path = self.dir.path().join(format!("{}.toml", self.names[i]));
        std::fs::write(&path, config.to_toml()).expect("write config");
        let child = Command::new(env!("CARGO_BIN_EXE_gslbd"))
            .args(["run", "--config"])
            .arg(&path)
            .env("GSLBD_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .expect("start gslbd");
        Spawned(Some(child))
    }

    /// Starts region i's backend and waits until it accepts connections.
    pub fn start_backend(&self, i: usize) -> Spawned {
        let ip = self.backend(i);
        let child = Command::new("python3")
            .args([
                "-m",
                "http.server",
                "--bind",
                &ip,
                &BACKEND_PORT.to_string(),
            ])
            .arg("--directory")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 runs (apt-get install python3)");
        let addr: SocketAddr = format!("{ip}:{BACKEND_PORT}").parse().expect("address");
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "backend {addr} never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        Spawned(Some(child))
    }
}
