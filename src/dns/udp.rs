//! The UDP fast path: one blocking thread per SO_REUSEPORT socket, queries taken and answers
//! sent in batches (recvmmsg/sendmmsg), no task spawn and no channel per query. Each datagram
//! goes through [`message::answer`] (hickory-proto's parsing and encoding, gslbd's answer), so
//! the bytes are those hickory-server would send (see `tests/differential.rs`).

use std::io::{self, IoSlice, IoSliceMut};
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use nix::errno::Errno;
use nix::sys::socket::{MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg, sendmmsg};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::answer::Served;
pub use super::message::Outcome;
use super::message::{self, MAX_QUERY};
use super::rrl::{self, Decision, Limited, Rrl};
use super::{DropReason, Transport, time_bucket};
use crate::metrics::{AnswerCounts, Metrics, QueryCounts, RateLimitCounts};
use crate::snapshot::Snapshot;

/// How often a blocked receive wakes up to look for shutdown.
const WAKE_INTERVAL: Duration = Duration::from_millis(200);
/// Datagrams taken per receive call.
const BATCH: usize = 32;

/// An answering thread: its handle, to join it once stopped, and `ended`, which completes when
/// the thread ends for any reason (its sender is dropped then, panics included), for a
/// supervisor that must not block on a join.
pub struct UdpThread {
    pub handle: JoinHandle<()>,
    pub ended: oneshot::Receiver<()>,
}

/// Starts one answering thread for `socket`; answers go through `rrl` when it is on.
pub fn spawn(
    socket: UdpSocket,
    store: Arc<ArcSwap<Snapshot>>,
    metrics: Arc<Metrics>,
    rrl: Option<Arc<Rrl>>,
    stop: CancellationToken,
) -> io::Result<UdpThread> {
    socket.set_nonblocking(false)?;
    socket.set_read_timeout(Some(WAKE_INTERVAL))?;
    let (ending, ended) = oneshot::channel::<()>();
    let handle = std::thread::Builder::new()
        .name("gslbd-udp".into())
        .spawn(move || {
            let _ending = ending;
            serve(&socket, &store, &metrics, rrl.as_deref(), &stop);
        })?;
    Ok(UdpThread { handle, ended })
}

