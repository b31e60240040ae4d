//! Zone delegation end to end with real DNS software, all on loopback: a parent zone
//! `example.com` on Knot DNS; `gslbd delegation apply` writes the delegation by RFC 2136
//! dynamic update signed with TSIG (only the differences, nothing outside the delegation, a
//! wrong key changes nothing); two gslbd regions on 127.0.10.1:53 and 127.0.20.1:53; Unbound,
//! a recursive resolver with a stub zone for example.com, resolves app.gslb.example.com
//! through the delegation, and follows a failover of the primary region once the TTL expires.
//! Then the same with DNSSEC: Knot signs example.com, `delegation apply` adds the DS of the
//! regions' shared key, and Unbound, trusting only example.com's key, validates gslbd's signed
//! answers (AD) before and after a failover, and its compact denials.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::backends::{self, Mode};
use common::config::{ConfigFile, Probe, Region, Service};
use common::dns_software::{
    Ask, ask, new_secret, records, start_knot, start_unbound, trust_anchor,
};
use common::*;
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

const KNOT: &str = "127.0.0.50:5300";
const UNBOUND: &str = "127.0.0.60:5301";
const PATIENCE: Duration = Duration::from_secs(20);
const RECURSIVE: Ask = Ask {
    recursive: true,
    dnssec: false,
};

fn a_answer(reply: &Message) -> Vec<String> {
    let mut out: Vec<String> = reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::A(a) => Some(a.0.to_string()),
            _ => None,
        })
        .collect();
    out.sort();
    out
}

/// The parent zone: Knot's `example.com`, with a stale delegation of gslb.example.com.
const PARENT: &str = "$ORIGIN example.com.\n$TTL 300\n\
     @ SOA ns.example.com. hostmaster.example.com. 1 3600 600 86400 60\n\
     @ NS ns.example.com.\n\
     ns A 127.0.0.50\n\
     www A 192.0.2.80\n\
     ; a stale delegation, to be replaced\n\
     gslb NS ns-old.gslb.example.com.\n\
     ns-old.gslb A 192.0.2.99\n";

