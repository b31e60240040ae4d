//! DNS over TCP, on gslbd's own accept loop and one task per connection (`connection.rs`),
//! answering through the same [`crate::dns::message::answer`] as the UDP fast path.
//!
//! Limits, from `[server.tcp]`: connections in total and per client network (`admission.rs`),
//! each decided at accept; a refused connection is reset at once (SO_LINGER 0: no FIN
//! handshake, no TIME_WAIT kept for a flood). When accepting fails for lack of file
//! descriptors or memory the loop waits [`ACCEPT_BACKOFF`] instead of spinning on the
//! connection still queued, and logs once per burst.

mod admission;
mod connection;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use nix::errno::Errno;
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

pub use self::admission::{Admission, Permit};
use crate::config::TcpSettings;
use crate::label_enum::label_enum;
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use crate::tasks::{OnEnd, Tasks};

/// Pause after an accept error other than a connection aborted before it was taken.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

label_enum! {
    /// Why a new TCP connection was refused; the names are metric label values.
    pub enum Refusal {
        /// `max_connections` are open.
        Total = "total",
        /// `max_connections_per_network` are open from the client's /24 (IPv6 /56).
        PerNetwork = "per_network",
    }
}

label_enum! {
    /// Why a TCP connection ended; the names are metric label values: no query began within
    /// the idle timeout (`idle`); a query did not arrive whole within the message timeout of
    /// its first byte (`read_timeout`); the client did not take an answer within it
    /// (`write_timeout`); `max_queries_per_connection` were answered (`query_limit`); the client
    /// closed it (`peer`); a socket error, a reset mostly (`error`); the daemon stopped
    /// (`shutdown`).
    pub enum Closed {
        Idle = "idle", ReadTimeout = "read_timeout", WriteTimeout = "write_timeout",
        QueryLimit = "query_limit", Peer = "peer", Error = "error", Shutdown = "shutdown",
    }
}

label_enum! {
    /// Why accepting a TCP connection failed; the names are metric label values.
    pub enum AcceptError {
        /// Out of file descriptors (EMFILE, ENFILE).
        FdLimit = "fd_limit",
        /// Anything else (out of memory, a connection aborted while queued, ...).
        Other = "other",
    }
}

impl AcceptError {
    fn of(error: &io::Error) -> Self {
        match error.raw_os_error().map(Errno::from_raw) {
            Some(Errno::EMFILE | Errno::ENFILE) => Self::FdLimit,
            _ => Self::Other,
        }
    }
}

/// What every connection of the server shares.
pub struct Shared {
    pub store: Arc<ArcSwap<Snapshot>>,
    pub metrics: Arc<Metrics>,
    pub settings: TcpSettings,
    pub admission: Arc<Admission>,
}

/// Accepts on `listener` until `tasks` stop, each admitted connection served on its own task.
pub fn spawn(listener: TcpListener, shared: Arc<Shared>, tasks: &Tasks) {
    let connections = tasks.clone();
    let name = match listener.local_addr() {
        Ok(addr) => format!("dns tcp {addr}"),
        Err(_) => "dns tcp".to_string(),
    };
    // Without its accept loop the address takes no TCP (truncated answers go unanswered).
    tasks.supervise(
        name,
        OnEnd::Exit,
        accept_loop(listener, shared, connections),
    );
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, tasks: Tasks) {
    let stop = tasks.stopping();
    let mut failures = Failures::default();
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                if let Some(failed) = failures.recovered() {
                    info!(failed, "accepting tcp connections again");
                }
                admit(stream, peer, &shared, &tasks);
            }
            Err(error) => {
                let reason = AcceptError::of(&error);
                shared.metrics.dns.tcp.add_accept_error(reason);
                let backoff = failures.failed(&error);
                if backoff.is_first {
                    warn!(
                        %error,
                        %reason,
                        backoff_ms = ACCEPT_BACKOFF.as_millis(),
                        "cannot accept tcp connections; backing off"
                    );
                }
                if let Some(pause) = backoff.pause {
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(pause) => {}
                    }
                }
            }
        }
    }
}

