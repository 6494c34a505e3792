//! Refuses a request whose `Content-Length` is over the body limit from its headers alone: a
//! 413 problem before anything reads — or waits for — the body, so a client announcing 100 MB
//! holds no handler, extractor or connection slot while it trickles (or never sends) the bytes.
//! A body without `Content-Length` (chunked) is still cut off at the same limit while it is read,
//! by [`axum::extract::DefaultBodyLimit`] beside this layer.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::problem::Problem;

/// Middleware (`from_fn_with_state(limit, refuse_oversized)`): 413 when the declared body is
/// longer than `limit` bytes, the request served otherwise.
pub(super) async fn refuse_oversized(
    State(limit): State<usize>,
    request: Request,
    next: Next,
) -> Response {
    let Some(length) = freya_edge::serve::declared_over_limit(&request, limit) else {
        return next.run(request).await;
    };
    Problem::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "Request body too large",
        format!("`Content-Length` {length} is over this endpoint's limit of {limit} bytes"),
    )
    .into_response()
}