/// Where one test's processes listen: Knot, Unbound, the two regions' gslbd (port 53 of their
/// glue address) and their backends. Each test of this file has its own, as they run at once.
struct Hosts {
    knot: &'static str,
    unbound: &'static str,
    dns: [&'static str; 2],
    backends: [&'static str; 2],
}

const UNSIGNED: Hosts = Hosts {
    knot: KNOT,
    unbound: UNBOUND,
    dns: ["127.0.10.1", "127.0.20.1"],
    backends: ["127.0.77.1", "127.0.77.2"],
};

/// Region `region` (eu or us) on port 53 of its glue address in `hosts`, gossiping with
/// `seeds` and probing its backend over HTTP on `port`; a TTL of 2 s lets the resolver follow
/// a failover.
fn region_config(
    region: &str,
    hosts: &Hosts,
    keys: &common::cluster::Keys,
    seeds: &[String],
    port: u16,
) -> ConfigFile {
    let me = usize::from(region != "eu");
    let dns = hosts.dns[me];
    let mut config = ConfigFile::minimal(&["eu", "us"]).seen_from(region);
    for (region, glue) in config.regions.iter_mut().zip(hosts.dns) {
        region.glue = vec![glue.to_string()];
    }
    config.server.listen = vec![format!("{dns}:53")];
    config.probe = Probe::http(port, 200, 150).rise_fall(1, 2);
    config.gossip = Some(keys.gossip(me, &["eu", "us"], &format!("{dns}:7950"), seeds));
    config.zone.ttl = Some(2);
    config.zone.ns_ttl = Some(60);
    config.services = vec![
        Service::failover("app.gslb.example.com", &["eu", "us"])
            .target("eu", &[hosts.backends[0]])
            .target("us", &[hosts.backends[1]]),
    ];
    config
}

/// Runs `gslbd delegation apply`; (success, stdout, stderr).
fn apply(knot: &str, config: &Path, key: &Path) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_gslbd"))
        .args(["delegation", "apply", "--server", knot])
        .arg("--config")
        .arg(config)
        .arg("--tsig-key")
        .arg(key)
        .output()
        .expect("gslbd runs");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs knot, unbound and port 53 on loopback (root): run by .ci/run"]
async fn a_resolver_follows_the_delegation_and_the_failover() {
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = new_secret();
    let other = new_secret();
    let _knot = start_knot(dir.path(), UNSIGNED.knot, PARENT, &secret, &other, false);

    // The two regions, gossiping, each probing its own backend.
    let [eu_backend, us_backend] =
        backends::http_on_one_port(UNSIGNED.backends, Mode::Status(200, "ok")).await;
    let port = eu_backend.addr.port();
    let keys = common::cluster::keys();
    let eu_config = region_config("eu", &UNSIGNED, &keys, &[], port);
    let eu = start_config(&eu_config).await;
    let us = start_config(&region_config(
        "us",
        &UNSIGNED,
        &keys,
        &["127.0.10.1:7950".to_string()],
        port,
    ))
    .await;
    for server in [eu.addr, us.addr] {
        wait_for_answer(server, "app.gslb.example.com", PATIENCE, |a| {
            a == ["127.0.77.1"]
        })
        .await;
    }

    // The delegation, applied by RFC 2136 + TSIG (BIND key file format).
    let config = dir.path().join("eu.toml");
    std::fs::write(&config, eu_config.to_toml()).expect("config");
    let key = dir.path().join("update.key");
    std::fs::write(
        &key,
        format!("key \"gslbd-update\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{secret}\";\n}};\n"),
    )
    .expect("key");
    let (ok, stdout, stderr) = apply(KNOT, &config, &key);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("4 added, 2 deleted"), "{stdout}");
    assert_eq!(
        records(KNOT, "gslb.example.com", RecordType::NS),
        [
            "gslb.example.com. ns-eu.gslb.example.com.",
            "gslb.example.com. ns-us.gslb.example.com."
        ]
    );
    // (A referral: every glue record comes along.)
    assert_eq!(
        records(KNOT, "ns-eu.gslb.example.com", RecordType::A),
        [
            "ns-eu.gslb.example.com. 127.0.10.1",
            "ns-us.gslb.example.com. 127.0.20.1"
        ]
    );
    assert!(
        !records(KNOT, "ns-old.gslb.example.com", RecordType::A)
            .iter()
            .any(|r| r.starts_with("ns-old")),
        "the stale glue went with its NS record"
    );
    // Nothing outside the delegation was touched.
    assert_eq!(
        records(KNOT, "www.example.com", RecordType::A),
        ["www.example.com. 192.0.2.80"]
    );
    assert_eq!(
        records(KNOT, "example.com", RecordType::NS),
        ["example.com. ns.example.com."]
    );
    // Idempotent: the second run has nothing to send.
    let (ok, stdout, stderr) = apply(KNOT, &config, &key);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("up to date"), "{stdout}");

    // A wrong secret, and an unknown key name: refused, saying why, and nothing changes.
    let mut with_ap = eu_config.clone();
    with_ap.regions.push(Region::delegated("ap"));
    with_ap
        .gossip_mut()
        .region_keys
        .insert("ap".into(), keys.publics[2].clone());
    let ap_config = dir.path().join("with-ap.toml");
    std::fs::write(&ap_config, with_ap.to_toml()).expect("config");
    for (name, key_secret, why) in [
        ("gslbd-update", new_secret(), "BADSIG"),
        ("someone-else", secret.clone(), "BADKEY"),
    ] {
        let wrong = dir.path().join(format!("{name}.key"));
        std::fs::write(&wrong, format!("hmac-sha256:{name}:{key_secret}\n")).expect("key");
        let (ok, stdout, stderr) = apply(KNOT, &ap_config, &wrong);
        assert!(!ok, "{stdout}\n{stderr}");
        assert!(
            stderr.contains("refused the key") && stderr.contains(why),
            "{stderr}"
        );
        assert_eq!(
            records(KNOT, "gslb.example.com", RecordType::NS).len(),
            2,
            "nothing changed"
        );
    }

