//! The answer to one request, as a pure function of (snapshot, request, source, time bucket).
//!
//! Both transports use it: hickory-server's handler (TCP, and UDP when the fast path is off)
//! and the UDP fast path, so both give the same answers by construction (`tests/differential.rs`
//! checks the bytes).

use std::net::IpAddr;

use hickory_proto::op::{Edns, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::rdata::opt::{ClientSubnet, EdnsCode, EdnsOption, NSIDPayload};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};
use hickory_server::zone_handler::MessageRequest;
use smallvec::SmallVec;

use super::cookie::{self, Malformed};
use super::select::{self, AnswerResult, Client, Picked};
use super::signed::{self, Dnssec};
use crate::dnssec::denial;
use crate::model::StrategyKind;
use crate::snapshot::{NegativeSoa, Node, ServiceIndex, Snapshot, address_record};

/// Which service answered a question, and how (counted by the transports).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Served {
    pub service: ServiceIndex,
    pub strategy: StrategyKind,
    pub result: AnswerResult,
}

/// Records of a response section, borrowed from the snapshot.
pub type Records<'s> = SmallVec<[&'s Record; 8]>;

/// The owner of an answer's addresses (a service or an in-zone nameserver), borrowed from the
/// snapshot: its name and the TTL.
#[derive(Clone, Copy, Debug)]
pub struct Owner<'s> {
    pub name: &'s Name,
    pub ttl: u32,
}

/// The response to send, borrowing its records from the snapshot. An answer is either zone
/// records (`answers`: SOA, NS) or addresses of one owner (`addresses`, `owner`), which
/// become records only where hickory's encoder needs them ([`Response::address_records`]).
#[derive(Debug)]
pub struct Response<'s> {
    pub metadata: Metadata,
    pub edns: Option<Edns>,
    pub answers: Records<'s>,
    /// A/AAAA answers: addresses of `owner`, in answer order.
    pub addresses: Picked,
    pub owner: Option<Owner<'s>>,
    pub authorities: SmallVec<[&'s Record; 4]>,
    /// The negative answer's SOA (the record in `authorities`) as the direct encoder writes it.
    pub negative: Option<&'s NegativeSoa>,
    pub additionals: Records<'s>,
    /// The service whose A/AAAA question this answers, and how (for metrics).
    pub served: Option<Served>,
    /// The asked name does not exist: NXDOMAIN, or NOERROR with a compact denial
    /// ([`signed`](super::signed)); rate limiting counts both alike.
    pub nonexistent: bool,
    /// Signatures and denial of a signed zone, for a requester that set DO.
    pub dnssec: Dnssec,
    /// The query carried a server cookie we made: its source address is its own, and its
    /// answers are never rate-limited.
    pub verified_source: bool,
}

impl<'s> Response<'s> {
    fn new(request: &MessageRequest, snapshot: &Snapshot, rcode: ResponseCode) -> Self {
        let mut metadata = Metadata::response_from_request(&request.metadata);
        metadata.response_code = rcode;
        // We never recurse (RA stays clear) and validate nothing (AD clear).
        metadata.recursion_available = false;
        let edns = request.edns.as_ref().map(|theirs| {
            let mut ours = Edns::new();
            // RFC 6891 §6.2.5: honour the requester's size, never below 512, never above ours.
            ours.set_max_payload(theirs.max_payload().clamp(512, snapshot.max_udp_payload));
            // RFC 3225 §3: the DO bit is copied into the response.
            ours.set_dnssec_ok(theirs.flags().dnssec_ok);
            // RFC 5001 §2.1: an empty NSID option asks for ours.
            if let (Some(nsid), Some(_)) = (&snapshot.identity.nsid, theirs.option(EdnsCode::NSID))
                && let Ok(payload) = NSIDPayload::new(nsid.to_vec())
            {
                ours.options_mut().insert(EdnsOption::NSID(payload));
            }
            ours
        });
        Self {
            metadata,
            edns,
            answers: Records::new(),
            addresses: Picked::new(),
            owner: None,
            authorities: SmallVec::new(),
            negative: None,
            additionals: Records::new(),
            served: None,
            nonexistent: false,
            dnssec: Dnssec::default(),
            verified_source: false,
        }
    }

    /// The address answers as records (hickory's encoder takes records), owned by `name` (the
    /// question's name as sent, so that the encoder points them at it) or else the owner's.
    pub fn address_records(&self, name: Option<&Name>) -> Vec<Record> {
        let Some(owner) = self.owner else {
            return Vec::new();
        };
        let name = name.unwrap_or(owner.name);
        self.addresses
            .iter()
            .map(|&a| address_record(name, owner.ttl, a))
            .collect()
    }

