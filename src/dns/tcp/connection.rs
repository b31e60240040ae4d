//! One DNS-over-TCP connection (RFC 7766): 2-byte length framing, queries answered in the order
//! they came (pipelined ones included), the connection kept for more until it idles out.
//!
//! What a client can make it hold is bounded: the read buffer is small and fixed, a query is
//! kept up to [`MAX_QUERY`] bytes and grows only as its bytes arrive (never from the length a
//! client announces), a query must arrive whole within the message timeout of its first byte,
//! an answer must be taken within it, and a connection waits for the next query no longer
//! than the idle timeout.

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use super::{Closed, Shared};
use crate::dns::message::{self, MAX_QUERY, Outcome};
use crate::dns::{DropReason, Transport, time_bucket};

/// Bytes read from the socket at a time: several pipelined queries, or most of one.
const READ_BUFFER: usize = 512;
/// Answer buffers kept between queries up to this size (every common answer fits).
const KEPT_ANSWER_CAPACITY: usize = 4096;

/// Serves `stream` until it closes, idles out or the daemon stops; says why it ended.
pub(super) async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    stop: &CancellationToken,
) -> Closed {
    let mut connection = Connection {
        stream: BufReader::with_capacity(READ_BUFFER, stream),
        peer,
        query: Vec::new(),
        answer: Vec::new(),
        frame: Vec::new(),
    };
    tokio::select! {
        () = stop.cancelled() => Closed::Shutdown,
        closed = connection.exchange(shared) => closed,
    }
}

struct Connection {
    stream: BufReader<TcpStream>,
    peer: SocketAddr,
    /// The query being read; its capacity stays for the next one (at most `MAX_QUERY`).
    query: Vec<u8>,
    answer: Vec<u8>,
    /// The answer with its length prefix, written at once (one segment with TCP_NODELAY).
    frame: Vec<u8>,
}

impl Connection {
    /// Reads queries and writes answers until the connection is done.
    async fn exchange(&mut self, shared: &Shared) -> Closed {
        let settings = &shared.settings;
        let mut answered: u32 = 0;
        loop {
            if settings
                .max_queries_per_connection
                .is_some_and(|max| answered >= max)
            {
                return Closed::QueryLimit;
            }
            // RFC 7766 §6.2.3: idle connections are closed, after seconds, not minutes.
            match timeout(settings.idle_timeout, self.stream.fill_buf()).await {
                Err(_) => return Closed::Idle,
                Ok(Err(_)) => return Closed::Error,
                Ok(Ok([])) => return Closed::Peer,
                Ok(Ok(_)) => {}
            }
            // From its first byte, the query must arrive whole in time: a client that trickles
            // bytes does not hold the connection.
            match timeout(settings.message_timeout, self.read_query()).await {
                Err(_) => return Closed::ReadTimeout,
                Ok(Err(error)) if error.kind() == io::ErrorKind::UnexpectedEof => {
                    return Closed::Peer;
                }
                Ok(Err(_)) => return Closed::Error,
                Ok(Ok(())) => {}
            }
            answered = answered.saturating_add(1);
            if !self.answer_query(shared) {
                continue;
            }
            match timeout(settings.message_timeout, self.stream.write_all(&self.frame)).await {
                Err(_) => return Closed::WriteTimeout,
                Ok(Err(_)) => return Closed::Error,
                Ok(Ok(())) => {}
            }
            // A large answer's buffers are not kept while the connection waits for more.
            if self.frame.capacity() > KEPT_ANSWER_CAPACITY {
                self.answer = Vec::new();
                self.frame = Vec::new();
            }
        }
    }

    /// Reads one length-prefixed query into `self.query`, keeping at most `MAX_QUERY` bytes.
    async fn read_query(&mut self) -> io::Result<()> {
        let length = usize::from(self.stream.read_u16().await?);
        let kept = length.min(MAX_QUERY);
        self.query.clear();
        self.read_body(kept, true).await?;
        // Longer than any query: the rest is read and dropped, as a datagram is cut.
        self.read_body(length - kept, false).await
    }

    /// Reads `count` bytes through the read buffer, appended to `self.query` if `keep`,
    /// dropped otherwise. The query grows by what arrives (never by what was announced): a
    /// client announcing 64 KiB and sending ten bytes costs ten bytes.
    async fn read_body(&mut self, mut count: usize, keep: bool) -> io::Result<()> {
        while count > 0 {
            let available = self.stream.fill_buf().await?;
            if available.is_empty() {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            let taken = available.len().min(count);
            if keep {
                self.query.reserve_exact(taken);
                self.query.extend_from_slice(&available[..taken]);
            }
            self.stream.consume(taken);
            count -= taken;
        }
        Ok(())
    }

    /// Answers `self.query` into `self.frame`, counting it; false when nothing is to be sent.
    fn answer_query(&mut self, shared: &Shared) -> bool {
        let started = Instant::now();
        let snapshot = shared.store.load();
        let bucket = time_bucket(snapshot.time_bucket_ms);
        let outcome = message::answer(
            &snapshot,
            &self.query,
            self.peer,
            bucket,
            Transport::Tcp,
            &mut self.answer,
        );
        let dns = &shared.metrics.dns;
        let Outcome::Answered {
            qtype,
            rcode,
            served,
            ..
        } = outcome
        else {
            dns.add_dropped(DropReason::NotAQuery, 1);
            return false;
        };
        dns.add_answered(
            &snapshot,
            Transport::Tcp,
            (qtype, rcode),
            served,
            started.elapsed(),
        );
        // RFC 7766 §8: the 2-byte length, then the message. An answer is at most 65535 bytes
        // (the encoder's limit for TCP).
        let length = u16::try_from(self.answer.len()).unwrap_or(u16::MAX);
        self.frame.clear();
        self.frame.extend_from_slice(&length.to_be_bytes());
        self.frame.extend_from_slice(&self.answer);
        true
    }
}
