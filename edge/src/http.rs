//! The edge's operator endpoints: `/healthz` (the process answers), `/readyz` (it has a
//! configuration to answer calls with, from the control plane or its disk cache, and is not
//! draining: a load balancer or Kubernetes stops sending it new work), `/metrics`
//! and `/cluster` (the members this edge's gossip sees; 404 without a cluster);
//! and the body limit every route of the listener sets ([`refuse_oversized`]).

use crate::sip::transport::registrations::RegistrationBoard;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use tokio::sync::watch;

use crate::cluster::report::{ClusterReport, ClusterSnapshot};
use crate::metrics::EdgeMetrics;
use crate::state::EdgeState;

#[derive(Clone)]
struct HttpState {
    edge: EdgeState,
    metrics: Arc<EdgeMetrics>,
    cluster: Option<watch::Receiver<Arc<ClusterSnapshot>>>,
    registrations: RegistrationBoard,
}

/// Largest body the operator endpoints take: they take none.
const OPERATOR_BODY_LIMIT: usize = 1024;

pub(crate) fn router(
    edge: EdgeState,
    metrics: Arc<EdgeMetrics>,
    cluster: Option<watch::Receiver<Arc<ClusterSnapshot>>>,
    registrations: RegistrationBoard,
) -> Router {
    let router = Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/cluster", get(cluster_view))
        .route("/registrations", get(registrations_view))
        .with_state(HttpState {
            edge,
            metrics,
            cluster,
            registrations,
        });
    body_limit(router, OPERATOR_BODY_LIMIT)
}

/// `router`'s routes with a body limit of `limit` bytes: a larger `Content-Length` is refused
/// from the headers ([`refuse_oversized`]), and a body sent without one (chunked) is cut off at
/// `limit` while it is read.
pub(crate) fn body_limit(router: Router, limit: usize) -> Router {
    router
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(limit, refuse_oversized))
}

/// Answers a request whose `Content-Length` is over `limit` with a 413 problem straight from
/// its headers, before anything reads or waits for the body: a client announcing 100 MB holds
/// no handler while it trickles (or never sends) the bytes.
async fn refuse_oversized(State(limit): State<usize>, request: Request, next: Next) -> Response {
    let Some(length) = crate::serve::declared_over_limit(&request, limit) else {
        return next.run(request).await;
    };
    let detail =
        format!("`Content-Length` {length} is over this endpoint's limit of {limit} bytes");
    let problem = serde_json::json!({
        "type": "about:blank",
        "title": "Request body too large",
        "status": StatusCode::PAYLOAD_TOO_LARGE.as_u16(),
        "detail": detail,
    });
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        [(header::CONTENT_TYPE, "application/problem+json")],
        problem.to_string(),
    )
        .into_response()
}

async fn readyz(State(state): State<HttpState>) -> impl IntoResponse {
    readiness(&state.edge)
}

/// `/readyz`'s answer: ready once a configuration is held, and no longer while draining, so
/// that whatever routes new work by readiness (a Kubernetes Service, a load balancer in front
/// of the Twilio webhook) sends it elsewhere while calls in progress finish.
fn readiness(edge: &EdgeState) -> (StatusCode, &'static str) {
    if edge.is_draining() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "draining: calls in progress finish, new ones go to peers",
        )
    } else if edge.is_ready() {
        (StatusCode::OK, "ready")
    } else if edge.snapshot().version > 0 {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "joining the cluster: new calls wait until a peer is seen",
        )
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

async fn cluster_view(State(state): State<HttpState>) -> Response {
    match &state.cluster {
        Some(snapshots) => {
            let snapshot = snapshots.borrow().clone();
            axum::Json(ClusterReport::of(&snapshot, std::time::Instant::now())).into_response()
        }
        None => (
            StatusCode::NOT_FOUND,
            "this edge runs no cluster: set cluster.bind",
        )
            .into_response(),
    }
}

/// Each provider's registration with its PBX or trunk, by provider id:
/// `{"<id>": {"state", "expires_at", "last_error"}}` (`expires_at` in Unix milliseconds).
async fn registrations_view(State(state): State<HttpState>) -> Response {
    axum::Json(state.registrations.reports()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use freya_shared::snapshot::EdgeConfigSnapshot;

    #[test]
    fn ready_with_a_configuration_and_not_while_draining() {
        let edge = EdgeState::new(EdgeConfigSnapshot::default(), 10);
        assert_eq!(readiness(&edge).0, StatusCode::SERVICE_UNAVAILABLE);
        edge.set_snapshot(EdgeConfigSnapshot {
            version: 3,
            ..EdgeConfigSnapshot::default()
        });
        assert_eq!(readiness(&edge), (StatusCode::OK, "ready"));
        edge.set_draining(true);
        let (status, reason) = readiness(&edge);
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(reason.starts_with("draining"), "{reason}");
        edge.set_draining(false);
        assert_eq!(readiness(&edge).0, StatusCode::OK);
    }
}
