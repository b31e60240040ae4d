//! The admin HTTP endpoint: `/metrics` (Prometheus text format), `/healthz` (alive: every
//! supervised task still running, see `tasks`),
//! `/readyz` (ready to take traffic: zone loaded and sockets bound, which `App::start` ensures
//! before serving this, and what the served snapshot's readiness waits for: the first round of
//! probes, the first Kubernetes discovery), `/state` (the served snapshot as
//! JSON, with the reason for every region's health) and `/explain?name=&client=[&type=][&down=]`
//! (the answer a client would get and why; `down=eu,us` asks what if those regions were down);
//! and one control, `POST /drain` / `POST /undrain` (`gslbd drain`), taken from loopback peers
//! with [`CONTROL_HEADER`] only.
//!
//! Served by hyper on gslbd's own accept loop, with limits ([`AdminLimits`]): connections at
//! once (more are closed at once), a time to send each request's head (which also closes idle
//! kept-alive connections), a time to answer, and a connection lifetime, so that slow or
//! silent clients cannot hold the endpoint Prometheus and the kubelet need.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use axum::extract::{Extension, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use hickory_proto::rr::Name;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use crate::explain::{self, Ask};
use crate::metrics::Metrics;
use crate::model::Region;
use crate::snapshot::Snapshot;
use crate::state::{DrainChange, DrainError, StateHandle};
use crate::tasks::{OnEnd, Tasks};
use crate::ui;

/// Largest request head (request line and headers): hyper's minimum buffer.
const MAX_REQUEST_HEAD: usize = 8192;
/// Pause after a failed accept (out of descriptors, mostly) instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How much of the admin endpoint clients may hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdminLimits {
    /// Connections served at once; more are closed as soon as accepted. 64 leaves room for a
    /// few Prometheus servers, the kubelet's probes and operators, and stays within the
    /// descriptors `fd_limit` reserves.
    pub max_connections: usize,
    /// Time to send a request's head, counted from the connection or the previous answer (so
    /// an idle kept-alive connection closes after it too).
    pub header_timeout: Duration,
    /// Time a handler has to answer; past it, 503.
    pub request_timeout: Duration,
    /// Past this a connection is asked to close after its request in flight, and cut
    /// `request_timeout` later (a client that never reads its answer is let go).
    pub max_connection_age: Duration,
}

impl Default for AdminLimits {
    fn default() -> Self {
        Self {
            max_connections: 64,
            header_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            max_connection_age: Duration::from_secs(60),
        }
    }
}

#[derive(Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    store: Arc<ArcSwap<Snapshot>>,
    tasks: Tasks,
    /// The state owner, for `/drain` and `/undrain`.
    control: Option<StateHandle>,
    /// Drawn at start; the `/ui` page carries it, and a browser's drain must send it back.
    token: Arc<str>,
}

/// The address a request came from.
#[derive(Clone, Copy, Debug)]
struct Peer(SocketAddr);

/// The header `/drain` and `/undrain` require (its value does not matter): a browser cannot
/// send it to another site without a CORS preflight gslbd never grants, so a web page cannot
/// drain a region through an operator's browser.
pub const CONTROL_HEADER: &str = "x-gslbd-control";

/// The header carrying the `/ui` page's token: drains sent by a browser need it.
pub const TOKEN_HEADER: &str = "x-gslbd-token";

/// The admin endpoint, served as a task of the daemon.
pub struct AdminServer;

impl AdminServer {
    /// Listens on `addr` and serves until `tasks` stop; returns the bound address.
    pub async fn start(
        tasks: &Tasks,
        addr: SocketAddr,
        metrics: Arc<Metrics>,
        store: Arc<ArcSwap<Snapshot>>,
        control: Option<StateHandle>,
    ) -> std::io::Result<SocketAddr> {
        Self::start_with(tasks, addr, AdminLimits::default(), metrics, store, control).await
    }

