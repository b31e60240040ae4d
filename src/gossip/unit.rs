//! The unit of publication: what one run of a gslbd instance signs and gossips about its
//! region. A run's state is [`SLOTS`] shards of services (each service in the shard its name
//! hashes to) plus a drain slot, each published as a whole, signed unit with its own sequence
//! number; a heartbeat carries the digest of every slot's sequence, so a receiver knows at once
//! whether it holds all the run says it published and can ask a peer for the rest.
//!
//! Layout (integers big-endian), signed with the region's Ed25519 key over the cluster name, a
//! newline and every byte before the signature:
//!
//! ```text
//! format u8 | kind u8 | region len u8, bytes | instance len u8, bytes | epoch u64 | seq u64 |
//! issued_ms u64 | slot u16 | body len u32, body | signature [64]
//! ```
//!
//! Bodies: heartbeat, the 8-byte digest; shard, zstd of JSON `{"s": [[name, report]],
//! "o": [[name, observation]]}`; drain, JSON of the drain state. Everything that orders units
//! (epoch, seq, slot) is inside the signature, so no member can reorder or silence a region
//! without its key.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Buf;
use hickory_proto::rr::Name;
use ring::digest;
use serde::{Deserialize, Serialize};

use super::keys::{RegionKeys, SigningKey};
use super::report::{DrainState, Observation, ReportRejection, ServiceReport, Stamp};
use super::wire;
use crate::model::Region;

/// Shards per run: a service lives in shard `hash(name) mod SLOTS`.
pub const SLOTS: u16 = 256;
/// The drain state's slot, after the shards.
pub const DRAIN_SLOT: u16 = SLOTS;
/// Slots a run holds: the shards and the drain state.
pub const RUN_SLOTS: usize = SLOTS as usize + 1;
/// A heartbeat's slot number (it is not held in a slot).
const HEARTBEAT_SLOT: u16 = u16::MAX;
/// Largest unit on the wire, and largest shard body once decompressed (a zstd bomb guard).
pub const MAX_UNIT: usize = 60 * 1024;
pub const MAX_DECOMPRESSED: usize = 2 * 1024 * 1024;
/// Longest region or instance name.
const MAX_NAME: usize = 63;

const FORMAT: u8 = 1;
const SIGNATURE: usize = 64;

/// What a unit carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Heartbeat = 1,
    Shard = 2,
    Drain = 3,
}

/// A run's digest of its slots' sequences.
pub type Digest = [u8; 8];

/// The digest of a run's slot sequences (0 for a slot never published).
pub fn digest(seqs: &[u64]) -> Digest {
    let mut context = digest::Context::new(&digest::SHA256);
    for seq in seqs {
        context.update(&seq.to_be_bytes());
    }
    let mut out = [0u8; 8];
    out.copy_from_slice(&context.finish().as_ref()[..8]);
    out
}

/// The shard a service belongs to, from its lowercase, fully qualified name.
pub fn shard_of(name: &Name) -> u16 {
    let text = name.to_lowercase().to_ascii();
    let hash = digest::digest(&digest::SHA256, text.as_bytes());
    let bytes = hash.as_ref();
    u16::from_be_bytes([bytes[0], bytes[1]]) % SLOTS
}

/// A shard's content.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    #[serde(rename = "s", default)]
    pub services: BTreeMap<String, ServiceReport>,
    #[serde(rename = "o", default)]
    pub observed: BTreeMap<String, Observation>,
}

impl Shard {
    pub fn is_empty(&self) -> bool {
        self.services.is_empty() && self.observed.is_empty()
    }
}

/// A unit's header, read before its signature is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub kind: Kind,
    pub stamp: Stamp,
    /// The shard index, [`DRAIN_SLOT`], or none for a heartbeat.
    pub slot: Option<u16>,
}

/// A unit whose signature verified, with its bytes as received (what pulls serve).
#[derive(Clone, Debug)]
pub struct Unit {
    pub header: Header,
    pub bytes: Arc<[u8]>,
    body: std::ops::Range<usize>,
}

impl Unit {
    pub fn body(&self) -> &[u8] {
        &self.bytes[self.body.clone()]
    }

    /// A heartbeat's digest.
    pub fn digest(&self) -> Result<Digest, ReportRejection> {
        self.body()
            .try_into()
            .map_err(|_| ReportRejection::Malformed)
    }

