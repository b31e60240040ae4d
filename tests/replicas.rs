//! More than one gslbd per region (README, "Replicas"): three regions of two replicas each, as
//! real processes gossiping under their own identities (instances "0" and "1"), each region's
//! replicas probing the region's one backend process. Every replica of every region answers
//! alike; losing a replica with kill -9, or restarting it, changes no answer; a backend's
//! failure moves every replica's answers; a drain made at one replica of a region and undone
//! at the other holds for both, and for every other region. Asserts answers, not timings.

mod common;

use common::processes::{Regions, Spawned};

const EU: usize = 0;
const US: usize = 1;
const AP: usize = 2;

#[test]
#[ignore = "needs python3: run by .ci/run"]
fn replicas_answer_alike_through_a_replica_s_loss_and_restart() {
    let regions = Regions::with_replicas(99, 3, 2);
    let mut backends: Vec<Spawned> = (0..3).map(|i| regions.start_backend(i)).collect();
    let mut gslbds: Vec<Vec<Spawned>> = (0..3)
        .map(|i| (0..2).map(|r| regions.start_gslbd_of(i, r)).collect())
        .collect();
    let nodes = regions.nodes();
    for &(i, r) in &nodes {
        regions.ready_of(i, r);
        regions.answers_of(i, r, &regions.all());
    }

    // eu's replica 0, the one whose reports speak for eu, dies; held past the peer timeout.
    gslbds[EU][0].kill_9();
    let others: Vec<(usize, usize)> = nodes.iter().copied().filter(|&n| n != (EU, 0)).collect();
    for _ in 0..4 {
        regions.nodes_keep_answering(&others, &regions.all());
    }
    // It restarts: nothing changes either.
    gslbds[EU][0] = regions.start_gslbd_of(EU, 0);
    regions.ready_of(EU, 0);
    regions.nodes_keep_answering(&nodes, &regions.all());

    // us's backend dies: every replica of every region drops us.
    backends[US].kill_9();
    let without_us = regions.only(&[EU, AP]);
    for &(i, r) in &nodes {
        regions.answers_of(i, r, &without_us);
    }
    regions.nodes_keep_answering(&nodes, &without_us);

    // eu drained at its replica 0: every replica of every region, eu's replica 1 included,
    // leaves eu out; undrained at replica 1: back everywhere.
    let gslbd = |verb: &str, r: usize| {
        let admin = regions.admin_of(EU, r).to_string();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_gslbd"))
            .args([verb, "eu", "--admin", &admin])
            .output()
            .expect("run gslbd");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    gslbd("drain", 0);
    for &(i, r) in &nodes {
        regions.answers_of(i, r, &regions.only(&[AP]));
    }
    gslbd("undrain", 1);
    for &(i, r) in &nodes {
        regions.answers_of(i, r, &without_us);
    }
}
