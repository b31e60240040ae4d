//! DNSSEC over real UDP and TCP: a signed zone's answers to a requester that set DO carry an
//! RRSIG for every RRset, each checked here against the zone's DNSKEY with hickory-proto's
//! verifier; negative answers carry compact denial (RFC 9824); a requester without DO gets
//! none of it. `tests/dnssec_validators.rs` has BIND's delv and Unbound validate the same.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::config::{ConfigFile, Dnssec, Service};
use common::*;
use hickory_proto::dnssec::Verifier;
use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, RRSIG};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

/// NXNAME (RFC 9824): the type bit of a name that does not exist.
const NXNAME: RecordType = RecordType::Unknown(128);

/// A combined signing key for the test zone, written as BIND key files under `dir`; its base name.
fn write_key(dir: &Path, role: gslbd::dnssec::Role) -> PathBuf {
    let origin = name("gslb.example.com.");
    let key = gslbd::dnssec::key::generate(
        &origin,
        hickory_proto::dnssec::Algorithm::ECDSAP256SHA256,
        role,
        gslbd::unix_ms() / 1000,
    )
    .expect("key");
    let base = dir.join(&key.base_name);
    std::fs::write(format!("{}.key", base.display()), key.key_file).expect("write");
    std::fs::write(format!("{}.private", base.display()), key.private_file).expect("write");
    base
}

/// The base config, signed with a CSK written under `dir`; plus a service too large for 1232
/// bytes once signed.
fn signed(dir: &Path) -> ConfigFile {
    let mut config = ConfigFile::base();
    let key = write_key(dir, gslbd::dnssec::Role::Csk);
    config.zone.dnssec = Some(Dnssec {
        keys: vec![key.display().to_string()],
        ..Dnssec::default()
    });
    let many: Vec<String> = (1..=60).map(|i| format!("2001:db8:b::{i:x}")).collect();
    config
        .services
        .push(Service::round_robin("big.gslb.example.com").target("eu", &many));
    config
}

/// A query with DO set (and CO when `compact_ok`).
fn do_query(qname: &str, rtype: RecordType, compact_ok: bool) -> Message {
    let mut message = query(qname, rtype);
    let edns = message.edns.as_mut().expect("edns");
    edns.set_dnssec_ok(true);
    if compact_ok {
        edns.flags_mut().z |= 0x4000;
    }
    message
}

/// The zone's DNSKEY set, as served.
fn dnskeys(server: std::net::SocketAddr) -> Vec<DNSKEY> {
    let reply = udp(
        server,
        &do_query("gslb.example.com", RecordType::DNSKEY, false),
    );
    reply
        .answers
        .iter()
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::DNSKEY(key)) => Some(key.clone()),
            _ => None,
        })
        .collect()
}

fn rrsig(record: &Record) -> Option<&RRSIG> {
    match &record.data {
        RData::DNSSEC(DNSSECRData::RRSIG(sig)) => Some(sig),
        _ => None,
    }
}

/// Checks that every RRset of `section` has an RRSIG that `keys` verify, valid now; returns
/// the RRsets' types by owner.
fn assert_signed(section: &[Record], keys: &[DNSKEY]) -> Vec<(String, RecordType)> {
    let mut rrsets: BTreeMap<(String, RecordType), Vec<&Record>> = BTreeMap::new();
    for record in section.iter().filter(|r| rrsig(r).is_none()) {
        let owner = record.name.to_lowercase().to_string();
        rrsets
            .entry((owner, record.record_type()))
            .or_default()
            .push(record);
    }
    let now = (gslbd::unix_ms() / 1000) as u32;
    for ((owner, rtype), records) in &rrsets {
        let sigs: Vec<&RRSIG> = section
            .iter()
            .filter(|r| r.name.to_lowercase().to_string() == *owner)
            .filter_map(rrsig)
            .filter(|sig| sig.input().type_covered == *rtype)
            .collect();
        assert!(
            !sigs.is_empty(),
            "{owner} {rtype} has no RRSIG: {section:?}"
        );
        for sig in sigs {
            let input = sig.input();
            assert!(
                input.sig_inception.get() <= now && now < input.sig_expiration.get(),
                "{owner} {rtype}: valid now"
            );
            assert_eq!(input.signer_name, name("gslb.example.com."));
            assert_eq!(input.original_ttl, records[0].ttl, "{owner} {rtype}");
            let key = keys
                .iter()
                .find(|k| k.calculate_key_tag().ok() == Some(input.key_tag))
                .expect("the signing key is in the DNSKEY set");
            key.verify_rrsig(&name(owner), DNSClass::IN, sig, records.iter().copied())
                .unwrap_or_else(|e| panic!("{owner} {rtype} does not verify: {e}"));
        }
    }
    rrsets.into_keys().collect()
}

