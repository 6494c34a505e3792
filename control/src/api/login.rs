//! `/v1/auth`: a person trades email and password for a short-lived token (`login`) and a
//! still-valid token for a fresh one (`refresh`). Passwords are checked against their argon2id
//! hashes off the async threads; an unknown email costs the same work as a wrong password, so
//! timing does not tell which emails exist.

use std::sync::OnceLock;

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};

use super::auth::Person;
use super::json::StrictJson;
use super::problem::Problem;
use super::AppState;
use freya_shared::ids::rfc3339;

/// `POST /v1/auth/login`.
#[derive(Deserialize, utoipa::ToSchema)]
pub struct LoginRequest {
    email: String,
    password: String,
}

/// A token and when it expires.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TokenResponse {
    token: String,
    token_type: &'static str,
    expires_at: String,
}

/// Hashes a password with argon2id (the crate's default), for seeding and tests.
pub fn hash_password(password: &str) -> Result<String, argon2::password_hash::Error> {
    Ok(argon2::Argon2::default()
        .hash_password(password.as_bytes(), &SaltString::generate(&mut OsRng))?
        .to_string())
}

/// A hash nobody's password matches, verified against when the email is unknown.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password that matches nothing").unwrap_or_default())
}

fn password_matches(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

fn issue(state: &AppState, user_id: &str) -> Result<Json<TokenResponse>, Problem> {
    let issued = state.tokens.issue(user_id).map_err(|e| {
        tracing::error!(error = %e, "cannot sign a token");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal error",
            "cannot sign a token",
        )
    })?;
    Ok(Json(TokenResponse {
        token: issued.token,
        token_type: "Bearer",
        expires_at: rfc3339(issued.expires_at_ms),
    }))
}

#[utoipa::path(
    post,
    path = "/v1/auth/login",
    tag = "auth",
    summary = "Log in with email and password",
    request_body = LoginRequest,
    responses((status = 200, description = "A token", body = TokenResponse))
)]
pub(super) async fn login(
    State(state): State<AppState>,
    StrictJson(request): StrictJson<LoginRequest>,
) -> Result<Json<TokenResponse>, Problem> {
    let user = state.store.user_credentials(&request.email).await?;
    let hash = user
        .as_ref()
        .map_or_else(|| decoy_hash().to_owned(), |u| u.password_hash.clone());
    let password = request.password;
    let matches = tokio::task::spawn_blocking(move || password_matches(&password, &hash))
        .await
        .unwrap_or(false);
    match user {
        Some(user) if matches => issue(&state, &user.id),
        _ => Err(Problem::unauthorized("wrong email or password")),
    }
}

#[utoipa::path(
    post,
    path = "/v1/auth/refresh",
    tag = "auth",
    summary = "A fresh token for the caller's token",

    responses((status = 200, description = "A token", body = TokenResponse))
)]
pub(super) async fn refresh(
    State(state): State<AppState>,
    person: Person,
) -> Result<Json<TokenResponse>, Problem> {
    issue(&state, &person.user_id)
}
