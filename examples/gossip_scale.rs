#![allow(clippy::print_stdout)] // a measuring tool: its output is the point
//! Gossip at scale, simulated in one process: N regions (default 10) each publishing S services
//! (default 10 000), all on loopback. Each node is the real gossip layer (foca, sealed
//! transport, signed shard units, pulls, verification) fed from a fixed report; the state
//! owner is replaced by a counter of verified reports, so two cores are not spent rebuilding
//! ten snapshots (that cost is measured by `cargo bench`). Prints: the time until every node
//! has every other region's report for every service, starting from empty, and the bytes sent
//! meanwhile; the state held; the bytes sent per second at rest; how long one health change
//! takes to reach every node; how long a restarted node takes to catch up.
//!
//!     cargo run --release --example gossip_scale -- [REGIONS] [SERVICES]

use std::fmt::Write;
use std::time::{Duration, Instant};

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use gslbd::config;
use gslbd::gossip::keys::generate;
use gslbd::gossip::transport::OpenNetwork;
use gslbd::gossip::{Gossip, local_report};
use gslbd::health::Verdicts;
use gslbd::region_health::Inputs;
use gslbd::state::Event;
use gslbd::tasks::Tasks;
use tokio::sync::{mpsc, watch};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn config_text(
    me: usize,
    regions: usize,
    services: usize,
    keys: &[(String, String)],
    cluster: &str,
    seed: Option<String>,
) -> String {
    let mut text = String::new();
    let _ = writeln!(
        text,
        "local_region = \"r{me}\"\n[server]\nlisten = [\"127.0.0.1:0\"]\nudp_workers = 1"
    );
    let _ = writeln!(text, "[probe]\nkind = \"none\"");
    let seeds = seed.map(|s| format!("\"{s}\"")).unwrap_or_default();
    let _ = writeln!(
        text,
        "[gossip]\nlisten = \"127.0.0.1:0\"\nseeds = [{seeds}]\nkeys = [\"{cluster}\"]\nsigning_key = \"{}\"\n[gossip.region_keys]",
        keys[me].0
    );
    for (r, (_, public)) in keys.iter().enumerate() {
        let _ = writeln!(text, "r{r} = \"{public}\"");
    }
    let _ = writeln!(text, "[zone]\nname = \"gslb.example.com\"");
    for r in 0..regions {
        let _ = writeln!(text, "[[regions]]\nname = \"r{r}\"");
        if r == 0 {
            let _ = writeln!(
                text,
                "nameserver = \"ns.gslb.example.com\"\nglue = [\"127.0.0.1\"]"
            );
        }
    }
    for s in 0..services {
        let targets: Vec<String> = (0..regions)
            .map(|r| format!("r{r} = [\"127.{}.{}.{}\"]", 10 + r, s / 250, s % 250 + 1))
            .collect();
        let _ = writeln!(
            text,
            "[[services]]\nname = \"svc-{s}.gslb.example.com\"\nstrategy = \"round-robin\"\ntargets = {{ {} }}",
            targets.join(", ")
        );
    }
    text
}

/// One node of the simulated cluster, with the counters its state owner stand-in keeps.
struct Sim {
    gossip: Gossip,
    tasks: Tasks,
    /// Distinct (region, service) reports verified.
    verified: Arc<AtomicUsize>,
    /// Set when the probe service's report says it is unhealthy.
    changed: Arc<std::sync::Mutex<Option<Instant>>>,
    _report: watch::Sender<Option<Arc<local_report::LocalReport>>>,
}

/// The service whose health the single-change measurement flips.
const PROBE: &str = "svc-0.gslb.example.com.";

async fn start_node(text: &str) -> anyhow::Result<Sim> {
    let config = config::parse(text).map_err(|e| anyhow::anyhow!("{e}"))?;
    let inputs = Inputs {
        verdicts: &Verdicts::new(),
        remote: None,
    };
    let (report, reports) =
        watch::channel(Some(Arc::new(local_report::build(&config.model, &inputs))));
    let (events, mut inbox) = mpsc::channel(1024);
    let settings = config.gossip.expect("gossip configured");
    let tasks = Tasks::new();
    let gossip = Gossip::start(
        &tasks,
        &settings,
        reports,
        events,
        Arc::new(OpenNetwork),
        Arc::new(gslbd::metrics::Metrics::new()),
    )
    .await?;
    let verified = Arc::new(AtomicUsize::new(0));
    let changed = Arc::new(std::sync::Mutex::new(None));
    let (counter, flipped) = (verified.clone(), changed.clone());
    tokio::spawn(async move {
        let mut seen = HashSet::new();
        while let Some(event) = inbox.recv().await {
            if let Event::Report {
                stamp,
                service,
                report,
                ..
            } = event
            {
                if service.to_ascii() == PROBE
                    && report.health == gslbd::model::Health::Unhealthy
                    && let Ok(mut at) = flipped.lock()
                {
                    at.get_or_insert_with(Instant::now);
                }
                if seen.insert((stamp.region, service)) {
                    counter.store(seen.len(), Ordering::Relaxed);
                }
            }
        }
    });
    Ok(Sim {
        gossip,
        tasks,
        verified,
        changed,
        _report: report,
    })
}