    /// As [`AdminServer::start`], within `limits`.
    pub async fn start_with(
        tasks: &Tasks,
        addr: SocketAddr,
        limits: AdminLimits,
        metrics: Arc<Metrics>,
        store: Arc<ArcSwap<Snapshot>>,
        control: Option<StateHandle>,
    ) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let router = Router::new()
            .route("/metrics", get(metrics_page))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/state", get(state_page))
            .route("/explain", get(explain_page))
            .route("/drain", post(drain_page))
            .route("/undrain", post(undrain_page))
            .route("/events", get(events_page))
            .route("/ui", get(ui_page))
            .route("/ui/live", get(ui_live))
            .route("/ui/style.css", get(ui_style))
            .route("/ui/app.js", get(ui_script))
            .with_state(AdminState {
                metrics,
                store,
                tasks: tasks.clone(),
                control,
                token: page_token().into(),
            })
            .layer(middleware::from_fn_with_state(
                limits.request_timeout,
                request_timeout,
            ));
        tasks.supervise(
            "admin endpoint",
            OnEnd::Exit,
            accept_loop(listener, router, limits, tasks.clone()),
        );
        info!(%local_addr, "admin endpoint listening (/metrics, /healthz, /readyz, /state, /explain, /events, /ui, /drain, /undrain)");
        Ok(local_addr)
    }
}

async fn accept_loop(listener: TcpListener, router: Router, limits: AdminLimits, tasks: Tasks) {
    let stop = tasks.stopping();
    let places = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                debug!(%error, "admin endpoint cannot accept");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(ACCEPT_BACKOFF) => continue,
                }
            }
        };
        let Ok(place) = places.clone().try_acquire_owned() else {
            debug!(%peer, "admin connection refused: too many open");
            continue;
        };
        let router = router.clone().layer(Extension(Peer(peer)));
        let stop = stop.clone();
        tasks.spawn(serve_connection(stream, router, limits, stop, place));
    }
}

/// Serves HTTP/1.1 on `stream` until the client is done, a limit ends it or the daemon stops.
async fn serve_connection(
    stream: TcpStream,
    router: Router,
    limits: AdminLimits,
    stop: CancellationToken,
    _place: OwnedSemaphorePermit,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(MAX_REQUEST_HEAD);
    let connection =
        builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(router));
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        () = stop.cancelled() => {}
        () = tokio::time::sleep(limits.max_connection_age) => {}
    }
    connection.as_mut().graceful_shutdown();
    let _ = tokio::time::timeout(limits.request_timeout, connection).await;
}

/// 503 for a handler that has not answered within the request timeout.
async fn request_timeout(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "timed out\n").into_response(),
    }
}

async fn metrics_page(State(state): State<AdminState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.encode(),
    )
}

async fn healthz(State(state): State<AdminState>) -> impl IntoResponse {
    let failed = state.tasks.failed();
    if failed.is_empty() {
        return (StatusCode::OK, "ok\n".to_string());
    }
    let names: Vec<&str> = failed.iter().map(AsRef::as_ref).collect();
    (
        StatusCode::SERVICE_UNAVAILABLE,
        format!("stopped: {}\n", names.join(", ")),
    )
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    match state.store.load().readiness.waiting_for() {
        None => (StatusCode::OK, "ready\n".to_string()),
        Some(reason) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
    }
}

async fn state_page(State(state): State<AdminState>) -> impl IntoResponse {
    Json(explain::state(&state.store.load()))
}

/// The last transitions, newest first.
async fn events_page(State(state): State<AdminState>) -> impl IntoResponse {
    let snapshot = state.store.load();
    let newest_first: Vec<_> = snapshot.transitions.iter().rev().collect();
    Json(serde_json::json!(newest_first))
}

/// Headers of the `/ui` page and its parts: nothing but its own resources, never framed,
/// never cached.
const UI_HEADERS: [(header::HeaderName, &str); 4] = [
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    ),
    (header::X_FRAME_OPTIONS, "DENY"),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::CACHE_CONTROL, "no-store"),
];

async fn ui_page(State(state): State<AdminState>, Query(ask): Query<Ask>) -> Response {
    let page = ui::page(&state.store.load(), &state.token, &ask);
    (
        UI_HEADERS,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        page,
    )
        .into_response()
}

async fn ui_live(State(state): State<AdminState>) -> Response {
    let live = ui::live(&state.store.load());
    (
        UI_HEADERS,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        live,
    )
        .into_response()
}

async fn ui_style() -> Response {
    (
        UI_HEADERS,
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        ui::STYLE,
    )
        .into_response()
}

