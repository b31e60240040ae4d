//! The zone's fixed records and the address records of one owner, built once per snapshot:
//! SOA (and its negative-answer copy), apex NS, glue, and per-owner A/AAAA lists with the
//! owner's wire-format name for the UDP fast encoder.

use std::net::IpAddr;

use hickory_proto::rr::rdata::{A, AAAA, NS, SOA};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType};

use crate::model::{RegionDef, Zone};

/// A and AAAA records of one owner.
#[derive(Clone, Debug, Default)]
pub struct Addresses {
    pub a: Vec<Record>,
    pub aaaa: Vec<Record>,
    /// The owner name in wire format (lowercase, uncompressed), for the UDP fast encoder.
    pub owner_wire: Box<[u8]>,
}

/// `name` in DNS wire format (RFC 1035 §3.1), uncompressed.
pub fn wire_name(name: &Name) -> Box<[u8]> {
    let mut out = Vec::with_capacity(name.len() + 2);
    for label in name.iter() {
        out.push(label.len() as u8);
        out.extend_from_slice(label);
    }
    out.push(0);
    out.into_boxed_slice()
}

impl Addresses {
    pub(super) fn new(owner: &Name, ttl: u32, addresses: &[IpAddr]) -> Self {
        let mut out = Self {
            owner_wire: wire_name(owner),
            ..Self::default()
        };
        for addr in addresses {
            match addr {
                IpAddr::V4(v4) => {
                    out.a
                        .push(Record::from_rdata(owner.clone(), ttl, RData::A(A(*v4))))
                }
                IpAddr::V6(v6) => out.aaaa.push(Record::from_rdata(
                    owner.clone(),
                    ttl,
                    RData::AAAA(AAAA(*v6)),
                )),
            }
        }
        out
    }

    /// Every address, A records first.
    pub fn ips(&self) -> Vec<IpAddr> {
        self.a
            .iter()
            .chain(&self.aaaa)
            .filter_map(|r| match &r.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                _ => None,
            })
            .collect()
    }

    /// How many addresses.
    pub fn len(&self) -> usize {
        self.a.len() + self.aaaa.len()
    }

    /// Whether there is no address.
    pub fn is_empty(&self) -> bool {
        self.a.is_empty() && self.aaaa.is_empty()
    }

    /// The records of one type (A or AAAA; empty for anything else).
    pub fn of(&self, rtype: RecordType) -> &[Record] {
        match rtype {
            RecordType::A => &self.a,
            RecordType::AAAA => &self.aaaa,
            _ => &[],
        }
    }
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
    pub ns: Vec<Record>,
    /// Addresses of in-zone nameservers, for the additional section of NS answers.
    pub glue: Vec<Record>,
}

impl ZoneRecords {
    /// The records of `zone` served by `regions`' nameservers; also returns the in-zone
    /// nameserver names with their glue, which are nodes of the zone.
    pub fn build(zone: &Zone, regions: &[RegionDef]) -> (Self, Vec<(Name, Addresses)>) {
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
                let addresses = Addresses::new(nameserver, zone.ns_ttl, &region.glue);
                glue.extend(addresses.a.iter().cloned());
                glue.extend(addresses.aaaa.iter().cloned());
                hosts.push((nameserver.clone(), addresses));
            }
        }
        let records = Self {
            origin: LowerName::new(&origin),
            soa,
            negative_soa,
            ns,
            glue,
        };
        (records, hosts)
    }
}
