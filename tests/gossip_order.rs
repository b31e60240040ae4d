//! Cross-region state ordered without clocks (docs/gossip.md, "Ordering"): region us runs as a
//! real gslbd process beside in-process eu and ap. Restarted with its clock 120 s behind, or
//! with its clock a day ahead then stepped back, it stays in eu's answers and its health
//! changes apply at once; killed with kill -9, its last signed units replayed by a member
//! holding the cluster key do not keep it in answers. The clock is moved with Debian's
//! libfaketime (LD_PRELOAD). Asserts answers and states, not timings. Observing is off here
//! (`no_observers`): these are the rules of the owner's word, which the other regions' probes
//! would otherwise second-guess (us's backend serves after its gslbd is killed).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::backends::Mode;
use common::cluster::*;
use common::intruder::Intruder;
use common::*;
use gslbd::gossip::store::RunId;

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";
const API: &str = "api.gslb.example.com";
/// How long a region must stay in answers to show it is not going stale: several of the test
/// cluster's `peer_timeout` (1.6 s).
const HOLD: Duration = Duration::from_secs(6);
const US: usize = 1;

/// Region us as a real `gslbd run` process, killed with SIGKILL when dropped.
struct Process {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The clock of a process, by libfaketime.
enum Clock {
    True,
    /// A fixed offset, e.g. "-120s".
    Offset(&'static str),
    /// The offset read from this file, re-read every second: written to step the clock.
    File(PathBuf),
}

/// Replaces the cluster's in-process us by a `gslbd` process on `clock`.
async fn us_as_process(cluster: &mut Cluster, clock: &Clock) -> Process {
    if let Some(node) = cluster.nodes[US].take() {
        node.app.shutdown().await;
    }
    start_us(cluster, clock)
}

fn start_us(cluster: &Cluster, clock: &Clock) -> Process {
    let mut config = region_config(
        US,
        cluster.net,
        cluster.port,
        &cluster.keys,
        &cluster.seeds(),
    );
    (cluster.customize)(&mut config);
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("us.toml");
    std::fs::write(&path, config.to_toml()).expect("write config");
    let mut command = Command::new(env!("CARGO_BIN_EXE_gslbd"));
    command
        .args(["run", "--config"])
        .arg(&path)
        .env("GSLBD_LOG", "warn")
        .stdout(Stdio::null());
    let faked = |command: &mut Command| {
        assert!(
            Path::new(LIBFAKETIME).exists(),
            "{LIBFAKETIME} missing: apt-get install libfaketime"
        );
        // Only the wall clock moves, as an NTP step does; monotonic time is the kernel's.
        command
            .env("LD_PRELOAD", LIBFAKETIME)
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
    };
    match clock {
        Clock::True => {}
        Clock::Offset(offset) => {
            faked(&mut command);
            command.env("FAKETIME", offset);
        }
        Clock::File(file) => {
            faked(&mut command);
            command
                .env("FAKETIME_TIMESTAMP_FILE", file)
                .env("FAKETIME_CACHE_DURATION", "1");
        }
    }
    let child = command.spawn().expect("start gslbd");
    Process { child, _dir: dir }
}

fn eu_answer(cluster: &Cluster) -> Vec<String> {
    sorted_answer(cluster.node(0).dns, API)
}

/// Waits until eu's answer holds us's address or not, as `present` says.
async fn until_us(cluster: &Cluster, present: bool) {
    let us = cluster.addr(US);
    wait_for_answer(cluster.node(0).dns, API, PATIENCE, |got| {
        got.contains(&us) == present
    })
    .await;
}

/// Asserts that us's address stays in (or out of) eu's answer for [`HOLD`].
async fn us_stays(cluster: &Cluster, present: bool) {
    let us = cluster.addr(US);
    let until = Instant::now() + HOLD;
    while Instant::now() < until {
        let got = eu_answer(cluster);
        assert_eq!(got.contains(&us), present, "eu answers {got:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// us's backend fails, then recovers: eu follows both, from us's reports.
async fn us_health_changes_apply(cluster: &Cluster) {
    cluster.backends[US].set(Mode::Status(503, "down"));
    until_us(cluster, false).await;
    cluster.backends[US].set(Mode::Status(200, "ok"));
    until_us(cluster, true).await;
    us_stays(cluster, true).await;
}

/// The run speaking for us's instance `0` in eu's `/state`.
fn us_run_on_eu(cluster: &Cluster) -> Option<serde_json::Value> {
    let admin = cluster
        .node(0)
        .app
        .admin_addr()
        .expect("eu's admin endpoint");
    let (_, body) = http_get(admin, "/state");
    let state: serde_json::Value = serde_json::from_str(&body).expect("/state is JSON");
    let us = state["regions"]
        .as_array()?
        .iter()
        .find(|region| region["name"] == "us")?;
    us["runs"]
        .as_array()?
        .iter()
        .find(|run| run["instance"] == "0")
        .cloned()
}

fn kill_9(mut process: Process) {
    process.child.kill().expect("kill -9");
    process.child.wait().expect("reap");
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs libfaketime: run by .ci/run"]
async fn a_region_restarted_with_its_clock_120_s_behind_stays_fresh_and_its_changes_apply() {
    let mut cluster = Cluster::start_with(70, |config| {
        config.server.admin = Some("127.0.0.1:0".into());
        no_observers(config);
    })
    .await;
    let us = us_as_process(&mut cluster, &Clock::True).await;
    until_us(&cluster, true).await;
    us_stays(&cluster, true).await;
    let before = us_run_on_eu(&cluster).expect("eu shows us's run");

    kill_9(us);
    until_us(&cluster, false).await;
    let _us = start_us(&cluster, &Clock::Offset("-120s"));
    until_us(&cluster, true).await;
    us_stays(&cluster, true).await;
    // eu's /state shows the restart: a new epoch speaks for us's instance, heard.
    let after = us_run_on_eu(&cluster).expect("eu shows us's run");
    assert_ne!(after["epoch"], before["epoch"], "{after}");
    assert_eq!(after["heard"], true, "{after}");
    us_health_changes_apply(&cluster).await;
    cluster.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs libfaketime: run by .ci/run"]
async fn a_clock_a_day_ahead_then_stepped_back_keeps_the_region_fresh() {
    let mut cluster = Cluster::start_with(71, no_observers).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let offset = dir.path().join("faketime");
    std::fs::write(&offset, "+1d\n").expect("write offset");
    let us = us_as_process(&mut cluster, &Clock::File(offset.clone())).await;
    until_us(&cluster, true).await;
    us_stays(&cluster, true).await;

    // The clock is corrected while us runs: a step back of a day.
    std::fs::write(&offset, "+0\n").expect("write offset");
    us_stays(&cluster, true).await;
    us_health_changes_apply(&cluster).await;

    // And us restarted on the true clock, after values issued a day ahead.
    kill_9(us);
    until_us(&cluster, false).await;
    let _us = start_us(&cluster, &Clock::True);
    until_us(&cluster, true).await;
    us_health_changes_apply(&cluster).await;
    cluster.shutdown().await;
}

/// The cluster's gossip settings as a node has them (cluster name and keys).
fn member_settings(cluster: &Cluster) -> gslbd::config::GossipSettings {
    let config = region_config(2, cluster.net, cluster.port, &cluster.keys, &[]).parse();
    config.gossip.expect("gossip settings")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dead_region_s_last_values_replayed_do_not_keep_it_in_answers() {
    let mut cluster = Cluster::start_with(72, |config| {
        config.server.admin = Some("127.0.0.1:0".into());
        no_observers(config);
    })
    .await;
    let us = us_as_process(&mut cluster, &Clock::True).await;
    until_us(&cluster, true).await;

    // A member holding the cluster key asks eu for everything it holds of us's run: us's
    // latest signed heartbeat and shards.
    let deadline = Instant::now() + PATIENCE;
    let run = loop {
        if let Some(run) = us_run_on_eu(&cluster) {
            break run;
        }
        assert!(Instant::now() < deadline, "eu never showed us's run");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let run = RunId {
        region: gslbd::model::Region::new("us"),
        instance: "0".into(),
        epoch: u64::from_str_radix(run["epoch"].as_str().expect("an epoch"), 16)
            .expect("hex epoch"),
    };
    let mut intruder = Intruder::new(member_settings(&cluster).keyring.clone());
    let eu_gossip = cluster.node(0).app.gossip().expect("gossip").local_addr;
    let ap_gossip = cluster.node(2).app.gossip().expect("gossip").local_addr;
    let units = intruder.fetch(eu_gossip, &run).await;
    assert!(units.len() >= 2, "a heartbeat and a shard: {}", units.len());

    // us dies; the member replays its last signed units to eu and ap every 200 ms.
    kill_9(us);
    let until = Instant::now() + PATIENCE;
    let mut gone_since: Option<Instant> = None;
    while Instant::now() < until {
        intruder.send_units(eu_gossip, &units).await;
        intruder.send_units(ap_gossip, &units).await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let present = eu_answer(&cluster).contains(&cluster.addr(US));
        match (present, gone_since) {
            (false, None) => gone_since = Some(Instant::now()),
            (true, Some(_)) => panic!("us came back into answers on replayed units"),
            _ => {}
        }
        if gone_since.is_some_and(|since| since.elapsed() >= HOLD) {
            break;
        }
    }
    assert!(
        gone_since.is_some_and(|since| since.elapsed() >= HOLD),
        "us stayed in eu's answers: {:?}",
        eu_answer(&cluster)
    );
    // The latest units replayed are the very ones held: duplicates, each counted.
    let metrics = cluster.node(0).app.metrics().encode();
    let refused = |reason: &str| {
        sample(
            &metrics,
            "gslbd_gossip_reports_rejected_total",
            &[&format!("reason=\"{reason}\"")],
        )
    };
    assert!(
        refused("duplicate") + refused("replayed") >= 10.0,
        "{metrics}"
    );
    cluster.shutdown().await;
}
