//! The admin HTTP endpoint: `/metrics` (Prometheus text format), `/healthz` (alive) and
//! `/readyz` (ready to take traffic: zone loaded and sockets bound, which `App::start` ensures
//! before serving this, and the first round of probes done).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::metrics::Metrics;

/// What `/readyz` waits for.
#[derive(Clone, Debug)]
pub struct Readiness {
    /// Probes of the first plan without a first result yet.
    pub probes: Arc<AtomicUsize>,
}

#[derive(Clone)]
struct AdminState {
    metrics: Arc<Metrics>,
    ready: Readiness,
}

/// The running admin endpoint.
pub struct AdminServer {
    pub local_addr: SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl AdminServer {
    pub async fn start(
        addr: SocketAddr,
        metrics: Arc<Metrics>,
        ready: Readiness,
    ) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let local_addr = listener.local_addr()?;
        let router = Router::new()
            .route("/metrics", get(metrics_page))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .with_state(AdminState { metrics, ready });
        let stop = CancellationToken::new();
        let shutdown = stop.clone();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move { shutdown.cancelled().await })
                .await;
        });
        info!(%local_addr, "admin endpoint listening (/metrics, /healthz, /readyz)");
        Ok(Self {
            local_addr,
            stop,
            task,
        })
    }

    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

async fn metrics_page(State(state): State<AdminState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.encode(),
    )
}

async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    match state.ready.probes.load(Ordering::Relaxed) {
        0 => (StatusCode::OK, "ready\n".to_string()),
        pending => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("waiting for the first result of {pending} probes\n"),
        ),
    }
}
