//! Who is calling: `Authorization: Bearer <api key or JWT>` resolved to a workspace and a role.
//! Handlers take a [`Caller`] argument, so an unauthenticated request never reaches them, and
//! they get the workspace scope from it — the only way to reach customer data.
//!
//! An API key (`fk_...`) acts in its own workspace with its own role. A JWT names a person; the
//! workspace comes from the path (`/v1/workspaces/{id}/...`) or the `X-Workspace-Id` header, and
//! the role from the person's membership, read on every request. A workspace the caller cannot
//! act in answers 404, exactly like one that does not exist.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};

use super::problem::Problem;
use super::AppState;
use crate::store::{Role, WorkspaceScope};
use freya_shared::ids::is_uuid;

/// The header a person's token names its workspace with on routes outside `/v1/workspaces/{id}`.
pub(crate) const WORKSPACE_HEADER: &str = "x-workspace-id";

/// Every API key starts with this, so a key is told from a JWT without a database read.
const API_KEY_PREFIX: &str = "fk_";

/// An authenticated caller acting in one workspace.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub scope: WorkspaceScope,
    pub role: Role,
    /// Who to name in the audit log: `user:<id>` or `api_key:<id>`.
    pub actor: String,
}

impl Caller {
    /// Refuses the request unless the caller's role is at least `needed`.
    pub(crate) fn require(&self, needed: Role) -> Result<(), Problem> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(Problem::forbidden(format!(
                "this needs the `{}` role; the caller has `{}`",
                needed.as_str(),
                self.role.as_str()
            )))
        }
    }
}

/// A person authenticated by a JWT, not (yet) acting in a workspace: for listing and creating
/// workspaces and refreshing the token.
#[derive(Debug, Clone)]
pub(crate) struct Person {
    pub user_id: String,
}

impl Person {
    /// The audit-log name of this person.
    pub(crate) fn actor(&self) -> String {
        format!("user:{}", self.user_id)
    }
}

/// The bearer credential of a request.
fn bearer(parts: &Parts) -> Result<&str, Problem> {
    let header = parts
        .headers
        .get(header::AUTHORIZATION)
        .ok_or_else(|| Problem::unauthorized("send `Authorization: Bearer <api key or token>`"))?;
    header
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            Problem::unauthorized("the Authorization header must be `Bearer <api key or token>`")
        })
}

/// The `{id}` of a `/workspaces/{id}` path (nested under `/v1` or not).
fn workspace_in_path(path: &str) -> Option<&str> {
    let mut segments = path.split('/').filter(|s| !s.is_empty());
    while let Some(segment) = segments.next() {
        if segment == "workspaces" {
            return segments.next();
        }
    }
    None
}

async fn verified_person(token: &str, state: &AppState) -> Result<Person, Problem> {
    let claims = state
        .tokens
        .verify(token)
        .map_err(|_| Problem::unauthorized("the token is invalid or has expired"))?;
    if !state.store.user_exists(&claims.sub).await? {
        return Err(Problem::unauthorized("the token's user no longer exists"));
    }
    Ok(Person {
        user_id: claims.sub,
    })
}

/// The least role a route needs, declared in the route table (`api/mod.rs`) and checked here,
/// as the caller is authenticated: a handler that takes a [`Caller`] is never reached by a
/// caller below it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Needs(pub Role);

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let caller = authenticated(parts, state).await?;
        if let Some(Needs(role)) = parts.extensions.get::<Needs>() {
            caller.require(*role)?;
        }
        Ok(caller)
    }
}

/// The caller of a request, whatever the route needs.
async fn authenticated(parts: &Parts, state: &AppState) -> Result<Caller, Problem> {
    let token = bearer(parts)?;
    let in_path = workspace_in_path(parts.uri.path());
    if token.starts_with(API_KEY_PREFIX) {
        let identity = state
            .store
            .authenticate_api_key(token)
            .await?
            .ok_or_else(|| Problem::unauthorized("unknown or revoked API key"))?;
        // A key acts in its own workspace only; naming another one finds nothing.
        if in_path.is_some_and(|ws| ws != identity.scope.workspace_id) {
            return Err(Problem::not_found());
        }
        return Ok(Caller {
            actor: format!("api_key:{}", identity.key_id),
            scope: identity.scope,
            role: identity.role,
        });
    }
    let person = verified_person(token, state).await?;
    let workspace_id = match in_path {
        Some(ws) => ws.to_owned(),
        None => parts
            .headers
            .get(WORKSPACE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .map(str::to_owned)
            .ok_or_else(|| {
                Problem::new(
                    StatusCode::BAD_REQUEST,
                    "Workspace not named",
                    "a person's token acts in the workspace named by the path \
                     (/v1/workspaces/{id}/...) or the X-Workspace-Id header",
                )
            })?,
    };
    if !is_uuid(&workspace_id) {
        return Err(Problem::not_found());
    }
    let role = state
        .store
        .membership(&person.user_id, &workspace_id)
        .await?
        .ok_or_else(Problem::not_found)?;
    Ok(Caller {
        scope: WorkspaceScope { workspace_id },
        role,
        actor: person.actor(),
    })
}

impl FromRequestParts<AppState> for Person {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let token = bearer(parts)?;
        if token.starts_with(API_KEY_PREFIX) {
            return Err(Problem::forbidden(
                "this needs a person's token from /v1/auth/login; an API key acts in one workspace",
            ));
        }
        verified_person(token, state).await
    }
}

#[cfg(test)]
mod tests {
    use super::workspace_in_path;

    #[test]
    fn the_workspace_is_found_in_nested_and_full_paths() {
        assert_eq!(workspace_in_path("/v1/workspaces/abc/members"), Some("abc"));
        assert_eq!(workspace_in_path("/workspaces/abc"), Some("abc"));
        assert_eq!(workspace_in_path("/v1/agents/abc"), None);
        assert_eq!(workspace_in_path("/v1/workspaces"), None);
    }
}
