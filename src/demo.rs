//! `gslbd demo`: three regions (eu, us, ap) in one process on loopback, each with its own DNS
//! listener, gossip node and local HTTP backend, plus a keyboard to fail and restore backends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tracing::info;

use crate::app::{App, StartError};
use crate::config::{self, ConfigError};
use crate::gossip::keys::{KeyError, generate};

/// Why the demo cannot run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot make gossip keys")]
    Keys(#[from] KeyError),
    #[error("cannot start the demo backend on {addr}")]
    Backend {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("demo config of region {region}")]
    Config {
        region: &'static str,
        #[source]
        source: ConfigError,
    },
    #[error("cannot start region {region}")]
    Start {
        region: &'static str,
        #[source]
        source: StartError,
    },
    #[error("cannot watch SIGTERM")]
    Signal(#[source] std::io::Error),
}

/// (region, DNS/gossip address, backend address, location)
const REGIONS: [(&str, &str, &str, &str); 3] = [
    ("eu", "127.0.10.1", "127.0.1.1", "[50.11, 8.68]"),
    ("us", "127.0.20.1", "127.0.2.1", "[39.04, -77.49]"),
    ("ap", "127.0.30.1", "127.0.3.1", "[1.35, 103.82]"),
];
const DNS_PORT: u16 = 5353;
const GOSSIP_PORT: u16 = 7946;
const BACKEND_PORT: u16 = 8080;
const ADMIN_PORT: u16 = 9053;

/// A local web server standing for a region's ingress: 200 while `up`, 503 while not.
pub async fn backend(addr: SocketAddr, up: Arc<AtomicBool>) -> Result<(), DemoError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| DemoError::Backend { addr, source })?;
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let up = up.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 2048];
                let _ = stream.read(&mut request).await;
                let response: &[u8] = if up.load(Ordering::Relaxed) {
                    b"HTTP/1.1 200 OK\r\ncontent-length: 3\r\nconnection: close\r\n\r\nok\n"
                } else {
                    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 5\r\nconnection: close\r\n\r\ndown\n"
                };
                let _ = stream.write_all(response).await;
            });
        }
    });
    Ok(())
}

