//! Regions as real processes with default health and gossip settings: each region a
//! `gslbd run` and an HTTP backend (Python's `http.server`, Debian's python3), killed with
//! SIGKILL. Either on loopback (region i's gslbd on 127.0.<net>.(i+1), its backend on
//! 127.0.<net>.(i+11)), or each region in a network namespace of its own, joined by a bridge
//! in a hub namespace (10.77.<net>.x, the same hosts): there, links between regions can be cut
//! for real. The namespaces have no route anywhere else, so nothing leaves them.

use std::fs::File;
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

/// Runs `ip args`, panicking with its error output when it fails.
fn ip(args: &[&str]) {
    let output = Command::new("ip")
        .args(args)
        .output()
        .expect("ip runs (apt-get install iproute2)");
    assert!(
        output.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Regions `REGIONS[..count]` of one test, each run by `replicas` gslbd processes (instance
/// names "0", "1", ...; replica r of region i on host i + 1 + 20 r).
pub struct Regions {
    pub names: Vec<&'static str>,
    pub replicas: usize,
    net: u8,
    /// With namespaces: their name prefix (`gslbd-<net>`); the hub is `<prefix>-hub`.
    netns: Option<String>,
    keys: Keys,
    dir: tempfile::TempDir,
    /// Services every region serves besides [`API`] (a test's own), with the same probe.
    pub services: Vec<Service>,
}

impl Regions {
    /// On loopback addresses 127.0.`net`.x.
    pub fn new(net: u8, count: usize) -> Self {
        Self::with_replicas(net, count, 1)
    }

    /// On loopback, each region run by `replicas` gslbd processes sharing its backend.
    pub fn with_replicas(net: u8, count: usize, replicas: usize) -> Self {
        Self {
            names: REGIONS[..count].to_vec(),
            replicas,
            net,
            netns: None,
            keys: keys(),
            dir: tempfile::tempdir().expect("temp dir"),
            services: Vec::new(),
        }
    }

    /// Each region in a network namespace of its own (needs root and iproute2), all joined by
    /// a bridge; addresses 10.77.`net`.x exist only inside them.
    pub fn in_namespaces(net: u8, count: usize) -> Self {
        let prefix = format!("gslbd-{net}");
        let mut regions = Self::new(net, count);
        regions.netns = Some(prefix.clone());
        // Left over from a run that was killed: start clean.
        regions.remove_namespaces();
        let hub = format!("{prefix}-hub");
        ip(&["netns", "add", &hub]);
        ip(&["-n", &hub, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &hub, "link", "set", "br0", "up"]);
        for (i, region) in regions.names.iter().enumerate() {
            let ns = regions.namespace(i).expect("namespaced");
            ip(&["netns", "add", &ns]);
            ip(&[
                "-n", &hub, "link", "add", region, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ]);
            ip(&["-n", &hub, "link", "set", region, "master", "br0", "up"]);
            ip(&["-n", &ns, "link", "set", "lo", "up"]);
            for host in [regions.host(i), regions.backend(i)] {
                ip(&[
                    "-n",
                    &ns,
                    "addr",
                    "add",
                    &format!("{host}/24"),
                    "dev",
                    "eth0",
                ]);
            }
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        }
        regions
    }

    fn remove_namespaces(&self) {
        let Some(prefix) = &self.netns else { return };
        for name in self.names.iter().chain(&["hub"]) {
            let _ = Command::new("ip")
                .args(["netns", "del", &format!("{prefix}-{name}")])
                .stderr(Stdio::null())
                .status();
        }
    }

    /// Region i's namespace, when regions have their own.
    fn namespace(&self, i: usize) -> Option<String> {
        let prefix = self.netns.as_ref()?;
        Some(format!("{prefix}-{}", self.names[i]))
    }

    /// Region i's gslbd host address (its first replica's).
    fn host(&self, i: usize) -> String {
        self.host_of(i, 0)
    }

    /// The host address of region i's replica r.
    fn host_of(&self, i: usize, r: usize) -> String {
        let host = i + 1 + 20 * r;
        match self.netns {
            Some(_) => format!("10.77.{}.{host}", self.net),
            None => format!("127.0.{}.{host}", self.net),
        }
    }

    pub fn dns(&self, i: usize) -> SocketAddr {
        self.dns_of(i, 0)
    }

    /// The DNS address of region i's replica r.
    pub fn dns_of(&self, i: usize, r: usize) -> SocketAddr {
        format!("{}:{DNS_PORT}", self.host_of(i, r))
            .parse()
            .expect("address")
    }

    pub fn admin(&self, i: usize) -> SocketAddr {
        self.admin_of(i, 0)
    }

    pub fn admin_of(&self, i: usize, r: usize) -> SocketAddr {
        format!("{}:{ADMIN_PORT}", self.host_of(i, r))
            .parse()
            .expect("address")
    }

    /// Region i's backend address: what its target answers.
    pub fn backend(&self, i: usize) -> String {
        match self.netns {
            Some(_) => format!("10.77.{}.{}", self.net, i + 11),
            None => format!("127.0.{}.{}", self.net, i + 11),
        }
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

    /// Runs `f` where region i's addresses are reachable: on a thread inside its namespace,
    /// or here on loopback.
    pub fn inside_region<T: Send>(&self, i: usize, f: impl FnOnce() -> T + Send) -> T {
        let Some(ns) = self.namespace(i) else {
            return f();
        };
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    let handle = File::open(format!("/run/netns/{ns}")).expect("namespace");
                    nix::sched::setns(handle, nix::sched::CloneFlags::CLONE_NEWNET)
                        .expect("enter the namespace");
                    f()
                })
                .join()
                .expect("no panic in the namespace")
        })
    }

    /// Region i's DNS answer for [`API`], sorted; asked from inside region i.
    pub fn answer(&self, i: usize) -> Vec<String> {
        self.answer_of(i, 0)
    }

    /// The answer of region i's replica r.
    pub fn answer_of(&self, i: usize, r: usize) -> Vec<String> {
        let dns = self.dns_of(i, r);
        self.inside_region(i, || super::sorted_answer(dns, API))
    }

    /// Region i's answer to an A question for `qname`: each record's data, sorted (a CNAME's
    /// target name, or addresses).
    pub fn records(&self, i: usize, qname: &str) -> Vec<String> {
        let dns = self.dns(i);
        self.inside_region(i, || {
            super::records(dns, qname, hickory_proto::rr::RecordType::A).1
        })
    }

    /// Waits until region i answers `qname` with `want` (see [`Regions::records`]).
    pub fn answers_records(&self, i: usize, qname: &str, want: &[String]) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let got = self.records(i, qname);
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} answers {qname} with {got:?}, not {want:?}",
                self.names[i]
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `GET path` on region i's admin endpoint, from inside region i; `None` while it does
    /// not listen.
    pub fn admin_get(&self, i: usize, path: &str) -> Option<(u16, String)> {
        self.admin_get_of(i, 0, path)
    }

    /// `GET path` on the admin endpoint of region i's replica r.
    pub fn admin_get_of(&self, i: usize, r: usize, path: &str) -> Option<(u16, String)> {
        let admin = self.admin_of(i, r);
        self.inside_region(i, || {
            TcpStream::connect(admin).ok()?;
            Some(super::http_get(admin, path))
        })
    }

    /// Region i's config: defaults but for addresses, keys and the one service.
    pub fn config(&self, i: usize) -> ConfigFile {
        self.config_of(i, 0)
    }

    /// The config of region i's replica r (instance `r`).
    pub fn config_of(&self, i: usize, r: usize) -> ConfigFile {
        let mut config = ConfigFile::minimal(&self.names).seen_from(self.names[i]);
        config.server.listen = vec![self.dns_of(i, r).to_string()];
        config.server.admin = Some(self.admin_of(i, r).to_string());
        config.probe = Probe {
            kind: Some("http".into()),
            port: Some(BACKEND_PORT),
            ..Probe::default()
        };
        let seeds: Vec<String> = (0..self.names.len())
            .flat_map(|j| (0..self.replicas).map(move |s| (j, s)))
            .filter(|&node| node != (i, r))
            .map(|(j, s)| format!("{}:{GOSSIP_PORT}", self.host_of(j, s)))
            .collect();
        let listen = format!("{}:{GOSSIP_PORT}", self.host_of(i, r));
        config.gossip = Some(Gossip {
            interval_ms: None,
            instance: Some(r.to_string()),
            ..self.keys.gossip(i, &self.names, &listen, &seeds)
        });
        let mut api = Service::round_robin(API);
        for (j, region) in self.names.iter().enumerate() {
            api = api.target(region, &[self.backend(j)]);
        }
        config.services = vec![api];
        config.services.extend(self.services.iter().cloned());
        config
    }

    /// `program` as a process of region i: inside its namespace when it has one.
    fn command(&self, i: usize, program: &str) -> Command {
        match self.namespace(i) {
            Some(ns) => {
                let mut command = Command::new("ip");
                command.args(["netns", "exec", &ns, program]);
                command
            }
            None => Command::new(program),
        }
    }

    /// Starts region i's gslbd on its config.
    pub fn start_gslbd(&self, i: usize) -> Spawned {
        self.start_gslbd_of(i, 0)
    }

    /// Starts region i's replica r.
    pub fn start_gslbd_of(&self, i: usize, r: usize) -> Spawned {
        let config = self.config_of(i, r);
        if self.netns.is_none() {
            super::assert_probes_stay_local(&config.parse());
        }
        let path = self.dir.path().join(format!("{}-{r}.toml", self.names[i]));
        std::fs::write(&path, config.to_toml()).expect("write config");
        let child = self
            .command(i, env!("CARGO_BIN_EXE_gslbd"))
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
        self.start_backend_in(i, &self.backend(i))
    }

    /// Starts a backend on `ip` (on loopback, outside region i's namespace when it has one:
    /// for regions on loopback only) and waits until it accepts connections.
    pub fn start_backend_on(&self, ip: &str) -> Spawned {
        assert!(self.netns.is_none(), "regions on loopback only");
        self.start_backend_in(0, ip)
    }

    fn start_backend_in(&self, i: usize, ip: &str) -> Spawned {
        let ip = ip.to_string();
        let child = self
            .command(i, "python3")
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
        while !self.inside_region(i, || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        }) {
            assert!(Instant::now() < deadline, "backend {addr} never listened");
            std::thread::sleep(Duration::from_millis(50));
        }
        Spawned(Some(child))
    }

    /// Cuts the link between regions i and j both ways (blackhole routes in each namespace
    /// to the other's addresses); `heal` undoes it.
    pub fn cut(&self, i: usize, j: usize) {
        self.routes("add", i, j);
    }

    pub fn heal(&self, i: usize, j: usize) {
        self.routes("del", i, j);
    }

    fn routes(&self, verb: &str, i: usize, j: usize) {
        for (from, to) in [(i, j), (j, i)] {
            let ns = self.namespace(from).expect("regions in namespaces");
            for host in [self.host(to), self.backend(to)] {
                ip(&["-n", &ns, "route", verb, "blackhole", &format!("{host}/32")]);
            }
        }
    }

    /// Cuts region i off from every other (its link down), or reconnects it.
    pub fn isolate(&self, i: usize, isolated: bool) {
        let ns = self.namespace(i).expect("regions in namespaces");
        ip(&[
            "-n",
            &ns,
            "link",
            "set",
            "eth0",
            if isolated { "down" } else { "up" },
        ]);
    }

    /// Blocks (or unblocks) region `from`'s traffic to region `to`'s backend alone.
    pub fn block_backend(&self, from: usize, to: usize, blocked: bool) {
        let ns = self.namespace(from).expect("regions in namespaces");
        let verb = if blocked { "add" } else { "del" };
        let host = format!("{}/32", self.backend(to));
        ip(&["-n", &ns, "route", verb, "blackhole", &host]);
    }
}

