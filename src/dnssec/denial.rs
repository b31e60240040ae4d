//! Authenticated denial by compact answers (RFC 9824, "compact denial of existence", the "black
//! lies" of online signers): the proof that a name has no records of the asked type is one NSEC
//! record owned by the asked name itself, whose next name is the name's immediate successor
//! (`\000.<name>`), so it covers no other name and nothing about the zone can be walked. A
//! name that does not exist gets the same shape of answer, its type bitmap holding only RRSIG,
//! NSEC and NXNAME: the rcode is NOERROR, or NXDOMAIN to a resolver that set the Compact
//! Answers OK flag (RFC 9824 §3.5).

use hickory_proto::dnssec::rdata::{DNSSECRData, NSEC};
use hickory_proto::rr::{Name, RData, Record, RecordType};

/// NXNAME (RFC 9824 §3.3): the meta-type that marks the name as not existing.
pub const NXNAME: RecordType = RecordType::Unknown(128);

/// The Compact Answers OK flag of the EDNS header (RFC 9824 §3.4), in hickory's `z` bits.
pub const COMPACT_OK: u16 = 0x4000;

/// The NSEC record that says `name` (lowercase) has only the RRsets of `present` (without
/// RRSIG and NSEC, added here), or does not exist when `present` is `None`; `ttl` is the
/// negative TTL (RFC 9077: min(SOA TTL, SOA MINIMUM)).
pub fn nsec(name: &Name, present: Option<&[RecordType]>, ttl: u32) -> Record {
    let types: Vec<RecordType> = match present {
        Some(present) => present
            .iter()
            .copied()
            .chain([RecordType::RRSIG, RecordType::NSEC])
            .collect(),
        None => vec![RecordType::RRSIG, RecordType::NSEC, NXNAME],
    };
    Record::from_rdata(
        name.clone(),
        ttl,
        RData::DNSSEC(DNSSECRData::NSEC(NSEC::new(successor(name), types))),
    )
}

/// The name right after `name` in canonical order (RFC 4034 §6.1): `\000.<name>`, or where
/// that is too long, `name` itself (a NODATA proof only needs the owner and the bitmap).
fn successor(name: &Name) -> Name {
    name.prepend_label(&[0u8][..])
        .unwrap_or_else(|_| name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_proof_covers_only_the_asked_name() {
        let name = Name::from_ascii("gone.gslb.example.com.").expect("name");
        let record = nsec(&name, None, 60);
        let RData::DNSSEC(DNSSECRData::NSEC(data)) = &record.data else {
            panic!("an NSEC record");
        };
        assert_eq!(
            data.next_domain_name().to_ascii(),
            "\\000.gone.gslb.example.com."
        );
        let types: Vec<RecordType> = data.type_bit_maps().collect();
        assert_eq!(types, [RecordType::RRSIG, RecordType::NSEC, NXNAME]);
        assert_eq!(record.ttl, 60);

        let record = nsec(&name, Some(&[RecordType::A]), 60);
        let RData::DNSSEC(DNSSECRData::NSEC(data)) = &record.data else {
            panic!("an NSEC record");
        };
        let types: Vec<RecordType> = data.type_bit_maps().collect();
        assert_eq!(types, [RecordType::A, RecordType::RRSIG, RecordType::NSEC]);
    }

    #[test]
    fn a_name_of_the_longest_length_is_its_own_successor() {
        let label = "a".repeat(63);
        let long = Name::from_ascii(format!("{label}.{label}.{label}.{}.", "b".repeat(61)))
            .expect("255 bytes");
        assert_eq!(successor(&long), long);
    }
}
