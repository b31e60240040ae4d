//! The zone's signer: its keys, how long signatures live, and the signatures made so far.
//!
//! Answers differ per client and per health state, so RRsets are signed when first answered
//! (online signing), and each signature is kept for the rest of its time window: the cache is
//! keyed by the RRset itself (owner, type, TTL and its records in canonical order, RFC 4034
//! §6.3) and the window, so a round-robin answer in any order, or the same set picked for
//! another client, finds the signature made for the first. A window is `refresh` long and
//! starts at a time of its own for each RRset (a hash of it: the same at every server), so a
//! day's new signatures are spread over the day; its signatures are valid from an hour before
//! it starts (clock skew) to `lifetime` after, and any region's answer validates with the same
//! keys.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use hickory_proto::dnssec::DigestType;
use hickory_proto::dnssec::rdata::{DNSSECRData, DS, RRSIG, SigInput};
use hickory_proto::rr::{Name, RData, Record, RecordType, SerialNumber};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use smallvec::SmallVec;

use super::key::ZoneKey;
use crate::snapshot::key_bytes;

/// Signatures start being valid this long before their window (resolvers' clocks run behind).
const BACKDATE_S: u64 = 3600;

/// Signed RRsets kept at most (a few hundred bytes each); a flood of names that do not exist
/// (each needs its own denial) evicts, it does not grow.
const CACHE_ENTRIES: usize = 200_000;

/// The RRSIGs of one RRset.
pub type Signatures = Arc<[Record]>;

/// How long signatures live.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Validity of a signature from its window's start.
    pub lifetime_s: u64,
    /// Length of a window: signatures are made again after this long.
    pub refresh_s: u64,
    /// TTL of the DNSKEY set.
    pub dnskey_ttl: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            lifetime_s: 14 * 86_400,
            refresh_s: 86_400,
            dnskey_ttl: 3600,
        }
    }
}

/// The RDATA of an RRset's records in canonical form (RFC 4034 §6.2), gathered for signing.
#[derive(Debug, Default)]
pub struct Rdatas {
    bytes: SmallVec<[u8; 256]>,
    ends: SmallVec<[u16; 8]>,
}

impl Rdatas {
    /// The addresses' A or AAAA RDATA.
    pub fn of_addresses(addresses: &[IpAddr]) -> Self {
        let mut rdatas = Self::default();
        for address in addresses {
            match address {
                IpAddr::V4(v4) => rdatas.bytes.extend_from_slice(&v4.octets()),
                IpAddr::V6(v6) => rdatas.bytes.extend_from_slice(&v6.octets()),
            }
            rdatas.ends.push(rdatas.bytes.len() as u16);
        }
        rdatas
    }