/// Serves `stream` if it has a place, else resets it.
fn admit(stream: TcpStream, peer: SocketAddr, shared: &Arc<Shared>, tasks: &Tasks) {
    let tcp = &shared.metrics.dns.tcp;
    let permit = match shared.admission.admit(peer.ip()) {
        Ok(permit) => permit,
        Err(refusal) => {
            tcp.add_refused(refusal);
            debug!(%peer, %refusal, "tcp connection refused");
            // Reset rather than close: nothing more is owed to the client, and a flood leaves
            // no TIME_WAIT behind.
            let _ = stream.set_zero_linger();
            return;
        }
    };
    // Answers go out as soon as they are written (pipelined clients wait for each).
    let _ = stream.set_nodelay(true);
    let shared = shared.clone();
    let stop = tasks.stopping();
    tasks.spawn(async move {
        let closed = connection::serve(stream, peer, &shared, &stop).await;
        shared.metrics.dns.tcp.add_closed(closed);
        drop(permit);
    });
}

/// What the accept loop does after one failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Backoff {
    /// How long to wait before accepting again, if at all.
    pause: Option<Duration>,
    /// Whether this failure starts a burst (it is logged; the rest of the burst is counted).
    is_first: bool,
}

/// The accept loop's run of failures.
#[derive(Debug, Default)]
struct Failures {
    in_a_row: u64,
}

impl Failures {
    fn failed(&mut self, error: &io::Error) -> Backoff {
        // A connection the client dropped while it was queued: the next one is ready now.
        let is_transient = matches!(
            error.kind(),
            io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted
        );
        if is_transient {
            return Backoff {
                pause: None,
                is_first: false,
            };
        }
        // EMFILE, ENFILE, ENOBUFS, ENOMEM and the unexpected: the queued connection stays
        // queued and accept fails again at once, so wait instead of spinning.
        self.in_a_row += 1;
        Backoff {
            pause: Some(ACCEPT_BACKOFF),
            is_first: self.in_a_row == 1,
        }
    }

    /// Ends a burst; returns how many accepts failed in it, if any did.
    fn recovered(&mut self) -> Option<u64> {
        let failed = std::mem::take(&mut self.in_a_row);
        (failed > 0).then_some(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os_error(errno: Errno) -> io::Error {
        io::Error::from_raw_os_error(errno as i32)
    }

    #[test]
    fn every_failure_but_an_aborted_connection_pauses_and_descriptors_are_told_apart() {
        for (errno, reason, pauses) in [
            (Errno::EMFILE, AcceptError::FdLimit, true),
            (Errno::ENFILE, AcceptError::FdLimit, true),
            (Errno::ENOBUFS, AcceptError::Other, true),
            (Errno::ENOMEM, AcceptError::Other, true),
            (Errno::ECONNABORTED, AcceptError::Other, false),
        ] {
            let error = os_error(errno);
            assert_eq!(AcceptError::of(&error), reason, "{errno}");
            let backoff = Failures::default().failed(&error);
            assert_eq!(backoff.pause, pauses.then_some(ACCEPT_BACKOFF), "{errno}");
            assert_eq!(backoff.is_first, pauses, "{errno}: a pause starts a burst");
        }
    }

    #[test]
    fn a_burst_of_failures_is_logged_once_and_counted_when_it_ends() {
        let mut failures = Failures::default();
        let emfile = os_error(Errno::EMFILE);
        let logged: Vec<bool> = (0..6).map(|_| failures.failed(&emfile).is_first).collect();
        assert_eq!(logged, [true, false, false, false, false, false]);
        failures.failed(&os_error(Errno::ECONNABORTED));
        assert_eq!(
            failures.recovered(),
            Some(6),
            "aborted connections are no failure"
        );
        assert_eq!(failures.recovered(), None);
        assert!(failures.failed(&emfile).is_first, "a new burst is logged");
    }
}