fn region_config(me: usize, cluster_key: &str, seeds: &[String], publics: &[String]) -> String {
    let (region, ip, _, _) = REGIONS[me];
    let regions: String = REGIONS
        .iter()
        .map(|(name, dns, _, location)| {
            format!(
                "[[regions]]\nname = \"{name}\"\nnameserver = \"ns-{name}.gslb.example.com\"\nglue = [\"{dns}\"]\nlocation = {location}\n"
            )
        })
        .collect();
    let region_keys: Vec<String> = REGIONS
        .iter()
        .zip(publics)
        .map(|((name, ..), key)| format!("{name} = \"{key}\""))
        .collect();
    let others: Vec<String> = REGIONS
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != me)
        .map(|(_, (_, dns, ..))| format!("\"{dns}:{GOSSIP_PORT}\""))
        .collect();
    let targets = |_: &str| {
        REGIONS
            .iter()
            .map(|(name, _, backend, _)| format!("{name} = [\"{backend}\"]"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        r#"
local_region = "{region}"

[server]
listen = ["{ip}:{DNS_PORT}"]
udp_workers = 1
admin = "{ip}:{ADMIN_PORT}"

[probe]
kind = "http"
port = {BACKEND_PORT}

[gossip]
listen = "{ip}:{GOSSIP_PORT}"
seeds = [{others}]
keys = ["{cluster_key}"]
signing_key = "{signing}"
region_keys = {{ {region_keys} }}

[zone]
name = "gslb.example.com"
ttl = 5

{regions}
[geo]
default_region = "eu"
networks = {{ "192.0.2.0/24" = "eu", "198.51.100.0/24" = "us", "203.0.113.0/24" = "ap" }}

[[services]]
name = "app.gslb.example.com"
strategy = "failover"
failover_order = ["eu", "us", "ap"]
targets = {{ {t} }}

[[services]]
name = "web.gslb.example.com"
strategy = "weighted"
weights = {{ eu = 50, us = 30, ap = 20 }}
targets = {{ {t} }}

[[services]]
name = "api.gslb.example.com"
strategy = "round-robin"
targets = {{ {t} }}

[[services]]
name = "geo.gslb.example.com"
strategy = "geo"
targets = {{ {t} }}
"#,
        others = others.join(", "),
        signing = seeds[me],
        region_keys = region_keys.join(", "),
        t = targets(region),
    )
}

/// Standard input's lines, read on a thread of their own: a blocking read left pending on
/// tokio's blocking pool would keep the runtime, and the process, from ending on Ctrl-C or
/// SIGTERM until another line arrived. A plain thread does not hold the process up.
fn stdin_lines() -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if tx.blocking_send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Runs the demo until `quit`, end of input followed by Ctrl-C, or SIGTERM.
#[allow(clippy::print_stdout)]
pub async fn run() -> Result<(), DemoError> {
    let mut seeds = Vec::new();
    let mut publics = Vec::new();
    let mut cluster_key = String::new();
    for _ in REGIONS {
        let (cluster, seed, public) = generate()?;
        if cluster_key.is_empty() {
            cluster_key = cluster;
        }
        seeds.push(seed);
        publics.push(public);
    }
    let mut switches = Vec::new();
    for (_, _, backend_ip, _) in REGIONS {
        let up = Arc::new(AtomicBool::new(true));
        let addr = SocketAddr::new(backend_ip.parse().expect("a literal address"), BACKEND_PORT);
        backend(addr, up.clone()).await?;
        switches.push(up);
    }
    let mut apps = Vec::new();
    for (me, &(region, ..)) in REGIONS.iter().enumerate() {
        let text = region_config(me, &cluster_key, &seeds, &publics);
        let config = config::parse(&text).map_err(|source| DemoError::Config { region, source })?;
        let app = App::start(config, None)
            .await
            .map_err(|source| DemoError::Start { region, source })?;
        apps.push(app);
    }
    info!("demo running: three regions, gossiping");
    println!(
        "\ngslbd demo: regions eu, us, ap, each answering DNS on its own address (port {DNS_PORT}):"
    );
    for (name, dns, backend, _) in REGIONS {
        println!(
            "  {name}: dns {dns}:{DNS_PORT}, gossip {dns}:{GOSSIP_PORT}, admin http://{dns}:{ADMIN_PORT}/, backend http://{backend}:{BACKEND_PORT}/"
        );
    }
    println!("\nTry (any region's server gives the same answers):");
    println!(
        "  dig @127.0.10.1 -p {DNS_PORT} app.gslb.example.com +short   # failover eu -> us -> ap"
    );
    println!("  dig @127.0.20.1 -p {DNS_PORT} api.gslb.example.com +short   # round-robin");
    println!("  dig @127.0.30.1 -p {DNS_PORT} web.gslb.example.com +short   # weighted 50/30/20");
    println!(
        "  dig @127.0.10.1 -p {DNS_PORT} geo.gslb.example.com +short +subnet=203.0.113.0/24   # nearest: ap"
    );
    println!(
        "  curl -s http://127.0.10.1:{ADMIN_PORT}/state               # every service, region, health and why"
    );
    println!(
        "  curl -s 'http://127.0.10.1:{ADMIN_PORT}/explain?name=app&client=198.51.100.7&down=eu'   # what if eu failed"
    );
    println!("  curl -s http://127.0.10.1:{ADMIN_PORT}/metrics             # Prometheus metrics");
    println!(
        "  gslbd status --admin 127.0.10.1:{ADMIN_PORT}                 # the view as a table"
    );
    println!("\nOr open http://127.0.10.1:{ADMIN_PORT}/ui in a browser: eu's operator page.");
    println!("\nType `fail eu` (or us, ap) to make a region's backend answer 503, `restore eu` to");
    println!("bring it back, `status`, or `quit`. Within ~2 s every region's answers change;");
    println!("after a restore they return once the failback delay (30 s) has passed.\n");

    let mut lines = stdin_lines();
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(DemoError::Signal)?;
    let mut stdin_open = true;
    loop {
        tokio::select! {
            line = lines.recv(), if stdin_open => {
                let Some(line) = line else {
                    stdin_open = false;
                    continue;
                };
                let words: Vec<&str> = line.split_whitespace().collect();
                match words.as_slice() {
                    ["quit" | "exit"] => break,
                    ["status"] => {
                        for ((name, ..), up) in REGIONS.iter().zip(&switches) {
                            let state = if up.load(Ordering::Relaxed) { "up" } else { "failed" };
                            println!("  {name}: backend {state}");
                        }
                    }
                    [verb @ ("fail" | "restore"), region] => {
                        match REGIONS.iter().position(|(name, ..)| name == region) {
                            Some(i) => {
                                switches[i].store(*verb == "restore", Ordering::Relaxed);
                                println!("  {region}: backend {}", if *verb == "restore" { "restored" } else { "failed (503)" });
                            }
                            None => println!("  unknown region {region}: eu, us or ap"),
                        }
                    }
                    [] => {}
                    _ => println!("  commands: fail REGION, restore REGION, status, quit"),
                }
            }
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
        }
    }
    for app in apps {
        app.shutdown().await;
    }
    Ok(())
}
