#![allow(clippy::print_stdout)] // a measuring tool: its output is the point
//! Gossip at scale, simulated in one process: N regions (default 10) each publishing S services
//! (default 10 000), all on loopback. Each node is the real gossip layer (chitchat, sealed
//! transport, signed reports, verification) fed from a fixed snapshot; the state owner is
//! replaced by a counter of verified reports, so two cores are not spent rebuilding ten
//! snapshots (that cost is measured by `cargo bench`). Reports the time until every node has
//! verified every other region's report for every service, the bytes sent meanwhile and per
//! second afterwards, and the memory used.
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
    // Parse every config first so that parsing is not counted as gossip memory.
    let configs: Vec<String> = (0..regions)
        .map(|me| config_text(me, regions, services, &keys, &cluster, None))
        .collect();
    let rss_before = rss_kib();
    let started = Instant::now();
    let mut nodes: Vec<Gossip> = Vec::new();
    let mut verified: Vec<Arc<AtomicUsize>> = Vec::new();
    let mut first_gossip = None;
    let tasks = Tasks::new();
    // Each node's report stays as built: the senders live as long as the nodes.
    let mut report_senders = Vec::new();
    for text in &configs {
        let text = match first_gossip {
            Some(addr) => text.replace("seeds = []", &format!("seeds = [\"{addr}\"]")),
            None => text.clone(),
        };
        let config = config::parse(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
        let inputs = Inputs {
            verdicts: &Verdicts::new(),
            remote: None,
        };
        let (report, reports) =
            watch::channel(Arc::new(local_report::build(&config.model, &inputs)));
        report_senders.push(report);
        let (events, mut inbox) = mpsc::channel(1024);
        let settings = config.gossip.expect("gossip configured");
        let metrics = Arc::new(gslbd::metrics::Metrics::new());
        let node = Gossip::start(
            &tasks,
            &settings,
            reports,
            events,
            Arc::new(OpenNetwork),
            metrics,
        )
        .await?;
        first_gossip.get_or_insert(node.local_addr);
        let count = Arc::new(AtomicUsize::new(0));
        let counter = count.clone();
        tokio::spawn(async move {
            let mut seen = HashSet::new();
            while let Some(event) = inbox.recv().await {
                if let Event::Report { stamp, service, .. } = event
                    && seen.insert((stamp.region, service))
                {
                    counter.store(seen.len(), Ordering::Relaxed);
                }
            }
        });
        verified.push(count);
        nodes.push(node);
    }
    let sent = |nodes: &[Gossip]| -> u64 {
        nodes
            .iter()
            .map(|g| g.transport_stats.bytes_sent.load(Ordering::Relaxed))
            .sum()
    };
    let want = (regions - 1) * services;
    let deadline = Instant::now() + Duration::from_secs(1200);
    while verified.iter().any(|c| c.load(Ordering::Relaxed) < want) {
        if Instant::now() > deadline {
            let got: Vec<usize> = verified.iter().map(|c| c.load(Ordering::Relaxed)).collect();
            anyhow::bail!("no convergence within 20 minutes: {got:?} of {want}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let converge_time = started.elapsed();
    let converge_bytes = sent(&nodes);
    let rss_converged = rss_kib();
    let steady_from = sent(&nodes);
    tokio::time::sleep(Duration::from_secs(10)).await;
    let steady_bytes = sent(&nodes) - steady_from;
    println!("regions {regions}, services {services} per region ({want} reports per node)");
    println!(
        "converged in {:.1} s; bytes sent meanwhile: {:.1} MB in all, {:.1} MB per node",
        converge_time.as_secs_f64(),
        converge_bytes as f64 / 1e6,
        converge_bytes as f64 / 1e6 / regions as f64
    );
    println!(
        "steady state: {:.1} kB/s per node (heartbeats and digests, no changes)",
        steady_bytes as f64 / 10.0 / 1e3 / regions as f64
    );
    println!(
        "memory: {:.0} MB for {regions} nodes, {:.0} MB per node (RSS growth: gossip state and one fixed snapshot each)",
        rss_converged.saturating_sub(rss_before) as f64 / 1024.0,
        rss_converged.saturating_sub(rss_before) as f64 / 1024.0 / regions as f64
    );
    drop(nodes);
    tasks.shutdown().await;
    Ok(())
}