async fn ui_script() -> Response {
    let script_type = "text/javascript; charset=utf-8";
    (
        UI_HEADERS,
        [(header::CONTENT_TYPE, script_type)],
        ui::SCRIPT,
    )
        .into_response()
}

/// A fresh random token for the `/ui` page (hex of 16 bytes).
fn page_token() -> String {
    let bytes = ring::rand::generate::<[u8; 16]>(&ring::rand::SystemRandom::new())
        .map(|random| random.expose())
        // The system's random source failing is not worth stopping for: the clock then.
        .unwrap_or_else(|_| {
            let mut bytes = [0; 16];
            bytes[..8].copy_from_slice(&crate::unix_ms().to_be_bytes());
            bytes
        });
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `/drain` and `/undrain` parameters.
#[derive(Debug, Deserialize)]
struct DrainParams {
    /// This node's region (a node drains only its own).
    region: String,
    /// One service of the region (fully qualified or relative to the zone); all when absent.
    service: Option<String>,
}

async fn drain_page(
    State(state): State<AdminState>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Query(params): Query<DrainParams>,
) -> Response {
    change_drain(state, peer, &headers, params, true).await
}

async fn undrain_page(
    State(state): State<AdminState>,
    Extension(peer): Extension<Peer>,
    headers: HeaderMap,
    Query(params): Query<DrainParams>,
) -> Response {
    change_drain(state, peer, &headers, params, false).await
}

/// Drains or undrains for a request that passed the checks: from loopback (an operator in the
/// pod, `kubectl exec` or `port-forward`), with [`CONTROL_HEADER`].
async fn change_drain(
    state: AdminState,
    Peer(peer): Peer,
    headers: &HeaderMap,
    params: DrainParams,
    drained: bool,
) -> Response {
    if let Err(refusal) = control_allowed(peer, headers, &state.token) {
        return (StatusCode::FORBIDDEN, format!("{refusal}\n")).into_response();
    }
    let Some(control) = &state.control else {
        return (StatusCode::SERVICE_UNAVAILABLE, "no state owner\n").into_response();
    };
    let service = match params.service.as_deref().map(|text| {
        let origin = state.store.load().zone.origin.clone();
        service_name(text, &origin)
    }) {
        None => None,
        Some(Ok(name)) => Some(name),
        Some(Err(error)) => return (StatusCode::BAD_REQUEST, format!("{error}\n")).into_response(),
    };
    let change = DrainChange {
        region: Region::new(&params.region),
        service: service.clone(),
        drained,
    };
    let verb = if drained { "drained" } else { "undrained" };
    match control.drain(change).await {
        Ok(()) => {
            let what = match &service {
                Some(service) => format!("{service} in region {}", params.region),
                None => format!("region {}", params.region),
            };
            info!(%peer, what, verb, "drain changed by an operator");
            (StatusCode::OK, format!("{verb} {what}\n")).into_response()
        }
        Err(error) => {
            let status = match error {
                DrainError::UnknownService(..) => StatusCode::NOT_FOUND,
                DrainError::NotOurRegion { .. } | DrainError::NoLocalRegion => StatusCode::CONFLICT,
            };
            (status, format!("{error}\n")).into_response()
        }
    }
}

/// Whether a control request (drain, undrain) may apply: from loopback only (an operator in
/// the pod, `kubectl exec` or `port-forward`; the endpoint may listen on the pod network for
/// Prometheus), with [`CONTROL_HEADER`] (which no cross-site browser request carries).
///
/// A request a browser sends (it has an `Origin`) must also come from this endpoint's own page:
/// its origin this endpoint's, and [`TOKEN_HEADER`] the token the page was served with.
fn control_allowed(peer: SocketAddr, headers: &HeaderMap, token: &str) -> Result<(), String> {
    if !peer.ip().is_loopback() {
        return Err(format!(
            "drain and undrain are taken from loopback only, not {}: run gslbd drain in the pod (kubectl exec) or through kubectl port-forward",
            peer.ip()
        ));
    }
    if !headers.contains_key(CONTROL_HEADER) {
        return Err(format!(
            "missing header {CONTROL_HEADER} (gslbd drain sends it)"
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
        let same = host.is_some_and(|host| origin.to_str().ok() == Some(&format!("http://{host}")));
        if !same {
            return Err("a browser request from another origin than this page's".to_string());
        }
        let given = headers.get(TOKEN_HEADER).and_then(|t| t.to_str().ok());
        if given != Some(token) {
            return Err(format!(
                "a browser request without this page's token ({TOKEN_HEADER}): reload /ui"
            ));
        }
    }
    Ok(())
}

/// A service name as an operator types it: inside the zone whether or not it ends with a dot,
/// else relative to the zone (`app` is `app.<zone>`).
fn service_name(text: &str, origin: &hickory_proto::rr::LowerName) -> Result<Name, String> {
    let invalid = |e: hickory_proto::ProtoError| format!("invalid name {text:?}: {e}");
    let name = Name::from_ascii(text).map_err(invalid)?;
    let zone = Name::from(origin);
    let mut absolute = name.clone();
    absolute.set_fqdn(true);
    let name = if zone.zone_of(&absolute) {
        absolute
    } else {
        name.append_domain(&zone).map_err(invalid)?
    };
    Ok(name.to_lowercase())
}

async fn explain_page(State(state): State<AdminState>, Query(params): Query<Ask>) -> Response {
    let snapshot = state.store.load_full();
    let question = match explain::question(&snapshot, params) {
        Ok(question) => question,
        Err(reason) => return (StatusCode::BAD_REQUEST, format!("{reason}\n")).into_response(),
    };
    match explain::explain(&snapshot, &question) {
        Ok(explanation) => Json(explanation).into_response(),
        Err(error) => (StatusCode::BAD_REQUEST, format!("{error}\n")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_taken_from_loopback_with_the_header_only() {
        let mut with = HeaderMap::new();
        with.insert(CONTROL_HEADER, "1".parse().expect("a header value"));
        let without = HeaderMap::new();
        let peer = |text: &str| text.parse::<SocketAddr>().expect("an address");
        assert_eq!(control_allowed(peer("127.0.0.1:5000"), &with, "t"), Ok(()));
        assert_eq!(control_allowed(peer("[::1]:5000"), &with, "t"), Ok(()));
        // The pod network (Prometheus may reach the endpoint there), or a browser's request.
        let refused = control_allowed(peer("10.1.2.3:5000"), &with, "t").unwrap_err();
        assert!(refused.contains("loopback only, not 10.1.2.3"), "{refused}");
        let refused = control_allowed(peer("127.0.0.1:5000"), &without, "t").unwrap_err();
        assert!(refused.contains("missing header"), "{refused}");
    }

    #[test]
    fn a_browser_s_control_needs_this_page_s_origin_and_token() {
        let local = "127.0.0.1:5000".parse::<SocketAddr>().expect("an address");
        let browser = |origin: &str, token: Option<&str>| {
            let mut headers = HeaderMap::new();
            headers.insert(CONTROL_HEADER, "1".parse().expect("a header value"));
            headers.insert(
                header::HOST,
                "127.0.0.1:9153".parse().expect("a header value"),
            );
            headers.insert(header::ORIGIN, origin.parse().expect("a header value"));
            if let Some(token) = token {
                headers.insert(TOKEN_HEADER, token.parse().expect("a header value"));
            }
            control_allowed(local, &headers, "secret")
        };
        assert_eq!(browser("http://127.0.0.1:9153", Some("secret")), Ok(()));
        let refused = browser("http://evil.example", Some("secret")).unwrap_err();
        assert!(refused.contains("another origin"), "{refused}");
        let refused = browser("http://127.0.0.1:9153", Some("guess")).unwrap_err();
        assert!(refused.contains("token"), "{refused}");
        let refused = browser("http://127.0.0.1:9153", None).unwrap_err();
        assert!(refused.contains("token"), "{refused}");
    }

    #[test]
    fn service_names_are_taken_inside_the_zone() {
        let zone = hickory_proto::rr::LowerName::from(
            Name::from_ascii("gslb.example.com.").expect("a name"),
        );
        for text in ["app", "app.gslb.example.com", "APP.gslb.example.com."] {
            assert_eq!(
                service_name(text, &zone).expect("a name").to_string(),
                "app.gslb.example.com.",
                "{text}"
            );
        }
        assert!(service_name("a..b", &zone).is_err());
    }
}