/// The NSEC record of a negative answer's authority section, with its owner.
fn nsec(reply: &Message) -> (Name, Name, Vec<RecordType>) {
    reply
        .authorities
        .iter()
        .find_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::NSEC(nsec)) => Some((
                r.name.clone(),
                nsec.next_domain_name().clone(),
                nsec.type_bit_maps().collect(),
            )),
            _ => None,
        })
        .expect("an NSEC record")
}

fn has_dnssec_records(reply: &Message) -> bool {
    reply
        .answers
        .iter()
        .chain(&reply.authorities)
        .chain(&reply.additionals)
        .any(|r| matches!(r.data, RData::DNSSEC(_)))
}

#[tokio::test(flavor = "multi_thread")]
async fn every_rrset_of_a_positive_answer_validates_over_udp_and_tcp() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_config(&signed(dir.path())).await;
    let keys = dnskeys(server.addr);
    assert_eq!(keys.len(), 1, "one CSK");
    assert!(keys[0].secure_entry_point(), "the CSK has the SEP flag");

    for (qname, rtype) in [
        ("app.gslb.example.com", RecordType::A),
        ("app.gslb.example.com", RecordType::AAAA),
        ("web.gslb.example.com", RecordType::A),
        ("api.gslb.example.com", RecordType::A),
        ("API.Gslb.Example.com", RecordType::A),
        ("geo.gslb.example.com", RecordType::A),
        ("gslb.example.com", RecordType::SOA),
        ("gslb.example.com", RecordType::DNSKEY),
        ("ns-eu.gslb.example.com", RecordType::AAAA),
    ] {
        for reply in [
            udp(server.addr, &do_query(qname, rtype, false)),
            tcp(server.addr, &do_query(qname, rtype, false)),
        ] {
            assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
            assert!(reply.metadata.authoritative);
            assert!(!reply.metadata.authentic_data, "an authority never sets AD");
            assert!(
                reply.edns.as_ref().expect("edns").flags().dnssec_ok,
                "DO copied (RFC 3225)"
            );
            let signed = assert_signed(&reply.answers, &keys);
            assert_eq!(signed.len(), 1, "{qname} {rtype}: one RRset");
            assert_eq!(signed[0].1, rtype);
        }
    }

    // The NS set and its glue in the additional section (RFC 4035 §3.1.1).
    let reply = udp(
        server.addr,
        &do_query("gslb.example.com", RecordType::NS, false),
    );
    assert_eq!(assert_signed(&reply.answers, &keys).len(), 1);
    let glue = assert_signed(&reply.additionals, &keys);
    assert_eq!(glue.len(), 4, "eu A and AAAA, us A, ap A: {glue:?}");
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_made_for_one_client_are_signed_and_their_signatures_reused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_config(&signed(dir.path())).await;
    let keys = dnskeys(server.addr);

    // Geo: a different answer per client network, each signed.
    let mut answers = Vec::new();
    for subnet in ["192.0.2.0", "198.51.100.0", "203.0.113.0"] {
        let mut message = ecs_query("geo.gslb.example.com", RecordType::A, subnet, 24);
        message.edns.as_mut().expect("edns").set_dnssec_ok(true);
        let reply = udp(server.addr, &message);
        assert_signed(&reply.answers, &keys);
        answers.push(addresses(&reply));
    }
    assert_eq!(
        answers,
        [["192.0.2.5"], ["198.51.100.5"], ["203.0.113.5"]],
        "each client network its region"
    );

    // Round-robin: the same set in another order is the same RRset, signed once (ECDSA
    // signatures are randomised: equal bytes mean the same signature was served again).
    let mut orders = std::collections::BTreeSet::new();
    let mut signatures = std::collections::BTreeSet::new();
    for _ in 0..40 {
        let reply = udp(
            server.addr,
            &do_query("api.gslb.example.com", RecordType::A, false),
        );
        assert_signed(&reply.answers, &keys);
        orders.insert(addresses(&reply));
        let sig = reply.answers.iter().find_map(rrsig).expect("RRSIG");
        signatures.insert(sig.sig().to_vec());
        if orders.len() > 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(orders.len() > 1, "the rotation moved: {orders:?}");
    assert_eq!(signatures.len(), 1, "one signature for every order");
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn negative_answers_carry_a_compact_denial_that_validates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_config(&signed(dir.path())).await;
    let keys = dnskeys(server.addr);

    // NODATA: a service without IPv6, an empty non-terminal, the apex.
    for (qname, rtype, bitmap) in [
        (
            "v4only.deep.gslb.example.com",
            RecordType::AAAA,
            vec![RecordType::A, RecordType::RRSIG, RecordType::NSEC],
        ),
        (
            "deep.gslb.example.com",
            RecordType::A,
            vec![RecordType::RRSIG, RecordType::NSEC],
        ),
        (
            "gslb.example.com",
            RecordType::MX,
            vec![
                RecordType::NS,
                RecordType::SOA,
                RecordType::RRSIG,
                RecordType::NSEC,
                RecordType::DNSKEY,
            ],
        ),
        (
            "app.gslb.example.com",
            RecordType::TXT,
            vec![
                RecordType::A,
                RecordType::AAAA,
                RecordType::RRSIG,
                RecordType::NSEC,
            ],
        ),
    ] {
        let reply = udp(server.addr, &do_query(qname, rtype, false));
        assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
        assert!(reply.answers.is_empty());
        let signed = assert_signed(&reply.authorities, &keys);
        assert_eq!(signed.len(), 2, "SOA and NSEC: {signed:?}");
        let (owner, next, types) = nsec(&reply);
        let asked = name(&format!("{qname}."));
        assert_eq!(owner, asked, "the NSEC is owned by the asked name");
        assert_eq!(next, asked.prepend_label(&[0u8][..]).expect("name"));
        assert_eq!(types, bitmap, "{qname} {rtype}");
    }

    // A name that does not exist: NOERROR with NXNAME in the bitmap (RFC 9824 §3.2)...
    let reply = udp(
        server.addr,
        &do_query("nope.gslb.example.com", RecordType::A, false),
    );
    assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
    assert_signed(&reply.authorities, &keys);
    let (owner, _, types) = nsec(&reply);
    assert_eq!(owner, name("nope.gslb.example.com."));
    assert_eq!(types, [RecordType::RRSIG, RecordType::NSEC, NXNAME]);
    // ... and NXDOMAIN to a requester that set Compact Answers OK, which it gets back (§3.5).
    let reply = udp(
        server.addr,
        &do_query("nope.gslb.example.com", RecordType::A, true),
    );
    assert_eq!(reply.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(
        reply.edns.as_ref().expect("edns").flags().z & 0x4000,
        0x4000
    );
    assert_signed(&reply.authorities, &keys);
    assert_eq!(
        nsec(&reply).2,
        [RecordType::RRSIG, RecordType::NSEC, NXNAME]
    );
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_do_answers_carry_no_dnssec_records() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_config(&signed(dir.path())).await;
    for (qname, rtype, rcode) in [
        ("app.gslb.example.com", RecordType::A, ResponseCode::NoError),
        ("gslb.example.com", RecordType::NS, ResponseCode::NoError),
        (
            "app.gslb.example.com",
            RecordType::TXT,
            ResponseCode::NoError,
        ),
        (
            "nope.gslb.example.com",
            RecordType::A,
            ResponseCode::NXDomain,
        ),
    ] {
        for reply in [
            udp(server.addr, &query(qname, rtype)),
            udp(server.addr, &plain_query(qname, rtype)),
        ] {
            assert_eq!(reply.metadata.response_code, rcode, "{qname} {rtype}");
            assert!(!has_dnssec_records(&reply), "{qname} {rtype}: {reply:?}");
            if let Some(edns) = &reply.edns {
                assert!(!edns.flags().dnssec_ok, "DO copied: clear");
            }
        }
    }
    // The DNSKEY set is zone data: answered whether DO is set or not.
    let reply = udp(server.addr, &query("gslb.example.com", RecordType::DNSKEY));
    assert_eq!(reply.answers.len(), 1);
    assert_eq!(reply.answers[0].record_type(), RecordType::DNSKEY);
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_answer_too_large_for_udp_is_truncated_and_whole_over_tcp() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start_config(&signed(dir.path())).await;
    let keys = dnskeys(server.addr);
    let ask = do_query("big.gslb.example.com", RecordType::AAAA, false);
    let reply = udp(server.addr, &ask);
    assert!(reply.metadata.truncation, "TC over UDP");
    assert!(reply.answers.is_empty() && reply.authorities.is_empty());
    assert!(reply.edns.is_some(), "the OPT record stays (RFC 6891 §7)");
    let reply = tcp(server.addr, &ask);
    assert!(!reply.metadata.truncation);
    assert_eq!(addresses(&reply).len(), 60);
    assert_signed(&reply.answers, &keys);
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ksk_signs_the_dnskey_set_and_a_zsk_the_rest_with_a_published_key_beside() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = ConfigFile::base();
    let ksk = write_key(dir.path(), gslbd::dnssec::Role::Ksk);
    let zsk = write_key(dir.path(), gslbd::dnssec::Role::Zsk);
    let next = write_key(dir.path(), gslbd::dnssec::Role::Zsk);
    config.zone.dnssec = Some(Dnssec {
        keys: vec![ksk.display().to_string(), zsk.display().to_string()],
        published: vec![next.display().to_string()],
        ..Dnssec::default()
    });
    let server = start_config(&config).await;
    let keys = dnskeys(server.addr);
    assert_eq!(keys.len(), 3, "KSK, ZSK and the published ZSK");
    let tag = |key: &DNSKEY| key.calculate_key_tag().expect("tag");
    let sep: Vec<u16> = keys
        .iter()
        .filter(|k| k.secure_entry_point())
        .map(tag)
        .collect();
    let signers = |reply: &Message| -> Vec<u16> {
        reply
            .answers
            .iter()
            .filter_map(rrsig)
            .map(|s| s.input().key_tag)
            .collect()
    };
    let reply = udp(
        server.addr,
        &do_query("gslb.example.com", RecordType::DNSKEY, false),
    );
    assert_signed(&reply.answers, &keys);
    assert_eq!(signers(&reply), sep, "the KSK alone signs the DNSKEY set");
    let reply = udp(
        server.addr,
        &do_query("app.gslb.example.com", RecordType::A, false),
    );
    assert_signed(&reply.answers, &keys);
    let zsk_tag = signers(&reply);
    assert_eq!(zsk_tag.len(), 1, "the active ZSK alone signs the rest");
    assert!(!sep.contains(&zsk_tag[0]));
    server.app.shutdown().await;
}

#[test]
fn a_missing_or_foreign_key_is_named_by_its_field() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = ConfigFile::base();
    config.zone.dnssec = Some(Dnssec {
        keys: vec![dir.path().join("Knope.+013+00001").display().to_string()],
        ..Dnssec::default()
    });
    let error = gslbd::config::parse(&config.to_toml())
        .expect_err("no key file")
        .to_string();
    assert!(
        error.contains("zone.dnssec.keys[0]: cannot read"),
        "{error}"
    );

    let other = gslbd::dnssec::key::generate(
        &name("other.example."),
        hickory_proto::dnssec::Algorithm::ED25519,
        gslbd::dnssec::Role::Csk,
        0,
    )
    .expect("key");
    let base = dir.path().join(&other.base_name);
    std::fs::write(format!("{}.key", base.display()), other.key_file).expect("write");
    std::fs::write(format!("{}.private", base.display()), other.private_file).expect("write");
    config.zone.dnssec = Some(Dnssec {
        keys: vec![base.display().to_string()],
        ..Dnssec::default()
    });
    let error = gslbd::config::parse(&config.to_toml())
        .expect_err("another zone's key")
        .to_string();
    assert!(
        error.contains("zone.dnssec.keys[0]") && error.contains("not for the zone"),
        "{error}"
    );
}

