//! Turning a [`Response`] into wire bytes. Two encoders write the same bytes: the direct one for
//! the common answer (addresses of one owner) and hickory-proto's for everything else, both
//! compressing names against the question: the answer's owner is always the question's name, so
//! every address record's owner is a pointer to it (offset 12), as Knot and gdnsd write it.
//! hickory-server's own path (`handler`, UDP with the fast path off) writes the question as one
//! block and compresses nothing against it; its answers parse to the same records
//! (`tests/differential.rs`).

use hickory_proto::ProtoError;
use hickory_proto::op::{
    Header, HeaderCounts, MessageType, Metadata, OpCode, Query, ResponseCode, emit_message_parts,
};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder, Queries};

use hickory_proto::dnssec::rdata::{DNSSECRData, RRSIG};
use hickory_proto::rr::rdata::opt::EdnsOption;
use hickory_proto::rr::{Name, RData, Record};
use smallvec::SmallVec;

use super::answer::{Owner, Response};
use super::{Transport, signed};
use crate::snapshot::NegativeSoa;

/// Answers larger than this many records take hickory's encoder (it stops compressing names
/// after 120; we never come near that in 1232 bytes).
const FAST_MAX_ANSWERS: usize = 100;

/// The hickory-server message for `response` (its `handler` path), borrowing the request's
/// question section and `addresses`, the response's address answers as records
/// ([`Response::address_records`]).
pub fn message<'q>(
    response: &'q Response<'_>,
    queries: &'q Queries,
    addresses: &'q [Record],
) -> MessageResponse<
    'q,
    'q,
    impl Iterator<Item = &'q Record> + Send + 'q + use<'q>,
    impl Iterator<Item = &'q Record> + Send + 'q + use<'q>,
    impl Iterator<Item = &'q Record> + Send + 'q + use<'q>,
    impl Iterator<Item = &'q Record> + Send + 'q + use<'q>,
> {
    let mut builder = MessageResponseBuilder::new(queries, None);
    if let Some(edns) = &response.edns {
        builder.edns(edns);
    }
    let dnssec = &response.dnssec;
    builder.build(
        response.metadata,
        response
            .answers
            .iter()
            .copied()
            .chain(addresses)
            .chain(signed::records(&dnssec.answers)),
        response
            .authorities
            .iter()
            .copied()
            .chain(signed::records(&dnssec.authorities)),
        std::iter::empty(),
        response
            .additionals
            .iter()
            .copied()
            .chain(signed::records(&dnssec.additionals)),
    )
}

/// Encodes `response` for `transport` into `out` (cleared first). Over TCP the limit is the
/// 2-byte length prefix's (RFC 7766 §8). Over UDP, an answer that does not fit the requester's
/// size whole (512 bytes without EDNS, RFC 1035 §4.2.1; its EDNS size, RFC 6891 §6.2.5) goes out
/// as its minimal response, TC set ([`Response::truncated`]): hickory-proto 0.26.3 would cut it
/// after the last record that fits, leave the cut record's first bytes at the end, and drop the
/// OPT record RFC 6891 §7 requires. TCP carries the whole answer.
pub fn encode(response: &Response<'_>, queries: &Queries, transport: Transport, out: &mut Vec<u8>) {
    // The direct encoder keeps to the UDP size; what it declines, hickory's encoder writes.
    if encode_fast(response, queries.as_bytes(), out) {
        return;
    }
    let encoded = match transport {
        Transport::Udp => match encode_hickory_udp(response, queries, out) {
            Ok(false) => encode_hickory_udp(&response.truncated(), queries, out).map(|_| ()),
            other => other.map(|_| ()),
        },
        Transport::Tcp => encode_hickory(response, queries, u16::MAX, out).map(|_| ()),
    };
    if encoded.is_err() {
        servfail(response.metadata.id, out);
    }
}