    /// The response code rate limiting counts the answer by: a name that does not exist counts
    /// as NXDOMAIN even where a compact denial answers NOERROR (RFC 9824), so that a flood of
    /// random names falls in one bucket either way.
    pub fn rate_limit_rcode(&self) -> ResponseCode {
        if self.nonexistent {
            ResponseCode::NXDomain
        } else {
            self.metadata.response_code
        }
    }

    /// Whether the answer section is empty.
    pub fn no_answer(&self) -> bool {
        self.answers.is_empty() && self.addresses.is_empty() && self.dnssec.answers.is_empty()
    }

    /// Marks the answer authoritative, as for every answer from our zone.
    fn authoritative(mut self) -> Self {
        self.metadata.authoritative = true;
        self
    }

    /// This response cut to its minimal form (RFC 6891 §7): the header with TC set, the
    /// question, the OPT record if there is one, and no records. What goes out over UDP when
    /// the answer does not fit whole: resolvers ignore a partial answer and ask again over TCP
    /// (RFC 2181 §9), and every record stays within the requester's size.
    pub fn truncated(&self) -> Self {
        let mut metadata = self.metadata;
        metadata.truncation = true;
        Self {
            metadata,
            edns: self.edns.clone(),
            answers: Records::new(),
            addresses: Picked::new(),
            owner: None,
            authorities: SmallVec::new(),
            negative: None,
            additionals: Records::new(),
            served: self.served,
            nonexistent: self.nonexistent,
            dnssec: Dnssec::default(),
            verified_source: self.verified_source,
        }
    }

    /// NOERROR with no answer, or NXDOMAIN: the SOA in the authority section (RFC 2308 §2).
    fn negative(mut self, snapshot: &'s Snapshot) -> Self {
        self.authorities.push(&snapshot.zone.negative_soa);
        self.negative = Some(&snapshot.zone.negative_wire);
        self
    }
}

/// Builds the response to `request` from `source`; `None` means send nothing. A query with a
/// COOKIE option gets ours back (RFC 7873), or FORMERR when the option is malformed.
pub fn respond<'s>(
    snapshot: &'s Snapshot,
    request: &MessageRequest,
    source: IpAddr,
    bucket: u64,
) -> Option<Response<'s>> {
    // Never answer a response: that is how reflection loops start.
    if request.metadata.message_type == MessageType::Response {
        return None;
    }
    let cookie = match cookie_of(snapshot, request, source) {
        Ok(cookie) => cookie,
        Err(Malformed) => return Some(Response::new(request, snapshot, ResponseCode::FormErr)),
    };
    let mut response = respond_to(snapshot, request, source, bucket)?;
    if let (Some(cookie), Some(edns)) = (cookie, response.edns.as_mut()) {
        edns.options_mut()
            .insert(EdnsOption::Unknown(COOKIE, cookie.option.to_vec()));
        response.verified_source = cookie.verified;
    }
    Some(response)
}

/// The EDNS option code of DNS cookies (RFC 7873 §4).
const COOKIE: u16 = 10;

/// The query's COOKIE option answered, when it has one and cookies are on.
fn cookie_of(
    snapshot: &Snapshot,
    request: &MessageRequest,
    source: IpAddr,
) -> Result<Option<cookie::Answered>, Malformed> {
    let Some(cookies) = &snapshot.identity.cookies else {
        return Ok(None);
    };
    match request
        .edns
        .as_ref()
        .and_then(|e| e.option(EdnsCode::Cookie))
    {
        Some(EdnsOption::Unknown(_, data)) => {
            let now = (crate::unix_ms() / 1000) as u32;
            cookies.answer(data, source, now).map(Some)
        }
        _ => Ok(None),
    }
}

