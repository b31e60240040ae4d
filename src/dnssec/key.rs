//! Zone keys in BIND's key-file format (what `dnssec-keygen` and `gslbd keygen --dnssec` write):
//! `K<zone>.+<algorithm>+<tag>.key` holds the DNSKEY record, `K<zone>.+<algorithm>+<tag>.private`
//! the private key (`Private-key-format: v1.3`). Algorithms 13 (ECDSA P-256 with SHA-256, the
//! default), 14 (ECDSA P-384) and 15 (Ed25519) are read; the other two are generated.

use std::fmt;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hickory_proto::dnssec::crypto::{EcdsaSigningKey, Ed25519SigningKey};
use hickory_proto::dnssec::rdata::DNSKEY;
use hickory_proto::dnssec::{Algorithm, PublicKeyBuf, SigningKey};
use hickory_proto::rr::Name;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair,
};

/// DNSKEY flags: zone key (RFC 4034 §2.1.1).
const ZONE_KEY: u16 = 0x0100;
/// DNSKEY flags: secure entry point, the key the parent's DS names (RFC 4034 §2.1.1).
const SEP: u16 = 0x0001;

/// What a key is for: a combined signing key (SEP flag, signs everything), a key-signing key
/// (SEP flag, signs the DNSKEY set) or a zone-signing key (no SEP flag, signs the rest).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Role {
    Csk,
    Ksk,
    Zsk,
}

/// Why a key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
    #[error("cannot generate a key: {0}")]
    Generate(String),
}

/// One zone key: its DNSKEY record data, key tag and what signs with it.
pub struct ZoneKey {
    pub dnskey: DNSKEY,
    pub tag: u16,
    algorithm: Algorithm,
    /// Where it was read from (the `.key` file without its extension), for messages.
    pub source: String,
    signing: Box<dyn SigningKey>,
}

impl fmt::Debug for ZoneKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ZoneKey")
            .field("tag", &self.tag)
            .field("algorithm", &self.algorithm)
            .field("flags", &self.dnskey.flags())
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl ZoneKey {
    /// Whether the key has the SEP flag (a KSK or CSK: the DS at the parent names it).
    pub fn is_sep(&self) -> bool {
        self.dnskey.flags() & SEP != 0
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The signature of `data` (an RRSIG's signed data, RFC 4034 §3.1.8.1).
    pub fn sign(&self, data: &[u8]) -> Result<Vec<u8>, String> {
        self.signing
            .sign(&data.into())
            .map_err(|error| error.to_string())
    }

    /// Reads the key pair at `path`: the base name (`K<zone>.+013+<tag>`) or either file of
    /// it. The DNSKEY's owner must be `origin`, and the private key must match the public one.
    pub fn read(path: &Path, origin: &Name) -> Result<Self, KeyError> {
        let base = base_name(path);
        let key_path = with_extension(&base, "key");
        let private_path = with_extension(&base, "private");
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| KeyError::Read {
                path: path.display().to_string(),
                source,
            })
        };
        let invalid = |path: &Path, reason: String| KeyError::Invalid {
            path: path.display().to_string(),
            reason,
        };
        let (owner, flags, algorithm, public) =
            parse_public(&read(&key_path)?).map_err(|reason| invalid(&key_path, reason))?;
        if !owner.eq_case(origin) && owner.to_lowercase() != origin.to_lowercase() {
            return Err(invalid(
                &key_path,
                format!("the key is for {owner}, not for the zone {origin}"),
            ));
        }
        let (private_algorithm, private) = parse_private(&read(&private_path)?)
            .map_err(|reason| invalid(&private_path, reason))?;
        if private_algorithm != algorithm {
            return Err(invalid(
                &private_path,
                format!("algorithm {private_algorithm} does not match the .key file's {algorithm}"),
            ));
        }
        let signing = signing_key(algorithm, &private, &public)
            .map_err(|reason| invalid(&private_path, reason))?;
        let dnskey = DNSKEY::with_flags(flags, PublicKeyBuf::new(public, algorithm));
        let tag = dnskey
            .calculate_key_tag()
            .map_err(|error| invalid(&key_path, error.to_string()))?;
        Ok(Self {
            dnskey,
            tag,
            algorithm,
            source: base.display().to_string(),
            signing,
        })
    }
}

/// `path` without a `.key` or `.private` extension.
fn base_name(path: &Path) -> PathBuf {
    match path.extension().and_then(|e| e.to_str()) {
        Some("key" | "private") => path.with_extension(""),
        _ => path.to_path_buf(),
    }
}