/// What hickory-server sends when a message cannot be encoded: a bare SERVFAIL header for `id`,
/// into `out` (cleared first).
pub fn servfail(id: u16, out: &mut Vec<u8>) {
    out.clear();
    let mut encoder = BinEncoder::new(out);
    encoder.set_max_size(512);
    let mut metadata = Metadata::new(id, MessageType::Response, OpCode::Query);
    metadata.response_code = ResponseCode::ServFail;
    let header = Header {
        metadata,
        counts: HeaderCounts::default(),
    };
    if header.emit(&mut encoder).is_err() {
        out.clear();
    }
}

/// For hickory-server's UDP path, which encodes the message itself (without compressing against
/// the question): turns `response` into its minimal response when that encoding does not fit
/// whole, so that no record is ever cut.
pub fn fit_udp(response: &mut Response<'_>, queries: &Queries) {
    let max_size = response.edns.as_ref().map_or(512, |e| e.max_payload());
    if !matches!(
        encode_as_hickory_server(response, queries, max_size, &mut Vec::new()),
        Ok(true)
    ) {
        *response = response.truncated();
    }
}

/// hickory-server's encoding of `response` (the question as one block, nothing compressed
/// against it) within `max_size` bytes, into `out` (cleared first); `Ok(false)` when it had to
/// leave records out.
fn encode_as_hickory_server(
    response: &Response<'_>,
    queries: &Queries,
    max_size: u16,
    out: &mut Vec<u8>,
) -> Result<bool, ProtoError> {
    out.clear();
    let mut encoder = BinEncoder::new(out);
    encoder.set_max_size(max_size);
    let addresses = response.address_records(None);
    let sent = message(response, queries, &addresses).destructive_emit(&mut encoder)?;
    Ok(!sent.truncation || response.metadata.truncation)
}

/// hickory's encoding of `response` at the requester's UDP size, into `out` (cleared first);
/// `Ok(false)` when it had to leave records out.
fn encode_hickory_udp(
    response: &Response<'_>,
    queries: &Queries,
    out: &mut Vec<u8>,
) -> Result<bool, ProtoError> {
    let max_size = response.edns.as_ref().map_or(512, |e| e.max_payload());
    encode_hickory(response, queries, max_size, out)
}

/// hickory's encoding of `response` within `max_size` bytes, into `out` (cleared first);
/// `Ok(false)` when it had to leave records out.
fn encode_hickory(
    response: &Response<'_>,
    queries: &Queries,
    max_size: u16,
    out: &mut Vec<u8>,
) -> Result<bool, ProtoError> {
    // The question read back as a name (its case kept), so that its labels are compression
    // targets. Several questions (FORMERR) go out as hickory-server writes them.
    let Some(question) = read_question(queries) else {
        return encode_as_hickory_server(response, queries, max_size, out);
    };
    out.clear();
    let mut encoder = BinEncoder::new(out);
    encoder.set_max_size(max_size);
    let addresses = response.address_records(Some(question.name()));
    let dnssec = &response.dnssec;
    let sent = emit_message_parts(
        &response.metadata,
        &mut std::iter::once(&question),
        &mut response
            .answers
            .iter()
            .copied()
            .chain(&addresses)
            .chain(signed::records(&dnssec.answers)),
        &mut response
            .authorities
            .iter()
            .copied()
            .chain(signed::records(&dnssec.authorities)),
        &mut response
            .additionals
            .iter()
            .copied()
            .chain(signed::records(&dnssec.additionals)),
        response.edns.as_ref(),
        None,
        &mut encoder,
    )?;
    Ok(!sent.metadata.truncation || response.metadata.truncation)
}

/// The request's question, read again with its name's case, when it has exactly one (only
/// such requests get records; the FORMERR for several echoes them as sent). A name may point
/// into an earlier question (never into the header: such a request gets no answer,
/// `answer::respond`), so the section is read where it stood, after 12 bytes.
fn read_question(queries: &Queries) -> Option<Query> {
    if queries.len() != 1 {
        return None;
    }
    let mut message = SmallVec::<[u8; 300]>::from_elem(0, 12);
    message.extend_from_slice(queries.as_bytes());
    let mut decoder = BinDecoder::new(&message);
    decoder.read_slice(12).ok()?;
    let question = Query::read(&mut decoder).ok()?;
    decoder.is_empty().then_some(question)
}

