#![allow(clippy::print_stdout)] // a measuring tool: its output is the point
//! Failover convergence across regions: starts three gslbd processes (eu, us, ap) on 127.0.0.x
//! with default probe and gossip settings and a local HTTP backend each, fails eu's backend, and
//! measures the time until us's and ap's servers both stop answering eu's address. Repeats and
//! prints the median and the maximum.
//!
//!     cargo build --release && cargo run --release --example convergence -- [RUNS]
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
    let socket = UdpSocket::bind("127.0.0.1:0").ok()?;
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .ok()?;
    let mut message = Message::new(1, MessageType::Query, OpCode::Query);
    message.add_query(Query::query(
        Name::from_ascii("app.gslb.example.com.").ok()?,
        RecordType::A,
    ));
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

fn config(me: usize, keys: &str) -> String {
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
    let seeds: Vec<String> = REGIONS
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != me)
        .map(|(_, (_, ip, _))| format!("\"{ip}:{GOSSIP_PORT}\""))
        .collect();
    let regions: String = REGIONS
        .iter()
        .map(|(name, ip, _)| format!("[[regions]]\nname = \"{name}\"\nnameserver = \"ns-{name}.gslb.example.com\"\nglue = [\"{ip}\"]\n"))
        .collect();
    let targets: Vec<String> = REGIONS
        .iter()
        .map(|(n, _, b)| format!("{n} = [\"{b}\"]"))
        .collect();
    format!(
        "local_region = \"{region}\"\n[server]\nlisten = [\"{ip}:{DNS_PORT}\"]\nudp_workers = 1\n\
         [probe]\nkind = \"http\"\nport = {BACKEND_PORT}\n\
         [gossip]\nlisten = \"{ip}:{GOSSIP_PORT}\"\nseeds = [{seeds}]\n{cluster}\n{signing}\n\
         [gossip.region_keys]\n{publics}\n\
         [zone]\nname = \"gslb.example.com\"\nttl = 5\n{regions}\
         [[services]]\nname = \"app.gslb.example.com\"\nstrategy = \"failover\"\nfailover_order = [\"eu\", \"us\", \"ap\"]\n\
         targets = {{ {targets} }}\n",
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

#[tokio::main]
async fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10);
    let binary = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/gslbd");
    let dir = std::env::temp_dir().join(format!("gslbd-convergence-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let keys = keygen(binary);
    let mut switches = Vec::new();
    for (_, _, backend_ip) in REGIONS {
        let up = Arc::new(AtomicBool::new(true));
        let addr = SocketAddr::new(backend_ip.parse().expect("ip"), BACKEND_PORT);
        gslbd::demo::backend(addr, up.clone())
            .await
            .expect("start backend");
        switches.push(up);
    }
    let mut children: Vec<Child> = Vec::new();
    for (me, (region, ..)) in REGIONS.iter().enumerate() {
        let path = dir.join(format!("{region}.toml"));
        std::fs::write(&path, config(me, &keys)).expect("write config");
        children.push(
            Command::new(binary)
                .args(["run", "--config"])
                .arg(&path)
                .env("GSLBD_LOG", "warn")
                .stderr(Stdio::null())
                .spawn()
                .expect("start gslbd"),
        );
    }
    let eu_addr = REGIONS[0].2.to_string();
    let observers = [REGIONS[1].1, REGIONS[2].1];
    let mut samples = Vec::new();
    let result = tokio::task::spawn_blocking(move || {
        for run in 0..runs {
            // Everyone answers eu first.
            let ready = wait_until(Duration::from_secs(30), || {
                REGIONS
                    .iter()
                    .all(|(_, dns, _)| ask(dns) == Some(vec![eu_addr.clone()]))
            });
            assert!(ready.is_some(), "cluster never converged on eu");
            std::thread::sleep(Duration::from_millis(500 + 137 * run as u64 % 900));
            switches[0].store(false, Ordering::Relaxed);
            let took = wait_until(Duration::from_secs(30), || {
                observers
                    .iter()
                    .all(|dns| ask(dns).is_some_and(|a| !a.is_empty() && !a.contains(&eu_addr)))
            })
            .expect("us and ap never dropped eu");
            println!("run {:2}: {:5.0} ms", run + 1, took.as_secs_f64() * 1000.0);
            samples.push(took);
            switches[0].store(true, Ordering::Relaxed);
        }
        samples
    })
    .await;
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mut samples = result.expect("measurement ran");
    samples.sort();
    let median = samples[samples.len() / 2];
    let max = samples[samples.len() - 1];
    println!(
        "failover convergence over {} runs: median {:.0} ms, max {:.0} ms (backend fails -> us and ap stop answering eu)",
        samples.len(),
        median.as_secs_f64() * 1000.0,
        max.as_secs_f64() * 1000.0
    );
}
