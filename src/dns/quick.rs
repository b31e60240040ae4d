//! The quick path: the query almost every resolver sends (one A or AAAA question, EDNS without
//! options or none) answered from its bytes, without hickory-proto parsing it: the name is
//! lowercased on the stack and looked up by its wire form
//! ([`NameKey`](crate::snapshot::NameKey)), the answer written by the direct encoder. It answers
//! a service's addresses or its CNAME (a target that is a host name), and the negative answers
//! to such questions (NXDOMAIN, NODATA), which a random-subdomain flood asks for. In a signed
//! zone, a query with DO gets the addresses' RRSIGs too (the signer's cache; a question not
//! written in lowercase is left to the general path, see `encode::encode_fast`); its CNAMEs and
//! negative answers, which carry a denial, are the general path's.
//!
//! It gives up (`None`) on anything else, and on any answer that is not a plain list of
//! addresses, a CNAME alone or a plain negative answer that fits, so
//! [`message::answer`](super::message::answer) takes the general path, which holds every rule.
//! Where it answers, its bytes and outcome are the general path's: a unit test compares both
//! over a corpus of queries and their mutations, and the `answer` fuzz target compares them on
//! every input.

use std::net::SocketAddr;

use hickory_proto::op::{Edns, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::RecordType;
use smallvec::SmallVec;

use super::answer::{Owner, Response, Served};
use super::encode;
use super::message::Outcome;
use super::rrl::AnswerKey;
use super::select::{self, Client, Picked};
use super::signed::Dnssec;
use crate::dnssec::Rdatas;
use crate::metrics::{qtype_index, rcode_index};
use crate::snapshot::{MAX_WIRE_NAME, Node, Snapshot};

/// The query's parts the quick path answers from.
struct Question<'p> {
    id: u16,
    recursion_desired: bool,
    checking_disabled: bool,
    /// The question section as sent (name, type, class).
    section: &'p [u8],
    /// The name's key: its wire form, lowercase.
    key: SmallVec<[u8; 128]>,
    qtype: RecordType,
    /// The requester's UDP size when it sent an OPT record.
    edns_payload: Option<u16>,
    /// The requester set DO (RFC 3225).
    dnssec_ok: bool,
}

/// Answers `packet` into `out` when it is the common query; `None` leaves `out` unspecified
/// and the query to the general path.
pub fn answer(
    snapshot: &Snapshot,
    packet: &[u8],
    src: SocketAddr,
    bucket: u64,
    out: &mut Vec<u8>,
) -> Option<Outcome> {
    let question = read(packet)?;
    // What the name is: a service (its addresses, or NODATA when it has none to give), a name
    // with no address records (NODATA), or none in the zone (NXDOMAIN). Nameserver names and
    // names outside the zone are the general path's.
    let (service, rcode) = match snapshot.node_of_key(&question.key) {
        Some(Node::Service(index)) => (Some(*index), ResponseCode::NoError),
        Some(Node::Apex | Node::EmptyNonTerminal) => (None, ResponseCode::NoError),
        Some(Node::Host(_)) => return None,
        None if in_zone(&question.key, &snapshot.zone.negative_wire.owner) => {
            (None, ResponseCode::NXDomain)
        }
        None => return None,
    };
    let mut addresses = Picked::new();
    let mut served = None;
    let mut owner = None;
    let mut answers = SmallVec::new();
    if let Some(index) = service {
        let service = snapshot.service(index);
        let chosen = select::select_into(
            service,
            question.qtype,
            &Client::from_source(src.ip()),
            &select::At::of(snapshot, bucket),
            &snapshot.geo,
            &mut addresses,
        );
        if let Some(position) = chosen.cname {
            answers.push(service.regions[position].cname.as_deref()?);
        }
        served = Some(Served {
            service: index,
            strategy: service.strategy().kind(),
            result: chosen.result,
        });
        owner = Some(Owner {
            name: service.name(),
            ttl: service.ttl(),
        });
    }
    let signer = snapshot
        .zone
        .signer
        .as_deref()
        .filter(|_| question.dnssec_ok);
    let negative = addresses.is_empty() && answers.is_empty();
    // A signed negative answer carries a denial, a signed CNAME its RRSIG: the general path's.
    if (negative || !answers.is_empty()) && signer.is_some() {
        return None;
    }
    let mut metadata = Metadata::new(question.id, MessageType::Response, OpCode::Query);
    metadata.authoritative = true;
    metadata.recursion_desired = question.recursion_desired;
    metadata.checking_disabled = question.checking_disabled;
    metadata.response_code = rcode;
    // A signed zone's answer to DO carries the addresses' RRSIGs (from the signer's cache).
    let mut dnssec = Dnssec::default();
    if let (Some(signer), Some(owner)) = (signer, owner) {
        let rdatas = Rdatas::of_addresses(&addresses);
        let now_s = crate::unix_ms() / 1000;
        let signatures = signer
            .sign(owner.name, question.qtype, owner.ttl, &rdatas, now_s)
            .ok()?;
        dnssec.answers.push(signatures);
    }
    let response = Response {
        metadata,
        edns: question.edns_payload.map(|theirs| {
            let mut ours = Edns::new();
            ours.set_max_payload(theirs.clamp(512, snapshot.max_udp_payload));
            ours.set_dnssec_ok(question.dnssec_ok);
            ours
        }),
        answers,
        addresses,
        owner,
        authorities: if negative {
            SmallVec::from_elem(&snapshot.zone.negative_soa, 1)
        } else {
            SmallVec::new()
        },
        negative: negative.then_some(&snapshot.zone.negative_wire),
        additionals: SmallVec::new(),
        served,
        nonexistent: rcode == ResponseCode::NXDomain,
        dnssec,
        verified_source: false,
    };
    if !encode::encode_fast(&response, question.section, out) {
        return None;
    }
    Some(Outcome::Answered {
        qtype: qtype_index(question.qtype),
        rcode: rcode_index(rcode),
        served,
        key: AnswerKey::of_key(rcode, Some((&question.key, question.qtype))),
    })
}

