//! What gslbd's fuzz targets share: one fixed world (a snapshot with every strategy, the gossip
//! keys), built once per process with `OnceLock` so that every input meets the same state, as
//! libFuzzer needs; hickory-server's UDP path rebuilt as a pure function; and the framing that
//! packs several gossip datagrams into one input.

use std::net::SocketAddr;
use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gslbd::config::{self, Config};
use gslbd::dns::{answer, encode};
use gslbd::gossip::keys::{Keyring, RegionKeys, SigningKey, VerifyingKey};
use gslbd::snapshot::Snapshot;
use hickory_proto::op::{Header, MessageType, ResponseCode};
use hickory_proto::rr::Record;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncoder};
use hickory_server::net::xfer::Protocol;
use hickory_server::server::Request;
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder, Queries};

/// The zone every DNS target answers: three regions (one nameserver in zone, one outside, one
/// without), a geo table, and a service per strategy and per all-down policy, plus one too big
/// for 512 bytes so that truncation and hickory's encoder are reached.
pub const CONFIG: &str = r#"
local_region = "eu"

[server]
max_udp_payload = 1232

[zone]
name = "gslb.example.com"
ttl = 30

[zone.soa]
rname = "hostmaster.example.com"
serial = 7
minimum = 60
ttl = 120

[[regions]]
name = "eu"
nameserver = "ns-eu.gslb.example.com"
glue = ["192.0.2.53", "2001:db8::53"]
location = [50.1, 8.7]

[[regions]]
name = "us"
nameserver = "ns.us.example.net"
location = [39.0, -77.5]

[[regions]]
name = "ap"
location = [1.35, 103.8]

[geo]
default_region = "us"
networks = { "192.0.2.0/24" = "eu", "198.51.100.0/24" = "us", "203.0.113.0/24" = "ap", "2001:db8:c000::/36" = "ap" }

[[services]]
name = "app.gslb.example.com"
strategy = "failover"
failover_order = ["eu", "us", "ap"]
targets = { eu = ["192.0.2.1", "2001:db8:e::1"], us = ["198.51.100.1", "2001:db8:a::1"], ap = ["203.0.113.1", "2001:db8:c::1"] }

[[services]]
name = "web.gslb.example.com"
strategy = "weighted"
weights = { eu = 50, us = 30, ap = 20 }
targets = { eu = ["192.0.2.2"], us = ["198.51.100.2"], ap = ["203.0.113.2", "2001:db8:c::2"] }

[[services]]
name = "two.gslb.example.com"
strategy = "weighted"
weights = { eu = 1, us = 1, ap = 1 }
pick = 2
targets = { eu = ["192.0.2.7"], us = ["198.51.100.7"], ap = ["203.0.113.7"] }

[[services]]
name = "api.gslb.example.com"
strategy = "round-robin"
ttl = 10
targets = { eu = ["192.0.2.3", "192.0.2.4"], us = ["198.51.100.3"], ap = ["203.0.113.3"] }

[[services]]
name = "geo.gslb.example.com"
strategy = "geo"
targets = { eu = ["192.0.2.5"], us = ["198.51.100.5"], ap = ["203.0.113.5", "2001:db8:c::5"] }

[[services]]
name = "v4only.deep.gslb.example.com"
strategy = "round-robin"
targets = { eu = ["192.0.2.6"] }

[[services]]
name = "open.gslb.example.com"
strategy = "failover"
failover_order = ["us", "eu"]
all_down = "fail-open"
targets = { eu = ["192.0.2.8"], us = ["198.51.100.8"] }
health = { eu = "unhealthy", us = "unhealthy" }

[[services]]
name = "closed.gslb.example.com"
strategy = "round-robin"
all_down = "empty"
targets = { eu = ["192.0.2.9"], us = ["198.51.100.9"] }
health = { eu = "unhealthy", us = "unhealthy" }