/// Encodes the common answers directly: one question, and either A/AAAA records of the
/// question's name (with their RRSIGs), or a service's CNAME alone (unsigned), or none and the
/// negative answer's SOA in the authority section (NXDOMAIN or NODATA, unsigned); an OPT
/// record carrying at most an ECS option. The bytes are exactly hickory-proto's for the same
/// message as [`encode_hickory`] gives it: every address owner a pointer to the question's
/// name, the CNAME's and the SOA's names compressed as hickory compresses them ([`Names`]),
/// the OPT record last.
/// Returns false, leaving `out` unspecified, for anything else or anything that would not fit.
pub(super) fn encode_fast(response: &Response<'_>, question: &[u8], out: &mut Vec<u8>) -> bool {
    if !response.additionals.is_empty()
        || !response.dnssec.authorities.is_empty()
        || !response.dnssec.additionals.is_empty()
    {
        return false;
    }
    let negative = response
        .negative
        .filter(|_| response.authorities.len() == 1 && response.dnssec.answers.is_empty());
    let alone = response.addresses.is_empty()
        && response.authorities.is_empty()
        && response.dnssec.is_empty();
    let written = match (response.answers.as_slice(), response.owner, negative) {
        (&[cname], _, _) if alone => write_cname(response, cname, question, out),
        (&[], Some(owner), _)
            if !response.addresses.is_empty() && response.authorities.is_empty() =>
        {
            write_addresses(response, owner, question, out)
        }
        (&[], _, Some(soa)) if response.addresses.is_empty() => {
            write_negative(response, soa, question, out)
        }
        _ => false,
    };
    let max_size = response.edns.as_ref().map_or(512, |e| e.max_payload());
    written && write_opt(response, out) && out.len() <= usize::from(max_size)
}

/// The header (RFC 1035 §4.1.1) of `response` with these section counts, and the question.
fn write_header(response: &Response<'_>, counts: [u16; 3], question: &[u8], out: &mut Vec<u8>) {
    let metadata = &response.metadata;
    out.clear();
    out.extend_from_slice(&metadata.id.to_be_bytes());
    let mut flags = 0x80 | (u8::from(metadata.op_code) << 3);
    flags |= u8::from(metadata.authoritative) << 2;
    flags |= u8::from(metadata.truncation) << 1;
    flags |= u8::from(metadata.recursion_desired);
    out.push(flags);
    let mut flags = u8::from(metadata.recursion_available) << 7;
    flags |= u8::from(metadata.authentic_data) << 5;
    flags |= u8::from(metadata.checking_disabled) << 4;
    flags |= metadata.response_code.low();
    out.push(flags);
    let additional_count = u16::from(response.edns.is_some());
    for count in [1, counts[0], counts[1], counts[2] + additional_count] {
        out.extend_from_slice(&count.to_be_bytes());
    }
    out.extend_from_slice(question);
}