    /// The records' RDATA, names in it lowercase and uncompressed.
    pub fn of_records<'r>(records: impl IntoIterator<Item = &'r Record>) -> Result<Self, String> {
        let mut buffer = Vec::new();
        let mut rdatas = Self::default();
        for record in records {
            buffer.clear();
            let mut encoder = BinEncoder::new(&mut buffer);
            encoder.set_canonical_form(true);
            record.data.emit(&mut encoder).map_err(|e| e.to_string())?;
            rdatas.bytes.extend_from_slice(&buffer);
            rdatas.ends.push(rdatas.bytes.len() as u16);
        }
        Ok(rdatas)
    }

    /// The RDATAs in canonical order, duplicates removed (RFC 4034 §6.3).
    fn sorted(&self) -> SmallVec<[&[u8]; 8]> {
        let mut start = 0;
        let mut out: SmallVec<[&[u8]; 8]> = self
            .ends
            .iter()
            .map(|&end| {
                let rdata = &self.bytes[start..usize::from(end)];
                start = usize::from(end);
                rdata
            })
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// The zone's keys and signatures.
pub struct Signer {
    origin: Name,
    /// Every key in the DNSKEY set: those that sign, then those only published (rollover).
    keys: Vec<ZoneKey>,
    /// How many of `keys` sign.
    signing: usize,
    /// Each key's DS (same order as `keys`).
    ds: Vec<DS>,
    policy: Policy,
    cache: quick_cache::sync::Cache<Box<[u8]>, Signatures>,
    made: AtomicU64,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("origin", &self.origin)
            .field("keys", &self.keys)
            .field("signing", &self.signing)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Two signers are the same when they publish and sign with the same keys alike.
impl PartialEq for Signer {
    fn eq(&self, other: &Self) -> bool {
        self.origin == other.origin
            && self.signing == other.signing
            && self.policy == other.policy
            && self.keys.len() == other.keys.len()
            && self
                .keys
                .iter()
                .zip(&other.keys)
                .all(|(a, b)| a.dnskey == b.dnskey)
    }
}

impl Eq for Signer {}

impl Signer {
    /// A signer for `origin` signing with `signing` and publishing `published` as well.
    pub fn new(
        origin: &Name,
        signing: Vec<ZoneKey>,
        published: Vec<ZoneKey>,
        policy: Policy,
    ) -> Result<Self, String> {
        if signing.is_empty() {
            return Err("at least one signing key is needed".into());
        }
        let count = signing.len();
        let keys: Vec<ZoneKey> = signing.into_iter().chain(published).collect();
        for (i, key) in keys.iter().enumerate() {
            if keys[..i].iter().any(|k| k.dnskey == key.dnskey) {
                return Err(format!("{} is listed twice", key.source));
            }
        }
        let origin = origin.to_lowercase();
        let ds = keys
            .iter()
            .map(|key| {
                let digest = key
                    .dnskey
                    .to_digest(&origin, DigestType::SHA256)
                    .map_err(|e| format!("{}: no DS digest: {e}", key.source))?;
                Ok(DS::new(
                    key.tag,
                    key.algorithm(),
                    DigestType::SHA256,
                    digest.as_ref().to_vec(),
                ))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(Self {
            origin,
            keys,
            ds,
            signing: count,
            policy,
            cache: quick_cache::sync::Cache::new(CACHE_ENTRIES),
            made: AtomicU64::new(0),
        })
    }

    /// The zone's name (lowercase).
    pub fn origin(&self) -> &Name {
        &self.origin
    }

    /// How long signatures live.
    pub fn policy(&self) -> Policy {
        self.policy
    }

    /// Signatures made so far (cache misses).
    pub fn signatures_made(&self) -> u64 {
        self.made.load(Ordering::Relaxed)
    }

    /// Signed RRsets in the cache.
    pub fn cached(&self) -> usize {
        self.cache.len()
    }

    /// The DNSKEY set at the apex.
    pub fn dnskey_records(&self) -> Vec<Record> {
        self.keys
            .iter()
            .map(|key| {
                Record::from_rdata(
                    self.origin.clone(),
                    self.policy.dnskey_ttl,
                    RData::DNSSEC(DNSSECRData::DNSKEY(key.dnskey.clone())),
                )
            })
            .collect()
    }

    /// The DS records the parent needs (SHA-256 digests, RFC 4509): one per key with the SEP
    /// flag, or per key when none has it.
    pub fn ds_records(&self, ttl: u32) -> Vec<Record> {
        let any_sep = self.keys.iter().any(ZoneKey::is_sep);
        self.keys
            .iter()
            .zip(&self.ds)
            .filter(|(key, _)| !any_sep || key.is_sep())
            .map(|(_, ds)| {
                Record::from_rdata(
                    self.origin.clone(),
                    ttl,
                    RData::DNSSEC(DNSSECRData::DS(ds.clone())),
                )
            })
            .collect()
    }

    /// The keys that sign RRsets of `rtype`: for the DNSKEY set the signing keys with the SEP
    /// flag (KSK, CSK), for the rest those without it (ZSK); all signing keys where none or
    /// every one has it (CSKs).
    fn signers_of(&self, rtype: RecordType) -> impl Iterator<Item = &ZoneKey> {
        let signing = &self.keys[..self.signing];
        let seps = signing.iter().filter(|k| k.is_sep()).count();
        let split = seps > 0 && seps < signing.len();
        let want_sep = rtype == RecordType::DNSKEY;
        signing
            .iter()
            .filter(move |key| !split || key.is_sep() == want_sep)
    }

    /// The RRSIGs of the RRset of `owner` and `rtype` with `ttl` holding `rdatas` (class IN), valid at
    /// `now_s` (Unix seconds): made once per window, then taken from the cache.
    pub fn sign(
        &self,
        owner: &Name,
        rtype: RecordType,
        ttl: u32,
        rdatas: &Rdatas,
        now_s: u64,
    ) -> Result<Signatures, String> {
        let refresh = self.policy.refresh_s.max(1);
        let owner_wire = key_bytes(owner);
        let sorted = rdatas.sorted();

        // owner | type | TTL | (length | RDATA)* | window
        let mut key: SmallVec<[u8; 256]> = SmallVec::new();
        key.extend_from_slice(&owner_wire);
        key.extend_from_slice(&u16::from(rtype).to_be_bytes());
        key.extend_from_slice(&ttl.to_be_bytes());
        for rdata in &sorted {
            key.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
            key.extend_from_slice(rdata);
        }
        // Each RRset's windows start at a time of day of its own (the same in every region:
        // the hash has no seed), so the day's new signatures are spread over the day rather
        // than all made in the first seconds after midnight.
        let offset = {
            let mut hasher = rustc_hash::FxHasher::default();
            std::hash::Hasher::write(&mut hasher, &key);
            std::hash::Hasher::finish(&hasher) % refresh
        };
        let window = (now_s + offset) / refresh;
        key.extend_from_slice(&window.to_be_bytes());
        if let Some(found) = self.cache.get(&key[..]) {
            return Ok(found);
        }

        let start = (window * refresh).saturating_sub(offset);
        let inception = start.saturating_sub(BACKDATE_S) as u32;
        let expiration = (start + self.policy.lifetime_s) as u32;
        let owner = owner.to_lowercase();
        let labels = owner.num_labels();
        let mut made = Vec::new();
        for signer in self.signers_of(rtype) {
            let input = SigInput {
                type_covered: rtype,
                algorithm: signer.algorithm(),
                num_labels: labels,
                original_ttl: ttl,
                sig_expiration: SerialNumber::new(expiration),
                sig_inception: SerialNumber::new(inception),
                key_tag: signer.tag,
                signer_name: self.origin.clone(),
            };
            let data = signed_data(&input, &owner_wire, &sorted);
            let signature = signer.sign(&data)?;
            made.push(Record::from_rdata(
                owner.clone(),
                ttl,
                RData::DNSSEC(DNSSECRData::RRSIG(RRSIG::from_sig(input, signature))),
            ));
            self.made.fetch_add(1, Ordering::Relaxed);
        }
        let made: Signatures = made.into();
        self.cache
            .insert(key.into_vec().into_boxed_slice(), made.clone());
        Ok(made)
    }

    /// The keys, signing first.
    pub fn keys(&self) -> &[ZoneKey] {
        &self.keys
    }

    /// Whether `key` (an index into [`keys`](Self::keys)) signs.
    pub fn signs(&self, key: usize) -> bool {
        key < self.signing
    }
}

/// Appends to `out` an RRSIG's RDATA up to its signature (RFC 4034 §3.1): the fields of
/// `input`, the signer's name uncompressed and lowercase (§3.1.7, §6.2). What is signed starts
/// with it, and what is sent writes it before the signature.
pub fn write_rrsig_fields(input: &SigInput, out: &mut Vec<u8>) {
    out.extend_from_slice(&u16::from(input.type_covered).to_be_bytes());
    out.push(u8::from(input.algorithm));
    out.push(input.num_labels);
    out.extend_from_slice(&input.original_ttl.to_be_bytes());
    out.extend_from_slice(&input.sig_expiration.get().to_be_bytes());
    out.extend_from_slice(&input.sig_inception.get().to_be_bytes());
    out.extend_from_slice(&input.key_tag.to_be_bytes());
    out.extend_from_slice(&key_bytes(&input.signer_name));
}

/// RFC 4034 §3.1.8.1: the RRSIG RDATA without its signature, then each record of the RRset in
/// canonical form and order (owner lowercase, the original TTL).
fn signed_data(input: &SigInput, owner_wire: &[u8], sorted: &[&[u8]]) -> Vec<u8> {
    let mut data = Vec::with_capacity(64 + sorted.len() * (owner_wire.len() + 30));
    write_rrsig_fields(input, &mut data);
    for rdata in sorted {
        data.extend_from_slice(owner_wire);
        data.extend_from_slice(&u16::from(input.type_covered).to_be_bytes());
        data.extend_from_slice(&1u16.to_be_bytes()); // class IN
        data.extend_from_slice(&input.original_ttl.to_be_bytes());
        data.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        data.extend_from_slice(rdata);
    }
    data
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use hickory_proto::dnssec::rdata::DNSSECRData;
    use hickory_proto::rr::{Name, RData, RecordType};

    use super::*;
    use crate::fixtures;

    fn signer() -> Arc<Signer> {
        let model = fixtures::signed(fixtures::config("").model);
        model.zone.signer.expect("signed")
    }

    /// (inception, expiration, signature) of the A RRset of `address` signed at `now`.
    fn signed(signer: &Signer, address: &str, now: u64) -> (u32, u32, Vec<u8>) {
        let owner = Name::from_ascii("app.gslb.example.com.").expect("name");
        let address: IpAddr = address.parse().expect("address");
        let made = signer
            .sign(
                &owner,
                RecordType::A,
                30,
                &Rdatas::of_addresses(&[address]),
                now,
            )
            .expect("signs");
        let RData::DNSSEC(DNSSECRData::RRSIG(rrsig)) = &made[0].data else {
            panic!("an RRSIG");
        };
        let input = rrsig.input();
        (
            input.sig_inception.get(),
            input.sig_expiration.get(),
            rrsig.sig().to_vec(),
        )
    }

    #[test]
    fn each_rrset_is_signed_again_once_a_day_at_a_time_of_its_own() {
        let signer = signer();
        let day = 86_400;
        let now = 1_800_000_000 - 1_800_000_000 % day;
        let mut starts = std::collections::BTreeSet::new();
        for i in 1..=20 {
            let address = format!("192.0.2.{i}");
            let (inception, expiration, signature) = signed(&signer, &address, now);
            let start = u64::from(inception) + BACKDATE_S;
            assert!(start <= now && now < start + day, "the window holds now");
            assert_eq!(u64::from(expiration), start + 14 * day);
            starts.insert(start % day);
            // The same RRset within its window: the same signature (from the cache) ...
            let until = start + day - 1;
            assert_eq!(signed(&signer, &address, until).2, signature);
            // ... and a new one made at the window's end, valid from then.
            let (next, _, again) = signed(&signer, &address, start + day);
            assert_ne!(again, signature);
            assert_eq!(u64::from(next) + BACKDATE_S, start + day);
        }
        assert!(starts.len() > 15, "spread over the day: {starts:?}");
    }
}
