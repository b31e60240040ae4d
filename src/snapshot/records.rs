//! The zone's fixed records and the addresses of one owner, built once per snapshot: SOA (and
//! its negative-answer copy), apex NS, glue, the DNSKEY set of a signed zone, and per-target address lists, kept as addresses
//! (not records) with their owner's name and TTL.

use std::net::IpAddr;
use std::sync::Arc;

use hickory_proto::rr::rdata::{A, AAAA, CNAME, NS, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record};

use crate::dnssec::Signer;
use crate::model::{Addresses, RegionDef, Zone};

/// An in-zone nameserver: its name, fixed addresses (the glue) and their TTL.
#[derive(Clone, Debug)]
pub struct Host {
    pub name: Name,
    pub ttl: u32,
    pub addresses: Addresses,
}

/// The A or AAAA record of `address` under `owner`.
pub fn address_record(owner: &Name, ttl: u32, address: IpAddr) -> Record {
    let data = match address {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(owner.clone(), ttl, data)
}

/// The CNAME record of `owner` to `target`, a target that is a host name.
pub fn cname_record(owner: &Name, ttl: u32, target: &Name) -> Record {
    Record::from_rdata(owner.clone(), ttl, RData::CNAME(CNAME(target.clone())))
}

/// The negative answers' SOA as the direct encoder writes it: its names as wire labels (without
/// the root label, as name compression compares them) and its numbers.
#[derive(Clone, Debug)]
pub struct NegativeSoa {
    /// The zone apex.
    pub owner: Vec<u8>,
    pub mname: Vec<u8>,
    pub rname: Vec<u8>,
    pub ttl: u32,
    /// Serial, refresh, retry, expire, minimum (RFC 1035 §3.3.13).
    pub numbers: [u32; 5],
}

/// `name`'s labels in wire form (length-prefixed, letter case kept), without the root label.
fn labels(name: &Name) -> Vec<u8> {
    let mut wire = Vec::with_capacity(name.len());
    for label in name.iter() {
        wire.push(label.len() as u8);
        wire.extend_from_slice(label);
    }
    wire
}

/// The zone's fixed records.
#[derive(Clone, Debug)]
pub struct ZoneRecords {
    pub origin: LowerName,
    /// SOA as answered at the apex.
    pub soa: Record,
    /// SOA for the authority section of negative answers: its TTL is
    /// min(SOA TTL, SOA MINIMUM) (RFC 2308 §3 and §5).
    pub negative_soa: Record,
    /// The same, in the parts the direct encoder writes (`dns::encode`).
    pub negative_wire: NegativeSoa,
    pub ns: Vec<Record>,
    /// Addresses of in-zone nameservers, for the additional section of NS answers.
    pub glue: Vec<Record>,
    /// The zone's signer, when it is signed (`[zone.dnssec]`).
    pub signer: Option<Arc<Signer>>,
    /// The DNSKEY set at the apex (empty when unsigned).
    pub dnskeys: Vec<Record>,
}

impl ZoneRecords {
    /// The records of `zone` served by `regions`' nameservers; also returns the in-zone
    /// nameserver names with their glue, which are nodes of the zone.
    pub fn build(zone: &Zone, regions: &[RegionDef]) -> (Self, Vec<Host>) {
        let origin = zone.origin.clone();
        let soa_rdata = SOA::new(
            zone.soa.mname.clone(),
            zone.soa.rname.clone(),
            zone.soa.serial,
            zone.soa.refresh as i32,
            zone.soa.retry as i32,
            zone.soa.expire as i32,
            zone.soa.minimum,
        );
        let soa = Record::from_rdata(origin.clone(), zone.soa.ttl, RData::SOA(soa_rdata.clone()));
        let negative_soa = Record::from_rdata(
            origin.clone(),
            zone.soa.ttl.min(zone.soa.minimum),
            RData::SOA(soa_rdata),
        );
        let mut ns = Vec::new();
        let mut glue = Vec::new();
        let mut hosts = Vec::new();
        for (nameserver, region) in regions
            .iter()
            .filter_map(|r| Some((r.nameserver.as_ref()?, r)))
        {
            ns.push(Record::from_rdata(
                origin.clone(),
                zone.ns_ttl,
                RData::NS(NS(nameserver.clone())),
            ));
            if origin.zone_of(nameserver) {
                let host = Host {
                    name: nameserver.clone(),
                    ttl: zone.ns_ttl,
                    addresses: Addresses::new(&region.glue),
                };
                glue.extend(
                    host.addresses
                        .ips()
                        .iter()
                        .map(|&a| address_record(nameserver, zone.ns_ttl, a)),
                );
                hosts.push(host);
            }
        }
        let negative_wire = NegativeSoa {
            owner: labels(&origin),
            mname: labels(&zone.soa.mname),
            rname: labels(&zone.soa.rname),
            ttl: negative_soa.ttl,
            numbers: [
                zone.soa.serial,
                zone.soa.refresh,
                zone.soa.retry,
                zone.soa.expire,
                zone.soa.minimum,
            ],
        };
        let records = Self {
            origin: LowerName::new(&origin),
            soa,
            negative_soa,
            negative_wire,
            ns,
            glue,
            signer: zone.signer.clone(),
            dnskeys: zone
                .signer
                .as_ref()
                .map(|signer| signer.dnskey_records())
                .unwrap_or_default(),
        };
        (records, hosts)
    }
}
