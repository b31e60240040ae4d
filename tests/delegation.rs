//! Zone delegation end to end with real DNS software, all on loopback: a parent zone
//! `example.com` on Knot DNS; `gslbd delegation apply` writes the delegation by RFC 2136
//! dynamic update signed with TSIG (only the differences, nothing outside the delegation, a
//! wrong key changes nothing); two gslbd regions on 127.0.10.1:53 and 127.0.20.1:53; Unbound,
//! a recursive resolver with a stub zone for example.com, resolves app.gslb.example.com
//! through the delegation, and follows a failover of the primary region once the TTL expires.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use common::backends::{self, Mode};
use common::config::{ConfigFile, Probe, Region, Service};
use common::*;
use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{RData, RecordType};

const KNOT: &str = "127.0.0.50:5300";
const UNBOUND: &str = "127.0.0.60:5301";
const PATIENCE: Duration = Duration::from_secs(20);

/// A child process killed when dropped.
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(program: &'static str, args: &[&str]) -> Daemon {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} runs (apt-get install knot unbound): {e}"));
    Daemon(child)
}

fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).expect("random");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Asks `server` over UDP, recursion desired or not.
fn ask(server: &str, name: &str, rtype: RecordType, recursive: bool) -> Option<Message> {
    let mut message = Message::new(0x4242, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = recursive;
    message.add_query(Query::query(common::name(name), rtype));
    let addr: SocketAddr = server.parse().expect("address");
    let reply = udp_raw_wait(addr, &bytes(&message), Duration::from_secs(2))?;
    Message::from_vec(&reply).ok()
}

/// Every record of `rtype` in any section of `server`'s reply, as text.
fn records(server: &str, name: &str, rtype: RecordType) -> Vec<String> {
    let Some(reply) = ask(server, name, rtype, false) else {
        return Vec::new();
    };
    let mut out: Vec<String> = reply
        .answers
        .iter()
        .chain(&reply.authorities)
        .chain(&reply.additionals)
        .filter(|r| r.record_type() == rtype)
        .map(|r| format!("{} {}", r.name, r.data))
        .collect();
    out.sort();
    out
}

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

/// Knot knows two keys: `gslbd-update`, allowed to update example.com, and `other`, which
/// no ACL allows.
fn start_knot(dir: &Path, secret: &str, other: &str) -> Daemon {
    std::fs::write(
        dir.join("example.com.zone"),
        "$ORIGIN example.com.\n$TTL 300\n\
         @ SOA ns.example.com. hostmaster.example.com. 1 3600 600 86400 60\n\
         @ NS ns.example.com.\n\
         ns A 127.0.0.50\n\
         www A 192.0.2.80\n\
         ; a stale delegation, to be replaced\n\
         gslb NS ns-old.gslb.example.com.\n\
         ns-old.gslb A 192.0.2.99\n",
    )
    .expect("zone file");
    let (ip, port) = KNOT.split_once(':').expect("address");
    std::fs::write(
        dir.join("knot.conf"),
        format!(
            "server:\n    rundir: \"{d}\"\n    listen: {ip}@{port}\n\
             log:\n  - target: stderr\n    any: warning\n\
             database:\n    storage: \"{d}\"\n\
             key:\n  - id: gslbd-update\n    algorithm: hmac-sha256\n    secret: {secret}\n\
             \x20 - id: other\n    algorithm: hmac-sha256\n    secret: {other}\n\
             acl:\n  - id: gslbd\n    key: gslbd-update\n    action: update\n\
             zone:\n  - domain: example.com\n    storage: \"{d}\"\n    file: example.com.zone\n    acl: gslbd\n    zonefile-sync: -1\n",
            d = dir.display()
        ),
    )
    .expect("knot.conf");
    let conf = dir.join("knot.conf");
    let knot = spawn("knotd", &["-c", conf.to_str().expect("utf-8")]);
    let deadline = Instant::now() + PATIENCE;
    while records(KNOT, "example.com", RecordType::SOA).is_empty() {
        assert!(Instant::now() < deadline, "knotd does not answer on {KNOT}");
        std::thread::sleep(Duration::from_millis(50));
    }
    knot
}

fn start_unbound(dir: &Path) -> Daemon {
    let (ip, port) = UNBOUND.split_once(':').expect("address");
    let (knot_ip, knot_port) = KNOT.split_once(':').expect("address");
    // Stub zones for example.com and for the root, both to Knot on loopback: whatever
    // Unbound looks for, it never asks beyond this host.
    std::fs::write(
        dir.join("unbound.conf"),
        format!(
            "server:\n    interface: {ip}\n    port: {port}\n    do-not-query-localhost: no\n\
             \x20   username: \"\"\n    chroot: \"\"\n    directory: \"{d}\"\n    pidfile: \"{d}/unbound.pid\"\n\
             \x20   use-syslog: no\n    logfile: \"\"\n    verbosity: 0\n    do-ip6: no\n\
             \x20   module-config: \"iterator\"\n    qname-minimisation: no\n\
             \x20   access-control: 127.0.0.0/8 allow\n    target-fetch-policy: \"0 0 0 0 0\"\n\
             \x20   prefetch: no\n    serve-expired: no\n\
             stub-zone:\n    name: \"example.com\"\n    stub-addr: {knot_ip}@{knot_port}\n\
             stub-zone:\n    name: \".\"\n    stub-addr: {knot_ip}@{knot_port}\n",
            d = dir.display()
        ),
    )
    .expect("unbound.conf");
    let conf = dir.join("unbound.conf");
    let check = Command::new("unbound-checkconf")
        .arg(&conf)
        .output()
        .expect("unbound-checkconf runs");
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    let unbound = spawn("unbound", &["-d", "-c", conf.to_str().expect("utf-8")]);
    let deadline = Instant::now() + PATIENCE;
    while ask(UNBOUND, "example.com", RecordType::SOA, true).is_none() {
        assert!(
            Instant::now() < deadline,
            "unbound does not answer on {UNBOUND}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    unbound
}

/// Region `region` (eu or us) on port 53 of its glue address, gossiping with `seeds` and
/// probing its backend over HTTP on `port`; a TTL of 2 s lets the resolver follow a failover.
fn region_config(
    region: &str,
    keys: &common::cluster::Keys,
    seeds: &[String],
    port: u16,
) -> ConfigFile {
    let (me, dns) = match region {
        "eu" => (0, "127.0.10.1"),
        _ => (1, "127.0.20.1"),
    };
    let mut config = ConfigFile::minimal(&["eu", "us"]).seen_from(region);
    config.server.listen = vec![format!("{dns}:53")];
    config.probe = Probe::http(port, 200, 150).rise_fall(1, 2);
    config.gossip = Some(keys.gossip(me, &["eu", "us"], &format!("{dns}:7950"), seeds));
    config.zone.ttl = Some(2);
    config.zone.ns_ttl = Some(60);
    config.services = vec![
        Service::failover("app.gslb.example.com", &["eu", "us"])
            .target("eu", &["127.0.77.1"])
            .target("us", &["127.0.77.2"]),
    ];
    config
}

/// Runs `gslbd delegation apply`; (success, stdout, stderr).
fn apply(config: &Path, key: &Path) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_gslbd"))
        .args(["delegation", "apply", "--server", KNOT])
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
    let _knot = start_knot(dir.path(), &secret, &other);

    // The two regions, gossiping, each probing its own backend.
    let [eu_backend, us_backend] =
        backends::http_on_one_port(["127.0.77.1", "127.0.77.2"], Mode::Status(200, "ok")).await;
    let port = eu_backend.addr.port();
    let keys = common::cluster::keys();
    let eu_config = region_config("eu", &keys, &[], port);
    let eu = start_config(&eu_config).await;
    let us = start_config(&region_config(
        "us",
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
    let (ok, stdout, stderr) = apply(&config, &key);
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
    let (ok, stdout, stderr) = apply(&config, &key);
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
        let (ok, stdout, stderr) = apply(&ap_config, &wrong);
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
    let (ok, stdout, stderr) = apply(&ap_config, &other_key);
    assert!(!ok, "{stdout}\n{stderr}");
    assert!(stderr.contains("refused"), "{stderr}");
    assert_eq!(records(KNOT, "gslb.example.com", RecordType::NS).len(), 2);

    // A recursive resolver, knowing only where example.com is, finds the answer through the
    // delegation.
    let _unbound = start_unbound(dir.path());
    let reply = ask(UNBOUND, "app.gslb.example.com", RecordType::A, true).expect("reply");
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
        let reply = ask(UNBOUND, "app.gslb.example.com", RecordType::A, true);
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
