//! A whole region dies (README, "When a region fails"): every region is a real `gslbd run`
//! process with default probe, gossip and observer settings, beside its own HTTP backend
//! process; regions die by `kill -9` of both. The survivors' own probes of the dead region's
//! targets (observers) take it out of their answers; a region whose gslbd dies while its
//! backend serves stays answered; a node that starts while another region is down is ready
//! only once it has its own word on that region, and does not answer it. Asserts answers and
//! states, not timings: the time a loss takes is measured by `examples/region_loss.rs`.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::processes::{API, Regions, Spawned};
use common::{http_get, sorted_answer, wait_for_answer};

/// Longer than any default timing involved (peer timeout 15 s, observers 2 s × fall 2).
const PATIENCE: Duration = Duration::from_secs(40);
/// How long an answer must hold to show it does not flap back.
const HOLD: Duration = Duration::from_secs(5);

/// A region's two processes.
struct Region {
    gslbd: Spawned,
    backend: Spawned,
}

impl Region {
    fn start(regions: &Regions, i: usize) -> Self {
        let backend = regions.start_backend(i);
        Self {
            gslbd: regions.start_gslbd(i),
            backend,
        }
    }

    /// kill -9 of the region's gslbd and its backend.
    fn dies(&mut self) {
        self.gslbd.kill_9();
        self.backend.kill_9();
    }
}

/// Waits until region i's gslbd says it is ready (`/readyz` 200).
async fn ready(regions: &Regions, i: usize) {
    let admin = regions.admin(i);
    let deadline = Instant::now() + PATIENCE;
    while !(std::net::TcpStream::connect(admin).is_ok() && http_get(admin, "/readyz").0 == 200) {
        assert!(Instant::now() < deadline, "{admin} never became ready");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn answers(dns: SocketAddr, want: &[String]) {
    wait_for_answer(dns, API, PATIENCE, |got| got == want).await;
}

/// Asserts that `dns` answers `want` throughout [`HOLD`].
async fn keeps_answering(dns: SocketAddr, want: &[String]) {
    let until = Instant::now() + HOLD;
    while Instant::now() < until {
        assert_eq!(sorted_answer(dns, API), want, "{dns}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `why` source `/state` gives for `region`'s target of the service, at `admin`.
fn why(admin: SocketAddr, region: &str) -> String {
    let (status, body) = http_get(admin, "/state");
    assert_eq!(status, 200, "{body}");
    let state: serde_json::Value = serde_json::from_str(&body).expect("/state is JSON");
    let target = state["services"][0]["regions"]
        .as_array()
        .expect("regions")
        .iter()
        .find(|t| t["region"] == region)
        .cloned()
        .expect("the region's target");
    format!("{} {}", target["health"], target["why"]["source"])
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs python3: run by .ci/run"]
async fn two_regions_one_dies_whole_and_the_survivor_stops_answering_it() {
    let regions = Regions::new(90, 2);
    let mut up: Vec<Region> = (0..2).map(|i| Region::start(&regions, i)).collect();
    for i in 0..2 {
        ready(&regions, i).await;
        answers(regions.dns(i), &regions.all()).await;
    }
    up[1].dies();
    answers(regions.dns(0), &regions.only(&[0])).await;
    keeps_answering(regions.dns(0), &regions.only(&[0])).await;
    assert_eq!(why(regions.admin(0), "us"), "\"unhealthy\" \"observed\"");
    // us returns: answered again, on its own report.
    up[1] = Region::start(&regions, 1);
    ready(&regions, 1).await;
    for i in 0..2 {
        answers(regions.dns(i), &regions.all()).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs python3: run by .ci/run"]
async fn three_regions_two_die_at_once_and_the_survivor_answers_itself() {
    let regions = Regions::new(91, 3);
    let mut up: Vec<Region> = (0..3).map(|i| Region::start(&regions, i)).collect();
    for i in 0..3 {
        ready(&regions, i).await;
        answers(regions.dns(i), &regions.all()).await;
    }
    up[1].dies();
    up[2].dies();
    answers(regions.dns(0), &regions.only(&[0])).await;
    keeps_answering(regions.dns(0), &regions.only(&[0])).await;
    for region in ["us", "ap"] {
        assert_eq!(why(regions.admin(0), region), "\"unhealthy\" \"observed\"");
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs python3: run by .ci/run"]
async fn a_region_whose_gslbd_dies_stays_answered_while_its_backend_serves() {
    let regions = Regions::new(93, 2);
    let mut up: Vec<Region> = (0..2).map(|i| Region::start(&regions, i)).collect();
    ready(&regions, 0).await;
    answers(regions.dns(0), &regions.all()).await;
    up[1].gslbd.kill_9();
    // Past the peer timeout, us is stale: eu's own probes of us's backend keep it in.
    let deadline = Instant::now() + PATIENCE;
    while why(regions.admin(0), "us") != "\"healthy\" \"observed\"" {
        assert!(Instant::now() < deadline, "{}", why(regions.admin(0), "us"));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    keeps_answering(regions.dns(0), &regions.all()).await;
    // Then its backend dies too: out.
    up[1].backend.kill_9();
    answers(regions.dns(0), &regions.only(&[0])).await;
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs python3: run by .ci/run"]
async fn a_node_starting_while_a_region_is_down_does_not_answer_it_once_ready() {
    let regions = Regions::new(92, 2);
    // us is down: neither its gslbd nor its backend runs. eu starts.
    let _eu = Region::start(&regions, 0);
    ready(&regions, 0).await;
    let admin = regions.admin(0);
    // Ready: its own probes of us's target have spoken, and us is not answered.
    assert_eq!(sorted_answer(regions.dns(0), API), regions.only(&[0]));
    assert_eq!(why(admin, "us"), "\"unhealthy\" \"observed\"");
    // us comes up: answered from its first report.
    let _us = Region::start(&regions, 1);
    answers(regions.dns(0), &regions.all()).await;
}
