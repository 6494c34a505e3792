//! The `{id}` of a resource route, and both ids of a nested item's. Every stored resource has a
//! UUID, so a path id that is not one names nothing: the request answers 404 — the same answer
//! as another workspace's id — before any handler runs, and no handler has to remember the
//! check.

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

/// The two ids of a nested item's route (`/v1/webhooks/{id}/deliveries/{delivery_id}`,
/// `/v1/workspaces/{workspace_id}/members/{user_id}`), each of which must be able to name a
/// stored resource: 404 otherwise, as for [`ResourceId`].
pub(super) struct ResourceIds(pub String, pub String);

impl<S: Send + Sync> FromRequestParts<S> for ResourceIds {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let Path((outer, inner)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|_| Problem::not_found())?;
        if is_uuid(&outer) && is_uuid(&inner) {
            Ok(ResourceIds(outer, inner))
        } else {
            Err(Problem::not_found())
        }
    }
}

/// A path `{id}` that can name a call: outbound calls have UUIDs, inbound ones their SIP
/// Call-ID, so any short printable id (see [`super::calls::plausible_call_id`]); 404 otherwise.
pub(super) struct CallId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for CallId {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Problem> {
        let Path(id) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|_| Problem::not_found())?;
        if super::calls::plausible_call_id(&id) {
            Ok(CallId(id))
        } else {
            Err(Problem::not_found())
        }
    }
}
