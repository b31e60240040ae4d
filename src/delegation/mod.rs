//! Delegating the zone from its parent: the records the parent needs (`records`), printed in
//! zone-file format (`gslbd delegation print`), applied by RFC 2136 dynamic update signed with
//! TSIG (`update`; `apply` checks the command line's server, key and parent zone for
//! `gslbd delegation apply`), or published as an ExternalDNS `DNSEndpoint` (`external_dns`
//! builds the object, `dns_endpoint` applies it to the cluster).

pub mod apply;
pub mod dns_endpoint;
pub mod external_dns;
pub mod key;
pub mod update;

use std::collections::BTreeSet;
use std::net::IpAddr;

use hickory_proto::dnssec::rdata::{DNSSECRData, DS};
use hickory_proto::dnssec::{Algorithm, DigestType};
use hickory_proto::rr::rdata::{A, AAAA, NS};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::model::Model;

/// The delegation: the zone's NS set, one glue address record per address of each
/// nameserver inside the zone (out-of-zone nameservers need none), and for a signed zone the
/// DS set naming its keys (RFC 4034 §5; none for an unsigned zone: a stale DS left at the
/// parent would make every answer fail validation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Delegation {
    pub zone: Name,
    pub ttl: u32,
    /// (owner, type, data) sorted; owners lowercase and fully qualified.
    pub records: BTreeSet<Entry>,
}

/// One record of a delegation, comparable without its TTL.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Entry {
    Ns {
        owner: Name,
        target: Name,
    },
    Glue {
        owner: Name,
        address: IpAddr,
    },
    /// A DS record at the zone's name: key tag, algorithm, digest type and digest.
    Ds {
        owner: Name,
        key_tag: u16,
        algorithm: u8,
        digest_type: u8,
        digest: Vec<u8>,
    },
}

impl Entry {
    pub fn owner(&self) -> &Name {
        match self {
            Entry::Ns { owner, .. } | Entry::Glue { owner, .. } | Entry::Ds { owner, .. } => owner,
        }
    }

    /// As a record with `ttl`.
    pub fn record(&self, ttl: u32) -> Record {
        match self {
            Entry::Ns { owner, target } => {
                Record::from_rdata(owner.clone(), ttl, RData::NS(NS(target.clone())))
            }
            Entry::Glue {
                owner,
                address: IpAddr::V4(v4),
            } => Record::from_rdata(owner.clone(), ttl, RData::A(A(*v4))),
            Entry::Glue {
                owner,
                address: IpAddr::V6(v6),
            } => Record::from_rdata(owner.clone(), ttl, RData::AAAA(AAAA(*v6))),
            Entry::Ds {
                owner,
                key_tag,
                algorithm,
                digest_type,
                digest,
            } => Record::from_rdata(
                owner.clone(),
                ttl,
                RData::DNSSEC(DNSSECRData::DS(DS::new(
                    *key_tag,
                    Algorithm::from_u8(*algorithm),
                    DigestType::from(*digest_type),
                    digest.clone(),
                ))),
            ),
        }
    }

    /// The entry a record stands for, if it belongs to the delegation of `zone`: NS at the
    /// zone's name, A/AAAA at names inside it. Anything else is not ours to touch.
    pub fn of(record: &Record, zone: &Name) -> Option<Self> {
        let owner = record.name.to_lowercase();
        match &record.data {
            RData::NS(NS(target)) if owner == *zone => Some(Entry::Ns {
                owner,
                target: target.to_lowercase(),
            }),
            RData::A(A(v4)) if zone.zone_of(&owner) => Some(Entry::Glue {
                owner,
                address: IpAddr::V4(*v4),
            }),
            RData::AAAA(AAAA(v6)) if zone.zone_of(&owner) => Some(Entry::Glue {
                owner,
                address: IpAddr::V6(*v6),
            }),
            RData::DNSSEC(DNSSECRData::DS(ds)) if owner == *zone => Some(Entry::Ds {
                owner,
                key_tag: ds.key_tag(),
                algorithm: u8::from(ds.algorithm()),
                digest_type: u8::from(ds.digest_type()),
                digest: ds.digest().to_vec(),
            }),
            _ => None,
        }
    }

    pub fn record_type(&self) -> RecordType {
        match self {
            Entry::Ns { .. } => RecordType::NS,
            Entry::Glue {
                address: IpAddr::V4(_),
                ..
            } => RecordType::A,
            Entry::Glue { .. } => RecordType::AAAA,
            Entry::Ds { .. } => RecordType::DS,
        }
    }
}

impl Delegation {
    /// The delegation `model` needs.
    pub fn of(model: &Model) -> Self {
        let zone = model.zone.origin.to_lowercase();
        let mut records = BTreeSet::new();
        for region in &model.regions {
            let Some(nameserver) = &region.nameserver else {
                continue;
            };
            records.insert(Entry::Ns {
                owner: zone.clone(),
                target: nameserver.to_lowercase(),
            });
            if zone.zone_of(nameserver) {
                for address in &region.glue {
                    records.insert(Entry::Glue {
                        owner: nameserver.to_lowercase(),
                        address: *address,
                    });
                }
            }
        }
        let ds = model
            .zone
            .signer
            .as_ref()
            .map(|signer| signer.ds_records(model.zone.ns_ttl))
            .unwrap_or_default();
        records.extend(ds.iter().filter_map(|record| Entry::of(record, &zone)));
        Self {
            zone,
            ttl: model.zone.ns_ttl,
            records,
        }
    }

    /// The parent zone: the zone's name without its first label.
    pub fn default_parent(&self) -> Name {
        self.zone.base_name()
    }

    /// Zone-file text for the parent zone.
    pub fn zone_file(&self, parent: &Name) -> String {
        let mut out = format!(
            "; Delegation of {} to its gslbd nameservers: add to the parent zone {}\n",
            self.zone, parent
        );
        for entry in &self.records {
            let record = entry.record(self.ttl);
            out.push_str(&format!(
                "{}\t{}\tIN\t{}\t{}\n",
                record.name,
                record.ttl,
                record.record_type(),
                record.data
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn ns_set_and_glue_only_for_nameservers_inside_the_zone() {
        // Zone NS TTL: 3600 by default.
        let model = fixtures::config("").model;
        let delegation = Delegation::of(&model);
        let text = delegation.zone_file(&delegation.default_parent());
        assert_eq!(
            text,
            "; Delegation of gslb.example.com. to its gslbd nameservers: add to the parent zone example.com.\n\
             gslb.example.com.\t3600\tIN\tNS\tns-eu.gslb.example.com.\n\
             gslb.example.com.\t3600\tIN\tNS\tns.us.example.net.\n\
             ns-eu.gslb.example.com.\t3600\tIN\tA\t192.0.2.53\n\
             ns-eu.gslb.example.com.\t3600\tIN\tAAAA\t2001:db8::53\n"
        );
    }

    #[test]
    fn a_signed_zone_adds_the_ds_of_its_key() {
        // config/dnssec.toml's test key; the digest as BIND's `dnssec-dsfromkey -2` gives it.
        let config = crate::config::load(std::path::Path::new("config/dnssec.toml"))
            .expect("config/dnssec.toml loads (tests run in the crate's directory)");
        let text = Delegation::of(&config.model).zone_file(&fixtures::name("example.com."));
        assert!(
            text.ends_with(
                "gslb.example.com.\t3600\tIN\tDS\t60818 13 2 \
                 30371CD4F9CD28208AD05307421A5F9BEB011A22E77A2B5A487F0CDE32FCCBC4\n"
            ),
            "{text}"
        );
    }
}
