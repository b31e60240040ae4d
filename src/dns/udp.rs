//! The UDP fast path: one blocking thread per SO_REUSEPORT socket, no task spawn and no channel
//! per query. Parsing and encoding are hickory-proto's, the answer is [`answer::respond`], so
//! the bytes are those hickory-server would send (see `tests/differential.rs`).

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use hickory_proto::op::{Header, ResponseCode};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncoder};
use hickory_server::net::xfer::Protocol;
use hickory_server::server::Request;
use hickory_server::zone_handler::{MessageResponseBuilder, Queries};
use tokio_util::sync::CancellationToken;
use tracing::warn;

use super::{answer, encode, time_bucket};
use crate::snapshot::Snapshot;

/// How often a blocked receive wakes up to look for shutdown.
const WAKE_INTERVAL: Duration = Duration::from_millis(200);

/// Starts one answering thread for `socket`.
pub fn spawn(
    socket: UdpSocket,
    store: Arc<ArcSwap<Snapshot>>,
    stop: CancellationToken,
) -> io::Result<JoinHandle<()>> {
    socket.set_nonblocking(false)?;
    socket.set_read_timeout(Some(WAKE_INTERVAL))?;
    std::thread::Builder::new()
        .name("gslbd-udp".into())
        .spawn(move || serve(&socket, &store, &stop))
}

fn serve(socket: &UdpSocket, store: &ArcSwap<Snapshot>, stop: &CancellationToken) {
    // The largest datagram a client can send; larger ones are cut and fail to parse.
    let mut packet = [0u8; 65_535];
    let mut out = Vec::with_capacity(4096);
    while !stop.is_cancelled() {
        let (len, src) = match socket.recv_from(&mut packet) {
            Ok(received) => received,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => {
                warn!(%error, "udp receive failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let snapshot = store.load();
        if answer_packet(&snapshot, &packet[..len], src, time_bucket(), &mut out)
            && let Err(error) = socket.send_to(&out, src)
        {
            // Full buffers or an unreachable client: the client will retry.
            tracing::debug!(%error, %src, "udp send failed");
        }
    }
}

/// Answers one datagram into `out`; returns false when nothing is to be sent.
pub fn answer_packet(
    snapshot: &Snapshot,
    packet: &[u8],
    src: SocketAddr,
    bucket: u64,
    out: &mut Vec<u8>,
) -> bool {
    // Shorter than a header: not DNS. QR=1: a response, never answered (no reflection loops).
    if packet.len() < 12 || packet[2] & 0x80 != 0 {
        return false;
    }
    match Request::from_bytes(packet.to_vec(), src, Protocol::Udp) {
        Ok(request) => match answer::respond(snapshot, &request, src.ip(), bucket) {
            Some(response) => {
                encode::encode_udp(&response, &request.queries, out);
                !out.is_empty()
            }
            None => false,
        },
        Err(_) => form_error(packet, out),
    }
}

/// FORMERR for a message whose header parses but whose body does not, as hickory-server sends.
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