/// The addresses of `owner` and their RRSIGs, after the header.
fn write_addresses(
    response: &Response<'_>,
    owner: Owner<'_>,
    question: &[u8],
    out: &mut Vec<u8>,
) -> bool {
    let answers = &response.addresses;
    if answers.len() > FAST_MAX_ANSWERS {
        return false;
    }
    // The addresses' RRSIGs, owned by the owner (and so by the question's name).
    let signatures = signed::records(&response.dnssec.answers);
    let signature_count = signatures.clone().count();
    // hickory's encoder points an owner at the question's name only when the two are written
    // alike (case included), and signatures are owned by the lowercase name: so RRSIGs are
    // written here only for a question written in lowercase, to keep to hickory's bytes.
    if signature_count > 0
        && question.get(..question.len().saturating_sub(4))
            != Some(&crate::snapshot::key_bytes(owner.name)[..])
    {
        return false;
    }
    write_header(
        response,
        [(answers.len() + signature_count) as u16, 0, 0],
        question,
        out,
    );

    // The question's name, at offset 12 (RFC 1035 §4.1.4).
    let pointer = 0xC00Cu16;
    for address in answers.iter() {
        out.extend_from_slice(&pointer.to_be_bytes());
        let (rtype, rdata): (u16, &[u8]) = match address {
            std::net::IpAddr::V4(v4) => (1, &v4.octets()),
            std::net::IpAddr::V6(v6) => (28, &v6.octets()),
        };
        out.extend_from_slice(&rtype.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes()); // class IN
        out.extend_from_slice(&owner.ttl.to_be_bytes());
        out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
        out.extend_from_slice(rdata);
    }

    // Their RRSIGs (RFC 4034 §3.2): the signer's name uncompressed (§3.1.7).
    for record in signatures {
        let Some(rrsig) = rrsig_of(record, owner.name) else {
            return false;
        };
        let input = rrsig.input();
        out.extend_from_slice(&pointer.to_be_bytes());
        out.extend_from_slice(&46u16.to_be_bytes());
        out.extend_from_slice(&1u16.to_be_bytes()); // class IN
        out.extend_from_slice(&record.ttl.to_be_bytes());
        let length_at = out.len();
        out.extend_from_slice(&[0, 0]);
        crate::dnssec::signer::write_rrsig_fields(input, out);
        out.extend_from_slice(rrsig.sig());
        let length = (out.len() - length_at - 2) as u16;
        out[length_at..length_at + 2].copy_from_slice(&length.to_be_bytes());
    }
    true
}

/// A service's CNAME alone (RFC 1034 §3.6.2), after the header.
fn write_cname(
    response: &Response<'_>,
    record: &Record,
    question: &[u8],
    out: &mut Vec<u8>,
) -> bool {
    let RData::CNAME(target) = &record.data else {
        return false;
    };
    let (owner, target) = (labels(&record.name), labels(&target.0));
    let Some(mut names) = question_names(question) else {
        return false;
    };
    write_header(response, [1, 0, 0], question, out);
    names.write(out, &owner);
    out.extend_from_slice(&5u16.to_be_bytes()); // CNAME
    out.extend_from_slice(&1u16.to_be_bytes()); // class IN
    out.extend_from_slice(&record.ttl.to_be_bytes());
    let length_at = out.len();
    out.extend_from_slice(&[0, 0]);
    names.write(out, &target);
    let length = (out.len() - length_at - 2) as u16;
    out[length_at..length_at + 2].copy_from_slice(&length.to_be_bytes());
    true
}

/// `name`'s labels in wire form (letter case kept), without the root label.
fn labels(name: &Name) -> SmallVec<[u8; 64]> {
    let mut wire = SmallVec::new();
    for label in name.iter() {
        wire.push(label.len() as u8);
        wire.extend_from_slice(label);
    }
    wire
}

/// Name compression's state once the question (at offset 12) is written; `None` when its
/// name is not plain labels.
fn question_names(question: &[u8]) -> Option<Names<'_>> {
    // The question's name as sent (its labels; the root label, type and class follow).
    let end = question.len().checked_sub(5)?;
    if question[end] != 0 {
        return None;
    }
    let mut names = Names::default();
    names.remember(12, &question[..end]).then_some(names)
}

/// No answer and the zone's SOA in the authority section (RFC 2308 §2), after the header.
fn write_negative<'a>(
    response: &Response<'_>,
    soa: &'a NegativeSoa,
    question: &'a [u8],
    out: &mut Vec<u8>,
) -> bool {
    let Some(mut names) = question_names(question) else {
        return false;
    };
    write_header(response, [0, 1, 0], question, out);
    names.write(out, &soa.owner);
    out.extend_from_slice(&6u16.to_be_bytes()); // SOA
    out.extend_from_slice(&1u16.to_be_bytes()); // class IN
    out.extend_from_slice(&soa.ttl.to_be_bytes());
    let length_at = out.len();
    out.extend_from_slice(&[0, 0]);
    names.write(out, &soa.mname);
    names.write(out, &soa.rname);
    for number in soa.numbers {
        out.extend_from_slice(&number.to_be_bytes());
    }
    let length = (out.len() - length_at - 2) as u16;
    out[length_at..length_at + 2].copy_from_slice(&length.to_be_bytes());
    true
}

