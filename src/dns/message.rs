//! One DNS message in, its answer's bytes out: the common query by the quick path
//! ([`quick`]), any other parsed (hickory-proto), answered ([`answer::respond`]) and encoded
//! ([`encode::encode`]). Both of gslbd's own transports, the UDP
//! fast path and TCP, go through here, so they differ only where the transport must: the size
//! of the answer, and what happens to a message with QR set.

use std::net::SocketAddr;

use hickory_proto::op::{Header, ResponseCode};
use hickory_proto::rr::{LowerName, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncoder};
use hickory_server::net::xfer::Protocol;
use hickory_server::server::Request;
use hickory_server::zone_handler::{MessageRequest, MessageResponseBuilder, Queries};

use super::answer::Served;
use super::rrl::AnswerKey;
use super::{Transport, answer, encode, quick};
use crate::metrics::{qtype_index, rcode_index};
use crate::snapshot::Snapshot;

/// Largest message kept: no DNS query comes near it. A longer datagram is cut here; a longer
/// TCP message is read to its end and cut alike, so both transports answer it the same way.
pub const MAX_QUERY: usize = 4096;

/// What became of a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A reply is in `out`; counter indexes of its query type and response code, the service
    /// it answered about, and the rate-limit bucket it counts in.
    Answered {
        qtype: usize,
        rcode: usize,
        served: Option<Served>,
        key: AnswerKey,
    },
    /// Nothing to send.
    Dropped,
}

/// Answers one message that came over `transport` into `out`, saying what it was: the common
/// query by the quick path ([`quick`]), any other by the general one.
pub fn answer(
    snapshot: &Snapshot,
    packet: &[u8],
    src: SocketAddr,
    bucket: u64,
    transport: Transport,
    out: &mut Vec<u8>,
) -> Outcome {
    if let Some(outcome) = quick::answer(snapshot, packet, src, bucket, out) {
        return outcome;
    }
    answer_general(snapshot, packet, src, bucket, transport, out)
}

/// [`answer`] by the general path: hickory-proto parses the message, [`answer::respond`]
/// answers it, [`encode::encode`] writes the reply.
pub fn answer_general(
    snapshot: &Snapshot,
    packet: &[u8],
    src: SocketAddr,
    bucket: u64,
    transport: Transport,
    out: &mut Vec<u8>,
) -> Outcome {
    // Shorter than a header: not DNS.
    if packet.len() < 12 {
        return Outcome::Dropped;
    }
    // QR=1 over UDP is never answered, not even with FORMERR: that is how reflection loops
    // start. Over TCP the source is real; hickory-server's rule stays there: a response that
    // parses gets nothing (`answer::respond`), one that does not gets FORMERR.
    if transport == Transport::Udp && packet[2] & 0x80 != 0 {
        return Outcome::Dropped;
    }
    let protocol = match transport {
        Transport::Udp => Protocol::Udp,
        Transport::Tcp => Protocol::Tcp,
    };
    match Request::from_bytes(packet.to_vec(), src, protocol) {
        Ok(request) => match answer::respond(snapshot, &request, src.ip(), bucket) {
            Some(response) => {
                encode::encode(&response, &request.queries, transport, out);
                if out.is_empty() {
                    return Outcome::Dropped;
                }
                let question = question(&request);
                Outcome::Answered {
                    qtype: qtype_index(question.map_or(RecordType::Unknown(0), |(_, t)| t)),
                    rcode: rcode_index(response.metadata.response_code),
                    served: response.served,
                    key: AnswerKey::of(response.rate_limit_rcode(), question)
                        .from_verified_source(response.verified_source),
                }
            }
            None => Outcome::Dropped,
        },
        Err(_) if form_error(packet, out) => Outcome::Answered {
            qtype: qtype_index(RecordType::Unknown(0)),
            rcode: rcode_index(ResponseCode::FormErr),
            served: None,
            key: AnswerKey::of(ResponseCode::FormErr, None),
        },
        Err(_) => Outcome::Dropped,
    }
}

/// The request's (first) question: its name and type, what answers are counted and
/// rate-limited by.
pub fn question(request: &MessageRequest) -> Option<(&LowerName, RecordType)> {
    request
        .queries
        .queries()
        .first()
        .map(|q| (q.name(), q.query_type()))
}

