//! gslbd's hickory-server `RequestHandler`: UDP when the fast path is off (`server.udp_fast_path
//! = false`). TCP is gslbd's own (`tcp`); `tests/differential.rs` serves this handler over
//! hickory-server's TCP too, as the reference gslbd's TCP bytes are held to.

use std::sync::Arc;

use arc_swap::ArcSwap;
use hickory_proto::op::{Header, HeaderCounts, MessageType, Metadata, OpCode, ResponseCode};
use hickory_proto::rr::RecordType;
use hickory_server::net::runtime::Time;
use hickory_server::net::xfer::Protocol;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use tracing::debug;

use super::rrl::{AnswerKey, Decision, Limited, Rrl};
use super::{Transport, answer, encode, message, time_bucket};
use crate::metrics::{Metrics, RateLimitCounts, qtype_index, rcode_index};
use crate::snapshot::Snapshot;

/// Answers from the current snapshot; UDP answers go through `rrl` when it is on.
#[derive(Clone)]
pub struct Handler {
    store: Arc<ArcSwap<Snapshot>>,
    metrics: Arc<Metrics>,
    rrl: Option<Arc<Rrl>>,
}

impl Handler {
    pub fn new(
        store: Arc<ArcSwap<Snapshot>>,
        metrics: Arc<Metrics>,
        rrl: Option<Arc<Rrl>>,
    ) -> Self {
        Self {
            store,
            metrics,
            rrl,
        }
    }

    /// Whether `response`, a UDP answer to `request`, goes out as is, truncated (then made so)
    /// or not at all (TCP answers are never limited: they cannot be spoofed).
    fn rate_limit(&self, request: &Request, response: &mut answer::Response<'_>) -> Decision {
        let Some(rrl) = self
            .rrl
            .as_deref()
            .filter(|_| request.protocol() == Protocol::Udp)
        else {
            return Decision::Send;
        };
        let key = AnswerKey::of(response.rate_limit_rcode(), message::question(request))
            .from_verified_source(response.verified_source);
        let decision = rrl.decide(request.src().ip(), key, rrl.second());
        if let Decision::Limit(what) = decision {
            let mut counts = RateLimitCounts::default();
            counts.add(key.class, what);
            self.metrics.dns.add_rate_limited(&counts);
            if what == Limited::Slipped {
                // As the fast path's `rrl::truncate`: the header with TC, the question only.
                *response = response.truncated();
                response.edns = None;
            }
        }
        decision
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let started = std::time::Instant::now();
        let snapshot = self.store.load_full();
        let bucket = time_bucket(snapshot.time_bucket_ms);
        let Some(mut response) = answer::respond(&snapshot, request, request.src().ip(), bucket)
        else {
            return no_response(request);
        };
        if self.rate_limit(request, &mut response) == Decision::Limit(Limited::Dropped) {
            return no_response(request);
        }
        let transport = match request.protocol() {
            Protocol::Udp => Transport::Udp,
            _ => Transport::Tcp,
        };
        let qtype = message::question(request).map_or(RecordType::Unknown(0), |(_, t)| t);
        self.metrics.dns.add_answered(
            &snapshot,
            transport,
            (
                qtype_index(qtype),
                rcode_index(response.metadata.response_code),
            ),
            response.served,
            started.elapsed(),
        );
        if request.protocol() == Protocol::Udp {
            encode::fit_udp(&mut response, &request.queries);
        }
        let addresses = response.address_records(None);
        let message = encode::message(&response, &request.queries, &addresses);
        match response_handle.send_response(message).await {
            Ok(info) => info,
            Err(error) => {
                debug!(%error, src = %request.src(), "cannot send response");
                no_response(request)
            }
        }
    }
}

/// What hickory-server records for a request we did not answer.
fn no_response(request: &Request) -> ResponseInfo {
    let mut metadata = Metadata::new(request.metadata.id, MessageType::Response, OpCode::Query);
    metadata.response_code = ResponseCode::ServFail;
    ResponseInfo::from(Header {
        metadata,
        counts: HeaderCounts::default(),
    })
}
