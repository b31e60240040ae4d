//! Sockets: binds the listen addresses (UDP and TCP on the same port) and runs the transports:
//! the UDP fast path's threads (or hickory-server when it is off) and gslbd's TCP accept loops.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use arc_swap::ArcSwap;
use hickory_server::Server;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::handler::Handler;
use super::rrl::Rrl;
use super::tcp::{self, Admission};
use super::udp;
use crate::config::ServerSettings;
use crate::fd_limit::{self, FdLimitError};
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use crate::tasks::{OnEnd, Tasks};

/// Pending TCP connections per listener.
const TCP_BACKLOG: i32 = 1024;
/// Tries to find a port free for both UDP and TCP when asked for port 0.
const EPHEMERAL_TRIES: usize = 16;

/// Why the DNS server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}")]
    Bind { addr: SocketAddr, source: io::Error },
}

/// The running DNS listeners; they stop with the daemon's tasks.
pub struct DnsServer {
    /// The bound addresses (ports resolved when 0 was asked), UDP and TCP alike.
    pub local_addrs: Vec<SocketAddr>,
}

impl DnsServer {
    /// Binds every listen address and starts answering from `store` until `tasks` stop.
    pub async fn start(
        settings: &ServerSettings,
        store: Arc<ArcSwap<Snapshot>>,
        metrics: Arc<Metrics>,
        tasks: &Tasks,
    ) -> Result<Self, ServerError> {
        let rrl = settings.rrl.clone().map(|rrl| Arc::new(Rrl::new(rrl)));
        let mut transports = Transports {
            hickory: None,
            udp_threads: Vec::new(),
            udp_ended: Vec::new(),
            tcp_listeners: Vec::new(),
            stop: CancellationToken::new(),
        };
        let mut local_addrs = Vec::new();
        for &wanted in &settings.listen {
            match transports.listen(wanted, settings, &store, &metrics, rrl.as_ref()) {
                Ok(addr) => local_addrs.push(addr),
                Err(error) => {
                    // What already listens stops with the failed start.
                    transports.stop().await;
                    return Err(error);
                }
            }
        }
        // A UDP thread that ends before the daemon stops (it never returns otherwise) leaves
        // its socket unanswered: fatal. Watched without a blocking join, so that a runtime
        // dropped without a stop (a test that fails) does not wait for the thread forever.
        for (addr, ended) in std::mem::take(&mut transports.udp_ended) {
            tasks.supervise(format!("dns udp {addr}"), OnEnd::Exit, async move {
                let _ = ended.await;
            });
        }
        let tcp = Arc::new(tcp::Shared {
            admission: Arc::new(Admission::new(
                tcp_connection_cap(settings.tcp.max_connections),
                settings.tcp.max_connections_per_network,
                metrics.dns.tcp.open_gauge(),
            )),
            store,
            metrics,
            settings: settings.tcp.clone(),
        });
        tcp.metrics.dns.tcp.set_max(tcp.admission.max_total());
        info!(
            max_connections = tcp.admission.max_total(),
            max_connections_per_network = settings.tcp.max_connections_per_network,
            idle_timeout_secs = settings.tcp.idle_timeout.as_secs(),
            message_timeout_ms = settings.tcp.message_timeout.as_millis(),
            max_queries_per_connection = ?settings.tcp.max_queries_per_connection,
            "dns over tcp limits"
        );
        for listener in std::mem::take(&mut transports.tcp_listeners) {
            tcp::spawn(listener, tcp.clone(), tasks);
        }
        let stopping = tasks.stopping();
        tasks.spawn(async move {
            stopping.cancelled().await;
            transports.stop().await;
        });
        Ok(Self { local_addrs })
    }
}

/// The TCP connection cap in force: `wanted`, lowered so that file descriptors remain for
/// gslbd's own work (`fd_limit`), after raising the process's open-file limit.
fn tcp_connection_cap(wanted: usize) -> usize {
    let soft = match fd_limit::raise() {
        Ok(limit) => limit.soft,
        Err(error @ FdLimitError::Raise { soft, .. }) => {
            warn!(%error, "open-file limit not raised: tcp connections are capped within it");
            soft
        }
        Err(error @ FdLimitError::Read(_)) => {
            warn!(%error, "open-file limit unknown: tcp connections are capped by server.tcp.max_connections alone");
            return wanted;
        }
    };
    let cap = fd_limit::connection_cap(wanted, soft);
    if cap < wanted {
        warn!(
            max_connections = wanted,
            cap,
            open_file_limit = soft,
            reserve = fd_limit::RESERVE,
            "server.tcp.max_connections lowered to keep file descriptors for probes, gossip and admin; raise the open-file limit (ulimit -n) to allow more"
        );
    }
    cap
}

