//! The gossip socket, authenticated: every datagram is sealed with the cluster keyring, and
//! messages (up to 64 fragments) are cut into fragments of at most `FRAGMENT_PAYLOAD` bytes,
//! so no datagram relies on IP fragmentation across a WAN. Datagrams that do not open are
//! dropped and counted by reason.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tracing::debug;

use super::keys::{Keyring, Rejection, SEAL_OVERHEAD};
use crate::metrics::Metrics;

/// Plaintext bytes per fragment: sealed datagrams stay below a 1280-byte IPv6 MTU.
pub const FRAGMENT_PAYLOAD: usize = 1200;
/// Fragment header: message id (8), index (2), count (2).
const FRAGMENT_HEADER: usize = 12;
/// Fragments per message, at most.
pub const MAX_FRAGMENTS: usize = 64;
/// Largest message.
pub const MAX_MESSAGE: usize = MAX_FRAGMENTS * FRAGMENT_PAYLOAD;
/// Receive buffer asked of the kernel: a node catching up receives bursts of answers.
const RECEIVE_BUFFER: usize = 4 * 1024 * 1024;
/// Largest datagram accepted.
const MAX_DATAGRAM: usize = FRAGMENT_PAYLOAD + FRAGMENT_HEADER + SEAL_OVERHEAD;
/// Incomplete messages kept for reassembly, and for how long.
const MAX_PENDING: usize = 256;
const PENDING_TTL: Duration = Duration::from_secs(5);

/// Traffic counters, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct TransportStats {
    pub datagrams_sent: AtomicU64,
    pub bytes_sent: AtomicU64,
    pub datagrams_received: AtomicU64,
    pub bytes_received: AtomicU64,
    pub rejected_malformed: AtomicU64,
    pub rejected_unknown_key: AtomicU64,
    pub rejected_bad_tag: AtomicU64,
    pub rejected_undecodable: AtomicU64,
    /// Also counted here when set.
    pub metrics: Option<Arc<Metrics>>,
}

impl TransportStats {
    fn reject(&self, reason: Rejection) {
        if let Some(metrics) = &self.metrics {
            metrics.gossip.packet_rejected(reason);
        }
        let counter = match reason {
            Rejection::Malformed => &self.rejected_malformed,
            Rejection::UnknownKey => &self.rejected_unknown_key,
            Rejection::BadTag => &self.rejected_bad_tag,
            Rejection::Undecodable => &self.rejected_undecodable,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Datagrams dropped for failing authentication (unknown key or bad tag).
    pub fn rejected_auth(&self) -> u64 {
        self.rejected_unknown_key.load(Ordering::Relaxed)
            + self.rejected_bad_tag.load(Ordering::Relaxed)
    }
}

/// Whether traffic with a peer may pass, both ways. Production passes everything
/// ([`OpenNetwork`]); tests cut links between in-process nodes with their own filter.
pub trait PeerFilter: Send + Sync {
    fn allows(&self, peer: SocketAddr) -> bool;
}

/// Every peer passes.
#[derive(Clone, Copy, Debug, Default)]
pub struct OpenNetwork;

impl PeerFilter for OpenNetwork {
    fn allows(&self, _peer: SocketAddr) -> bool {
        true
    }
}

/// A message id start that differs between restarts, so a restarted peer's fragments are not
/// mixed with its previous life's.
fn rand_start() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    nanos.rotate_left(17) ^ u64::from(std::process::id())
}

struct Pending {
    first_seen: Instant,
    parts: Vec<Option<Vec<u8>>>,
    received: usize,
}

/// Messages whose fragments are still arriving, by sender and message id: the receiving
/// side's only state, kept apart from the socket so that opening a datagram is a pure step
/// (`fuzz/fuzz_targets/gossip_datagram.rs` drives it without sockets).
#[derive(Default)]
pub struct Reassembly {
    pending: HashMap<(SocketAddr, u64), Pending>,
}

impl Reassembly {
    /// Opens one received datagram in place and takes its fragment; returns a whole message
    /// when its last fragment arrives. `now` dates fragments for `PENDING_TTL`.
    pub fn accept(
        &mut self,
        keyring: &Keyring,
        datagram: &mut [u8],
        from: SocketAddr,
        now: Instant,
    ) -> Result<Option<Vec<u8>>, Rejection> {
        if datagram.len() > MAX_DATAGRAM {
            return Err(Rejection::Malformed);
        }
        let fragment = keyring.open(datagram)?;
        if fragment.len() < FRAGMENT_HEADER {
            return Err(Rejection::Malformed);
        }
        let id = u64::from_be_bytes(fragment[..8].try_into().map_err(|_| Rejection::Malformed)?);
        let index = usize::from(u16::from_be_bytes([fragment[8], fragment[9]]));
        let count = usize::from(u16::from_be_bytes([fragment[10], fragment[11]]));
        let body = fragment[FRAGMENT_HEADER..].to_vec();
        if count == 0 || index >= count || count > MAX_FRAGMENTS {
            return Err(Rejection::Malformed);
        }
        if count == 1 {
            return Ok(Some(body));
        }
        self.pending
            .retain(|_, p| now.duration_since(p.first_seen) < PENDING_TTL);
        if self.pending.len() >= MAX_PENDING && !self.pending.contains_key(&(from, id)) {
            return Ok(None);
        }
        let entry = self.pending.entry((from, id)).or_insert_with(|| Pending {
            first_seen: now,
            parts: vec![None; count],
            received: 0,
        });
        if entry.parts.len() != count {
            return Ok(None);
        }
        if entry.parts[index].is_none() {
            entry.parts[index] = Some(body);
            entry.received += 1;
        }
        if entry.received < count {
            return Ok(None);
        }
        Ok(self
            .pending
            .remove(&(from, id))
            .map(|done| done.parts.into_iter().flatten().flatten().collect()))
    }