/// `base` + `.extension`, keeping the dots inside the base name (`K<zone>.+013+<tag>`).
fn with_extension(base: &Path, extension: &str) -> PathBuf {
    let mut name = base.as_os_str().to_owned();
    name.push(".");
    name.push(extension);
    PathBuf::from(name)
}

/// The DNSKEY record of a `.key` file: owner, flags, algorithm and public key.
fn parse_public(text: &str) -> Result<(Name, u16, Algorithm, Vec<u8>), String> {
    let tokens: Vec<&str> = text
        .lines()
        .map(|line| line.split(';').next().unwrap_or(""))
        .flat_map(str::split_whitespace)
        .filter(|token| *token != "(" && *token != ")")
        .collect();
    let at = tokens
        .iter()
        .position(|t| t.eq_ignore_ascii_case("DNSKEY"))
        .ok_or("no DNSKEY record")?;
    let owner = tokens.first().filter(|_| at > 0).ok_or("no owner name")?;
    let owner = Name::from_ascii(owner).map_err(|e| format!("owner {owner}: {e}"))?;
    let field = |i: usize, what: &str| -> Result<&str, String> {
        tokens
            .get(at + i)
            .copied()
            .ok_or_else(|| format!("no {what}"))
    };
    let flags: u16 = field(1, "flags")?
        .parse()
        .map_err(|_| "flags: not a number".to_string())?;
    if flags & ZONE_KEY == 0 {
        return Err(format!("flags {flags}: not a zone key (256 or 257)"));
    }
    if field(2, "protocol")? != "3" {
        return Err("protocol must be 3".into());
    }
    let algorithm = algorithm(field(3, "algorithm")?)?;
    let public = BASE64
        .decode(tokens.get(at + 4..).unwrap_or_default().concat())
        .map_err(|e| format!("public key: {e}"))?;
    Ok((owner, flags, algorithm, public))
}

/// The algorithm and private key of a `.private` file.
fn parse_private(text: &str) -> Result<(Algorithm, Vec<u8>), String> {
    let field = |name: &str| {
        text.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key.trim() == name).then(|| value.trim())
        })
    };
    let format = field("Private-key-format").ok_or("no Private-key-format line")?;
    if !format.starts_with("v1.") {
        return Err(format!("Private-key-format {format}: v1.x expected"));
    }
    let algorithm = algorithm(
        field("Algorithm")
            .ok_or("no Algorithm line")?
            .split_whitespace()
            .next()
            .unwrap_or_default(),
    )?;
    let private = BASE64
        .decode(field("PrivateKey").ok_or("no PrivateKey line")?)
        .map_err(|e| format!("PrivateKey: {e}"))?;
    Ok((algorithm, private))
}

/// A supported algorithm by its number.
fn algorithm(text: &str) -> Result<Algorithm, String> {
    match text.parse::<u8>() {
        Ok(13) => Ok(Algorithm::ECDSAP256SHA256),
        Ok(14) => Ok(Algorithm::ECDSAP384SHA384),
        Ok(15) => Ok(Algorithm::ED25519),
        Ok(other) => Err(format!(
            "algorithm {other} is not supported (13 ECDSAP256SHA256, 14 ECDSAP384SHA384, 15 ED25519)"
        )),
        Err(_) => Err(format!("algorithm {text:?}: not a number")),
    }
}

/// The signing key of `private` (the key file's bytes: an ECDSA scalar or an Ed25519 seed),
/// checked against `public` (the DNSKEY's key: the curve point without its 0x04 prefix, or the
/// Ed25519 key).
fn signing_key(
    algorithm: Algorithm,
    private: &[u8],
    public: &[u8],
) -> Result<Box<dyn SigningKey>, String> {
    let rng = SystemRandom::new();
    let mismatch = |_| "the private key does not match the public key".to_string();
    match algorithm {
        Algorithm::ECDSAP256SHA256 | Algorithm::ECDSAP384SHA384 => {
            let curve = if algorithm == Algorithm::ECDSAP256SHA256 {
                &ECDSA_P256_SHA256_FIXED_SIGNING
            } else {
                &ECDSA_P384_SHA384_FIXED_SIGNING
            };
            let mut point = Vec::with_capacity(public.len() + 1);
            point.push(0x04);
            point.extend_from_slice(public);
            let pair = EcdsaKeyPair::from_private_key_and_public_key(curve, private, &point, &rng)
                .map_err(mismatch)?;
            Ok(Box::new(EcdsaSigningKey::from_ecdsa(pair, algorithm)))
        }
        Algorithm::ED25519 => {
            let pair =
                Ed25519KeyPair::from_seed_and_public_key(private, public).map_err(mismatch)?;
            Ok(Box::new(Ed25519SigningKey::from_ed25519(pair)))
        }
        other => Err(format!("algorithm {other} is not supported")),
    }
}

