//! Probes and metrics for operators: `/healthz` (the process answers), `/readyz` (and its
//! database does), `/metrics` (Prometheus text).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;

use super::problem::Problem;
use super::AppState;

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
    summary = "Readiness: the database answers",
    responses((status = 200, description = "Ready", body = String))
)]
pub(super) async fn readyz(State(state): State<AppState>) -> Result<&'static str, Problem> {
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
