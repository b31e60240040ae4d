//! Response rate limiting (RRL) of UDP answers, as Knot and BIND do it, so that gslbd cannot be
//! used as an amplifier against a spoofed source: answers to one client network are counted
//! per second in buckets keyed by (network, class of answer, name); past a class's limit an
//! answer is dropped, except every `slip`th, which is sent truncated (TC, question only) so a
//! real resolver behind that network retries over TCP, which cannot be spoofed.
//!
//! Classes, each with its own limit: answers with data or NODATA, keyed by name and type;
//! NXDOMAIN, keyed by the zone (random names share one bucket); errors (REFUSED, FORMERR,
//! NOTIMP, ...), keyed by the network alone. TCP is never limited.
//!
//! The table is a fixed array of atomic words shared by every UDP thread, one word per bucket
//! holding a fingerprint of its key, the second it counts and the count, updated by
//! compare-and-swap: no lock, no allocation per answer. Two keys landing on one bucket take it
//! in turns, which only ever limits less.

use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{LowerName, RecordType};
use ipnet::IpNet;
use rustc_hash::FxHasher;

use crate::config::RrlSettings;
use crate::label_enum::label_enum;
use crate::snapshot::key_bytes;

label_enum! {
    /// What kind of answer is counted; the names are metric label values.
    pub enum AnswerClass {
        /// Data or NODATA for one name and type.
        Normal = "normal",
        /// NXDOMAIN: every name of the zone shares a bucket.
        NxDomain = "nxdomain",
        /// REFUSED, FORMERR, NOTIMP, SERVFAIL, BADVERS.
        Error = "error",
    }
}

label_enum! {
    /// What became of a limited answer; the names are metric label values.
    pub enum Limited {
        /// Sent truncated: TC set, the question only.
        Slipped = "slipped",
        /// Not sent.
        Dropped = "dropped",
    }
}

/// What to do with one answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Send,
    Limit(Limited),
}

/// The bucket an answer counts in, but for the client's network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AnswerKey {
    pub class: AnswerClass,
    /// The name and type for `Normal` answers; 0 for the others.
    name: u64,
    /// The query proved its source address with a server cookie we made (`dns::cookie`):
    /// never limited.
    pub verified_source: bool,
}

impl AnswerKey {
    /// The key of an answer with `rcode` to a question for `name` and `qtype` (none when the
    /// request had no question).
    pub fn of(rcode: ResponseCode, question: Option<(&LowerName, RecordType)>) -> Self {
        let key = question.map(|(name, qtype)| (key_bytes(name), qtype));
        Self::of_key(
            rcode,
            key.as_ref().map(|(name, qtype)| (name.as_slice(), *qtype)),
        )
    }

    /// This key, for an answer to a query that proved its source address (`verified`).
    pub fn from_verified_source(self, verified: bool) -> Self {
        Self {
            verified_source: verified,
            ..self
        }
    }

    /// [`AnswerKey::of`] with the question's name as its name-table key ([`key_bytes`]).
    pub fn of_key(rcode: ResponseCode, question: Option<(&[u8], RecordType)>) -> Self {
        let class = match rcode {
            ResponseCode::NoError => AnswerClass::Normal,
            ResponseCode::NXDomain => AnswerClass::NxDomain,
            _ => AnswerClass::Error,
        };
        let name = match (class, question) {
            (AnswerClass::Normal, Some((name, qtype))) => {
                let mut hasher = FxHasher::default();
                name.hash(&mut hasher);
                u16::from(qtype).hash(&mut hasher);
                hasher.finish()
            }
            _ => 0,
        };
        Self {
            class,
            name,
            verified_source: false,
        }
    }
}

/// The limiter, shared by every UDP thread.
#[derive(Debug)]
pub struct Rrl {
    settings: RrlSettings,
    buckets: Box<[AtomicU64]>,
    started: Instant,
}

/// Bucket word layout: fingerprint (16 bits) | second (16 bits) | count (32 bits).
const COUNT_BITS: u32 = 32;
const SECOND_BITS: u32 = 16;

impl Rrl {
    pub fn new(settings: RrlSettings) -> Self {
        let buckets = (0..settings.table_size.max(1))
            .map(|_| AtomicU64::new(0))
            .collect();
        Self {
            settings,
            buckets,
            started: Instant::now(),
        }
    }