/// A new key pair in BIND's format: the base name (`K<zone>.+<alg>+<tag>`) and the two files'
/// texts (`.key`, `.private`), created at `now` (Unix seconds).
pub struct Generated {
    pub base_name: String,
    pub key_file: String,
    pub private_file: String,
}

/// Generates a key for `origin` with `algorithm` (13 or 15) in `role`.
pub fn generate(
    origin: &Name,
    algorithm: Algorithm,
    role: Role,
    now: u64,
) -> Result<Generated, KeyError> {
    let failed = |what: &str| KeyError::Generate(what.to_string());
    let rng = SystemRandom::new();
    let (private, public) = match algorithm {
        Algorithm::ECDSAP256SHA256 => {
            let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| failed("ECDSA P-256 key generation failed"))?;
            let pair =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .map_err(|_| failed("ring rejected its own key"))?;
            let private = ecdsa_scalar(pkcs8.as_ref(), 32)
                .ok_or_else(|| failed("no private key in ring's PKCS#8 document"))?;
            (private.to_vec(), pair.public_key().as_ref()[1..].to_vec())
        }
        Algorithm::ED25519 => {
            let mut seed = [0u8; 32];
            rng.fill(&mut seed)
                .map_err(|_| failed("no random bytes from the system"))?;
            let pair = Ed25519KeyPair::from_seed_unchecked(&seed)
                .map_err(|_| failed("ring rejected the seed"))?;
            (seed.to_vec(), pair.public_key().as_ref().to_vec())
        }
        other => return Err(failed(&format!("algorithm {other} cannot be generated"))),
    };
    let flags = ZONE_KEY | if role == Role::Zsk { 0 } else { SEP };
    let dnskey = DNSKEY::with_flags(flags, PublicKeyBuf::new(public.clone(), algorithm));
    let tag = dnskey
        .calculate_key_tag()
        .map_err(|e| failed(&e.to_string()))?;
    let number = u8::from(algorithm);
    let zone = origin.to_lowercase().to_string();
    let created = timestamp(now);
    let what = match role {
        Role::Csk => "combined signing key",
        Role::Ksk => "key-signing key",
        Role::Zsk => "zone-signing key",
    };
    let mnemonic = match algorithm {
        Algorithm::ED25519 => "ED25519",
        _ => "ECDSAP256SHA256",
    };
    Ok(Generated {
        base_name: format!("K{zone}+{number:03}+{tag:05}"),
        key_file: format!(
            "; This is a {what}, keyid {tag}, for {zone}\n; Created: {created}\n\
             {zone} IN DNSKEY {flags} 3 {number} {}\n",
            BASE64.encode(&public)
        ),
        private_file: format!(
            "Private-key-format: v1.3\nAlgorithm: {number} ({mnemonic})\nPrivateKey: {}\n\
             Created: {created}\nPublish: {created}\nActivate: {created}\n",
            BASE64.encode(&private)
        ),
    })
}

/// The private scalar of an ECDSA key in ring's PKCS#8 document: the OCTET STRING of `len`
/// bytes after the ECPrivateKey's version 1 (RFC 5915 §3).
fn ecdsa_scalar(pkcs8: &[u8], len: u8) -> Option<&[u8]> {
    let marker = [0x02, 0x01, 0x01, 0x04, len];
    let at = pkcs8.windows(marker.len()).position(|w| w == marker)? + marker.len();
    pkcs8.get(at..at + usize::from(len))
}

