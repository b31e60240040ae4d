//! A response made DNSSEC-complete for a requester that set DO (RFC 3225), when the zone is
//! signed: every RRset in it gets its RRSIGs (RFC 4035 §3.1.1), a positive answer made for one
//! client as much as the apex SOA, and a negative answer gets its proof by compact denial
//! ([`denial`]). The signatures come from the signer's cache ([`Signer::sign`]), so the hot
//! path almost never signs.

use std::sync::atomic::{AtomicU64, Ordering};

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{Name, Record, RecordType};
use smallvec::SmallVec;

use super::answer::Response;
use crate::dnssec::{Rdatas, Signatures, Signer, denial};
use crate::snapshot::{Node, Snapshot};

/// The DNSSEC records added to a response, by section.
#[derive(Debug, Default)]
pub struct Dnssec {
    pub answers: SmallVec<[Signatures; 1]>,
    pub authorities: SmallVec<[Signatures; 4]>,
    pub additionals: Vec<Signatures>,
}

impl Dnssec {
    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.answers.is_empty() && self.authorities.is_empty() && self.additionals.is_empty()
    }
}

/// The records of a section's DNSSEC additions, in order.
pub fn records(section: &[Signatures]) -> impl Iterator<Item = &Record> + Clone {
    section.iter().flat_map(|records| records.iter())
}

/// What the question asked and found, for the denial.
pub struct Asked<'a> {
    /// The question's name, lowercase.
    pub name: &'a Name,
    pub qtype: RecordType,
    /// The node at the name; `None`: the name does not exist.
    pub node: Option<&'a Node>,
    /// The requester set Compact Answers OK: a name that does not exist gets NXDOMAIN.
    pub compact_ok: bool,
}

/// Adds to `response` the signatures of its RRsets and, when it is negative, the denial, at
/// `now_s` (Unix seconds). A signature that cannot be made turns the response into SERVFAIL
/// (never an answer that does not validate).
pub fn complete(
    response: &mut Response<'_>,
    snapshot: &Snapshot,
    signer: &Signer,
    asked: &Asked<'_>,
    now_s: u64,
) {
    if let Err(reason) = add(response, snapshot, signer, asked, now_s) {
        if let Some(unlogged) = FAILURES.note(now_s) {
            tracing::error!(
                %reason,
                name = %asked.name,
                unlogged,
                "cannot sign an answer: SERVFAIL (one such line per 10 s at most; unlogged: \
                 failures since the last line)"
            );
        }
        let mut failed = response.truncated();
        failed.metadata.truncation = false;
        failed.metadata.response_code = ResponseCode::ServFail;
        *response = failed;
    }
}

/// How often at most a signing failure is logged.
const FAILURE_LOG_EVERY_S: u64 = 10;

/// Signing failures of this process, logged at most once per [`FAILURE_LOG_EVERY_S`]: a key
/// that cannot sign fails every signed answer, and a line per query would flood the log. The
/// next line says how many went unlogged.
static FAILURES: FailureLog = FailureLog::new();

struct FailureLog {
    /// When the next failure may be logged (Unix seconds).
    next_s: AtomicU64,
    /// Failures not logged since the last line.
    unlogged: AtomicU64,
}

impl FailureLog {
    const fn new() -> Self {
        Self {
            next_s: AtomicU64::new(0),
            unlogged: AtomicU64::new(0),
        }
    }