    // A key the server knows but does not allow to update the zone: refused, nothing changes.
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, format!("hmac-sha256:other:{other}\n")).expect("key");
    let (ok, stdout, stderr) = apply(KNOT, &ap_config, &other_key);
    assert!(!ok, "{stdout}\n{stderr}");
    assert!(stderr.contains("refused"), "{stderr}");
    assert_eq!(records(KNOT, "gslb.example.com", RecordType::NS).len(), 2);

    // A recursive resolver, knowing only where example.com is, finds the answer through the
    // delegation.
    let _unbound = start_unbound(dir.path(), UNSIGNED.unbound, UNSIGNED.knot, None);
    let reply = ask(UNBOUND, "app.gslb.example.com", RecordType::A, RECURSIVE).expect("reply");
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_eq!(a_answer(&reply), ["127.0.77.1"]);

    // The primary fails: both regions answer us, and after the TTL so does the resolver.
    eu_backend.set(Mode::Status(503, "down"));
    for server in [eu.addr, us.addr] {
        wait_for_answer(server, "app.gslb.example.com", PATIENCE, |a| {
            a == ["127.0.77.2"]
        })
        .await;
    }
    let deadline = Instant::now() + PATIENCE;
    loop {
        let reply = ask(UNBOUND, "app.gslb.example.com", RecordType::A, RECURSIVE);
        if reply
            .as_ref()
            .is_some_and(|r| a_answer(r) == ["127.0.77.2"])
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "unbound still answers {:?}",
            reply.map(|r| a_answer(&r))
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eu.app.shutdown().await;
    us.app.shutdown().await;
    eu_backend.stop();
    us_backend.stop();
}

const SIGNED: Hosts = Hosts {
    knot: "127.0.0.51:5300",
    unbound: "127.0.0.61:5301",
    dns: ["127.0.11.1", "127.0.21.1"],
    backends: ["127.0.78.1", "127.0.78.2"],
};

/// A key made by `gslbd keygen --dnssec` in `dir`: its base name.
fn keygen(dir: &Path) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_gslbd"))
        .args(["keygen", "--dnssec", "--zone", "gslb.example.com", "--dir"])
        .arg(dir)
        .output()
        .expect("gslbd runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout)
        .expect("utf-8")
        .trim()
        .to_string()
}

