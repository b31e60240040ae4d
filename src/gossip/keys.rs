//! Gossip keys: the shared cluster keyring that seals every datagram (ChaCha20-Poly1305, so keys
//! rotate without downtime: the first key seals, every key opens), and each region's Ed25519
//! key that signs what the region says about itself.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair, UnparsedPublicKey};

use crate::label_enum::label_enum;

/// Sealed datagram layout: version (1) | key id (4) | nonce (12) | ciphertext | tag (16).
const SEAL_VERSION: u8 = 1;
const KEY_ID_LEN: usize = 4;
const TAG_LEN: usize = 16;
/// Bytes a seal adds to a payload.
pub const SEAL_OVERHEAD: usize = 1 + KEY_ID_LEN + NONCE_LEN + TAG_LEN;

/// Why a key or a sealed datagram was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not base64: {0}")]
    Base64(String),
    #[error("expected {expected} bytes, got {got}")]
    Length { expected: usize, got: usize },
    #[error("invalid key: {0}")]
    Invalid(String),
}

label_enum! {
    /// Why a gossip datagram was dropped; the names are metric label values. The keyring
    /// refuses the first three; the transport the last, once the fragments are reassembled.
    pub enum Rejection {
        /// Too short or an unknown format version.
        Malformed = "malformed",
        /// Sealed with a key not in our keyring.
        UnknownKey = "unknown_key",
        /// The tag does not verify: wrong key, corrupted or forged.
        BadTag = "bad_tag",
        /// Opened and reassembled, but not a message of `gossip::wire`.
        Undecodable = "undecodable",
    }
}

fn decode_fixed<const N: usize>(text: &str) -> Result<[u8; N], KeyError> {
    let bytes = STANDARD
        .decode(text.trim())
        .map_err(|e| KeyError::Base64(e.to_string()))?;
    <[u8; N]>::try_from(bytes.as_slice()).map_err(|_| KeyError::Length {
        expected: N,
        got: bytes.len(),
    })
}

struct ClusterKey {
    /// SHA-256 of the key: its first bytes name it in datagrams, the whole compares keyrings.
    digest: [u8; 32],
    key: LessSafeKey,
}

impl ClusterKey {
    fn id(&self) -> &[u8] {
        &self.digest[..KEY_ID_LEN]
    }
}

/// Every region's public key, by region name.
pub type RegionKeys = std::collections::BTreeMap<String, VerifyingKey>;

/// The cluster's shared keys.
pub struct Keyring {
    keys: Vec<ClusterKey>,
    /// Bound into every tag: a datagram of another cluster never opens here.
    cluster: Vec<u8>,
    rng: SystemRandom,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// Same cluster, same keys in the same order (for reloads: a changed keyring needs a restart).
impl PartialEq for Keyring {
    fn eq(&self, other: &Self) -> bool {
        self.cluster == other.cluster
            && self.keys.len() == other.keys.len()
            && self
                .keys
                .iter()
                .zip(&other.keys)
                .all(|(a, b)| a.digest == b.digest)
    }
}

impl Eq for Keyring {}

impl Keyring {
    /// Keys as base64 of 32 bytes; the first seals, all open.
    pub fn new(cluster: &str, keys: &[String]) -> Result<Self, KeyError> {
        let keys = keys
            .iter()
            .map(|text| {
                let bytes = decode_fixed::<32>(text)?;
                let mut digest = [0u8; 32];
                digest.copy_from_slice(digest::digest(&digest::SHA256, &bytes).as_ref());
                let key = UnboundKey::new(&CHACHA20_POLY1305, &bytes)
                    .map_err(|_| KeyError::Invalid("chacha20-poly1305 key".into()))?;
                Ok(ClusterKey {
                    digest,
                    key: LessSafeKey::new(key),
                })
            })
            .collect::<Result<Vec<_>, KeyError>>()?;
        if keys.is_empty() {
            return Err(KeyError::Invalid("the keyring is empty".into()));
        }
        Ok(Self {
            keys,
            cluster: cluster.as_bytes().to_vec(),
            rng: SystemRandom::new(),
        })
    }

    /// Seals `payload` into `out` (cleared first) with the first key.
    pub fn seal(&self, payload: &[u8], out: &mut Vec<u8>) {
        let key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        // SystemRandom fails only if the OS has no randomness; a zero nonce would then be
        // reused, so refuse to send rather than risk it.
        if self.rng.fill(&mut nonce).is_err() {
            out.clear();
            return;
        }
        out.clear();
        out.push(SEAL_VERSION);
        out.extend_from_slice(key.id());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(payload);
        let header_len = 1 + KEY_ID_LEN + NONCE_LEN;
        let tag = key.key.seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(&self.cluster),
            &mut out[header_len..],
        );
        match tag {
            Ok(tag) => out.extend_from_slice(tag.as_ref()),
            Err(_) => out.clear(),
        }
    }