/// Waits until every node in `nodes` verified `want` reports; the time it took.
async fn converged(nodes: &[&Sim], want: usize, started: Instant) -> anyhow::Result<Duration> {
    let deadline = Instant::now() + Duration::from_secs(600);
    while nodes
        .iter()
        .any(|n| n.verified.load(Ordering::Relaxed) < want)
    {
        if Instant::now() > deadline {
            let got: Vec<usize> = nodes
                .iter()
                .map(|n| n.verified.load(Ordering::Relaxed))
                .collect();
            anyhow::bail!("no convergence within 10 minutes: {got:?} of {want}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(started.elapsed())
}

fn sent(nodes: &[Sim]) -> u64 {
    nodes
        .iter()
        .map(|n| n.gossip.transport_stats.bytes_sent.load(Ordering::Relaxed))
        .sum()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let regions: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10);
    let services: usize = std::env::args()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10_000);
    let mut keys = Vec::new();
    let mut cluster = String::new();
    for _ in 0..regions {
        let (c, seed, public) = generate()?;
        if cluster.is_empty() {
            cluster = c;
        }
        keys.push((seed, public));
    }
    let configs: Vec<String> = (0..regions)
        .map(|me| config_text(me, regions, services, &keys, &cluster, None))
        .collect();
    let want = (regions - 1) * services;
    println!("regions {regions}, services {services} per region ({want} reports per node)");

    // 1. From empty: every node starts at once, seeded with the first.
    let rss_before = rss_kib();
    let started = Instant::now();
    let mut nodes: Vec<Sim> = Vec::new();
    let mut seed = None;
    for text in &configs {
        let text = match seed {
            Some(addr) => text.replace("seeds = []", &format!("seeds = [\"{addr}\"]")),
            None => text.clone(),
        };
        let node = start_node(&text).await?;
        seed.get_or_insert(node.gossip.local_addr);
        nodes.push(node);
    }
    let all: Vec<&Sim> = nodes.iter().collect();
    let converge = converged(&all, want, started).await?;
    let converge_bytes = sent(&nodes);
    let rss = rss_kib().saturating_sub(rss_before);
    let held: Vec<usize> = nodes.iter().map(|n| n.gossip.held_bytes()).collect();
    println!(
        "converged from empty in {:.2} s; sent {:.1} MB per node meanwhile",
        converge.as_secs_f64(),
        converge_bytes as f64 / 1e6 / regions as f64
    );
    println!(
        "state: signed units held {:.2} MB per node (max); RSS growth {:.0} MB per node (units, decoded reports, the stand-in's sets)",
        *held.iter().max().unwrap_or(&0) as f64 / 1e6,
        rss as f64 / 1024.0 / regions as f64
    );

    // 2. At rest.
    let steady_from = sent(&nodes);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let steady = (sent(&nodes) - steady_from) as f64 / 10.0 / regions as f64;
    println!("at rest: {:.1} kB/s sent per node", steady / 1e3);

    // 3. One change: the first region's probe service turns unhealthy.
    let mut report = nodes[0]
        ._report
        .borrow()
        .as_deref()
        .cloned()
        .expect("a report from the start");
    let probe = hickory_proto::rr::Name::from_ascii(PROBE)?;
    if let Some(service) = report.service(&probe) {
        let failing = gslbd::gossip::report::ServiceReport {
            health: gslbd::model::Health::Unhealthy,
            ..service.clone()
        };
        report.set_service(&probe, Some(failing));
    }
    let changed_at = Instant::now();
    nodes[0]._report.send_replace(Some(Arc::new(report)));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut latest = Duration::ZERO;
    for node in &nodes[1..] {
        loop {
            let at = node.changed.lock().ok().and_then(|at| *at);
            if let Some(at) = at {
                latest = latest.max(at.duration_since(changed_at));
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "the change never arrived");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    println!(
        "one change reached every node in {:.0} ms",
        latest.as_secs_f64() * 1e3
    );

    // 4. A node restarts (a new run) and catches up with the running cluster.
    let last = nodes.pop().expect("a node");
    last.tasks.shutdown().await;
    drop(last);
    let text = configs[regions - 1].replace(
        "seeds = []",
        &format!("seeds = [\"{}\"]", nodes[0].gossip.local_addr),
    );
    let started = Instant::now();
    let joiner = start_node(&text).await?;
    let catch_up = converged(&[&joiner], want, started).await?;
    println!(
        "a restarted node caught up in {:.2} s",
        catch_up.as_secs_f64()
    );
    for node in nodes.into_iter().chain([joiner]) {
        node.tasks.shutdown().await;
    }
    Ok(())
}