    /// A failure at `now_s` (Unix seconds): `Some(failures unlogged since the last line)` when
    /// this one is to be logged.
    fn note(&self, now_s: u64) -> Option<u64> {
        let next = self.next_s.load(Ordering::Relaxed);
        // Due, or the clock stepped back past the window: logging is never held off longer.
        let due = (now_s >= next || next > now_s.saturating_add(FAILURE_LOG_EVERY_S))
            && self
                .next_s
                .compare_exchange(
                    next,
                    now_s.saturating_add(FAILURE_LOG_EVERY_S),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok();
        if due {
            Some(self.unlogged.swap(0, Ordering::Relaxed))
        } else {
            self.unlogged.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

fn add(
    response: &mut Response<'_>,
    snapshot: &Snapshot,
    signer: &Signer,
    asked: &Asked<'_>,
    now_s: u64,
) -> Result<(), String> {
    let mut dnssec = Dnssec::default();
    for rrset in rrsets(&response.answers) {
        dnssec.answers.push(sign_records(signer, rrset, now_s)?);
    }
    if let (Some(owner), Some(first)) = (response.owner, response.addresses.first()) {
        let rtype = if first.is_ipv4() {
            RecordType::A
        } else {
            RecordType::AAAA
        };
        let rdatas = Rdatas::of_addresses(&response.addresses);
        dnssec
            .answers
            .push(signer.sign(owner.name, rtype, owner.ttl, &rdatas, now_s)?);
    }
    for rrset in rrsets(&response.authorities) {
        dnssec.authorities.push(sign_records(signer, rrset, now_s)?);
    }
    let negative = matches!(
        response.metadata.response_code,
        ResponseCode::NoError | ResponseCode::NXDomain
    ) && response.no_answer();
    if negative {
        let present = asked.node.map(|node| present(snapshot, node, asked.qtype));
        let ttl = snapshot.zone.negative_soa.ttl;
        let nsec = denial::nsec(asked.name, present.as_deref(), ttl);
        let signatures = sign_records(signer, &[&nsec], now_s)?;
        dnssec.authorities.push(Signatures::from([nsec]));
        dnssec.authorities.push(signatures);
        // RFC 9824 §3.5: NXDOMAIN only for a requester that said it understands.
        if asked.node.is_none() && !asked.compact_ok {
            response.metadata.response_code = ResponseCode::NoError;
        }
        if let Some(edns) = response.edns.as_mut().filter(|_| asked.compact_ok) {
            edns.flags_mut().z |= denial::COMPACT_OK;
        }
    }
    for rrset in rrsets(&response.additionals) {
        dnssec.additionals.push(sign_records(signer, rrset, now_s)?);
    }
    response.dnssec = dnssec;
    Ok(())
}

/// The RRsets of a section: runs of records of one owner and type.
fn rrsets<'r>(records: &'r [&'r Record]) -> impl Iterator<Item = &'r [&'r Record]> {
    records.chunk_by(|a, b| a.record_type() == b.record_type() && a.name == b.name)
}

/// The signatures of one RRset given as records.
fn sign_records(signer: &Signer, rrset: &[&Record], now_s: u64) -> Result<Signatures, String> {
    let first = rrset.first().ok_or("an empty RRset")?;
    let rdatas = Rdatas::of_records(rrset.iter().copied())?;
    signer.sign(&first.name, first.record_type(), first.ttl, &rdatas, now_s)
}

/// The types present at `node` but `qtype` (a NODATA answer's proof must not list the asked
/// type, whatever the health of the regions behind it).
fn present(snapshot: &Snapshot, node: &Node, qtype: RecordType) -> SmallVec<[RecordType; 3]> {
    let mut types = SmallVec::new();
    match node {
        Node::Apex => types.extend([RecordType::SOA, RecordType::NS, RecordType::DNSKEY]),
        Node::Host(host) => {
            if host.addresses.has_v4() {
                types.push(RecordType::A);
            }
            if host.addresses.has_v6() {
                types.push(RecordType::AAAA);
            }
        }
        Node::Service(index) => {
            let service = snapshot.service(*index);
            if service.regions.iter().any(|r| r.all.has_v4()) {
                types.push(RecordType::A);
            }
            if service.regions.iter().any(|r| r.all.has_v6()) {
                types.push(RecordType::AAAA);
            }
        }
        Node::EmptyNonTerminal => {}
    }
    types.retain(|t| *t != qtype);
    types
}

#[cfg(test)]
mod tests {
    use super::FailureLog;

    #[test]
    fn signing_failures_are_logged_once_per_ten_seconds_with_the_count_left_out() {
        let log = FailureLog::new();
        assert_eq!(log.note(1_000), Some(0));
        assert_eq!(log.note(1_000), None);
        assert_eq!(log.note(1_009), None);
        assert_eq!(log.note(1_010), Some(2));
        assert_eq!(log.note(1_011), None);
        // A clock stepped back does not hold the lines off for longer than the window.
        assert_eq!(log.note(5), Some(1));
        assert_eq!(log.note(10), None);
        assert_eq!(log.note(15), Some(1));
    }
}
