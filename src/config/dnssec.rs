//! `[zone.dnssec]`: the keys the zone is signed with and how long signatures live. Validation
//! reads the key files, so a missing or mismatched key is named with its field by
//! `check-config`, not found at the first signed answer.

use std::path::PathBuf;
use std::sync::Arc;

use hickory_proto::rr::Name;
use serde::Deserialize;

use super::MAX_TTL;
use super::problems::Problems;
use crate::dnssec::{Policy, Signer, ZoneKey};

/// `[zone.dnssec]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDnssec {
    /// Keys that sign (BIND key files: the base name `K<zone>.+013+<tag>`, or either file).
    keys: Vec<PathBuf>,
    /// Keys published in the DNSKEY set without signing (a rollover's next or last key).
    #[serde(default)]
    published: Vec<PathBuf>,
    #[serde(default = "default_dnskey_ttl")]
    dnskey_ttl: u32,
    /// A signature is valid this long after its window starts.
    #[serde(default = "default_lifetime_hours")]
    signature_lifetime_hours: u64,
    /// Signatures are made again after this long (a window).
    #[serde(default = "default_refresh_hours")]
    signature_refresh_hours: u64,
}

fn default_dnskey_ttl() -> u32 {
    3600
}
fn default_lifetime_hours() -> u64 {
    14 * 24
}
fn default_refresh_hours() -> u64 {
    24
}

impl RawDnssec {
    /// The zone's signer, its key files read; `None` with problems added when unusable.
    pub(super) fn validate(&self, origin: &Name, problems: &mut Problems) -> Option<Arc<Signer>> {
        let mut read = |field: &str, paths: &[PathBuf]| -> Vec<ZoneKey> {
            paths
                .iter()
                .enumerate()
                .filter_map(|(i, path)| {
                    ZoneKey::read(path, origin)
                        .inspect_err(|error| {
                            problems.add(format!("zone.dnssec.{field}[{i}]"), error.to_string())
                        })
                        .ok()
                })
                .collect()
        };
        let signing = read("keys", &self.keys);
        let published = read("published", &self.published);
        if self.dnskey_ttl > MAX_TTL {
            problems.add("zone.dnssec.dnskey_ttl", "must be below 2^31");
        }
        let (lifetime, refresh) = (self.signature_lifetime_hours, self.signature_refresh_hours);
        if !(1..=24 * 31).contains(&refresh) {
            problems.add(
                "zone.dnssec.signature_refresh_hours",
                "must be between 1 and 744 (31 days)",
            );
        }
        if lifetime < refresh.saturating_mul(2) || lifetime > 24 * 366 {
            problems.add(
                "zone.dnssec.signature_lifetime_hours",
                "must be at least twice signature_refresh_hours and at most 8784 (366 days)",
            );
        }
        if self.keys.is_empty() {
            problems.add("zone.dnssec.keys", "at least one signing key is needed");
            return None;
        }
        if signing.len() != self.keys.len() || published.len() != self.published.len() {
            return None;
        }
        let policy = Policy {
            lifetime_s: lifetime.saturating_mul(3600),
            refresh_s: refresh.saturating_mul(3600),
            dnskey_ttl: self.dnskey_ttl,
        };
        Signer::new(origin, signing, published, policy)
            .inspect_err(|reason| problems.add("zone.dnssec", reason.clone()))
            .ok()
            .map(Arc::new)
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture::Fixture;

    /// `[zone.dnssec]` with the repository's test key and `keys` more.
    fn dnssec(keys: &str) -> Fixture {
        Fixture::new().table(&format!(
            "[zone.dnssec]\nkeys = [\"config/dnssec/Kgslb.example.com.+013+60818\"]\n{keys}"
        ))
    }

    #[test]
    fn signature_times_out_of_range_are_refused_not_overflowed() {
        dnssec("signature_refresh_hours = 18446744073709551615").assert_refused(
            "zone.dnssec.signature_refresh_hours",
            "must be between 1 and 744",
        );
        dnssec("signature_lifetime_hours = 18446744073709551615")
            .assert_refused("zone.dnssec.signature_lifetime_hours", "at most 8784");
        dnssec("signature_lifetime_hours = 30").assert_refused(
            "zone.dnssec.signature_lifetime_hours",
            "at least twice signature_refresh_hours",
        );
        assert!(dnssec("").config().model.zone.signer.is_some());
    }
}
