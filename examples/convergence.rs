#![allow(clippy::print_stdout)] // a measuring tool: its output is the point
//! Failover convergence across regions: starts three gslbd processes (eu, us, ap) on 127.0.0.x
//! with default probe, gossip and observer settings and a local HTTP backend each, and measures
//! how long a failure takes to leave the answers. Scenarios:
//! - `backend` (the default): eu's backend fails; until us's and ap's servers both stop
//!   answering eu's address (`app`, failover eu > us > ap);
//! - `region-loss-2`: two regions only (eu, us); us dies whole (kill -9 of its gslbd, its
//!   backend fails at the same instant); until eu stops answering us's address (`api`,
//!   round-robin);
//! - `region-loss-3`: us and ap die whole at once; until eu answers only its own address.
//!
//! Dead regions are restarted between runs, and regions coming back are let in at once
//! (`failback_delay_ms` and `slow_start_ms` 0: what is measured is how fast a failure leaves
//! the answers). Prints every run, the median and the maximum.
//!
//!     cargo build --release && cargo run --release --example convergence -- [RUNS] [SCENARIO]
//!
//! Everything listens on loopback only.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use hickory_proto::serialize::binary::BinEncodable;

const REGIONS: [(&str, &str, &str); 3] = [
    ("eu", "127.0.11.1", "127.0.4.1"),
    ("us", "127.0.21.1", "127.0.5.1"),
    ("ap", "127.0.31.1", "127.0.6.1"),
];
const DNS_PORT: u16 = 5354;
const GOSSIP_PORT: u16 = 7947;
const BACKEND_PORT: u16 = 8081;

fn ask(server: &str) -> Option<Vec<String>> {
    ask_for(server, "app.gslb.example.com.")
}

fn ask_for(server: &str, qname: &str) -> Option<Vec<String>> {
    let socket = UdpSocket::bind("127.0.0.1:0").ok()?;
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .ok()?;
    let mut message = Message::new(1, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(Name::from_ascii(qname).ok()?, RecordType::A));
    socket
        .send_to(
            &message.to_bytes().ok()?,
            SocketAddr::new(server.parse().ok()?, DNS_PORT),
        )
        .ok()?;
    let mut buf = [0u8; 1500];
    let (len, _) = socket.recv_from(&mut buf).ok()?;
    let reply = Message::from_vec(&buf[..len]).ok()?;
    Some(
        reply
            .answers
            .iter()
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(a.0.to_string()),
                _ => None,
            })
            .collect(),
    )
}

fn keygen(binary: &str) -> String {
    let output = Command::new(binary)
        .arg("keygen")
        .output()
        .expect("run gslbd keygen");
    String::from_utf8(output.stdout).expect("utf-8 keys")
}

fn config(me: usize, keys: &str, count: usize) -> String {
    let (region, ip, _) = REGIONS[me];
    // keygen prints: keys = [...], then one "signing_key" line per region, then region keys.
    let lines: Vec<&str> = keys.lines().collect();
    let cluster = lines
        .iter()
        .find(|l| l.starts_with("keys = "))
        .expect("keys line");
    let signing: Vec<&&str> = lines
        .iter()
        .filter(|l| l.starts_with("signing_key"))
        .collect();
    let publics: Vec<String> = lines
        .iter()
        .skip_while(|l| !l.starts_with("[gossip.region_keys]"))
        .skip(1)
        .map(|l| l.to_string())
        .collect();
    let seeds: Vec<String> = REGIONS[..count]
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != me)
        .map(|(_, (_, ip, _))| format!("\"{ip}:{GOSSIP_PORT}\""))
        .collect();
    let regions: String = REGIONS[..count]
        .iter()
        .map(|(name, ip, _)| format!("[[regions]]\nname = \"{name}\"\nnameserver = \"ns-{name}.gslb.example.com\"\nglue = [\"{ip}\"]\n"))
        .collect();
    let targets: Vec<String> = REGIONS[..count]
        .iter()
        .map(|(n, _, b)| format!("{n} = [\"{b}\"]"))
        .collect();
    let order: Vec<String> = REGIONS[..count]
        .iter()
        .map(|(n, _, _)| format!("\"{n}\""))
        .collect();
    let publics: Vec<String> = publics
        .into_iter()
        .filter(|l| REGIONS[..count].iter().any(|(n, _, _)| l.starts_with(n)))
        .collect();
    format!(
        "local_region = \"{region}\"\n[server]\nlisten = [\"{ip}:{DNS_PORT}\"]\nudp_workers = 1\n\
         [probe]\nkind = \"http\"\nport = {BACKEND_PORT}\n\
         [gossip]\nlisten = \"{ip}:{GOSSIP_PORT}\"\nseeds = [{seeds}]\n{cluster}\n{signing}\n\
         [gossip.region_keys]\n{publics}\n\
         [zone]\nname = \"gslb.example.com\"\nttl = 5\nfailback_delay_ms = 0\nslow_start_ms = 0\n{regions}\
         [[services]]\nname = \"app.gslb.example.com\"\nstrategy = \"failover\"\nfailover_order = [{order}]\n\
         targets = {{ {targets} }}\n\
         [[services]]\nname = \"api.gslb.example.com\"\nstrategy = \"round-robin\"\n\
         targets = {{ {targets} }}\n",
        order = order.join(", "),
        seeds = seeds.join(", "),
        signing = signing[me],
        publics = publics.join("\n"),
        targets = targets.join(", "),
    )
}