/// Longer than any default timing involved (peer timeout 15 s, observers 2 s × fall 2).
pub const PATIENCE: Duration = Duration::from_secs(40);
/// How long an answer must hold to show it does not flap back.
pub const HOLD: Duration = Duration::from_secs(5);

impl Regions {
    /// Waits until region i's gslbd says it is ready (`/readyz` 200).
    pub fn ready(&self, i: usize) {
        self.ready_of(i, 0);
    }

    /// Waits until region i's replica r says it is ready.
    pub fn ready_of(&self, i: usize, r: usize) {
        let deadline = Instant::now() + PATIENCE;
        while self
            .admin_get_of(i, r, "/readyz")
            .is_none_or(|(status, _)| status != 200)
        {
            assert!(
                Instant::now() < deadline,
                "{}/{r} never became ready",
                self.names[i]
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until region i answers `want`.
    pub fn answers(&self, i: usize, want: &[String]) {
        self.answers_of(i, 0, want);
    }

    /// Waits until region i's replica r answers `want`.
    pub fn answers_of(&self, i: usize, r: usize, want: &[String]) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let got = self.answer_of(i, r);
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}/{r} answers {got:?}, not {want:?}",
                self.names[i]
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Asserts that region i answers `want` throughout [`HOLD`].
    pub fn keeps_answering(&self, i: usize, want: &[String]) {
        self.nodes_keep_answering(&[(i, 0)], want);
    }

    /// Asserts that each of `nodes` (region, replica) answers `want` throughout [`HOLD`].
    pub fn nodes_keep_answering(&self, nodes: &[(usize, usize)], want: &[String]) {
        let until = Instant::now() + HOLD;
        while Instant::now() < until {
            for &(i, r) in nodes {
                assert_eq!(self.answer_of(i, r), want, "{}/{r}", self.names[i]);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every (region, replica).
    pub fn nodes(&self) -> Vec<(usize, usize)> {
        (0..self.names.len())
            .flat_map(|i| (0..self.replicas).map(move |r| (i, r)))
            .collect()
    }

    /// Health and `why` source of region `target`'s target of the service, as region i's
    /// `/state` gives them, e.g. `"unhealthy" "observed"`.
    pub fn why(&self, i: usize, target: usize) -> String {
        let (status, body) = self.admin_get(i, "/state").expect("admin listens");
        assert_eq!(status, 200, "{body}");
        let state: serde_json::Value = serde_json::from_str(&body).expect("/state is JSON");
        let name = self.names[target];
        let found = state["services"][0]["regions"]
            .as_array()
            .expect("regions")
            .iter()
            .find(|t| t["region"] == name)
            .cloned()
            .expect("the region's target");
        format!("{} {}", found["health"], found["why"]["source"])
    }

    /// Waits until region i's `/state` says `want` of region `target` (see [`Regions::why`]).
    pub fn until_why(&self, i: usize, target: usize, want: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let got = self.why(i, target);
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} says {} is {got}, not {want}",
                self.names[i],
                self.names[target]
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// A region's two processes.
pub struct Region {
    pub gslbd: Spawned,
    pub backend: Spawned,
}

impl Region {
    /// Starts region i's backend, then its gslbd.
    pub fn start(regions: &Regions, i: usize) -> Self {
        let backend = regions.start_backend(i);
        Self {
            gslbd: regions.start_gslbd(i),
            backend,
        }
    }

    /// Starts every region and waits until each is ready and answers every region.
    pub fn start_all(regions: &Regions) -> Vec<Self> {
        let up: Vec<Self> = (0..regions.names.len())
            .map(|i| Self::start(regions, i))
            .collect();
        for i in 0..up.len() {
            regions.ready(i);
            regions.answers(i, &regions.all());
        }
        up
    }

    /// kill -9 of the region's gslbd and its backend.
    pub fn dies(&mut self) {
        self.gslbd.kill_9();
        self.backend.kill_9();
    }
}

impl Drop for Regions {
    fn drop(&mut self) {
        self.remove_namespaces();
    }
}