    /// A shard's content, each service checked to belong to the shard.
    pub fn shard(&self) -> Result<Shard, ReportRejection> {
        let json = zstd::bulk::decompress(self.body(), MAX_DECOMPRESSED)
            .map_err(|_| ReportRejection::DecompressLimit)?;
        let shard: Shard = serde_json::from_slice(&json).map_err(|_| ReportRejection::Malformed)?;
        let slot = self.header.slot;
        let misplaced = shard
            .services
            .keys()
            .chain(shard.observed.keys())
            .any(|name| Name::from_ascii(name).map_or(true, |n| Some(shard_of(&n)) != slot));
        if misplaced {
            return Err(ReportRejection::Malformed);
        }
        Ok(shard)
    }

    pub fn drain(&self) -> Result<DrainState, ReportRejection> {
        serde_json::from_slice(self.body()).map_err(|_| ReportRejection::Malformed)
    }
}

/// The kind a unit's bytes claim, unverified: for units verified already.
pub fn kind_of(bytes: &[u8]) -> Option<Kind> {
    match bytes.get(1) {
        Some(1) => Some(Kind::Heartbeat),
        Some(2) => Some(Kind::Shard),
        Some(3) => Some(Kind::Drain),
        _ => None,
    }
}

/// The region and instance a unit's bytes claim, unverified: for units verified already.
pub fn origin_of(bytes: &[u8]) -> Option<(&str, &str)> {
    let mut buf = bytes.get(2..)?;
    let region = unit_name(&mut buf).ok()?;
    let instance = unit_name(&mut buf).ok()?;
    Some((region, instance))
}

/// What a unit says, to be signed.
pub enum Body<'a> {
    Heartbeat(Digest),
    Shard(&'a Shard),
    Drain(&'a DrainState),
}

/// Why a unit cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("the unit is {0} bytes, over the {MAX_UNIT}-byte limit")]
    TooBig(usize),
    #[error("cannot encode the unit: {0}")]
    Encode(String),
}

/// Signs a unit of `stamp`'s run.
pub fn sign(
    signing: &SigningKey,
    cluster: &str,
    stamp: &Stamp,
    slot: Option<u16>,
    body: Body<'_>,
) -> Result<Arc<[u8]>, SignError> {
    let (kind, bytes) = match body {
        Body::Heartbeat(digest) => (Kind::Heartbeat, digest.to_vec()),
        Body::Shard(shard) => {
            let json = serde_json::to_vec(shard).map_err(|e| SignError::Encode(e.to_string()))?;
            let packed =
                zstd::bulk::compress(&json, 3).map_err(|e| SignError::Encode(e.to_string()))?;
            (Kind::Shard, packed)
        }
        Body::Drain(state) => (
            Kind::Drain,
            serde_json::to_vec(state).map_err(|e| SignError::Encode(e.to_string()))?,
        ),
    };
    sign_raw(signing, cluster, stamp, kind, slot, &bytes)
}

/// Signs a unit with `body` as its bytes, encoded already (the fuzz targets and tests give
/// bodies of their own making).
pub fn sign_raw(
    signing: &SigningKey,
    cluster: &str,
    stamp: &Stamp,
    kind: Kind,
    slot: Option<u16>,
    body: &[u8],
) -> Result<Arc<[u8]>, SignError> {
    let region = stamp.region.as_str().as_bytes();
    let instance = stamp.instance.as_bytes();
    let mut out = Vec::with_capacity(64 + region.len() + instance.len() + body.len());
    out.push(FORMAT);
    out.push(kind as u8);
    out.push(region.len().min(MAX_NAME) as u8);
    out.extend_from_slice(&region[..region.len().min(MAX_NAME)]);
    out.push(instance.len().min(MAX_NAME) as u8);
    out.extend_from_slice(&instance[..instance.len().min(MAX_NAME)]);
    out.extend_from_slice(&stamp.epoch.to_be_bytes());
    out.extend_from_slice(&stamp.seq.to_be_bytes());
    out.extend_from_slice(&stamp.issued_ms.to_be_bytes());
    out.extend_from_slice(&slot.unwrap_or(HEARTBEAT_SLOT).to_be_bytes());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    let signature = signing.sign(&signed_message(cluster, &out));
    out.extend_from_slice(&signature);
    if out.len() > MAX_UNIT {
        return Err(SignError::TooBig(out.len()));
    }
    Ok(out.into())
}