/// FORMERR for a message whose header parses but whose body does not, as hickory-server sends
/// it (the header alone: 12 bytes, whatever the transport's size limit).
fn form_error(packet: &[u8], out: &mut Vec<u8>) -> bool {
    let Ok(header) = Header::read(&mut BinDecoder::new(packet)) else {
        return false;
    };
    let Ok(queries) = Queries::read(&mut BinDecoder::new(&[]), 0) else {
        return false;
    };
    out.clear();
    let mut encoder = BinEncoder::new(out);
    encoder.set_max_size(512);
    MessageResponseBuilder::new(&queries, None)
        .error_msg(&header.metadata, ResponseCode::FormErr)
        .destructive_emit(&mut encoder)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::{Message, MessageType, OpCode, Query};
    use hickory_proto::rr::Name;

    use super::*;
    use crate::fixtures;

    const SERVICES: &str = r#"
        services = [
            { name = "big.gslb.example.com", strategy = "round-robin",
              targets = { eu = ["2001:db8::1", "2001:db8::2", "2001:db8::3", "2001:db8::4",
                                "2001:db8::5", "2001:db8::6", "2001:db8::7", "2001:db8::8",
                                "2001:db8::9", "2001:db8::a", "2001:db8::b", "2001:db8::c",
                                "2001:db8::d", "2001:db8::e", "2001:db8::f", "2001:db8::10",
                                "2001:db8::11", "2001:db8::12", "2001:db8::13", "2001:db8::14",
                                "2001:db8::15", "2001:db8::16", "2001:db8::17", "2001:db8::18"] } },
        ]
    "#;

    fn query(flags: impl FnOnce(&mut Message)) -> Vec<u8> {
        let mut message = Message::new(7, MessageType::Query, OpCode::Query);
        message.add_query(Query::query(
            Name::from_ascii("big.gslb.example.com").expect("name"),
            RecordType::AAAA,
        ));
        flags(&mut message);
        message.to_vec().expect("encodes")
    }

    fn answer_over(transport: Transport, packet: &[u8]) -> (Outcome, Vec<u8>) {
        let snapshot = Snapshot::from_model(&fixtures::config(SERVICES).model, 1232);
        let src = SocketAddr::from(([192, 0, 2, 9], 5300));
        let mut out = Vec::new();
        let outcome = answer(&snapshot, packet, src, 3, transport, &mut out);
        (outcome, out)
    }

    #[test]
    fn tcp_carries_the_whole_answer_where_udp_truncates_to_512() {
        let packet = query(|_| {});
        let (_, udp) = answer_over(Transport::Udp, &packet);
        let (_, tcp) = answer_over(Transport::Tcp, &packet);
        let udp = Message::from_vec(&udp).expect("parses");
        let tcp = Message::from_vec(&tcp).expect("parses");
        assert!(udp.metadata.truncation);
        assert!(!tcp.metadata.truncation);
        assert_eq!(tcp.answers.len(), 24);
    }

    #[test]
    fn a_broken_message_with_qr_set_is_dropped_over_udp_and_formerr_over_tcp() {
        let mut packet = query(|m| m.metadata.message_type = MessageType::Response);
        packet.truncate(packet.len() - 3);
        assert_eq!(answer_over(Transport::Udp, &packet).0, Outcome::Dropped);
        let (outcome, out) = answer_over(Transport::Tcp, &packet);
        assert!(matches!(outcome, Outcome::Answered { .. }));
        let reply = Message::from_vec(&out).expect("parses");
        assert_eq!(reply.metadata.response_code, ResponseCode::FormErr);
    }

    #[test]
    fn a_response_that_parses_is_never_answered() {
        let packet = query(|m| m.metadata.message_type = MessageType::Response);
        for transport in [Transport::Udp, Transport::Tcp] {
            assert_eq!(answer_over(transport, &packet).0, Outcome::Dropped);
        }
        assert_eq!(
            answer_over(Transport::Tcp, &packet[..11]).0,
            Outcome::Dropped
        );
    }
}
