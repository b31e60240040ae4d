//! Other DNS software on loopback for end-to-end tests (Debian's `knot` and `unbound`): Knot as
//! the parent zone `example.com` taking RFC 2136 updates signed with TSIG, signed or not; Unbound
//! as a recursive resolver that reaches it by stub zones (never anything beyond this host),
//! validating below a trust anchor when given one. Both are killed when dropped.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
use hickory_proto::rr::RecordType;

use super::{bytes, udp_raw_wait};

const PATIENCE: Duration = Duration::from_secs(20);

/// A child process killed when dropped.
pub struct Daemon(Child);

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

/// A fresh TSIG secret (32 random bytes, base64).
pub fn new_secret() -> String {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).expect("random");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// How a query is asked.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ask {
    /// RD: ask a resolver to recurse.
    pub recursive: bool,
    /// EDNS with DO: DNSSEC records wanted, and from a validating resolver the AD bit.
    pub dnssec: bool,
}

/// Asks `server` over UDP; `None` without a reply.
pub fn ask(server: &str, name: &str, rtype: RecordType, how: Ask) -> Option<Message> {
    let mut message = Message::new(0x4242, MessageType::Query, OpCode::Query);
    message.metadata.recursion_desired = how.recursive;
    message.add_query(Query::query(super::name(name), rtype));
    if how.dnssec {
        let mut edns = Edns::new();
        edns.set_max_payload(1232);
        edns.set_dnssec_ok(true);
        message.edns = Some(edns);
    }
    let addr: SocketAddr = server.parse().expect("address");
    let reply = udp_raw_wait(addr, &bytes(&message), Duration::from_secs(2))?;
    Message::from_vec(&reply).ok()
}

/// The records of `rtype` in `server`'s reply for `name` (any section), as `owner data`, sorted.
pub fn records(server: &str, name: &str, rtype: RecordType) -> Vec<String> {
    let Some(reply) = ask(server, name, rtype, Ask::default()) else {
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

/// Knot serving `example.com` (`zone`: the zone file's records) on `addr`, knowing two TSIG
/// keys: `gslbd-update`, allowed to update the zone, and `other`, which no ACL allows. Signed
/// when `signed` (Knot's automatic signing: its default policy makes the keys).
pub fn start_knot(
    dir: &Path,
    addr: &str,
    zone: &str,
    secret: &str,
    other: &str,
    signed: bool,
) -> Daemon {
    std::fs::write(dir.join("example.com.zone"), zone).expect("zone file");
    let (ip, port) = addr.split_once(':').expect("address");
    let signing = if signed {
        "    dnssec-signing: on\n"
    } else {
        ""
    };
    std::fs::write(
        dir.join("knot.conf"),
        format!(
            "server:\n    rundir: \"{d}\"\n    listen: {ip}@{port}\n\
             log:\n  - target: stderr\n    any: warning\n\
             database:\n    storage: \"{d}\"\n\
             key:\n  - id: gslbd-update\n    algorithm: hmac-sha256\n    secret: {secret}\n\
             \x20 - id: other\n    algorithm: hmac-sha256\n    secret: {other}\n\
             acl:\n  - id: gslbd\n    key: gslbd-update\n    action: update\n\
             zone:\n  - domain: example.com\n    storage: \"{d}\"\n    file: example.com.zone\n    acl: gslbd\n    zonefile-sync: -1\n{signing}",
            d = dir.display()
        ),
    )
    .expect("knot.conf");
    let conf = dir.join("knot.conf");
    let knot = spawn("knotd", &["-c", conf.to_str().expect("utf-8")]);
    let deadline = Instant::now() + PATIENCE;
    while records(addr, "example.com", RecordType::SOA).is_empty()
        || signed && records(addr, "example.com", RecordType::DNSKEY).is_empty()
    {
        assert!(Instant::now() < deadline, "knotd does not answer on {addr}");
        std::thread::sleep(Duration::from_millis(50));
    }
    knot
}

/// The key-signing keys of `zone` as `server` serves them, as an Unbound `trust-anchor:` value.
pub fn trust_anchor(server: &str, zone: &str) -> String {
    let reply = ask(server, zone, RecordType::DNSKEY, Ask::default()).expect("DNSKEY answer");
    let ksk = reply
        .answers
        .iter()
        .find(|r| r.record_type() == RecordType::DNSKEY && r.data.to_string().starts_with("257 "))
        .expect("a key with the SEP flag");
    format!("{} DNSKEY {}", ksk.name, ksk.data)
}

/// Unbound on `addr`, resolving through stub zones for `example.com` and the root, both to
/// `knot`; validating below `anchor` (a `trust-anchor:` value) when given one.
pub fn start_unbound(dir: &Path, addr: &str, knot: &str, anchor: Option<&str>) -> Daemon {
    let (ip, port) = addr.split_once(':').expect("address");
    let (knot_ip, knot_port) = knot.split_once(':').expect("address");
    let validation = match anchor {
        Some(anchor) => format!(
            "    module-config: \"validator iterator\"\n    trust-anchor: \"{anchor}\"\n\
             \x20   val-log-level: 2\n"
        ),
        None => "    module-config: \"iterator\"\n".to_string(),
    };
    std::fs::write(
        dir.join("unbound.conf"),
        format!(
            "server:\n    interface: {ip}\n    port: {port}\n    do-not-query-localhost: no\n\
             \x20   username: \"\"\n    chroot: \"\"\n    directory: \"{d}\"\n    pidfile: \"{d}/unbound.pid\"\n\
             \x20   use-syslog: no\n    logfile: \"\"\n    verbosity: 0\n    do-ip6: no\n\
             {validation}\
             \x20   qname-minimisation: no\n\
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
    let how = Ask {
        recursive: true,
        dnssec: false,
    };
    while ask(addr, "example.com", RecordType::SOA, how).is_none() {
        assert!(
            Instant::now() < deadline,
            "unbound does not answer on {addr}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    unbound
}