/// Asks the resolver with DO set until `want` holds of the reply (within [`PATIENCE`]).
async fn resolve_until(name: &str, rtype: RecordType, want: impl Fn(&Message) -> bool) -> Message {
    let how = Ask {
        recursive: true,
        dnssec: true,
    };
    let deadline = Instant::now() + PATIENCE;
    loop {
        let reply = ask(SIGNED.unbound, name, rtype, how);
        if let Some(reply) = reply.as_ref().filter(|r| want(r)) {
            return reply.clone();
        }
        assert!(
            Instant::now() < deadline,
            "unbound: {name} {rtype}: {reply:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs knot, unbound and port 53 on loopback (root): run by .ci/run"]
async fn a_validating_resolver_trusts_the_signed_answers_through_the_signed_parent() {
    let dir = tempfile::tempdir().expect("temp dir");
    let secret = new_secret();
    let parent = "$ORIGIN example.com.\n$TTL 300\n\
         @ SOA ns.example.com. hostmaster.example.com. 1 3600 600 86400 60\n\
         @ NS ns.example.com.\n\
         ns A 127.0.0.51\n";
    let _knot = start_knot(
        dir.path(),
        SIGNED.knot,
        parent,
        &secret,
        &new_secret(),
        true,
    );

    // Both regions sign with the same key (made by `gslbd keygen --dnssec`).
    let key = keygen(dir.path());
    let [eu_backend, us_backend] =
        backends::http_on_one_port(SIGNED.backends, Mode::Status(200, "ok")).await;
    let port = eu_backend.addr.port();
    let keys = common::cluster::keys();
    let seeds = [format!("{}:7950", SIGNED.dns[0])];
    let signed = |region: &str, seeds: &[String]| {
        let mut config = region_config(region, &SIGNED, &keys, seeds, port);
        config.zone.dnssec = Some(common::config::Dnssec {
            keys: vec![key.clone()],
            ..Default::default()
        });
        config
    };
    let eu_config = signed("eu", &[]);
    let eu = start_config(&eu_config).await;
    let us = start_config(&signed("us", &seeds)).await;
    for server in [eu.addr, us.addr] {
        wait_for_answer(server, "app.gslb.example.com", PATIENCE, |a| {
            a == [SIGNED.backends[0]]
        })
        .await;
    }

    // The delegation with its DS, applied by RFC 2136 + TSIG; Knot signs what it got.
    let config = dir.path().join("eu.toml");
    std::fs::write(&config, eu_config.to_toml()).expect("config");
    let tsig = dir.path().join("update.key");
    std::fs::write(&tsig, format!("hmac-sha256:gslbd-update:{secret}\n")).expect("key");
    let (ok, stdout, stderr) = apply(SIGNED.knot, &config, &tsig);
    assert!(ok, "{stdout}\n{stderr}");
    assert!(stdout.contains("5 added, 0 deleted"), "{stdout}");
    let printed = Command::new(env!("CARGO_BIN_EXE_gslbd"))
        .args(["delegation", "print", "--config"])
        .arg(&config)
        .output()
        .expect("gslbd runs");
    let printed = String::from_utf8_lossy(&printed.stdout).into_owned();
    let ds = records(SIGNED.knot, "gslb.example.com", RecordType::DS);
    assert_eq!(ds.len(), 1, "{ds:?}");
    let digest = ds[0].rsplit(' ').next().expect("digest");
    assert!(
        printed.contains(digest),
        "the DS `delegation print` gives: {printed}"
    );
    let (ok, stdout, _) = apply(SIGNED.knot, &config, &tsig);
    assert!(ok && stdout.contains("up to date"), "{stdout}");

    // Unbound trusts example.com's key alone: gslb.example.com's answers validate through the
    // DS chain or not at all.
    let anchor = trust_anchor(SIGNED.knot, "example.com");
    let _unbound = start_unbound(dir.path(), SIGNED.unbound, SIGNED.knot, Some(&anchor));
    let validated = |reply: &Message| {
        reply.metadata.response_code == ResponseCode::NoError && reply.metadata.authentic_data
    };
    let reply = resolve_until("app.gslb.example.com", RecordType::A, validated).await;
    assert_eq!(a_answer(&reply), [SIGNED.backends[0]]);
    // A name that does not exist and a type the name lacks: compact denials, validated.
    let reply = resolve_until("nope.gslb.example.com", RecordType::A, validated).await;
    assert!(reply.answers.is_empty());
    let reply = resolve_until("app.gslb.example.com", RecordType::TXT, validated).await;
    assert!(reply.answers.is_empty());

    // The primary fails: the answer the resolver follows to is signed and validates too.
    eu_backend.set(Mode::Status(503, "down"));
    let reply = resolve_until("app.gslb.example.com", RecordType::A, |r| {
        validated(r) && a_answer(r) == [SIGNED.backends[1]]
    })
    .await;
    assert!(reply.metadata.authentic_data);

    // Unbound really checks: both regions restarted signing with a key the DS does not name
    // (a key changed without `delegation apply`): their answers are bogus, and the resolver
    // says SERVFAIL rather than pass them on.
    eu.app.shutdown().await;
    us.app.shutdown().await;
    let wrong = keygen(dir.path());
    let mut regions = Vec::new();
    for (region, seeds) in [("eu", &[][..]), ("us", &seeds[..])] {
        let mut config = signed(region, seeds);
        config.zone.dnssec = Some(common::config::Dnssec {
            keys: vec![wrong.clone()],
            ..Default::default()
        });
        regions.push(start_config(&config).await);
    }
    resolve_until("app.gslb.example.com", RecordType::A, |r| {
        r.metadata.response_code == ResponseCode::ServFail
    })
    .await;
    for region in regions {
        region.app.shutdown().await;
    }
    eu_backend.stop();
    us_backend.stop();
}