/// [`respond`] but for the cookie.
fn respond_to<'s>(
    snapshot: &'s Snapshot,
    request: &MessageRequest,
    source: IpAddr,
    bucket: u64,
) -> Option<Response<'s>> {
    // Replies echo the question section as sent: a name compressed against the query's header
    // would read our reply's header instead, and the reply would not parse. No resolver sends
    // one (the header holds no name); names compressed against an earlier question are fine.
    if reads_the_header(request.queries.as_bytes()) {
        return None;
    }
    if request.metadata.op_code != OpCode::Query {
        return Some(Response::new(request, snapshot, ResponseCode::NotImp));
    }
    // RFC 6891 §6.1.3: we speak EDNS version 0 only.
    if request.edns.as_ref().is_some_and(|e| e.version() > 0) {
        return Some(Response::new(request, snapshot, ResponseCode::BADVERS));
    }
    let queries = request.queries.queries();
    if queries.len() != 1 {
        return Some(Response::new(request, snapshot, ResponseCode::FormErr));
    }
    let query = &queries[0];
    let qtype = query.query_type();
    let name = query.name();

    if query.query_class() != DNSClass::IN || !snapshot.is_in_zone(name) {
        return Some(Response::new(request, snapshot, ResponseCode::Refused));
    }
    // Zone transfers are not offered; meta-types other than ANY are not questions.
    if matches!(qtype, RecordType::AXFR | RecordType::IXFR) {
        return Some(Response::new(request, snapshot, ResponseCode::Refused));
    }

    let node = snapshot.node(name);
    let mut response = in_zone(snapshot, request, node, qtype, source, bucket);
    // A signed zone's answer to a requester that set DO carries its signatures and proofs.
    let signer = snapshot.zone.signer.as_deref();
    if let Some(signer) = signer.filter(|_| dnssec_ok(request)) {
        let name = Name::from(name);
        let asked = signed::Asked {
            name: &name,
            qtype,
            node,
            compact_ok: compact_ok(request),
        };
        signed::complete(
            &mut response,
            snapshot,
            signer,
            &asked,
            crate::unix_ms() / 1000,
        );
    }
    Some(response)
}

/// The response to a question for `node` (`None`: a name of the zone that does not exist) of
/// type `qtype`.
fn in_zone<'s>(
    snapshot: &'s Snapshot,
    request: &MessageRequest,
    node: Option<&'s Node>,
    qtype: RecordType,
    source: IpAddr,
    bucket: u64,
) -> Response<'s> {
    let mut response = Response::new(request, snapshot, ResponseCode::NoError).authoritative();
    let Some(node) = node else {
        response.metadata.response_code = ResponseCode::NXDomain;
        response.nonexistent = true;
        return response.negative(snapshot);
    };

    match node {
        Node::Apex => match qtype {
            RecordType::SOA | RecordType::ANY => response.answers.push(&snapshot.zone.soa),
            RecordType::DNSKEY => response.answers.extend(snapshot.zone.dnskeys.iter()),
            RecordType::NS => {
                response.answers.extend(snapshot.zone.ns.iter());
                response.additionals.extend(snapshot.zone.glue.iter());
            }
            _ => {}
        },
        Node::Host(host) => {
            // RFC 8482: ANY gets one RRset, here the addresses of the first family present.
            let has_a = host.addresses.has_v4();
            let rtype = answer_type(qtype, has_a);
            response
                .addresses
                .extend_from_slice(host.addresses.of(rtype));
            response.owner = Some(Owner {
                name: &host.name,
                ttl: host.ttl,
            });
        }
        Node::Service(index) => {
            let service = snapshot.service(*index);
            let has_a = service.regions.iter().any(|r| r.addresses.has_v4());
            let rtype = answer_type(qtype, has_a);
            let addressed = matches!(rtype, RecordType::A | RecordType::AAAA);
            // A region whose target is a host name answers every type with its CNAME (RFC 1034
            // §3.6.2), for the clients the strategy sends there: a question of another type
            // is answered as an address question would be, keeping only a CNAME.
            if addressed || service.named {
                let client = client_of(request, source);
                let at = select::At::of(snapshot, bucket);
                let selection = select::select_into(
                    service,
                    if addressed {
                        rtype
                    } else {
                        answer_type(RecordType::ANY, has_a)
                    },
                    &client,
                    &at,
                    &snapshot.geo,
                    &mut response.addresses,
                );
                let cname = selection
                    .cname
                    .and_then(|position| service.regions[position].cname.as_deref());
                if let Some(cname) = cname {
                    response.answers.push(cname);
                } else if !addressed {
                    response.addresses.clear();
                }
                if addressed || cname.is_some() {
                    response.served = Some(Served {
                        service: *index,
                        strategy: service.strategy().kind(),
                        result: selection.result,
                    });
                    response.owner = Some(Owner {
                        name: service.name(),
                        ttl: service.ttl(),
                    });
                    echo_client_subnet(&mut response, request, selection.scope);
                }
            }
        }
        Node::EmptyNonTerminal => {}
    }
    if response.no_answer() {
        return response.negative(snapshot);
    }
    response
}

