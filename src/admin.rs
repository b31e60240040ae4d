//! The admin HTTP endpoint: `/metrics` (Prometheus text format), `/healthz` (alive: every
//! supervised task still running, see `tasks`),
//! `/readyz` (ready to take traffic: zone loaded and sockets bound, which `App::start` ensures
//! before serving this, and what the served snapshot's readiness waits for: the first round of
//! probes, the first Kubernetes discovery), `/state` (the served snapshot as
//! JSON, with the reason for every region's health) and `/explain?name=&client=[&type=][&down=]`
//! (the answer a client would get and why; `down=eu,us` asks what if those regions were down).

use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use hickory_proto::rr::{Name, RecordType};
use serde::Deserialize;
use tracing::info;

use crate::explain::{self, Question};
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use crate::tasks::{OnEnd, Tasks};

#[derive(Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    store: Arc<ArcSwap<Snapshot>>,
    tasks: Tasks,
}

/// The admin endpoint, served as a task of the daemon.
pub struct AdminServer;

impl AdminServer {
    /// Listens on `addr` and serves until `tasks` stop; returns the bound address.
    pub async fn start(
        tasks: &Tasks,
        addr: SocketAddr,
        metrics: Arc<Metrics>,
        store: Arc<ArcSwap<Snapshot>>,
    ) -> std::io::Result<SocketAddr> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let router = Router::new()
            .route("/metrics", get(metrics_page))
            .route("/healthz", get(healthz))
            .route("/readyz", get(readyz))
            .route("/state", get(state_page))
            .route("/explain", get(explain_page))
            .with_state(AdminState {
                metrics,
                store,
                tasks: tasks.clone(),
            });
        let stopping = tasks.stopping();
        tasks.supervise("admin endpoint", OnEnd::Exit, async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move { stopping.cancelled().await })
                .await;
        });
        info!(%local_addr, "admin endpoint listening (/metrics, /healthz, /readyz, /state, /explain)");
        Ok(local_addr)
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

/// `/explain` parameters.
#[derive(Debug, Deserialize)]
struct ExplainParams {
    /// The name asked (relative names are taken as inside the zone).
    name: Option<String>,
    /// The client's address (the source, or the ECS address a resolver would send).
    client: Option<String>,
    /// A or AAAA (default A).
    #[serde(rename = "type")]
    rtype: Option<String>,
    /// Comma-separated regions to treat as down.
    down: Option<String>,
}

async fn explain_page(
    State(state): State<AdminState>,
    Query(params): Query<ExplainParams>,
) -> Response {
    let snapshot = state.store.load_full();
    let question = match question(&snapshot, params) {
        Ok(question) => question,
        Err(reason) => return (StatusCode::BAD_REQUEST, format!("{reason}\n")).into_response(),
    };
    match explain::explain(&snapshot, &question) {
        Ok(explanation) => Json(explanation).into_response(),
        Err(error) => (StatusCode::BAD_REQUEST, format!("{error}\n")).into_response(),
    }
}

fn question(snapshot: &Snapshot, params: ExplainParams) -> Result<Question, String> {
    let text = params
        .name
        .ok_or("missing name= (e.g. name=app.gslb.example.com)")?;
    let origin = Name::from(snapshot.zone.origin.clone());
    let bad = |e: hickory_proto::ProtoError| format!("bad name {text:?}: {e}");
    let name = if text.ends_with('.') {
        Name::from_utf8(&text).map_err(bad)?
    } else {
        // A full name written without its trailing dot is meant as is; anything else is
        // taken as relative to the zone.
        let full = Name::from_utf8(format!("{text}.")).map_err(bad)?;
        if origin.zone_of(&full) {
            full
        } else {
            Name::from_utf8(&text)
                .map_err(bad)?
                .append_domain(&origin)
                .map_err(bad)?
        }
    };
    let client_text = params
        .client
        .ok_or("missing client= (the address the answer is for, e.g. client=198.51.100.7)")?;
    let client = client_text
        .parse()
        .map_err(|_| format!("bad client address {client_text:?}"))?;
    let rtype = match params
        .rtype
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("A") => RecordType::A,
        Some("AAAA") => RecordType::AAAA,
        Some(other) => return Err(format!("type must be A or AAAA, not {other:?}")),
    };
    let down = params
        .down
        .map(|d| {
            d.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(Question {
        name,
        rtype,
        client,
        down,
    })
}