fn serve(
    socket: &UdpSocket,
    store: &ArcSwap<Snapshot>,
    metrics: &Metrics,
    rrl: Option<&Rrl>,
    stop: &CancellationToken,
) {
    let fd = socket.as_raw_fd();
    let mut queries = vec![[0u8; MAX_QUERY]; BATCH];
    let mut answers: Vec<Vec<u8>> = (0..BATCH).map(|_| Vec::with_capacity(1232)).collect();
    let mut received: Vec<(usize, SockaddrStorage)> = Vec::with_capacity(BATCH);
    let mut replies: Vec<(usize, SockaddrStorage)> = Vec::with_capacity(BATCH);
    let mut recv_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let mut send_headers = MultiHeaders::<SockaddrStorage>::preallocate(BATCH, None);
    let per_service = metrics.dns.per_service();
    let mut served: Vec<Served> = Vec::with_capacity(if per_service { BATCH } else { 0 });

    while !stop.is_cancelled() {
        received.clear();
        {
            let mut slices: Vec<[IoSliceMut<'_>; 1]> = queries
                .iter_mut()
                .map(|q| [IoSliceMut::new(&mut q[..])])
                .collect();
            // Blocks for the first datagram (up to WAKE_INTERVAL), then takes what is queued.
            match recvmmsg(
                fd,
                &mut recv_headers,
                slices.iter_mut(),
                MsgFlags::MSG_WAITFORONE,
                None,
            ) {
                Ok(messages) => received
                    .extend(messages.filter_map(|m| Some((m.bytes.min(MAX_QUERY), m.address?)))),
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(error) => {
                    warn!(%error, "udp receive failed");
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            }
        }

        let snapshot = store.load();
        let bucket = time_bucket(snapshot.time_bucket_ms);
        replies.clear();
        let mut counts: QueryCounts = Default::default();
        let mut answer_counts = AnswerCounts::default();
        served.clear();
        let mut dropped = 0;
        let mut rate_limited = RateLimitCounts::default();
        let second = rrl.map_or(0, Rrl::second);
        let durations = metrics.dns.answer_durations();
        for (slot, (len, address)) in received.iter().enumerate() {
            let Some(src) = socket_addr(address) else {
                continue;
            };
            let query = &queries[slot][..*len];
            let started = std::time::Instant::now();
            let outcome = answer_datagram(&snapshot, query, src, bucket, &mut answers[slot]);
            durations.observe(started.elapsed().as_secs_f64());
            match outcome {
                Outcome::Answered {
                    qtype,
                    rcode,
                    served: service,
                    key,
                } => {
                    let decision =
                        rrl.map_or(Decision::Send, |rrl| rrl.decide(src.ip(), key, second));
                    if let Decision::Limit(mut what) = decision {
                        if what == Limited::Slipped {
                            rrl::truncate(&mut answers[slot]);
                            if answers[slot].is_empty() {
                                // No question to send back (FORMERR): nothing to slip.
                                what = Limited::Dropped;
                            }
                        }
                        rate_limited.add(key.class, what);
                        if what == Limited::Dropped {
                            continue;
                        }
                    }
                    counts[qtype][rcode] += 1;
                    if let Some(service) = service {
                        answer_counts.add(&service);
                        if per_service {
                            served.push(service);
                        }
                    }
                    replies.push((slot, *address));
                }
                Outcome::Dropped => dropped += 1,
            }
        }
        send_all(fd, &mut send_headers, &answers, &replies);
        durations.flush();
        metrics.dns.add_queries(Transport::Udp, &counts);
        metrics.dns.add_answers(&answer_counts);
        metrics.dns.add_service_answers(&snapshot, &served);
        metrics.dns.add_dropped(DropReason::NotAQuery, dropped);
        metrics.dns.add_rate_limited(&rate_limited);
    }
}

/// Sends every reply, retrying what a partial sendmmsg left.
fn send_all(
    fd: i32,
    headers: &mut MultiHeaders<SockaddrStorage>,
    answers: &[Vec<u8>],
    replies: &[(usize, SockaddrStorage)],
) {
    let mut pending = replies;
    while !pending.is_empty() {
        let slices: Vec<[IoSlice<'_>; 1]> = pending
            .iter()
            .map(|(slot, _)| [IoSlice::new(&answers[*slot])])
            .collect();
        let addresses: Vec<Option<SockaddrStorage>> =
            pending.iter().map(|(_, address)| Some(*address)).collect();
        match sendmmsg(
            fd,
            headers,
            slices.iter(),
            &addresses,
            [],
            MsgFlags::empty(),
        ) {
            Ok(results) => {
                let sent = results.count().max(1);
                pending = &pending[sent.min(pending.len())..];
            }
            Err(Errno::EINTR) => continue,
            Err(error) => {
                // The first message failed (full buffers, an unreachable client): skip it,
                // the client will retry.
                tracing::debug!(%error, "udp send failed");
                pending = &pending[1..];
            }
        }
    }
}

fn socket_addr(address: &SockaddrStorage) -> Option<SocketAddr> {
    if let Some(v4) = address.as_sockaddr_in() {
        return Some(SocketAddr::V4(SocketAddrV4::from(*v4)));
    }
    address
        .as_sockaddr_in6()
        .map(|v6| SocketAddr::V6(SocketAddrV6::from(*v6)))
}

/// Answers one datagram into `out`; returns false when nothing is to be sent.
pub fn answer_packet(
    snapshot: &Snapshot,
    packet: &[u8],
    src: SocketAddr,
    bucket: u64,
    out: &mut Vec<u8>,
) -> bool {
    answer_datagram(snapshot, packet, src, bucket, out) != Outcome::Dropped
}

/// Answers one datagram into `out`, saying what it was.
pub fn answer_datagram(
    snapshot: &Snapshot,
    packet: &[u8],
    src: SocketAddr,
    bucket: u64,
    out: &mut Vec<u8>,
) -> Outcome {
    message::answer(snapshot, packet, src, bucket, Transport::Udp, out)
}