/// Whether the name whose lowercase wire form is `key` is the zone's apex, whose labels are
/// `apex` (without the root label), or below it.
fn in_zone(key: &[u8], apex: &[u8]) -> bool {
    let mut at = 0;
    while at < key.len() {
        if key[at..].strip_suffix(&[0]) == Some(apex) {
            return true;
        }
        at += 1 + usize::from(key[at]);
    }
    false
}

/// The query's parts, when `packet` is exactly a standard query (RFC 1035 §4.1) with one A or
/// AAAA question of class IN whose name has no compression pointer, and at most an OPT record
/// (RFC 6891 §6.1.2: root owner, version 0, no options) after it.
fn read(packet: &[u8]) -> Option<Question<'_>> {
    let header = packet.get(..12)?;
    // QR clear, opcode QUERY; the other bits of the first flags byte are ignored.
    if header[2] & 0xF8 != 0 {
        return None;
    }
    let count = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
    if count(4) != 1 || count(6) != 0 || count(8) != 0 || count(10) > 1 {
        return None;
    }
    let mut key = SmallVec::<[u8; 128]>::new();
    let mut at = 12;
    loop {
        let len = usize::from(*packet.get(at)?);
        if len & 0xC0 != 0 {
            return None;
        }
        let label = packet.get(at + 1..at + 1 + len)?;
        key.push(len as u8);
        key.extend(label.iter().map(u8::to_ascii_lowercase));
        if key.len() > MAX_WIRE_NAME {
            return None;
        }
        at += 1 + len;
        if len == 0 {
            break;
        }
    }
    let field = |at: usize| -> Option<u16> {
        let bytes = packet.get(at..at + 2)?;
        Some(u16::from_be_bytes([bytes[0], bytes[1]]))
    };
    let qtype = match field(at)? {
        1 => RecordType::A,
        28 => RecordType::AAAA,
        _ => return None,
    };
    if field(at + 2)? != 1 {
        return None;
    }
    let section = &packet[12..at + 4];
    at += 4;
    let mut dnssec_ok = false;
    let edns_payload = if count(10) == 1 {
        // Root owner, type OPT, the UDP size, extended RCODE and version 0, flags, no data.
        let opt = packet.get(at..at + 11)?;
        if opt[0] != 0 || opt[1..3] != [0, 41] || opt[6] != 0 || opt[9..11] != [0, 0] {
            return None;
        }
        at += 11;
        dnssec_ok = opt[7] & 0x80 != 0;
        Some(u16::from_be_bytes([opt[3], opt[4]]))
    } else {
        None
    };
    if at != packet.len() {
        return None;
    }
    Some(Question {
        id: count(0),
        recursion_desired: header[2] & 0x01 != 0,
        checking_disabled: header[3] & 0x10 != 0,
        section,
        key,
        qtype,
        edns_payload,
        dnssec_ok,
    })
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
    use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsOption};
    use hickory_proto::rr::{Name, RecordType};

    use super::*;
    use crate::dns::{Transport, message};
    use crate::fixtures;
    use crate::snapshot::Snapshot;

    const SERVICES: &str = r#"
        services = [
            { name = "rr.gslb.example.com", strategy = "round-robin",
              targets = { eu = ["192.0.2.1", "192.0.2.2", "2001:db8::1"], us = ["198.51.100.1"] } },
            { name = "fo.gslb.example.com", strategy = "failover", failover_order = ["us", "eu"],
              targets = { eu = ["192.0.2.7"], us = ["198.51.100.7", "2001:db8:1::7"] } },
            { name = "w.deep.gslb.example.com", strategy = "weighted", weights = { eu = 1, us = 3 },
              targets = { eu = ["192.0.2.9"], us = ["198.51.100.9"] } },
            { name = "geo.gslb.example.com", strategy = "geo",
              targets = { eu = ["192.0.2.10"], us = ["198.51.100.10"] } },
            { name = "cn.gslb.example.com", strategy = "failover", failover_order = ["eu", "us"],
              targets = { eu = "lb-eu.example.com", us = ["198.51.100.11"] } },
        ]
    "#;

    fn queries() -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        for qname in [
            "rr.gslb.example.com",
            "RR.Gslb.Example.COM.",
            "fo.gslb.example.com",
            "w.deep.gslb.example.com",
            "geo.gslb.example.com",
            "cn.gslb.example.com",
            "Cn.GSLB.example.com",
            "deep.gslb.example.com",
            "nope.gslb.example.com",
            "gslb.example.com",
            "ns-eu.gslb.example.com",
            "example.org",
        ] {
            for rtype in [RecordType::A, RecordType::AAAA, RecordType::TXT] {
                let sizes = [None, Some(300), Some(512), Some(1232), Some(4096)];
                for (edns, dnssec_ok) in sizes
                    .into_iter()
                    .flat_map(|size| [(size, false), (size, size.is_some())])
                {
                    for (rd, cd) in [(false, false), (true, false), (true, true)] {
                        let mut query = Message::new(0x1234, MessageType::Query, OpCode::Query);
                        query.metadata.recursion_desired = rd;
                        query.metadata.checking_disabled = cd;
                        query.add_query(Query::query(Name::from_ascii(qname).unwrap(), rtype));
                        if let Some(size) = edns {
                            let mut e = Edns::new();
                            e.set_max_payload(size);
                            e.set_dnssec_ok(dnssec_ok);
                            query.edns = Some(e);
                        }
                        out.push(query.to_vec().unwrap());
                    }
                }
                let mut query = Message::new(9, MessageType::Query, OpCode::Query);
                query.add_query(Query::query(Name::from_ascii(qname).unwrap(), rtype));
                let mut e = Edns::new();
                e.options_mut().insert(EdnsOption::Subnet(ClientSubnet::new(
                    "203.0.113.0".parse().unwrap(),
                    24,
                    0,
                )));
                query.edns = Some(e);
                out.push(query.to_vec().unwrap());
            }
        }
        out
    }

    /// `packet` answered by the general path alone (no quick path in front of it).
    fn general(snapshot: &Snapshot, packet: &[u8], src: SocketAddr) -> (Outcome, Vec<u8>) {
        let mut out = Vec::new();
        let outcome = message::answer_general(snapshot, packet, src, 7, Transport::Udp, &mut out);
        (outcome, out)
    }

    #[test]
    fn where_the_quick_path_answers_it_sends_the_general_paths_bytes() {
        let model = fixtures::config(SERVICES).model;
        let unsigned = Snapshot::from_model(&model, 1232);
        let signed = Snapshot::from_model(&fixtures::signed(model), 1232);
        for snapshot in [unsigned, signed] {
            let (signed_answers, cnames) = same_bytes_where_the_quick_path_answers(&snapshot);
            // Signed: A and AAAA with DO of the four services in lowercase, each EDNS size
            // that holds them.
            let want = if snapshot.zone.signer.is_some() {
                4 * 6
            } else {
                0
            };
            assert!(
                signed_answers >= want,
                "signed quick answers: {signed_answers}"
            );
            // The CNAME service's two spellings, A and AAAA, every query without options
            // (30 per name and type); signed, only those without DO (18).
            let want = if snapshot.zone.signer.is_some() {
                2 * 2 * 18
            } else {
                2 * 2 * 30
            };
            assert_eq!(cnames, want, "quick CNAME answers");
        }
    }

    /// Checks that the quick path's answers (of the corpus and its mutations) are the general
    /// path's; returns how many of the corpus's it answered with signatures, and with a CNAME.
    fn same_bytes_where_the_quick_path_answers(snapshot: &Snapshot) -> (usize, usize) {
        let src = SocketAddr::from(([198, 51, 100, 20], 5300));
        let mut quick_answers = 0;
        let mut signed_answers = 0;
        let mut cnames = 0;
        let mut compared = 0;
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        for packet in queries() {
            // The query as made, and mutations of it: bits flipped, bytes cut or added.
            let mut variants = vec![packet.clone()];
            for _ in 0..40 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let mut mutated = packet.clone();
                match state % 3 {
                    0 => {
                        let at = (state >> 8) as usize % mutated.len();
                        mutated[at] ^= 1 << ((state >> 32) % 8);
                    }
                    1 => mutated.truncate((state >> 8) as usize % mutated.len()),
                    _ => mutated.push((state >> 8) as u8),
                }
                variants.push(mutated);
            }
            for variant in variants {
                let mut out = Vec::new();
                let Some(outcome) = answer(snapshot, &variant, src, 7, &mut out) else {
                    continue;
                };
                let (general_outcome, general_out) = general(snapshot, &variant, src);
                assert_eq!(outcome, general_outcome, "{variant:02x?}");
                assert_eq!(out, general_out, "{variant:02x?}");
                compared += 1;
                if variant == packet {
                    quick_answers += 1;
                    let reply = Message::from_vec(&out).expect("parses");
                    let has = |rtype| reply.answers.iter().any(|r| r.record_type() == rtype);
                    signed_answers += usize::from(has(RecordType::RRSIG));
                    cnames += usize::from(has(RecordType::CNAME));
                }
            }
        }
        // A and AAAA of the four services (AAAA only where they have IPv6 targets), every
        // EDNS size and flag combination: the quick path takes the common queries.
        assert!(quick_answers >= 4 * 15, "quick answers: {quick_answers}");
        assert!(compared > quick_answers, "mutations answered: {compared}");
        (signed_answers, cnames)
    }

    #[test]
    fn the_quick_path_leaves_everything_else_to_the_general_path() {
        let snapshot = Snapshot::from_model(&fixtures::config(SERVICES).model, 1232);
        let src = SocketAddr::from(([198, 51, 100, 20], 5300));
        let mut out = Vec::new();
        let mut declined = |qname: &str, rtype: RecordType, edit: &dyn Fn(&mut Message)| {
            let mut query = Message::new(1, MessageType::Query, OpCode::Query);
            query.add_query(Query::query(Name::from_ascii(qname).unwrap(), rtype));
            edit(&mut query);
            answer(&snapshot, &query.to_vec().unwrap(), src, 7, &mut out).is_none()
        };
        // A nameserver's name, a name outside the zone, not A/AAAA, options, EDNS version 1,
        // another opcode.
        assert!(declined("ns-eu.gslb.example.com", RecordType::A, &|_| {}));
        assert!(declined("example.org", RecordType::A, &|_| {}));
        assert!(declined("agslb.example.com", RecordType::A, &|_| {}));
        assert!(declined("rr.gslb.example.com", RecordType::ANY, &|_| {}));
        assert!(declined("nope.gslb.example.com", RecordType::TXT, &|_| {}));
        assert!(declined("rr.gslb.example.com", RecordType::A, &|m| {
            let mut e = Edns::new();
            e.set_version(1);
            m.edns = Some(e);
        }));
        assert!(declined("rr.gslb.example.com", RecordType::A, &|m| {
            m.metadata.op_code = OpCode::Notify;
        }));
        assert!(!declined("rr.gslb.example.com", RecordType::A, &|_| {}));
        // A CNAME, to A and AAAA alike.
        assert!(!declined("cn.gslb.example.com", RecordType::A, &|_| {}));
        assert!(!declined("cn.gslb.example.com", RecordType::AAAA, &|_| {}));
        // Negative answers to A/AAAA: NXDOMAIN, and NODATA at the apex, an empty non-terminal
        // and a service without an IPv6 target.
        for (qname, rtype) in [
            ("nope.gslb.example.com", RecordType::A),
            ("x.y.GSLB.example.com", RecordType::AAAA),
            ("gslb.example.com", RecordType::A),
            ("deep.gslb.example.com", RecordType::AAAA),
            ("w.deep.gslb.example.com", RecordType::AAAA),
        ] {
            assert!(!declined(qname, rtype, &|_| {}), "{qname} {rtype}");
        }
    }

    #[test]
    fn a_name_is_in_the_zone_at_a_label_boundary_only() {
        let apex = b"\x04gslb\x07example\x03com";
        assert!(in_zone(b"\x04gslb\x07example\x03com\x00", apex));
        assert!(in_zone(b"\x01a\x04gslb\x07example\x03com\x00", apex));
        assert!(!in_zone(b"\x05agslb\x07example\x03com\x00", apex));
        assert!(!in_zone(b"\x07example\x03com\x00", apex));
        assert!(!in_zone(b"\x00", apex));
    }
}
