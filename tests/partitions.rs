//! Partitions for real (README, "When a region fails"): each region runs in a network
//! namespace of its own (a `gslbd run` process and an HTTP backend process, default settings),
//! the namespaces joined by a bridge; links are cut with blackhole routes or by taking a
//! region's link down, which stops gossip and probes alike. Needs root and iproute2.
//! Asserts answers and states on every side, not timings. The tests run one at a time: each
//! runs six processes on this machine's two cores, and a probe timing out under load would
//! read as a cut.

mod common;

use std::sync::{Mutex, MutexGuard};

use common::processes::{Region, Regions};

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn alone() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

const EU: usize = 0;
const US: usize = 1;
const AP: usize = 2;

#[test]
#[ignore = "needs root, iproute2, python3: run by .ci/run"]
fn two_regions_cut_apart_each_answer_themselves_until_the_link_heals() {
    let _alone = alone();
    let regions = Regions::in_namespaces(94, 2);
    let _up = Region::start_all(&regions);
    regions.cut(EU, US);
    // Neither can tell the other's death from the cut: each sees the other silent and its
    // targets unreachable, and answers what it can see working, itself.
    regions.answers(EU, &regions.only(&[EU]));
    regions.answers(US, &regions.only(&[US]));
    regions.until_why(EU, US, "\"unhealthy\" \"observed\"");
    regions.heal(EU, US);
    for i in [EU, US] {
        regions.answers(i, &regions.all());
    }
}

#[test]
#[ignore = "needs root, iproute2, python3: run by .ci/run"]
fn a_cut_between_two_of_three_regions_changes_no_answer_and_an_isolated_region_answers_itself() {
    let _alone = alone();
    let regions = Regions::in_namespaces(95, 3);
    let _up = Region::start_all(&regions);
    // eu and us lose each other; ap reaches both: gossip goes through ap, and one observer
    // of two seeing a target down is no majority. Held past the peer timeout.
    regions.cut(EU, US);
    for _ in 0..4 {
        for i in [EU, US, AP] {
            regions.keeps_answering(i, &regions.all());
        }
    }
    regions.heal(EU, US);
    // ap is cut off from both: they drop it, it answers itself.
    regions.isolate(AP, true);
    for i in [EU, US] {
        regions.answers(i, &regions.only(&[EU, US]));
        regions.until_why(i, AP, "\"unhealthy\" \"observed\"");
    }
    regions.answers(AP, &regions.only(&[AP]));
    regions.isolate(AP, false);
    for i in [EU, US, AP] {
        regions.answers(i, &regions.all());
    }
}

#[test]
#[ignore = "needs root, iproute2, python3: run by .ci/run"]
fn a_region_healthy_inside_but_unreachable_from_outside_leaves_every_answer_its_own_too() {
    let _alone = alone();
    let regions = Regions::in_namespaces(96, 3);
    let _up = Region::start_all(&regions);
    // ap's backend serves ap's own probes, but neither eu nor us can reach it.
    regions.block_backend(EU, AP, true);
    regions.block_backend(US, AP, true);
    for i in [EU, US, AP] {
        regions.answers(i, &regions.only(&[EU, US]));
    }
    regions.until_why(AP, AP, "\"unhealthy\" \"observed_down\"");
    regions.until_why(EU, AP, "\"unhealthy\" \"observed_down\"");
    // ... and says so in its metrics (alert GslbdObserversOverruleRegion).
    let (_, metrics) = regions.admin_get(EU, "/metrics").expect("admin listens");
    let overruled = ["region=\"ap\"", "decision=\"overruled\""];
    assert_eq!(
        common::sample(&metrics, "gslbd_region_observed_services", &overruled),
        1.0,
        "{metrics}"
    );
    regions.block_backend(EU, AP, false);
    regions.block_backend(US, AP, false);
    for i in [EU, US, AP] {
        regions.answers(i, &regions.all());
    }
}
