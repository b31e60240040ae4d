//! Real HTTP(S) and TCP backends on 127.x addresses whose behaviour a test switches at run
//! time: 200, 500, hang, slow, a body, reset the connection, flap, or stop listening.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// What a backend does with each request.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    /// Answer this status with this body.
    Status(u16, &'static str),
    /// Accept and never answer.
    Hang,
    /// Answer 200 after this long.
    Slow(Duration),
    /// Requests 1..=up answer 200, the next `down` 500, and so on.
    Flap { up: u64, down: u64 },
    /// 302 to this URL.
    Redirect(&'static str),
}

#[derive(Clone)]
struct Shared {
    mode: Arc<Mutex<Mode>>,
    requests: Arc<AtomicU64>,
    hosts: Arc<Mutex<Vec<String>>>,
}

/// A running HTTP or HTTPS backend.
pub struct Backend {
    pub addr: SocketAddr,
    shared: Shared,
    task: JoinHandle<()>,
}

impl Backend {
    pub fn set(&self, mode: Mode) {
        *self.shared.mode.lock().expect("mode lock") = mode;
    }

    /// Requests served so far.
    pub fn requests(&self) -> u64 {
        self.shared.requests.load(Ordering::SeqCst)
    }

    /// Host headers seen, in order.
    pub fn hosts(&self) -> Vec<String> {
        self.shared.hosts.lock().expect("hosts lock").clone()
    }

    /// Stops listening: new connections are refused.
    pub fn stop(self) {
        self.task.abort();
    }
}

async fn handle(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let n = shared.requests.fetch_add(1, Ordering::SeqCst) + 1;
    if let Some(host) = headers.get("host").and_then(|h| h.to_str().ok()) {
        shared
            .hosts
            .lock()
            .expect("hosts lock")
            .push(host.to_string());
    }
    let mode = shared.mode.lock().expect("mode lock").clone();
    match mode {
        Mode::Status(code, body) => {
            (StatusCode::from_u16(code).expect("valid status"), body).into_response()
        }
        Mode::Hang => std::future::pending().await,
        Mode::Slow(delay) => {
            tokio::time::sleep(delay).await;
            (StatusCode::OK, "slow").into_response()
        }
        Mode::Flap { up, down } => {
            let in_cycle = (n - 1) % (up + down);
            if in_cycle < up {
                (StatusCode::OK, "up").into_response()
            } else {
                (StatusCode::INTERNAL_SERVER_ERROR, "down").into_response()
            }
        }
        Mode::Redirect(to) => (StatusCode::FOUND, [(header::LOCATION, to)], "").into_response(),
    }
}

fn router(shared: Shared) -> Router {
    Router::new().fallback(get(handle)).with_state(shared)
}

fn shared(mode: Mode) -> Shared {
    Shared {
        mode: Arc::new(Mutex::new(mode)),
        requests: Arc::new(AtomicU64::new(0)),
        hosts: Arc::new(Mutex::new(Vec::new())),
    }
}

/// Binds `ip:port` (port 0: any free port).
pub async fn bind(ip: &str, port: u16) -> TcpListener {
    let ip: IpAddr = ip.parse().expect("valid ip");
    TcpListener::bind(SocketAddr::new(ip, port))
        .await
        .expect("bind backend")
}

/// An HTTP backend on `listener`.
pub fn http(listener: TcpListener, mode: Mode) -> Backend {
    let addr = listener.local_addr().expect("bound");
    let shared = shared(mode);
    let app = router(shared.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Backend { addr, shared, task }
}

/// HTTP backends on `ips`, each in `mode`, all on the port the first one picks: one probe
/// port reaches every region's backend.
pub async fn http_on_one_port<const N: usize>(ips: [&str; N], mode: Mode) -> [Backend; N] {
    let mut all = Vec::with_capacity(N);
    let mut port = 0;
    for ip in ips {
        let backend = http(bind(ip, port).await, mode.clone());
        port = backend.addr.port();
        all.push(backend);
    }
    match all.try_into() {
        Ok(all) => all,
        Err(_) => unreachable!("one backend per address"),
    }
}

/// A TLS listener for axum: completes the handshake, skips clients that fail it.
struct TlsListener {
    inner: TcpListener,
    acceptor: TlsAcceptor,
    server_names: Arc<Mutex<Vec<String>>>,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((stream, addr)) = self.inner.accept().await else {
                continue;
            };
            if let Ok(tls) = self.acceptor.accept(stream).await {
                if let Some(name) = tls.get_ref().1.server_name() {
                    self.server_names
                        .lock()
                        .expect("names lock")
                        .push(name.to_string());
                }
                return (tls, addr);
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// A self-signed certificate for `name`, as PEM (to write as a CA file) and the server config.
pub fn self_signed(name: &str) -> (String, Arc<ServerConfig>) {
    let certified = rcgen::generate_simple_self_signed(vec![name.to_string()]).expect("cert");
    let pem = certified.cert.pem();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        certified.signing_key.serialize_der(),
    ));
    let chain = vec![CertificateDer::from(certified.cert.der().to_vec())];
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("tls versions")
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .expect("server config");
    (pem, Arc::new(config))
}

/// An HTTPS backend; returns it and the TLS server names (SNI) clients sent.
pub fn https(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    mode: Mode,
) -> (Backend, Arc<Mutex<Vec<String>>>) {
    let addr = listener.local_addr().expect("bound");
    let shared = shared(mode);
    let server_names = Arc::new(Mutex::new(Vec::new()));
    let tls = TlsListener {
        inner: listener,
        acceptor: TlsAcceptor::from(config),
        server_names: server_names.clone(),
    };
    let app = router(shared.clone());
    let task = tokio::spawn(async move {
        let _ = axum::serve(tls, app).await;
    });
    (Backend { addr, shared, task }, server_names)
}

/// A raw TCP backend that resets every connection as soon as it is accepted.
pub fn resetting(listener: TcpListener) -> JoinHandle<()> {
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            // Linger 0: close sends RST instead of FIN.
            let _ = stream.set_zero_linger();
            drop(stream);
        }
    })
}

/// A raw TCP backend that accepts connections and does nothing else.
pub fn accepting(listener: TcpListener) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    })
}
