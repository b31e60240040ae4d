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
pub const CONFIG: &str = include_str!("../config.toml");

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

/// [`CONFIG`] signed with the repository's test key (`config/dnssec/`), validated.
pub fn signed_config() -> &'static Config {
    static SIGNED: OnceLock<Config> = OnceLock::new();
    SIGNED.get_or_init(|| {
        let key = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../config/dnssec/Kgslb.example.com.+013+60818"
        );
        let text = CONFIG.replacen(
            "[zone]\n",
            &format!("[zone.dnssec]\nkeys = [\"{key}\"]\n\n[zone]\n"),
            1,
        );
        match config::parse(&text) {
            Ok(config) => config,
            Err(error) => panic!("the signed fuzz config is refused: {error}"),
        }
    })
}

/// The snapshot of [`signed_config`]: answers with DO carry signatures and denials.
pub fn signed_snapshot() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        let config = signed_config();
        Snapshot::from_model(&config.model, config.server.max_udp_payload)
    })
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
    let addresses = response.address_records(None);
    Some(encode_like_hickory(encode::message(
        &response,
        &request.queries,
        &addresses,
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
/// The regions with gossip keys ([`CONFIG`]'s); `eu` publishes in the unit targets.
pub const REGIONS: [&str; 3] = ["eu", "us", "ap"];

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
