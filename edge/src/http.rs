//! The edge's operator endpoints: `/healthz` (the process answers), `/readyz` (it has a
//! configuration to answer calls with, from the control plane or its disk cache) and `/metrics`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

use crate::metrics::EdgeMetrics;
use crate::state::EdgeState;

#[derive(Clone)]
struct HttpState {
    edge: EdgeState,
    metrics: Arc<EdgeMetrics>,
}

pub(crate) fn router(edge: EdgeState, metrics: Arc<EdgeMetrics>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(HttpState { edge, metrics })
}

async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    if state.edge.snapshot().version > 0 {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "no configuration yet: waiting for the control plane",
        )
    }
}

async fn metrics_text(State(state): State<HttpState>) -> impl IntoResponse {
    let m = &state.metrics;
    m.active_calls.set(i64::from(state.edge.active_calls()));
    m.draining.set(i64::from(state.edge.is_draining()));
    m.config_version
        .set(i64::try_from(state.edge.snapshot().version).unwrap_or(i64::MAX));
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        m.render(),
    )
}