/// The OPT pseudo-record (RFC 6891 §6.1.2) of `response`, if it has one, at the end of `out`;
/// false for an option other than ECS.
fn write_opt(response: &Response<'_>, out: &mut Vec<u8>) -> bool {
    let Some(edns) = &response.edns else {
        return true;
    };
    out.push(0);
    out.extend_from_slice(&41u16.to_be_bytes());
    out.extend_from_slice(&edns.max_payload().max(512).to_be_bytes());
    let ttl = u32::from(response.metadata.response_code.high()) << 24
        | u32::from(edns.version()) << 16
        | u32::from(u16::from(*edns.flags()));
    out.extend_from_slice(&ttl.to_be_bytes());
    let length_at = out.len();
    out.extend_from_slice(&[0, 0]);
    for (code, option) in &edns.options().options {
        let EdnsOption::Subnet(subnet) = option else {
            return false;
        };
        let (family, octets): (u16, &[u8]) = match subnet.addr() {
            std::net::IpAddr::V4(v4) => (1, &v4.octets()),
            std::net::IpAddr::V6(v6) => (2, &v6.octets()),
        };
        let address_len = usize::from(subnet.source_prefix()).div_ceil(8);
        if address_len > octets.len() {
            return false;
        }
        out.extend_from_slice(&u16::from(*code).to_be_bytes());
        out.extend_from_slice(&(4 + address_len as u16).to_be_bytes());
        out.extend_from_slice(&family.to_be_bytes());
        out.push(subnet.source_prefix());
        out.push(subnet.scope_prefix());
        out.extend_from_slice(&octets[..address_len]);
    }
    let length = (out.len() - length_at - 2) as u16;
    out[length_at..length_at + 2].copy_from_slice(&length.to_be_bytes());
    true
}