/// `delv` (BIND's validating lookup tool) against `gslbd run --config config/dnssec.toml`, the
/// zone's own key as trust anchor, as README's "DNSSEC" section shows: what it prints.
fn delv(server: &str, anchor: &Path, qname: &str, rtype: &str) -> String {
    let (ip, port) = server.split_once(':').expect("address");
    let output = std::process::Command::new("delv")
        .args([&format!("@{ip}"), "-p", port, "-a"])
        .arg(anchor)
        .args(["+root=gslb.example.com", qname, rtype])
        .output()
        .expect("delv runs (apt-get install bind9-dnsutils)");
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

const LIBFAKETIME: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

/// `gslbd run --config config/dnssec.toml` on `server` (from the repository's directory, as
/// README says), its clock moved by `faketime` (libfaketime's `FAKETIME`, e.g. "-3d") when
/// given; once it answers.
fn serve_example(server: &str, faketime: Option<&str>) -> Killed {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_gslbd"));
    command
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["run", "--config", "config/dnssec.toml", "--listen", server])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    if let Some(offset) = faketime {
        assert!(
            Path::new(LIBFAKETIME).exists(),
            "{LIBFAKETIME} missing: apt-get install libfaketime"
        );
        command
            .env("LD_PRELOAD", LIBFAKETIME)
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1")
            .env("FAKETIME", offset);
    }
    let gslbd = Killed(command.spawn().expect("gslbd starts"));
    let addr: std::net::SocketAddr = server.parse().expect("address");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while udp_raw(addr, &bytes(&query("gslb.example.com", RecordType::SOA))).is_none() {
        assert!(std::time::Instant::now() < deadline, "gslbd answers");
    }
    gslbd
}