fn signed_message(cluster: &str, unit: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(cluster.len() + 1 + unit.len());
    message.extend_from_slice(cluster.as_bytes());
    message.push(b'\n');
    message.extend_from_slice(unit);
    message
}

/// A region or instance name of a unit: 1 to [`MAX_NAME`] bytes of UTF-8.
fn unit_name<'a>(buf: &mut &'a [u8]) -> Result<&'a str, ReportRejection> {
    wire::take_name(buf)
        .filter(|name| !name.is_empty() && name.len() <= MAX_NAME)
        .ok_or(ReportRejection::Malformed)
}

/// A unit's parts, read but not verified.
struct Parts {
    header: Header,
    body: std::ops::Range<usize>,
}

/// Reads a unit's layout; its signature is at `body.end..`.
fn read(bytes: &[u8]) -> Result<Parts, ReportRejection> {
    if bytes.len() > MAX_UNIT {
        return Err(ReportRejection::UnitTooBig);
    }
    let malformed = |_| ReportRejection::Malformed;
    let mut buf = bytes;
    if buf.try_get_u8().map_err(malformed)? != FORMAT {
        return Err(ReportRejection::Malformed);
    }
    let kind = match buf.try_get_u8().map_err(malformed)? {
        1 => Kind::Heartbeat,
        2 => Kind::Shard,
        3 => Kind::Drain,
        _ => return Err(ReportRejection::Malformed),
    };
    let region = unit_name(&mut buf)?;
    let instance = unit_name(&mut buf)?.to_string();
    let epoch = buf.try_get_u64().map_err(malformed)?;
    let seq = buf.try_get_u64().map_err(malformed)?;
    let issued_ms = buf.try_get_u64().map_err(malformed)?;
    let slot = buf.try_get_u16().map_err(malformed)?;
    let body_len = buf.try_get_u32().map_err(malformed)? as usize;
    let start = bytes.len() - buf.len();
    wire::take(&mut buf, body_len).ok_or(ReportRejection::Malformed)?;
    let end = bytes.len() - buf.len();
    if buf.len() != SIGNATURE {
        return Err(ReportRejection::Malformed);
    }
    let slot = match (kind, slot) {
        (Kind::Heartbeat, HEARTBEAT_SLOT) => None,
        (Kind::Shard, slot) if slot < SLOTS => Some(slot),
        (Kind::Drain, DRAIN_SLOT) => Some(DRAIN_SLOT),
        _ => return Err(ReportRejection::Malformed),
    };
    if seq == 0 {
        return Err(ReportRejection::Malformed);
    }
    Ok(Parts {
        header: Header {
            kind,
            stamp: Stamp {
                region: Region::new(region),
                instance,
                epoch,
                seq,
                issued_ms,
            },
            slot,
        },
        body: start..end,
    })
}

/// A unit's header as its bytes claim it, signature unchecked: enough to tell a replay (not
/// above what is held) before spending a signature check on it.
pub fn peek(bytes: &[u8]) -> Result<Header, ReportRejection> {
    read(bytes).map(|parts| parts.header)
}

