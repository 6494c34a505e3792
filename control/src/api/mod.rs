//! The REST API (axum): JSON under `/v1`, errors as `application/problem+json`, callers
//! authenticated by API key and confined to their workspace; probes and metrics beside it, and
//! the dashboard at `/`.

mod agents;
mod auth;
mod dashboard;
mod edges;
mod health;
pub mod json;
mod numbers;
pub mod problem;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Serialize;

use crate::metrics::ControlMetrics;
use crate::store::Store;

pub use auth::Caller;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub metrics: Arc<ControlMetrics>,
    /// An edge not heard from for this long is shown offline.
    pub offline_after_ms: i64,
}

/// A page of results. Every list has this shape so pagination can be added without breaking
/// clients.
#[derive(Serialize)]
pub struct List<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> List<T> {
    /// A complete, single-page list.
    pub fn of(data: Vec<T>) -> Self {
        Self {
            data,
            next_cursor: None,
        }
    }
}

/// Largest accepted request body.
const BODY_LIMIT_BYTES: usize = 1024 * 1024;

/// The whole HTTP surface of the control plane.
pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/edges", get(edges::list))
        .route("/agents", get(agents::list).post(agents::create))
        .route("/agents/{id}", get(agents::get).patch(agents::patch))
        .route("/phone-numbers", get(numbers::list).post(numbers::create))
        .route(
            "/phone-numbers/{id}",
            get(numbers::get).patch(numbers::patch),
        )
        .fallback(not_found);
    Router::new()
        .route("/", get(dashboard::page))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .nest("/v1", v1)
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .with_state(state)
}

async fn not_found() -> problem::Problem {
    problem::Problem::new(
        axum::http::StatusCode::NOT_FOUND,
        "Not found",
        "no such endpoint",
    )
}

async fn count_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    state.metrics.http_requests.inc();
    next.run(request).await
}