[[services]]
name = "big.gslb.example.com"
strategy = "round-robin"
targets = { eu = [
    "192.0.2.100", "192.0.2.101", "192.0.2.102", "192.0.2.103", "192.0.2.104", "192.0.2.105",
    "192.0.2.106", "192.0.2.107", "192.0.2.108", "192.0.2.109", "192.0.2.110", "192.0.2.111",
    "192.0.2.112", "192.0.2.113", "192.0.2.114", "192.0.2.115", "192.0.2.116", "192.0.2.117",
    "192.0.2.118", "192.0.2.119", "192.0.2.120", "192.0.2.121", "192.0.2.122", "192.0.2.123",
    "192.0.2.124", "192.0.2.125", "192.0.2.126", "192.0.2.127", "192.0.2.128", "192.0.2.129",
    "2001:db8:e::100", "2001:db8:e::101", "2001:db8:e::102", "2001:db8:e::103",
    "2001:db8:e::104", "2001:db8:e::105", "2001:db8:e::106", "2001:db8:e::107",
    "2001:db8:e::108", "2001:db8:e::109", "2001:db8:e::10a", "2001:db8:e::10b",
    "2001:db8:e::10c", "2001:db8:e::10d", "2001:db8:e::10e", "2001:db8:e::10f",
    "2001:db8:e::110", "2001:db8:e::111", "2001:db8:e::112", "2001:db8:e::113",
    "2001:db8:e::114", "2001:db8:e::115", "2001:db8:e::116", "2001:db8:e::117",
    "2001:db8:e::118", "2001:db8:e::119", "2001:db8:e::11a", "2001:db8:e::11b",
] }
"#;

/// The time bucket every answer is given: answers depend on it, so it is fixed.
pub const BUCKET: u64 = 7;

/// [`CONFIG`], validated.
pub fn config() -> &'static Config {
    static CONFIG_PARSED: OnceLock<Config> = OnceLock::new();
    CONFIG_PARSED.get_or_init(|| match config::parse(CONFIG) {
        Ok(config) => config,
        Err(error) => panic!("the fuzz config is refused: {error}"),
    })
}

/// The snapshot the DNS targets answer from.
pub fn snapshot() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| Snapshot::from_model(&config().model, config().server.max_udp_payload))
}

/// The client every query comes from: in the `ap` geo network, not loopback (no exemption
/// or special case applies).
pub fn source() -> SocketAddr {
    SocketAddr::from(([203, 0, 113, 77], 5300))
}

/// The bytes hickory-server sends for UDP datagram `packet` with gslbd's handler, `None` when
/// it sends nothing. Follows hickory-server 0.26.3 step by step: `ServerContext::handle_request`
/// (no reply below a header, FORMERR with no question when the body does not parse, no reply
/// to a response), gslbd's `Handler::handle_request` (rate limiting left out: it is not on the
/// path under test) with its UDP fit, then `MessageResponse::encode(Protocol::Udp)`.
pub fn hickory_udp(
    snapshot: &Snapshot,
    packet: &[u8],
    src: SocketAddr,
    bucket: u64,
) -> Option<Vec<u8>> {
    let header = Header::read(&mut BinDecoder::new(packet)).ok()?;
    let request = match Request::from_bytes(packet.to_vec(), src, Protocol::Udp) {
        Ok(request) => request,
        Err(_) => {
            // hickory's `Queries::empty()` is crate-private; reading none is the same value.
            let queries = Queries::read(&mut BinDecoder::new(&[]), 0).ok()?;
            let message = MessageResponseBuilder::new(&queries, None)
                .error_msg(&header.metadata, ResponseCode::FormErr);
            return Some(encode_like_hickory(message));
        }
    };
    if request.metadata.message_type == MessageType::Response {
        return None;
    }
    let mut response = answer::respond(snapshot, &request, src.ip(), bucket)?;
    encode::fit_udp(&mut response, &request.queries);
    Some(encode_like_hickory(encode::message(
        &response,
        &request.queries,
    )))
}

