//! Who is calling: `Authorization: Bearer <api key>` resolved to a workspace and a role. Handlers
//! take a [`Caller`] argument, so an unauthenticated request never reaches them, and they get the
//! workspace scope from it — the only way to reach customer data.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use super::problem::Problem;
use super::AppState;
use crate::store::{Role, WorkspaceScope};

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    pub scope: WorkspaceScope,
    pub role: Role,
    /// Who to name in the audit log.
    pub actor: String,
}

impl Caller {
    /// Refuses the request unless the caller's role is at least `needed`.
    pub fn require(&self, needed: Role) -> Result<(), Problem> {
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

impl FromRequestParts<AppState> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Problem> {
        let header = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| Problem::unauthorized("send `Authorization: Bearer <api key>`"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Problem::unauthorized("the Authorization header must be `Bearer <api key>`")
            })?;
        let identity = state
            .store
            .authenticate_api_key(token)
            .await?
            .ok_or_else(|| Problem::unauthorized("unknown or revoked API key"))?;
        Ok(Caller {
            actor: format!("api_key:{}", identity.key_id),
            scope: identity.scope,
            role: identity.role,
        })
    }
}