    /// The current second, for [`Rrl::decide`] (once per batch of datagrams is enough).
    pub fn second(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Whether an answer of `key` to `client` at `second` may be sent.
    pub fn decide(&self, client: IpAddr, key: AnswerKey, second: u64) -> Decision {
        if key.verified_source || self.settings.exempt.iter().any(|net| net.contains(&client)) {
            return Decision::Send;
        }
        let limit = match key.class {
            AnswerClass::Normal => self.settings.responses_per_second,
            AnswerClass::NxDomain => self.settings.nxdomains_per_second,
            AnswerClass::Error => self.settings.errors_per_second,
        };
        let count = self.count(self.bucket_hash(client, key), second);
        if count <= u64::from(limit) {
            return Decision::Send;
        }
        let over = count - u64::from(limit);
        let slip = u64::from(self.settings.slip);
        if slip > 0 && over.is_multiple_of(slip) {
            Decision::Limit(Limited::Slipped)
        } else {
            Decision::Limit(Limited::Dropped)
        }
    }

    /// The hash of (client network, class, name).
    fn bucket_hash(&self, client: IpAddr, key: AnswerKey) -> u64 {
        let network = match client {
            IpAddr::V4(v4) => IpNet::new(IpAddr::V4(v4), self.settings.ipv4_prefix_length),
            IpAddr::V6(v6) => IpNet::new(IpAddr::V6(v6), self.settings.ipv6_prefix_length),
        }
        .map(|net| net.trunc().network())
        .unwrap_or(client);
        let mut hasher = FxHasher::default();
        network.hash(&mut hasher);
        (key.class as u8).hash(&mut hasher);
        key.name.hash(&mut hasher);
        hasher.finish()
    }

    /// Counts one answer in the bucket of `hash` for `second`; returns the count so far.
    fn count(&self, hash: u64, second: u64) -> u64 {
        let slot = &self.buckets[(hash % self.buckets.len() as u64) as usize];
        let fingerprint = hash >> 48;
        let second = second & ((1 << SECOND_BITS) - 1);
        let tag = (fingerprint << (SECOND_BITS + COUNT_BITS)) | (second << COUNT_BITS);
        let mut current = slot.load(Ordering::Relaxed);
        loop {
            let count = if current >> COUNT_BITS == tag >> COUNT_BITS {
                (current & u64::from(u32::MAX))
                    .saturating_add(1)
                    .min(u64::from(u32::MAX))
            } else {
                // Another second, or another key in this bucket: a fresh count.
                1
            };
            match slot.compare_exchange_weak(
                current,
                tag | count,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return count,
                Err(actual) => current = actual,
            }
        }
    }
}

/// Turns the encoded reply in `reply` into its truncated form: the same header with TC set and
/// no records, and the question (RFC 1035 §4.1.1; what BIND and Knot send when they slip).
/// Leaves `reply` empty if it does not hold a question.
pub fn truncate(reply: &mut Vec<u8>) {
    let Some(question_end) = question_end(reply) else {
        reply.clear();
        return;
    };
    reply.truncate(question_end);
    reply[2] |= 0x02; // TC
    // One question; no answer, authority or additional records.
    reply[4..12].copy_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
}

/// Where the first question of `message` ends: its name is never compressed in our replies.
fn question_end(message: &[u8]) -> Option<usize> {
    if message.len() < 12 || u16::from_be_bytes([message[4], message[5]]) == 0 {
        return None;
    }
    let mut at = 12;
    loop {
        let len = usize::from(*message.get(at)?);
        if len == 0 {
            at += 1;
            break;
        }
        if len & 0xc0 != 0 {
            return None;
        }
        at += 1 + len;
    }
    let end = at + 4; // type and class
    (end <= message.len()).then_some(end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::name;

    fn limiter(responses_per_second: u32, slip: u32, exempt: &[&str]) -> Rrl {
        Rrl::new(RrlSettings {
            responses_per_second,
            nxdomains_per_second: 2,
            errors_per_second: 1,
            slip,
            ipv4_prefix_length: 24,
            ipv6_prefix_length: 56,
            exempt: exempt.iter().map(|n| n.parse().expect("a CIDR")).collect(),
            table_size: 1024,
        })
    }

    fn app() -> AnswerKey {
        AnswerKey::of(
            ResponseCode::NoError,
            Some((
                &LowerName::new(&name("app.gslb.example.com.")),
                RecordType::A,
            )),
        )
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    /// The decisions for `n` answers of `key` to `client` within one second.
    fn decisions(rrl: &Rrl, client: &str, key: AnswerKey, n: usize) -> Vec<Decision> {
        (0..n).map(|_| rrl.decide(ip(client), key, 7)).collect()
    }

    use Decision::{Limit, Send};
    use Limited::{Dropped, Slipped};

    #[test]
    fn past_the_limit_every_second_answer_slips_and_the_others_drop() {
        let rrl = limiter(3, 2, &[]);
        assert_eq!(
            decisions(&rrl, "192.0.2.1", app(), 7),
            [
                Send,
                Send,
                Send,
                Limit(Dropped),
                Limit(Slipped),
                Limit(Dropped),
                Limit(Slipped)
            ]
        );
        // The next second starts afresh.
        assert_eq!(rrl.decide(ip("192.0.2.1"), app(), 8), Send);
    }

    #[test]
    fn one_network_shares_a_bucket_and_others_keep_theirs() {
        let rrl = limiter(2, 0, &[]);
        assert_eq!(decisions(&rrl, "192.0.2.1", app(), 2), [Send, Send]);
        assert_eq!(
            rrl.decide(ip("192.0.2.200"), app(), 7),
            Limit(Dropped),
            "same /24"
        );
        assert_eq!(decisions(&rrl, "198.51.100.1", app(), 2), [Send, Send]);
        let v6 = limiter(1, 0, &[]);
        assert_eq!(v6.decide(ip("2001:db8:0:1::1"), app(), 7), Send);
        assert_eq!(
            v6.decide(ip("2001:db8:0:2::9"), app(), 7),
            Limit(Dropped),
            "same /56"
        );
    }

    #[test]
    fn names_types_and_classes_are_counted_apart() {
        let rrl = limiter(1, 0, &[]);
        let other = AnswerKey::of(
            ResponseCode::NoError,
            Some((
                &LowerName::new(&name("web.gslb.example.com.")),
                RecordType::A,
            )),
        );
        let aaaa = AnswerKey::of(
            ResponseCode::NoError,
            Some((
                &LowerName::new(&name("app.gslb.example.com.")),
                RecordType::AAAA,
            )),
        );
        for key in [app(), other, aaaa] {
            assert_eq!(rrl.decide(ip("192.0.2.1"), key, 7), Send, "{key:?}");
        }
        // NXDOMAIN for random names shares one bucket, with its own limit (2).
        let nx = |label: &str| {
            AnswerKey::of(
                ResponseCode::NXDomain,
                Some((&LowerName::new(&name(label)), RecordType::A)),
            )
        };
        assert_eq!(
            rrl.decide(ip("192.0.2.1"), nx("a.gslb.example.com."), 7),
            Send
        );
        assert_eq!(
            rrl.decide(ip("192.0.2.1"), nx("b.gslb.example.com."), 7),
            Send
        );
        assert_eq!(
            rrl.decide(ip("192.0.2.1"), nx("c.gslb.example.com."), 7),
            Limit(Dropped)
        );
        // Errors (limit 1), whatever the question.
        let refused = AnswerKey::of(ResponseCode::Refused, None);
        assert_eq!(refused.class, AnswerClass::Error);
        assert_eq!(rrl.decide(ip("192.0.2.1"), refused, 7), Send);
        assert_eq!(rrl.decide(ip("192.0.2.1"), refused, 7), Limit(Dropped));
    }

    #[test]
    fn exempt_networks_are_never_limited() {
        let rrl = limiter(1, 0, &["192.0.2.0/24"]);
        assert!(
            decisions(&rrl, "192.0.2.9", app(), 50)
                .iter()
                .all(|d| *d == Send)
        );
        assert_eq!(
            decisions(&rrl, "198.51.100.9", app(), 2),
            [Send, Limit(Dropped)]
        );
    }

    #[test]
    fn a_slipped_reply_keeps_header_and_question_with_tc_set() {
        use hickory_proto::op::{Message, MessageType, OpCode, Query};
        let mut message = Message::new(0x4242, MessageType::Response, OpCode::Query);
        message.add_query(Query::query(name("app.gslb.example.com."), RecordType::A));
        message.metadata.authoritative = true;
        message.add_answer(hickory_proto::rr::Record::from_rdata(
            name("app.gslb.example.com."),
            30,
            hickory_proto::rr::RData::A(hickory_proto::rr::rdata::A::new(192, 0, 2, 1)),
        ));
        let mut reply = message.to_vec().expect("encodes");
        truncate(&mut reply);
        let slipped = Message::from_vec(&reply).expect("parses");
        assert_eq!(slipped.metadata.id, 0x4242);
        assert!(slipped.metadata.truncation && slipped.metadata.authoritative);
        assert_eq!(slipped.queries, message.queries);
        assert!(slipped.answers.is_empty() && slipped.additionals.is_empty());

        let mut no_question = vec![0u8; 12];
        truncate(&mut no_question);
        assert!(no_question.is_empty(), "nothing to send without a question");
    }
}