/// The UDP transports (the fast path's threads, or hickory-server) and the bound TCP
/// listeners, which `tcp` serves once every address is bound.
struct Transports {
    /// Answers UDP when the fast path is off (made with its first socket).
    hickory: Option<Server<Handler>>,
    /// With the address each serves.
    udp_threads: Vec<JoinHandle<()>>,
    udp_ended: Vec<(SocketAddr, oneshot::Receiver<()>)>,
    tcp_listeners: Vec<TcpListener>,
    /// The UDP threads are not tokio tasks: they watch this token.
    stop: CancellationToken,
}

impl Transports {
    /// Binds `wanted` (UDP and TCP) and starts answering UDP there; returns the bound address.
    fn listen(
        &mut self,
        wanted: SocketAddr,
        settings: &ServerSettings,
        store: &Arc<ArcSwap<Snapshot>>,
        metrics: &Arc<Metrics>,
        rrl: Option<&Arc<Rrl>>,
    ) -> Result<SocketAddr, ServerError> {
        let (udp_sockets, tcp, addr) = bind_pair(wanted, settings.udp_workers)?;
        self.tcp_listeners.push(tcp);
        for socket in udp_sockets {
            if settings.udp_fast_path {
                let thread = udp::spawn(
                    socket.into(),
                    store.clone(),
                    metrics.clone(),
                    rrl.cloned(),
                    self.stop.clone(),
                )
                .map_err(|source| ServerError::Bind { addr, source })?;
                self.udp_threads.push(thread.handle);
                self.udp_ended.push((addr, thread.ended));
            } else {
                let socket = UdpSocket::from_std(socket.into())
                    .map_err(|source| ServerError::Bind { addr, source })?;
                self.hickory
                    .get_or_insert_with(|| {
                        Server::new(Handler::new(store.clone(), metrics.clone(), rrl.cloned()))
                    })
                    .register_socket(socket);
            }
        }
        info!(
            %addr,
            udp_workers = settings.udp_workers,
            udp_fast_path = settings.udp_fast_path,
            "dns listening on udp and tcp"
        );
        Ok(addr)
    }

    /// Stops answering UDP and waits for the transports to finish (TCP stops with the tasks).
    async fn stop(mut self) {
        self.stop.cancel();
        if let Some(hickory) = &mut self.hickory
            && let Err(error) = hickory.shutdown_gracefully().await
        {
            warn!(%error, "dns server stopped with an error");
        }
        let threads = self.udp_threads;
        let _ = tokio::task::spawn_blocking(move || {
            for thread in threads {
                let _ = thread.join();
            }
        })
        .await;
    }
}

/// Binds `workers` UDP sockets and one TCP listener on the same address and port.
fn bind_pair(
    wanted: SocketAddr,
    workers: usize,
) -> Result<(Vec<Socket>, TcpListener, SocketAddr), ServerError> {
    let tries = if wanted.port() == 0 {
        EPHEMERAL_TRIES
    } else {
        1
    };
    let mut last_error = None;
    for _ in 0..tries {
        let first = bind_udp(wanted).map_err(|source| ServerError::Bind {
            addr: wanted,
            source,
        })?;
        let addr = first
            .local_addr()
            .ok()
            .and_then(|a| a.as_socket())
            .unwrap_or(wanted);
        match bind_tcp(addr) {
            Ok(tcp) => {
                let mut sockets = vec![first];
                for _ in 1..workers {
                    sockets
                        .push(bind_udp(addr).map_err(|source| ServerError::Bind { addr, source })?);
                }
                return Ok((sockets, tcp, addr));
            }
            Err(source) => last_error = Some(ServerError::Bind { addr, source }),
        }
    }
    Err(last_error.unwrap_or(ServerError::Bind {
        addr: wanted,
        source: io::Error::from(io::ErrorKind::AddrInUse),
    }))
}

fn bind_udp(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Several sockets on one port, one per worker thread: the kernel spreads the queries.
    socket.set_reuse_port(true)?;
    // Room for bursts while a worker is busy.
    let _ = socket.set_recv_buffer_size(4 << 20);
    socket.bind(&addr.into())?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(TCP_BACKLOG)?;
    socket.set_nonblocking(true)?;
    TcpListener::from_std(socket.into())
}