    /// Opens a sealed datagram in place; returns the payload.
    pub fn open<'a>(&self, sealed: &'a mut [u8]) -> Result<&'a [u8], Rejection> {
        let header_len = 1 + KEY_ID_LEN + NONCE_LEN;
        if sealed.len() < header_len + TAG_LEN || sealed[0] != SEAL_VERSION {
            return Err(Rejection::Malformed);
        }
        let id = &sealed[1..1 + KEY_ID_LEN];
        let key = self
            .keys
            .iter()
            .find(|k| k.id() == id)
            .ok_or(Rejection::UnknownKey)?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[1 + KEY_ID_LEN..header_len]);
        let opened = key
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(&self.cluster),
                &mut sealed[header_len..],
            )
            .map_err(|_| Rejection::BadTag)?;
        Ok(opened)
    }
}

/// A region's private signing key.
pub struct SigningKey(Ed25519KeyPair);

/// Keys are the same when their public halves are.
impl PartialEq for SigningKey {
    fn eq(&self, other: &Self) -> bool {
        self.0.public_key().as_ref() == other.0.public_key().as_ref()
    }
}

impl Eq for SigningKey {}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SigningKey(..)")
    }
}

impl SigningKey {
    /// From the base64 of a 32-byte Ed25519 seed.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        let seed = decode_fixed::<32>(text)?;
        Ed25519KeyPair::from_seed_unchecked(&seed)
            .map(Self)
            .map_err(|e| KeyError::Invalid(e.to_string()))
    }

    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        let mut out = [0u8; 64];
        out.copy_from_slice(self.0.sign(message).as_ref());
        out
    }

    /// The matching public key, base64.
    pub fn public_base64(&self) -> String {
        STANDARD.encode(self.0.public_key().as_ref())
    }
}

/// A region's public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyingKey([u8; 32]);

impl VerifyingKey {
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        decode_fixed::<32>(text).map(Self)
    }

    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(message, signature)
            .is_ok()
    }
}

/// Fresh keys for `gslbd keygen`: (cluster key, region signing seed, its public key), base64.
pub fn generate() -> Result<(String, String, String), KeyError> {
    let rng = SystemRandom::new();
    let mut cluster = [0u8; 32];
    let mut seed = [0u8; 32];
    rng.fill(&mut cluster)
        .and_then(|_| rng.fill(&mut seed))
        .map_err(|_| KeyError::Invalid("no randomness available".into()))?;
    let signing = SigningKey::from_base64(&STANDARD.encode(seed))?;
    Ok((
        STANDARD.encode(cluster),
        STANDARD.encode(seed),
        signing.public_base64(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> String {
        STANDARD.encode([byte; 32])
    }

    #[test]
    fn sealed_payload_opens_with_any_key_of_the_ring() {
        let old = Keyring::new("c", &[key(1)]).unwrap();
        let rotated = Keyring::new("c", &[key(2), key(1)]).unwrap();
        let mut sealed = Vec::new();
        old.seal(b"hello", &mut sealed);
        assert_eq!(rotated.open(&mut sealed.clone()).unwrap(), b"hello");
        rotated.seal(b"again", &mut sealed);
        assert_eq!(rotated.open(&mut sealed.clone()).unwrap(), b"again");
        // A ring without the sealing key refuses it.
        assert_eq!(old.open(&mut sealed.clone()), Err(Rejection::UnknownKey));
    }

    #[test]
    fn tampering_wrong_cluster_and_garbage_are_rejected() {
        let ring = Keyring::new("c", &[key(1)]).unwrap();
        let mut sealed = Vec::new();
        ring.seal(b"payload", &mut sealed);
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(ring.open(&mut flipped), Err(Rejection::BadTag));
        let other_cluster = Keyring::new("d", &[key(1)]).unwrap();
        assert_eq!(
            other_cluster.open(&mut sealed.clone()),
            Err(Rejection::BadTag)
        );
        assert_eq!(ring.open(&mut [1, 2, 3]), Err(Rejection::Malformed));
    }

    #[test]
    fn signatures_verify_only_with_the_matching_key() {
        let (_, seed, public) = generate().unwrap();
        let signing = SigningKey::from_base64(&seed).unwrap();
        let verifying = VerifyingKey::from_base64(&public).unwrap();
        let signature = signing.sign(b"report");
        assert!(verifying.verify(b"report", &signature));
        assert!(!verifying.verify(b"forged", &signature));
        let (_, _, other) = generate().unwrap();
        assert!(
            !VerifyingKey::from_base64(&other)
                .unwrap()
                .verify(b"report", &signature)
        );
        assert!(SigningKey::from_base64("short").is_err());
    }
}
