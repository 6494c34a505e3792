//! Probes and metrics for operators: `/healthz` (the process answers), `/readyz` (and its
//! database does, and takes writes), `/metrics` (Prometheus text).
//!
//! After a storage fault (a write the database could not take, seen by any request through
//! [`watch_storage`]) `/readyz` answers 503 with the reason; each `/readyz` while unhealthy tries
//! one tiny probe write, and the first that commits makes it ready again — no restart. Liveness
//! stays 200 throughout: restarting the process frees no disk.

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::problem::Problem;
use super::AppState;
use crate::store::StorageFault;

#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    summary = "Liveness: the process serves HTTP",
    responses((status = 200, description = "Alive", body = String))
)]
pub(super) async fn healthz() -> &'static str {
    "ok"
}

#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    summary = "Readiness: the database answers and takes writes",
    responses(
        (status = 200, description = "Ready", body = String),
        (status = 503, description = "Not ready: the database is unreachable or could not take a write")
    )
)]
pub(super) async fn readyz(State(state): State<AppState>) -> Result<&'static str, Problem> {
    if let Some(report) = state.store.storage_health().current() {
        // Unhealthy since a write failed: ready again only once a write commits.
        if let Err(e) = state.store.probe_write().await {
            tracing::warn!(error = %e, "not ready: the database still refuses writes");
            return Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Not ready",
                format!(
                    "storage fault: {} (first seen at {}); writes are refused until one succeeds",
                    report.fault,
                    freya_shared::ids::rfc3339(report.at_ms)
                ),
            ));
        }
    }
    state.store.ping().await.map_err(|e| {
        tracing::warn!(error = %e, "not ready: database unreachable");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Not ready",
            "the database is unreachable",
        )
    })?;
    Ok("ready")
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics",
    responses((status = 200, description = "OpenMetrics text", body = String))
)]
pub(super) async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}

/// Marks the store unhealthy when a request met a storage fault (the [`StorageFault`] a
/// [`Problem`] puts on its response), so `/readyz` reports it whichever handler saw it.
pub(super) async fn watch_storage(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let uri = request.uri().clone();
    let response = next.run(request).await;
    if let Some(fault) = response.extensions().get::<StorageFault>() {
        state
            .store
            .storage_health()
            .record_fault(*fault, format!("while answering {method} {}", uri.path()));
    }
    response
}