/// The committed key of config/dnssec.toml as a delv trust anchor, written under `dir`.
fn example_anchor(dir: &Path) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let key = std::fs::read_dir(root.join("config/dnssec"))
        .expect("config/dnssec")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "key"))
        .expect("a .key file");
    let text = std::fs::read_to_string(key).expect("key file");
    let fields: Vec<&str> = text
        .lines()
        .find(|l| l.contains("DNSKEY"))
        .expect("DNSKEY line")
        .split_whitespace()
        .skip_while(|f| *f != "DNSKEY")
        .skip(1)
        .collect();
    let anchor = dir.join("anchor.conf");
    std::fs::write(
        &anchor,
        format!(
            "trust-anchors {{ gslb.example.com. static-key {} {} {} \"{}\"; }};\n",
            fields[0],
            fields[1],
            fields[2],
            fields[3..].concat()
        ),
    )
    .expect("anchor");
    anchor
}

#[test]
#[ignore = "needs bind9-dnsutils (delv): run by .ci/run"]
fn delv_validates_the_example_configs_answers_with_the_zones_own_key() {
    let server = "127.0.0.71:5353";
    let _gslbd = serve_example(server, None);
    let dir = tempfile::tempdir().expect("temp dir");
    let anchor = example_anchor(dir.path());
    for (qname, rtype, want) in [
        ("app.gslb.example.com", "A", "; fully validated"),
        ("api.gslb.example.com", "A", "; fully validated"),
        ("app.gslb.example.com", "AAAA", "; fully validated"),
        ("gslb.example.com", "NS", "; fully validated"),
        (
            "nope.gslb.example.com",
            "A",
            "; negative response, fully validated",
        ),
        (
            "app.gslb.example.com",
            "TXT",
            "; negative response, fully validated",
        ),
    ] {
        let out = delv(server, &anchor, qname, rtype);
        assert!(out.contains(want), "{qname} {rtype}: {out}");
    }
}

