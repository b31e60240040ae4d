//! A whole region dies (README, "When a region fails"): every region is a real `gslbd run`
//! process with default probe, gossip and observer settings, beside its own HTTP backend
//! process; regions die by `kill -9` of both. The survivors' own probes of the dead region's
//! targets (observers) take it out of their answers; a region whose gslbd dies while its
//! backend serves stays answered; a node that starts while another region is down is ready
//! only once it has its own word on that region, and does not answer it. Asserts answers and
//! states, not timings: the time a loss takes is measured by `examples/convergence.rs`.

mod common;

use common::config::Service;
use common::processes::{Region, Regions};

const EU: usize = 0;
const US: usize = 1;
const AP: usize = 2;
const OBSERVED_DOWN: &str = "\"unhealthy\" \"observed\"";

#[test]
#[ignore = "needs python3: run by .ci/run"]
fn two_regions_one_dies_whole_and_the_survivor_stops_answering_it() {
    let regions = Regions::new(90, 2);
    let mut up = Region::start_all(&regions);
    up[US].dies();
    regions.answers(EU, &regions.only(&[EU]));
    regions.keeps_answering(EU, &regions.only(&[EU]));
    assert_eq!(regions.why(EU, US), OBSERVED_DOWN);
    // us returns: answered again, on its own report.
    up[US] = Region::start(&regions, US);
    regions.ready(US);
    for i in [EU, US] {
        regions.answers(i, &regions.all());
    }
    regions.until_why(EU, US, "\"healthy\" \"reported\"");
}

#[test]
#[ignore = "needs python3: run by .ci/run"]
fn three_regions_two_die_at_once_and_the_survivor_answers_itself() {
    let regions = Regions::new(91, 3);
    let mut up = Region::start_all(&regions);
    up[US].dies();
    up[AP].dies();
    regions.answers(EU, &regions.only(&[EU]));
    regions.keeps_answering(EU, &regions.only(&[EU]));
    for region in [US, AP] {
        assert_eq!(regions.why(EU, region), OBSERVED_DOWN);
    }
}

#[test]
#[ignore = "needs python3: run by .ci/run"]
fn a_region_whose_gslbd_dies_stays_answered_while_its_backend_serves() {
    let regions = Regions::new(93, 2);
    let mut up = Region::start_all(&regions);
    up[US].gslbd.kill_9();
    // Past the peer timeout us is stale: eu's own probes of us's backend keep it in.
    regions.until_why(EU, US, "\"healthy\" \"observed\"");
    regions.keeps_answering(EU, &regions.all());
    // Then its backend dies too: out.
    up[US].backend.kill_9();
    regions.answers(EU, &regions.only(&[EU]));
}

#[test]
#[ignore = "needs python3: run by .ci/run"]
fn a_node_starting_while_a_region_is_down_does_not_answer_it_once_ready() {
    let regions = Regions::new(92, 2);
    // us is down: neither its gslbd nor its backend runs. eu starts.
    let _eu = Region::start(&regions, EU);
    regions.ready(EU);
    // Ready: its own probes of us's target have spoken, and us is not answered.
    assert_eq!(regions.answer(EU), regions.only(&[EU]));
    assert_eq!(regions.why(EU, US), OBSERVED_DOWN);
    // us comes up: answered from its first report.
    let _us = Region::start(&regions, US);
    regions.answers(EU, &regions.all());
}

/// README's row "a region's target is a host name", with separate processes: eu's target of
/// `named` is `localhost` (a backend on 127.0.0.1 behind it), us's its own backend; ap has no
/// target for it and answers it from the reports.
#[test]
#[ignore = "needs python3: run by .ci/run"]
fn a_host_name_target_follows_its_owners_probe_and_leaves_when_its_owner_dies() {
    const NAMED: &str = "named.gslb.example.com";
    let mut regions = Regions::new(97, 3);
    let us_backend = regions.backend(US);
    regions.services.push(
        Service::failover(NAMED, &["eu", "us"])
            .target_name("eu", "localhost")
            .target("us", &[&us_backend]),
    );
    let cname = vec!["localhost.".to_string()];
    let us_address = vec![us_backend.clone()];
    let mut behind_the_name = regions.start_backend_on("127.0.0.1");
    let mut up = Region::start_all(&regions);
    // Every server answers eu's CNAME: us and ap from eu's report.
    for i in [EU, US, AP] {
        regions.answers_records(i, NAMED, &cname);
    }
    // What the name points at fails eu's probe: every server answers us.
    behind_the_name.kill_9();
    for i in [EU, US, AP] {
        regions.answers_records(i, NAMED, &us_address);
    }
    // It serves again: the CNAME is back everywhere.
    let _behind_the_name = regions.start_backend_on("127.0.0.1");
    for i in [EU, US, AP] {
        regions.answers_records(i, NAMED, &cname);
    }
    // eu's gslbd dies while the name still serves: no observer probes a name, so once eu is
    // stale (peer_timeout; us and ap still hear each other) they answer us.
    up[EU].gslbd.kill_9();
    for i in [US, AP] {
        regions.answers_records(i, NAMED, &us_address);
    }
}
