//! The `{id}` of a resource route. Every stored resource has a UUID, so a path id that is not
//! one names nothing: the request answers 404 — the same answer as another workspace's id —
//! before any handler runs, and no handler has to remember the check.

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;

use super::problem::Problem;
use freya_shared::ids::is_uuid;

/// A path `{id}` that can name a stored resource.
pub(super) struct ResourceId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ResourceId {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| Problem::not_found())?;
        if is_uuid(&id) {
            Ok(ResourceId(id))
        } else {
            Err(Problem::not_found())
        }
    }
}