#[test]
#[ignore = "needs bind9-dnsutils (delv) and libfaketime: run by .ci/run"]
fn a_server_clock_days_off_makes_its_signatures_fail_validation_and_hours_do_not() {
    // A signature is valid from an hour before its day (24 h starting at a time of the
    // RRset's own) to 14 days after it. Validators read their own clock: a signer more than a
    // day and an hour ahead makes signatures not yet valid, 14 or more days behind makes them
    // expired; a few days behind, or less than an hour ahead, is within the window.
    let dir = tempfile::tempdir().expect("temp dir");
    let anchor = example_anchor(dir.path());
    for (i, (offset, validates)) in [
        ("-3d", true),
        ("+50m", true),
        ("+2d", false),
        ("-16d", false),
    ]
    .into_iter()
    .enumerate()
    {
        let server = format!("127.0.0.{}:5353", 72 + i);
        let _gslbd = serve_example(&server, Some(offset));
        let out = delv(&server, &anchor, "app.gslb.example.com", "A");
        assert_eq!(
            out.contains("; fully validated"),
            validates,
            "clock {offset}: {out}"
        );
        if !validates {
            assert!(out.contains("resolution failed"), "clock {offset}: {out}");
        }
    }
}

/// A child process, killed when dropped (a failed assertion included).
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_keeps_the_signatures_of_the_same_keys_and_publishes_a_new_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = signed(dir.path());
    let server = start_config(&config).await;
    let path = dir.path().join("gslbd.toml");
    let signature = |server: &TestServer| {
        let reply = udp(
            server.addr,
            &do_query("app.gslb.example.com", RecordType::A, false),
        );
        reply
            .answers
            .iter()
            .find_map(rrsig)
            .expect("RRSIG")
            .sig()
            .to_vec()
    };
    let before = signature(&server);

    // The same keys: the signature made before is served again (ECDSA's are randomised).
    std::fs::write(&path, config.to_toml()).expect("config");
    server.app.reload_from(&path).await.expect("valid config");
    assert_eq!(signature(&server), before);

    // A key added as published (a rollover's first step): in the DNSKEY set, not signing.
    let next = write_key(dir.path(), gslbd::dnssec::Role::Csk);
    config.zone.dnssec.as_mut().expect("signed").published = vec![next.display().to_string()];
    std::fs::write(&path, config.to_toml()).expect("config");
    server.app.reload_from(&path).await.expect("valid config");
    let keys = dnskeys(server.addr);
    assert_eq!(keys.len(), 2);
    let reply = udp(
        server.addr,
        &do_query("app.gslb.example.com", RecordType::A, false),
    );
    assert_signed(&reply.answers, &keys);
    assert_eq!(reply.answers.iter().filter_map(rrsig).count(), 1);
    server.app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_signatures_made_and_show_the_keys() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = signed(dir.path());
    config.server.admin = Some("127.0.0.1:0".into());
    let server = start_config(&config).await;
    let admin = server.app.admin_addr().expect("admin enabled");
    let made = || {
        let (_, metrics) = http_get(admin, "/metrics");
        sample(&metrics, "gslbd_dnssec_signatures_total", &[])
    };
    let first = made();
    let ask = do_query("app.gslb.example.com", RecordType::A, false);
    udp(server.addr, &ask);
    let after_one = made();
    assert!(after_one > first, "a new RRset is signed");
    for _ in 0..20 {
        udp(server.addr, &ask);
    }
    assert_eq!(made(), after_one, "the same RRset again: from the cache");

    let (_, metrics) = http_get(admin, "/metrics");
    assert!(sample(&metrics, "gslbd_dnssec_signature_cache_entries", &[]) >= 1.0);
    let key = dnskeys(server.addr)[0].calculate_key_tag().expect("tag");
    let tag = format!("key_tag=\"{key}\"");
    assert_eq!(
        sample(
            &metrics,
            "gslbd_dnssec_key",
            &[tag.as_str(), "algorithm=\"13\"", "sep=\"true\""]
        ),
        1.0
    );
    server.app.shutdown().await;
}