    /// Messages waiting for fragments (never more than `MAX_PENDING`).
    pub fn pending_messages(&self) -> usize {
        self.pending.len()
    }
}

/// The sealed gossip socket.
pub struct SealedSocket {
    socket: tokio::net::UdpSocket,
    keyring: Arc<Keyring>,
    stats: Arc<TransportStats>,
    peers: Arc<dyn PeerFilter>,
    next_message: u64,
    sealed: Vec<u8>,
    recv: Vec<u8>,
    reassembly: Reassembly,
}

impl SealedSocket {
    /// Binds `listen` (UDP).
    pub fn bind(
        listen: SocketAddr,
        keyring: Arc<Keyring>,
        stats: Arc<TransportStats>,
        peers: Arc<dyn PeerFilter>,
    ) -> std::io::Result<Self> {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(listen),
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )?;
        // The kernel may cap it (net.core.rmem_max): best effort.
        let _ = socket.set_recv_buffer_size(RECEIVE_BUFFER);
        socket.set_nonblocking(true)?;
        socket.bind(&listen.into())?;
        let socket = tokio::net::UdpSocket::from_std(socket.into())?;
        Ok(Self {
            socket,
            keyring,
            stats,
            peers,
            next_message: rand_start(),
            sealed: Vec::new(),
            recv: vec![0u8; MAX_DATAGRAM + 1],
            reassembly: Reassembly::default(),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    fn blocked(&self, peer: &SocketAddr) -> bool {
        !self.peers.allows(*peer)
    }

    /// Takes one datagram; returns a whole message when its last fragment arrives.
    fn accept(&mut self, len: usize, from: SocketAddr) -> Option<Vec<u8>> {
        let datagram = &mut self.recv[..len];
        match self
            .reassembly
            .accept(&self.keyring, datagram, from, Instant::now())
        {
            Ok(message) => message,
            Err(reason) => {
                self.stats.reject(reason);
                debug!(%from, reason = reason.as_str(), "gossip datagram rejected");
                None
            }
        }
    }

    /// Counts a reassembled message that does not decode.
    pub fn undecodable(&self, from: SocketAddr) {
        self.stats.reject(Rejection::Undecodable);
        debug!(%from, "gossip message does not decode");
    }

    /// Sends one message, sealed, in as many fragments as it needs; a message over
    /// [`MAX_MESSAGE`] is not sent. Send errors are the failure detector's business.
    pub async fn send(&mut self, to: SocketAddr, message: &[u8]) {
        if self.blocked(&to) {
            return;
        }
        if message.len() > MAX_MESSAGE {
            debug!(%to, bytes = message.len(), "gossip message too large, not sent");
            return;
        }
        let id = self.next_message;
        self.next_message = self.next_message.wrapping_add(1);
        let count = message.len().div_ceil(FRAGMENT_PAYLOAD).max(1);
        let mut sent = 0;
        let mut fragment = Vec::with_capacity(FRAGMENT_HEADER + FRAGMENT_PAYLOAD);
        let chunks: Vec<&[u8]> = if message.is_empty() {
            vec![&[]]
        } else {
            message.chunks(FRAGMENT_PAYLOAD).collect()
        };
        for (index, chunk) in chunks.into_iter().enumerate() {
            fragment.clear();
            fragment.extend_from_slice(&id.to_be_bytes());
            fragment.extend_from_slice(&(index as u16).to_be_bytes());
            fragment.extend_from_slice(&(count as u16).to_be_bytes());
            fragment.extend_from_slice(chunk);
            self.keyring.seal(&fragment, &mut self.sealed);
            if self.sealed.is_empty() {
                debug!("cannot seal gossip datagram");
                return;
            }
            match self.socket.send_to(&self.sealed, to).await {
                Ok(n) => sent += n,
                Err(error) => debug!(%to, %error, "gossip send failed"),
            }
            self.stats.datagrams_sent.fetch_add(1, Ordering::Relaxed);
        }
        self.stats
            .bytes_sent
            .fetch_add(sent as u64, Ordering::Relaxed);
        if let Some(metrics) = &self.stats.metrics {
            metrics.gossip.add_sent_bytes(sent as u64);
        }
    }

    /// The next whole message from a peer the filter allows.
    pub async fn recv(&mut self) -> std::io::Result<(SocketAddr, Vec<u8>)> {
        loop {
            let (len, from) = match self.socket.recv_from(&mut self.recv).await {
                Ok(received) => received,
                Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                Err(error) => return Err(error),
            };
            if self.blocked(&from) {
                continue;
            }
            self.stats
                .datagrams_received
                .fetch_add(1, Ordering::Relaxed);
            self.stats
                .bytes_received
                .fetch_add(len as u64, Ordering::Relaxed);
            if let Some(metrics) = &self.stats.metrics {
                metrics.gossip.add_received_bytes(len as u64);
            }
            if let Some(message) = self.accept(len, from) {
                return Ok((from, message));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    fn sealed(keyring: &Keyring, id: u64, index: u16, count: u16, body: &[u8]) -> Vec<u8> {
        let mut fragment = id.to_be_bytes().to_vec();
        fragment.extend_from_slice(&index.to_be_bytes());
        fragment.extend_from_slice(&count.to_be_bytes());
        fragment.extend_from_slice(body);
        let mut out = Vec::new();
        keyring.seal(&fragment, &mut out);
        out
    }

    #[test]
    fn fragments_reassemble_in_any_order_per_sender_and_bad_ones_are_refused() {
        let keyring = Keyring::new("c", &[STANDARD.encode([3u8; 32])]).unwrap();
        let (a, b) = (
            SocketAddr::from(([127, 0, 0, 2], 1)),
            SocketAddr::from(([127, 0, 0, 3], 1)),
        );
        let now = Instant::now();
        let mut reassembly = Reassembly::default();
        let mut accept =
            |mut datagram: Vec<u8>, from| reassembly.accept(&keyring, &mut datagram, from, now);
        assert_eq!(accept(sealed(&keyring, 1, 1, 2, b"world"), a), Ok(None));
        // The same id from another sender is another message.
        assert_eq!(accept(sealed(&keyring, 1, 0, 2, b"other "), b), Ok(None));
        assert_eq!(
            accept(sealed(&keyring, 1, 0, 2, b"hello "), a),
            Ok(Some(b"hello world".to_vec()))
        );
        assert_eq!(
            accept(sealed(&keyring, 2, 0, 1, b"whole"), a),
            Ok(Some(b"whole".to_vec()))
        );
        for (index, count) in [(0, 0), (2, 2), (0, 65)] {
            assert_eq!(
                accept(sealed(&keyring, 3, index, count, b""), a),
                Err(Rejection::Malformed)
            );
        }
        assert_eq!(accept(vec![1; 40], a), Err(Rejection::UnknownKey));
        assert_eq!(
            accept(vec![0; MAX_DATAGRAM + 1], a),
            Err(Rejection::Malformed)
        );
    }
}