/// hickory-server's `MessageResponse::encode` for UDP (crate-private there): the requester's
/// EDNS size or 512, and a bare SERVFAIL when the message cannot be written.
fn encode_like_hickory<'q, 'a, A, N, S, D>(message: MessageResponse<'q, 'a, A, N, S, D>) -> Vec<u8>
where
    A: Iterator<Item = &'a Record> + Send + 'a,
    N: Iterator<Item = &'a Record> + Send + 'a,
    S: Iterator<Item = &'a Record> + Send + 'a,
    D: Iterator<Item = &'a Record> + Send + 'a,
{
    let id = message.metadata().id;
    let max_size = message.edns().map_or(512, |edns| edns.max_payload());
    let mut bytes = Vec::with_capacity(512);
    let mut encoder = BinEncoder::new(&mut bytes);
    encoder.set_max_size(max_size);
    if message.destructive_emit(&mut encoder).is_err() {
        encode::servfail(id, &mut bytes);
    }
    bytes
}

/// The gossip cluster name, bound into every seal and signature.
pub const CLUSTER: &str = "fuzz.example";
/// The key a service value is published under in the report targets.
pub const SERVICE_KEY: &str = "svc:app.gslb.example.com.";
/// The regions with gossip keys; `eu` publishes in the report targets.
pub const REGIONS: [&str; 2] = ["eu", "us"];

/// A fixed 32-byte key, base64, as the config holds keys.
pub fn fixed_key(byte: u8) -> String {
    STANDARD.encode([byte; 32])
}

/// The cluster keyring: a key that seals and an older one that still opens.
pub fn keyring() -> &'static Keyring {
    static KEYRING: OnceLock<Keyring> = OnceLock::new();
    KEYRING.get_or_init(|| {
        Keyring::new(CLUSTER, &[fixed_key(7), fixed_key(8)]).expect("fixed keys are valid")
    })
}

/// The signing key of region `REGIONS[i]`.
pub fn signing_key(i: usize) -> &'static SigningKey {
    static KEYS: OnceLock<Vec<SigningKey>> = OnceLock::new();
    &KEYS.get_or_init(|| {
        (0..REGIONS.len())
            .map(|i| {
                SigningKey::from_base64(&fixed_key(1 + i as u8)).expect("fixed seeds are valid")
            })
            .collect()
    })[i]
}

/// Every region's public key.
pub fn region_keys() -> &'static RegionKeys {
    static KEYS: OnceLock<RegionKeys> = OnceLock::new();
    KEYS.get_or_init(|| {
        REGIONS
            .iter()
            .enumerate()
            .map(|(i, region)| {
                let public = signing_key(i).public_base64();
                let key = VerifyingKey::from_base64(&public).expect("a public key decodes");
                (region.to_string(), key)
            })
            .collect()
    })
}

/// One gossip datagram of a fuzz input: how it arrives, and its bytes.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Sealed with the cluster key before it is opened: `bytes` are a fragment's plaintext.
    /// Otherwise `bytes` are the datagram as received (which almost never opens).
    pub is_plaintext: bool,
    /// Which of two peers sent it (reassembly is per peer).
    pub peer: u8,
    /// How much later than the previous datagram it arrives, in 250 ms steps (0 to 15.75 s:
    /// past the transport's 5 s reassembly timeout).
    pub later: u8,
    pub bytes: &'a [u8],
}

/// Splits a fuzz input into frames: a flags byte (bit 0 plaintext, bit 1 peer, bits 2-7 the
/// delay), a big-endian u16 length, then that many bytes (fewer at the end of the input).
pub fn frames(mut input: &[u8]) -> impl Iterator<Item = Frame<'_>> {
    std::iter::from_fn(move || {
        let (&[flags, high, low], rest) = input.split_first_chunk::<3>()?;
        let len = usize::from(u16::from_be_bytes([high, low])).min(rest.len());
        let (bytes, rest) = rest.split_at(len);
        input = rest;
        Some(Frame {
            is_plaintext: flags & 1 == 1,
            peer: (flags >> 1) & 1,
            later: flags >> 2,
            bytes,
        })
    })
}

/// Appends `frame` to `out` in the layout [`frames`] reads (for the seed corpus).
pub fn push_frame(out: &mut Vec<u8>, frame: &Frame<'_>) {
    let flags = u8::from(frame.is_plaintext) | (frame.peer & 1) << 1 | frame.later << 2;
    out.push(flags);
    out.extend_from_slice(&(frame.bytes.len() as u16).to_be_bytes());
    out.extend_from_slice(frame.bytes);
}
