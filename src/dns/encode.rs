//! Turning a [`Response`] into wire bytes, exactly as hickory-server's `ResponseHandle` does for
//! the same response, so that the UDP fast path and hickory's path send the same bytes.

use hickory_proto::op::{Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};
use hickory_server::zone_handler::{MessageResponse, MessageResponseBuilder, Queries};

use super::answer::Response;
use hickory_proto::rr::Record;

/// The hickory message for `response`, borrowing the request's question section.
pub fn message<'q, 's: 'q>(
    response: &'q Response<'s>,
    queries: &'q Queries,
) -> MessageResponse<
    'q,
    's,
    impl Iterator<Item = &'s Record> + Send + 's + use<'q, 's>,
    impl Iterator<Item = &'s Record> + Send + 's + use<'q, 's>,
    impl Iterator<Item = &'s Record> + Send + 's + use<'q, 's>,
    impl Iterator<Item = &'s Record> + Send + 's + use<'q, 's>,
> {
    let mut builder = MessageResponseBuilder::new(queries, None);
    if let Some(edns) = &response.edns {
        builder.edns(edns);
    }
    builder.build(
        response.metadata,
        response.answers.clone(),
        response.authorities.clone(),
        std::iter::empty(),
        response.additionals.clone(),
    )
}

/// Encodes `response` for UDP into `out` (cleared first). Records that do not fit the
/// requester's size are left out and TC is set (RFC 1035 §4.2.1, RFC 6891 §7).
pub fn encode_udp(response: &Response<'_>, queries: &Queries, out: &mut Vec<u8>) {
    let max_size = response.edns.as_ref().map_or(512, |e| e.max_payload());
    out.clear();
    let mut encoder = BinEncoder::new(out);
    encoder.set_max_size(max_size);
    if message(response, queries)
        .destructive_emit(&mut encoder)
        .is_ok()
    {
        return;
    }
    // As hickory does when encoding fails: a bare SERVFAIL.
    out.clear();
    let mut encoder = BinEncoder::new(out);
    encoder.set_max_size(512);
    let mut metadata = Metadata::new(response.metadata.id, MessageType::Response, OpCode::Query);
    metadata.response_code = ResponseCode::ServFail;
    let header = Header {
        metadata,
        counts: HeaderCounts::default(),
    };
    if header.emit(&mut encoder).is_err() {
        out.clear();
    }
}