/// Name compression (RFC 1035 §4.1.4) as hickory-proto's encoder does it, so that the bytes
/// are its bytes: every suffix of a name written is remembered where it starts, in the order
/// written (at most 64, and only below offset 0x3FFF); a later name whose suffix equals one
/// remembered, byte for byte (letter case included), is written up to it and a pointer to the
/// first such, its longest suffix first.
#[derive(Default)]
struct Names<'a> {
    suffixes: SmallVec<[(u16, &'a [u8]); 16]>,
}

/// The most suffixes hickory-proto's encoder remembers.
const COMPRESSION_CANDIDATES: usize = 64;

impl<'a> Names<'a> {
    /// Remembers the suffixes of `labels` (wire labels without the root label, no pointer)
    /// written at `start`; false when they are not plain labels.
    fn remember(&mut self, start: usize, labels: &'a [u8]) -> bool {
        let mut at = 0;
        while at < labels.len() {
            let len = usize::from(labels[at]);
            if len == 0 || len & 0xC0 != 0 {
                return false;
            }
            self.keep(start + at, start + labels.len(), &labels[at..]);
            at += 1 + len;
        }
        at == labels.len()
    }

    /// Writes `labels` (wire labels without the root label) at the end of `out`, compressed.
    fn write(&mut self, out: &mut Vec<u8>, labels: &'a [u8]) {
        let start = out.len();
        let mut at = 0;
        while at < labels.len() {
            let suffix = &labels[at..];
            if let Some(&(target, _)) = self.suffixes.iter().find(|(_, s)| *s == suffix) {
                out.extend_from_slice(&labels[..at]);
                out.extend_from_slice(&(0xC000 | target).to_be_bytes());
                return;
            }
            self.keep(start + at, start + labels.len(), suffix);
            at += 1 + usize::from(labels[at]);
        }
        out.extend_from_slice(labels);
        out.push(0);
    }

    /// Remembers `suffix` at `at`, in a name whose labels end at `end`.
    fn keep(&mut self, at: usize, end: usize, suffix: &'a [u8]) {
        if end < 0x3FFF && self.suffixes.len() < COMPRESSION_CANDIDATES {
            self.suffixes.push((at as u16, suffix));
        }
    }
}

/// The RRSIG data of `record` when it is an RRSIG owned by `owner` (what [`encode_fast`]
/// writes after the addresses it covers).
fn rrsig_of<'r>(record: &'r Record, owner: &Name) -> Option<&'r RRSIG> {
    match &record.data {
        RData::DNSSEC(DNSSECRData::RRSIG(rrsig)) if record.name == *owner => Some(rrsig),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query};
    use hickory_proto::rr::rdata::opt::ClientSubnet;
    use hickory_proto::rr::{Name, RecordType};
    use hickory_server::net::xfer::Protocol;
    use hickory_server::server::Request;

    use super::*;
    use crate::dns::answer;
    use crate::fixtures;
    use crate::snapshot::Snapshot;

    const SERVICES: &str = r#"
        services = [
            { name = "rr.gslb.example.com", strategy = "round-robin",
              targets = { eu = ["192.0.2.1", "192.0.2.2", "2001:db8::1"], us = ["198.51.100.1", "2001:db8:1::1"] } },
        ]
    "#;

    /// A query for `qname` `rtype` (RD set) as the server reads it, with EDNS of `edns` bytes
    /// (DO set when `dnssec_ok`) when given.
    fn request(qname: &str, rtype: RecordType, edns: Option<u16>, dnssec_ok: bool) -> Request {
        let mut query = Message::new(7, MessageType::Query, OpCode::Query);
        query.metadata.recursion_desired = true;
        query.add_query(Query::query(Name::from_ascii(qname).unwrap(), rtype));
        if let Some(size) = edns {
            let mut edns = Edns::new();
            edns.set_max_payload(size);
            edns.set_dnssec_ok(dnssec_ok);
            query.edns = Some(edns);
        }
        let src = SocketAddr::from(([127, 0, 0, 1], 53));
        Request::from_bytes(query.to_vec().unwrap(), src, Protocol::Udp).unwrap()
    }

    fn hickory_bytes(response: &Response<'_>, queries: &Queries) -> Vec<u8> {
        let mut out = Vec::new();
        assert!(
            encode_hickory_udp(response, queries, &mut out).expect("hickory encodes"),
            "fits whole"
        );
        out
    }

    #[test]
    fn fast_encoder_writes_hickorys_bytes() {
        let model = fixtures::config(SERVICES).model;
        let unsigned = Snapshot::from_model(&model, 1232);
        let signed = Snapshot::from_model(&fixtures::signed(model), 1232);
        let src = SocketAddr::from(([127, 0, 0, 1], 53));
        let mut cases = 0;
        for (snapshot, dnssec_ok, qname) in [unsigned, signed].iter().flat_map(|snapshot| {
            let signed = snapshot.zone.signer.is_some();
            [
                "rr.gslb.example.com",
                "Rr.GSLB.example.COM",
                "ns-eu.gslb.example.com",
            ]
            .map(move |qname| (snapshot, signed, qname))
        }) {
            for rtype in [RecordType::A, RecordType::AAAA] {
                for ecs in [
                    None,
                    Some(("198.51.100.0", 24)),
                    Some(("2001:db8:77::", 48)),
                    Some(("10.1.2.3", 0)),
                    Some(("10.1.2.3", 19)),
                ] {
                    for with_edns in [false, true] {
                        if ecs.is_some() && !with_edns {
                            continue;
                        }
                        let mut query = Message::new(99, MessageType::Query, OpCode::Query);
                        query.metadata.recursion_desired = true;
                        query.metadata.checking_disabled = true;
                        query.add_query(Query::query(Name::from_ascii(qname).unwrap(), rtype));
                        if with_edns {
                            let mut edns = Edns::new();
                            edns.set_max_payload(1400);
                            edns.set_dnssec_ok(dnssec_ok);
                            if let Some((addr, prefix)) = ecs {
                                edns.options_mut()
                                    .insert(EdnsOption::Subnet(ClientSubnet::new(
                                        addr.parse().unwrap(),
                                        prefix,
                                        0,
                                    )));
                            }
                            query.edns = Some(edns);
                        }
                        let request =
                            Request::from_bytes(query.to_vec().unwrap(), src, Protocol::Udp)
                                .unwrap();
                        let response = answer::respond(snapshot, &request, src.ip(), 5).unwrap();
                        assert_eq!(
                            !response.dnssec.is_empty(),
                            dnssec_ok && with_edns,
                            "{qname} {rtype}"
                        );
                        let mut fast = Vec::new();
                        let written = encode_fast(&response, request.queries.as_bytes(), &mut fast);
                        // Signatures of a question not in lowercase are left to hickory's.
                        let mixed_case = qname != qname.to_lowercase();
                        assert_eq!(
                            written,
                            response.dnssec.is_empty() || !mixed_case,
                            "{qname} {rtype} {ecs:?}"
                        );
                        if !written {
                            continue;
                        }
                        assert_eq!(
                            fast,
                            hickory_bytes(&response, &request.queries),
                            "{qname} {rtype} {ecs:?} edns={with_edns}"
                        );
                        cases += 1;
                    }
                }
            }
        }
        // Unsigned: 3 names × 2 types × 6 EDNS cases; signed, the mixed-case name's 5 with DO
        // are hickory's.
        assert_eq!(cases, 2 * 3 * 2 * 6 - 2 * 5);
    }

    #[test]
    fn fast_encoder_writes_hickorys_negative_answers() {
        let model = fixtures::config(SERVICES).model;
        // The SOA's names inside the zone (the defaults), and outside it, where they share
        // only a label or nothing with the question.
        let mut outside = model.clone();
        outside.zone.soa.mname = fixtures::name("ns1.example.net.");
        outside.zone.soa.rname = fixtures::name("hostmaster.example.com.");
        let signed = Snapshot::from_model(&fixtures::signed(model.clone()), 1232);
        let snapshots = [
            Snapshot::from_model(&model, 1232),
            Snapshot::from_model(&outside, 1232),
            signed,
        ];
        let src = SocketAddr::from(([127, 0, 0, 1], 53));
        let mut cases = 0;
        for snapshot in &snapshots {
            for qname in [
                "nope.gslb.example.com",
                "NoPe.GSLB.example.com",
                "a.b.c.gslb.Example.COM",
                "gslb.example.com",
                "Gslb.Example.Com",
            ] {
                for (rtype, edns, dnssec_ok) in [
                    (RecordType::A, None, false),
                    (RecordType::AAAA, Some(1232), false),
                    (RecordType::TXT, Some(4096), true),
                    (RecordType::MX, Some(512), false),
                ] {
                    let request = request(qname, rtype, edns, dnssec_ok);
                    let response = answer::respond(snapshot, &request, src.ip(), 5).unwrap();
                    assert!(response.no_answer(), "{qname} {rtype}");
                    let mut fast = Vec::new();
                    let written = encode_fast(&response, request.queries.as_bytes(), &mut fast);
                    // A signed zone's negative answer to DO carries its denial: hickory's.
                    let denied = snapshot.zone.signer.is_some() && dnssec_ok;
                    assert_eq!(written, !denied, "{qname} {rtype}");
                    if written {
                        assert_eq!(
                            fast,
                            hickory_bytes(&response, &request.queries),
                            "{qname} {rtype}"
                        );
                        cases += 1;
                    }
                }
            }
        }
        assert_eq!(cases, 3 * 5 * 4 - 5);
    }

    #[test]
    fn fast_encoder_writes_hickorys_cname_answers() {
        // Targets sharing nothing with the question's name, its last labels, all of a suffix
        // of it, and written in capitals.
        let model = fixtures::config(
            r#"
            services = [
                { name = "a.gslb.example.com", strategy = "round-robin",
                  targets = { eu = "lb.eu.example.net" } },
                { name = "b.gslb.example.com", strategy = "round-robin",
                  targets = { eu = "lb-1.elb.example.com" } },
                { name = "c.gslb.example.com", strategy = "round-robin",
                  targets = { eu = "example.com" } },
                { name = "d.gslb.example.com", strategy = "round-robin",
                  targets = { eu = "LB.Example.COM" } },
            ]
            "#,
        )
        .model;
        let unsigned = Snapshot::from_model(&model, 1232);
        let signed = Snapshot::from_model(&fixtures::signed(model), 1232);
        let src = SocketAddr::from(([127, 0, 0, 1], 53));
        let mut cases = 0;
        for snapshot in [&unsigned, &signed] {
            for qname in [
                "a.gslb.example.com",
                "b.gslb.example.com",
                "B.Gslb.EXAMPLE.com",
                "c.gslb.example.com",
                "d.gslb.example.com",
                "D.gslb.Example.COM",
            ] {
                for rtype in [RecordType::A, RecordType::AAAA, RecordType::TXT] {
                    for (edns, dnssec_ok) in
                        [(None, false), (Some(1232), false), (Some(1232), true)]
                    {
                        let request = request(qname, rtype, edns, dnssec_ok);
                        let response = answer::respond(snapshot, &request, src.ip(), 5).unwrap();
                        assert_eq!(response.answers.len(), 1, "{qname} {rtype}");
                        let mut fast = Vec::new();
                        let written = encode_fast(&response, request.queries.as_bytes(), &mut fast);
                        // A signed zone's CNAME to DO carries its RRSIG: hickory's.
                        let signed = snapshot.zone.signer.is_some() && dnssec_ok;
                        assert_eq!(written, !signed, "{qname} {rtype}");
                        if written {
                            assert_eq!(
                                fast,
                                hickory_bytes(&response, &request.queries),
                                "{qname} {rtype} {edns:?}"
                            );
                            let reply = Message::from_vec(&fast).expect("parses");
                            assert_eq!(reply.answers[0].record_type(), RecordType::CNAME);
                            cases += 1;
                        }
                    }
                }
            }
        }
        // 6 names × 3 types × 3 EDNS cases, less the signed zone's answers to DO.
        assert_eq!(cases, 2 * 6 * 3 * 3 - 6 * 3);
    }

    #[test]
    fn several_questions_are_echoed_as_sent() {
        // "alb.example.com" A IN, then "web" and a pointer to "example.com" (offset 16): read
        // alone, the pointer would land elsewhere.
        let mut packet = vec![0x12, 0x34, 1, 0, 0, 2, 0, 0, 0, 0, 0, 0];
        packet.extend_from_slice(b"\x03alb\x07example\x03com\x00\x00\x01\x00\x01");
        packet.extend_from_slice(b"\x03web\xc0\x10\x00\x01\x00\x01");
        let src = SocketAddr::from(([127, 0, 0, 1], 53));
        let request = Request::from_bytes(packet.clone(), src, Protocol::Udp).expect("parses");
        assert!(read_question(&request.queries).is_none());
        let snapshot = Snapshot::from_model(&fixtures::config(SERVICES).model, 1232);
        let response = answer::respond(&snapshot, &request, src.ip(), 5).expect("FORMERR");
        let mut out = Vec::new();
        encode(&response, &request.queries, Transport::Udp, &mut out);
        assert_eq!(&out[12..], &packet[12..], "the questions as sent");
        let reply = Message::from_vec(&out).expect("parses");
        assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    }
}