/// A target that is a host name: its CNAME gets an RRSIG like any RRset, for every type asked,
/// and the CNAME is not chased (the target is outside the zone).
#[tokio::test(flavor = "multi_thread")]
async fn a_cname_answer_is_signed_and_validates() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = format!(
        "{}\n[[services]]\nname = \"lb.gslb.example.com\"\nstrategy = \"failover\"\n\
         failover_order = [\"us\", \"eu\"]\n\
         targets = {{ eu = [\"192.0.2.9\"], us = \"lb-1.us-east-1.elb.example.net\" }}\n",
        signed(dir.path()).to_toml()
    );
    let server = start_text(&text).await;
    let keys = dnskeys(server.addr);
    for rtype in [RecordType::A, RecordType::AAAA, RecordType::TXT] {
        for reply in [
            udp(server.addr, &do_query("lb.gslb.example.com", rtype, false)),
            tcp(server.addr, &do_query("lb.gslb.example.com", rtype, false)),
        ] {
            assert_eq!(reply.metadata.response_code, ResponseCode::NoError);
            let signed = assert_signed(&reply.answers, &keys);
            assert_eq!(
                signed,
                [("lb.gslb.example.com.".to_string(), RecordType::CNAME)],
                "{rtype}"
            );
            let cname: Vec<String> = reply
                .answers
                .iter()
                .filter(|r| r.record_type() == RecordType::CNAME)
                .map(|r| r.data.to_string())
                .collect();
            assert_eq!(cname, ["lb-1.us-east-1.elb.example.net."]);
            assert!(reply.authorities.is_empty(), "a positive answer: no denial");
        }
    }
    server.app.shutdown().await;
}