/// Reads a unit's header and checks its signature with its region's key; the body is read
/// only by the accessors of [`Unit`].
pub fn verify(
    bytes: Arc<[u8]>,
    cluster: &str,
    region_keys: &RegionKeys,
) -> Result<Unit, ReportRejection> {
    let Parts { header, body } = read(&bytes)?;
    let key = region_keys
        .get(header.stamp.region.as_str())
        .ok_or(ReportRejection::UnknownRegion)?;
    if !key.verify(
        &signed_message(cluster, &bytes[..body.end]),
        &bytes[body.end..],
    ) {
        return Err(ReportRejection::BadSignature);
    }
    Ok(Unit {
        header,
        bytes,
        body,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gossip::keys::{VerifyingKey, generate};
    use crate::model::Health;

    fn keys() -> (SigningKey, RegionKeys) {
        let (_, seed, public) = generate().unwrap();
        let (_, _, other) = generate().unwrap();
        let mut keys = RegionKeys::new();
        keys.insert("eu".into(), VerifyingKey::from_base64(&public).unwrap());
        keys.insert("us".into(), VerifyingKey::from_base64(&other).unwrap());
        (SigningKey::from_base64(&seed).unwrap(), keys)
    }

    fn stamp(region: &str, seq: u64) -> Stamp {
        Stamp {
            region: Region::new(region),
            instance: "0".into(),
            epoch: 9,
            seq,
            issued_ms: 1,
        }
    }

    fn shard_with(name: &str) -> (u16, Shard) {
        let parsed = Name::from_ascii(name).unwrap();
        let mut shard = Shard::default();
        shard.services.insert(
            name.to_string(),
            ServiceReport {
                health: Health::Healthy,
                addresses: vec!["192.0.2.1".parse().unwrap()],
                down: vec![],
                name: None,
                changed_ms: 1,
                failing_since_ms: None,
                drained: false,
                weight: None,
                spec: None,
            },
        );
        (shard_of(&parsed), shard)
    }

    #[test]
    fn units_verify_and_read_back_and_any_change_breaks_them() {
        let (signing, keys) = keys();
        let (slot, shard) = shard_with("app.gslb.example.com.");
        let bytes = sign(
            &signing,
            "c",
            &stamp("eu", 5),
            Some(slot),
            Body::Shard(&shard),
        )
        .unwrap();
        let unit = verify(bytes.clone(), "c", &keys).unwrap();
        assert_eq!(unit.header.stamp, stamp("eu", 5));
        assert_eq!(unit.header.slot, Some(slot));
        assert_eq!(unit.shard().unwrap(), shard);
        for at in [1, 3, 20, bytes.len() / 2, bytes.len() - 1] {
            let mut changed = bytes.to_vec();
            changed[at] ^= 1;
            assert!(verify(changed.into(), "c", &keys).is_err(), "byte {at}");
        }
        assert_eq!(
            verify(bytes.clone(), "other cluster", &keys).unwrap_err(),
            ReportRejection::BadSignature
        );
        // Signed by eu's key, claiming us: us's key does not verify it.
        let claimed = sign(
            &signing,
            "c",
            &stamp("us", 5),
            None,
            Body::Heartbeat([0; 8]),
        )
        .unwrap();
        assert_eq!(
            verify(claimed, "c", &keys).unwrap_err(),
            ReportRejection::BadSignature
        );
        let unknown = sign(
            &signing,
            "c",
            &stamp("ap", 5),
            None,
            Body::Heartbeat([0; 8]),
        )
        .unwrap();
        assert_eq!(
            verify(unknown, "c", &keys).unwrap_err(),
            ReportRejection::UnknownRegion
        );
    }

    #[test]
    fn a_service_in_the_wrong_shard_or_a_bomb_is_refused() {
        let (signing, keys) = keys();
        let (slot, shard) = shard_with("app.gslb.example.com.");
        let wrong = (slot + 1) % SLOTS;
        let bytes = sign(
            &signing,
            "c",
            &stamp("eu", 1),
            Some(wrong),
            Body::Shard(&shard),
        )
        .unwrap();
        let unit = verify(bytes, "c", &keys).unwrap();
        assert_eq!(unit.shard().unwrap_err(), ReportRejection::Malformed);

        // A body that inflates past the limit is refused without inflating it all.
        let zeros = vec![b' '; MAX_DECOMPRESSED + 1];
        let bomb = zstd::bulk::compress(&zeros, 19).unwrap();
        let raw = sign_raw(
            &signing,
            "c",
            &stamp("eu", 2),
            Kind::Shard,
            Some(slot),
            &bomb,
        )
        .unwrap();
        let unit = verify(raw, "c", &keys).unwrap();
        assert_eq!(unit.shard().unwrap_err(), ReportRejection::DecompressLimit);
        assert_eq!(
            verify(vec![0u8; MAX_UNIT + 1].into(), "c", &keys).unwrap_err(),
            ReportRejection::UnitTooBig
        );
    }

    #[test]
    fn services_spread_over_the_shards() {
        let mut used = std::collections::HashSet::new();
        for i in 0..2000 {
            used.insert(shard_of(
                &Name::from_ascii(format!("svc-{i}.gslb.example.com.")).unwrap(),
            ));
        }
        assert!(used.len() > 240, "{}", used.len());
        assert_eq!(
            shard_of(&Name::from_ascii("App.Gslb.Example.Com.").unwrap()),
            shard_of(&Name::from_ascii("app.gslb.example.com.").unwrap())
        );
    }
}