/// `YYYYMMDDHHMMSS` in UTC, as BIND writes key timing metadata.
fn timestamp(unix: u64) -> String {
    let time = time::OffsetDateTime::from_unix_timestamp(unix as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}",
        time.year(),
        u8::from(time.month()),
        time.day(),
        time.hour(),
        time.minute(),
        time.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin() -> Name {
        Name::from_ascii("gslb.example.com.").expect("name")
    }

    fn written(generated: &Generated) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = dir.path().join(&generated.base_name);
        std::fs::write(with_extension(&base, "key"), &generated.key_file).expect("write");
        std::fs::write(with_extension(&base, "private"), &generated.private_file).expect("write");
        (dir, base)
    }

    #[test]
    fn generated_keys_read_back_with_their_tag_and_role() {
        for (algorithm, role) in [
            (Algorithm::ECDSAP256SHA256, Role::Csk),
            (Algorithm::ECDSAP256SHA256, Role::Zsk),
            (Algorithm::ED25519, Role::Ksk),
        ] {
            let generated = generate(&origin(), algorithm, role, 1_800_000_000).expect("key");
            let (_dir, base) = written(&generated);
            let key = ZoneKey::read(&with_extension(&base, "private"), &origin()).expect("reads");
            assert_eq!(key.algorithm(), algorithm);
            assert_eq!(key.is_sep(), role != Role::Zsk);
            assert!(generated.base_name.ends_with(&format!("+{:05}", key.tag)));
            assert!(generated.private_file.contains("Created: 20270115080000"));
            assert!(!key.sign(b"data").expect("signs").is_empty());
        }
    }

    /// Writes a key pair's two files under `dir`, returning the base name.
    fn write_pair(dir: &Path, base: &str, key: &str, private: &str) -> PathBuf {
        let base = dir.join(base);
        std::fs::write(with_extension(&base, "key"), key).expect("write");
        std::fs::write(with_extension(&base, "private"), private).expect("write");
        base
    }

    #[test]
    fn bind_key_pairs_are_read() {
        // Written by BIND 9.18's `dnssec-keygen -a ECDSAP256SHA256 -f KSK gslb.example.com`
        // and `dnssec-keygen -a ED25519 gslb.example.com` (the public key split in two, as
        // BIND writes it).
        let dir = tempfile::tempdir().expect("temp dir");
        let ksk = write_pair(
            dir.path(),
            "Kgslb.example.com.+013+54626",
            "; This is a key-signing key, keyid 54626, for gslb.example.com.\n\
             ; Created: 20261130092115 (Mon Nov 30 09:21:15 2026)\n\
             gslb.example.com. IN DNSKEY 257 3 13 U/UmJueelIwZtcVtjGpDbzHzqu6ewN9Lf+dy8nMhdVnp/DR1lj/S0s5R b6RArYFealhzQHbiPBEkMvI3CAW/Sw==\n",
            "Private-key-format: v1.3\nAlgorithm: 13 (ECDSAP256SHA256)\n\
             PrivateKey: oFWzTVmHaIo8oG60dtrAdXJyMvIiaaDdqReB0Nqdh3I=\n\
             Created: 20261130092115\nPublish: 20261130092115\nActivate: 20261130092115\n",
        );
        let key = ZoneKey::read(&ksk, &origin()).expect("reads");
        assert_eq!((key.tag, key.is_sep()), (54626, true));

        let zsk = write_pair(
            dir.path(),
            "Kgslb.example.com.+015+07351",
            "; This is a zone-signing key, keyid 7351, for gslb.example.com.\n\
             gslb.example.com. IN DNSKEY 256 3 15 SDs2C+rOtsa8VPNE9a+i5P5Ma0ocv7aIxgv1lKvQDE0=\n",
            "Private-key-format: v1.3\nAlgorithm: 15 (ED25519)\n\
             PrivateKey: 0vpnYTN/ELmhb7JszdBvLsZAlQB3ZDYBPgJDD/tsmSw=\n",
        );
        let key = ZoneKey::read(&with_extension(&zsk, "key"), &origin()).expect("reads");
        assert_eq!((key.tag, key.is_sep()), (7351, false));
        assert_eq!(key.algorithm(), Algorithm::ED25519);
    }

    #[test]
    fn a_key_for_another_zone_or_a_mismatched_pair_is_refused() {
        let generated = generate(&origin(), Algorithm::ECDSAP256SHA256, Role::Csk, 0).expect("key");
        let (_dir, base) = written(&generated);
        let other = Name::from_ascii("other.example.").expect("name");
        let error = ZoneKey::read(&base, &other)
            .expect_err("another zone")
            .to_string();
        assert!(error.contains("not for the zone other.example."), "{error}");

        let second = generate(&origin(), Algorithm::ECDSAP256SHA256, Role::Csk, 0).expect("key");
        std::fs::write(with_extension(&base, "private"), &second.private_file).expect("write");
        let error = ZoneKey::read(&base, &origin())
            .expect_err("mismatch")
            .to_string();
        assert!(error.contains("does not match the public key"), "{error}");

        std::fs::write(
            with_extension(&base, "private"),
            "Private-key-format: v1.3\nAlgorithm: 8 (RSASHA256)\nPrivateKey: AAAA\n",
        )
        .expect("write");
        let error = ZoneKey::read(&base, &origin())
            .expect_err("rsa")
            .to_string();
        assert!(error.contains("algorithm 8 is not supported"), "{error}");
    }
}