fn wait_until(deadline: Duration, mut done: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if done() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// What fails, and what the measured servers must stop answering.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scenario {
    Backend,
    RegionLoss2,
    RegionLoss3,
}

impl Scenario {
    fn parse(word: &str) -> Self {
        match word {
            "backend" => Scenario::Backend,
            "region-loss-2" => Scenario::RegionLoss2,
            "region-loss-3" => Scenario::RegionLoss3,
            other => panic!("unknown scenario {other}: backend, region-loss-2 or region-loss-3"),
        }
    }

    fn regions(self) -> usize {
        if self == Scenario::RegionLoss2 { 2 } else { 3 }
    }

    /// The regions that fail.
    fn failing(self) -> &'static [usize] {
        match self {
            Scenario::Backend => &[0],
            Scenario::RegionLoss2 => &[1],
            Scenario::RegionLoss3 => &[1, 2],
        }
    }

    fn what(self) -> &'static str {
        match self {
            Scenario::Backend => "eu's backend fails -> us and ap stop answering eu",
            Scenario::RegionLoss2 => {
                "two regions, us dies whole (kill -9 of gslbd, backend down) -> eu stops answering us"
            }
            Scenario::RegionLoss3 => {
                "three regions, us and ap die whole at once -> eu answers only itself"
            }
        }
    }
}

fn start_gslbd(binary: &str, path: &std::path::Path) -> Child {
    Command::new(binary)
        .args(["run", "--config"])
        .arg(path)
        .env("GSLBD_LOG", "warn")
        .stderr(Stdio::null())
        .spawn()
        .expect("start gslbd")
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    let scenario = Scenario::parse(args.next().as_deref().unwrap_or("backend"));
    let count = scenario.regions();
    let binary = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/gslbd");
    let dir = std::env::temp_dir().join(format!("gslbd-convergence-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let keys = keygen(binary);
    let mut switches = Vec::new();
    for (_, _, backend_ip) in &REGIONS[..count] {
        let up = Arc::new(AtomicBool::new(true));
        let addr = SocketAddr::new(backend_ip.parse().expect("ip"), BACKEND_PORT);
        gslbd::demo::backend(addr, up.clone())
            .await
            .expect("start backend");
        switches.push(up);
    }
    let mut paths = Vec::new();
    let mut children: Vec<Child> = Vec::new();
    for (me, (region, ..)) in REGIONS[..count].iter().enumerate() {
        let path = dir.join(format!("{region}.toml"));
        std::fs::write(&path, config(me, &keys, count)).expect("write config");
        children.push(start_gslbd(binary, &path));
        paths.push(path);
    }
    let mut samples = Vec::new();
    let result = tokio::task::spawn_blocking(move || {
        let all: Vec<String> = REGIONS[..count]
            .iter()
            .map(|(_, _, b)| b.to_string())
            .collect();
        let sorted = |mut a: Vec<String>| {
            a.sort();
            a
        };
        for run in 0..runs {
            // Everyone answers as it should: eu first (app), every region (api).
            let ready = wait_until(Duration::from_secs(60), || {
                REGIONS[..count].iter().all(|(_, dns, _)| {
                    let api = ask_for(dns, "api.gslb.example.com.").map(sorted);
                    ask(dns) == Some(vec![all[0].clone()]) && api == Some(all.clone())
                })
            });
            assert!(ready.is_some(), "cluster never converged");
            std::thread::sleep(Duration::from_millis(500 + 137 * run as u64 % 900));
            for &region in scenario.failing() {
                switches[region].store(false, Ordering::Relaxed);
                if scenario != Scenario::Backend {
                    let _ = children[region].kill();
                    let _ = children[region].wait();
                }
            }
            let took = wait_until(Duration::from_secs(60), || match scenario {
                Scenario::Backend => [REGIONS[1].1, REGIONS[2].1]
                    .iter()
                    .all(|dns| ask(dns).is_some_and(|a| !a.is_empty() && !a.contains(&all[0]))),
                _ => ask_for(REGIONS[0].1, "api.gslb.example.com.")
                    .is_some_and(|a| a == vec![all[0].clone()]),
            })
            .expect("the failure never left the answers");
            println!("run {:2}: {:5.0} ms", run + 1, took.as_secs_f64() * 1000.0);
            samples.push(took);
            for &region in scenario.failing() {
                switches[region].store(true, Ordering::Relaxed);
                if scenario != Scenario::Backend {
                    children[region] = start_gslbd(binary, &paths[region]);
                }
            }
        }
        (samples, children)
    })
    .await;
    let (mut samples, children) = result.expect("measurement ran");
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
    samples.sort();
    let median = samples[samples.len() / 2];
    let max = samples[samples.len() - 1];
    println!(
        "{} over {} runs: median {:.0} ms, max {:.0} ms ({})",
        if scenario == Scenario::Backend {
            "failover convergence"
        } else {
            "whole-region loss"
        },
        samples.len(),
        median.as_secs_f64() * 1000.0,
        max.as_secs_f64() * 1000.0,
        scenario.what(),
    );
}