/// Whether the requester set DO (RFC 3225): it wants DNSSEC records.
fn dnssec_ok(request: &MessageRequest) -> bool {
    request.edns.as_ref().is_some_and(|e| e.flags().dnssec_ok)
}

/// Whether the requester set Compact Answers OK (RFC 9824 §3.4).
fn compact_ok(request: &MessageRequest) -> bool {
    request
        .edns
        .as_ref()
        .is_some_and(|e| e.flags().z & denial::COMPACT_OK != 0)
}

/// Whether a name in `questions`, a question section as sent (it starts at offset 12 of its
/// message), reads bytes of the header through compression pointers (RFC 1035 §4.1.4). The
/// request parsed, so labels are valid and pointers point backwards; the steps are bounded all
/// the same.
fn reads_the_header(questions: &[u8]) -> bool {
    let mut name = 0;
    while name < questions.len() {
        let mut at = name;
        // Where the name ends in the section: after its first pointer, or its root label.
        let mut end = None;
        for _ in 0..=questions.len() {
            let Some(&len) = questions.get(at) else {
                return true;
            };
            if len == 0 {
                break;
            }
            if len & 0xC0 == 0 {
                at += 1 + usize::from(len);
                continue;
            }
            let Some(&low) = questions.get(at + 1) else {
                return true;
            };
            end.get_or_insert(at + 2);
            match usize::from(u16::from_be_bytes([len & 0x3F, low])).checked_sub(12) {
                Some(target) => at = target,
                None => return true,
            }
        }
        name = end.unwrap_or(at + 1) + 4; // type and class follow the name
    }
    false
}

/// The type to answer: the question's, or for ANY the one RRset we give (RFC 8482 §4.1).
fn answer_type(qtype: RecordType, has_a: bool) -> RecordType {
    match qtype {
        RecordType::ANY if has_a => RecordType::A,
        RecordType::ANY => RecordType::AAAA,
        other => other,
    }
}

/// The ECS option of the request, if it carries a usable one.
fn client_subnet(request: &MessageRequest) -> Option<&ClientSubnet> {
    match request.edns.as_ref()?.option(EdnsCode::Subnet)? {
        EdnsOption::Subnet(subnet) => Some(subnet),
        _ => None,
    }
}

/// RFC 7871 §7.1.1: use the ECS address when given with a non-zero source prefix.
fn client_of(request: &MessageRequest, source: IpAddr) -> Client {
    match client_subnet(request) {
        Some(subnet) if subnet.source_prefix() > 0 => Client {
            addr: subnet.addr(),
            prefix_len: subnet.source_prefix(),
        },
        _ => Client::from_source(source),
    }
}

/// RFC 7871 §7.2.1: echo the option with the scope the answer depends on.
fn echo_client_subnet(response: &mut Response<'_>, request: &MessageRequest, scope: Option<u8>) {
    let (Some(subnet), Some(edns)) = (client_subnet(request), response.edns.as_mut()) else {
        return;
    };
    let mut echoed = *subnet;
    // A zero source prefix asks us not to tailor the answer: scope must be 0 (§7.1.2).
    let scope = if subnet.source_prefix() == 0 {
        0
    } else {
        scope.unwrap_or(subnet.source_prefix())
    };
    echoed.set_scope_prefix(scope);
    edns.options_mut().insert(EdnsOption::Subnet(echoed));
}

#[cfg(test)]
mod tests {
    use super::reads_the_header;

    #[test]
    fn only_names_compressed_against_the_header_read_it() {
        // "a." A IN, then "b" + pointer to "a." (offset 12): an earlier question is fine.
        let two = [1, b'a', 0, 0, 1, 0, 1, 1, b'b', 0xC0, 12, 0, 1, 0, 1];
        assert!(!reads_the_header(&two[..7]));
        assert!(!reads_the_header(&two));
        // A name at offset 2, the header's flags.
        assert!(reads_the_header(&[0xC0, 2, 0, 1, 0, 1]));
        // A label holding the bytes of a pointer to offset 5 (harmless as data), then "x" +
        // a pointer to that label's data: the chain ends in the header.
        let chained = [2, 0xC0, 5, 0, 0, 1, 0, 1, 1, b'x', 0xC0, 13, 0, 1, 0, 1];
        assert!(!reads_the_header(&chained[..8]));
        assert!(reads_the_header(&chained));
    }
}
