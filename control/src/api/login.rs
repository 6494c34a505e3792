//! `/v1/auth`: a person trades email and password for a short-lived token (`login`) and a
//! still-valid token for a fresh one (`refresh`). Passwords are checked against their argon2id
//! hashes off the async threads; an unknown email costs the same work as a wrong password, so
//! timing does not tell which emails exist.
//!
//! Guessing is bounded twice (`LoginLimits`): at most one password check per core runs at a
//! time (each argon2 check allocates its whole memory cost at once, so this bounds memory as
//! well as CPU; a login that finds no free slot within `HASH_SLOT_WAIT` is a 429), and the
//! `LoginThrottle` locks an account or client address after repeated failures (a 429 answered
//! before any hashing). Each lockout is written to the audit log.

mod throttle;

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use throttle::{Lockout, LoginThrottle, Subject};

use super::auth::Person;
use super::json::StrictJson;
use super::problem::{retry_seconds, Problem};
use super::AppState;
use freya_shared::ids::rfc3339;

/// `POST /v1/auth/login`.
#[derive(Deserialize, utoipa::ToSchema)]
pub(super) struct LoginRequest {
    email: String,
    password: String,
}

/// A token and when it expires.
#[derive(Serialize, utoipa::ToSchema)]
pub(super) struct TokenResponse {
    token: String,
    token_type: &'static str,
    expires_at: String,
}

/// How long a login waits for a free password-checking slot before it is refused.
pub(super) const HASH_SLOT_WAIT: Duration = Duration::from_millis(100);

/// What bounds password checking in this process.
pub(crate) struct LoginLimits {
    /// Failure counts and lockouts per account and client address. A `std` mutex held for a
    /// map lookup, never across an await.
    throttle: Mutex<LoginThrottle>,
    /// One permit per core, held by the blocking task for as long as it hashes (even when the
    /// client has gone), so memory for hashing stays at cores × argon2's memory cost.
    hashing: Arc<Semaphore>,
}

impl Default for LoginLimits {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        Self::new(cores)
    }
}

impl LoginLimits {
    /// Limits allowing `concurrent_checks` password checks at once (at least 1).
    pub(crate) fn new(concurrent_checks: usize) -> Self {
        Self {
            throttle: Mutex::new(LoginThrottle::default()),
            hashing: Arc::new(Semaphore::new(concurrent_checks.max(1))),
        }
    }

    fn check(&self, now: Instant, subjects: &[Subject]) -> Result<(), Duration> {
        match self.throttle.lock() {
            Ok(t) => t.check(now, subjects),
            Err(_) => Ok(()), // a poisoned throttle must not lock everyone out
        }
    }

    /// Records the outcome of a check; returns the lockouts it caused.
    fn record(&self, now: Instant, subjects: &[Subject], matched: bool) -> Vec<Lockout> {
        let Ok(mut t) = self.throttle.lock() else {
            return Vec::new();
        };
        if matched {
            t.handle_success(subjects);
        } else {
            t.handle_failure(now, subjects);
        }
        std::iter::from_fn(|| t.poll_lockout()).collect()
    }

    /// A password-checking slot, if one frees up within `HASH_SLOT_WAIT`.
    async fn slot(&self) -> Option<OwnedSemaphorePermit> {
        tokio::time::timeout(HASH_SLOT_WAIT, self.hashing.clone().acquire_owned())
            .await
            .ok()?
            .ok()
    }
}

/// A refused login: 429 problem+json with `Retry-After` in whole seconds (at least 1).
fn too_many(detail: &str, wait: Duration) -> Response {
    let seconds = retry_seconds(wait).max(1);
    Problem::too_many_requests(
        "Too many login attempts",
        format!("{detail}; retry in {seconds} s"),
        wait,
    )
}

/// Writes a lockout to the audit log; a failure to write is logged, and the login still refused.
async fn audit_lockout(state: &AppState, email: &str, lockout: &Lockout) {
    let detail = serde_json::json!({
        "email": email,
        "failures": lockout.failures,
        "locked_seconds": lockout.duration.as_secs_f64(),
    });
    let address;
    let (actor, resource_type) = match &lockout.subject {
        Subject::Account(account) => (account.as_str(), "account"),
        Subject::Address(ip) => {
            address = ip.to_string();
            (address.as_str(), "client_address")
        }
    };
    tracing::warn!(
        actor,
        resource_type,
        failures = lockout.failures,
        "logins locked out"
    );
    if let Err(e) = state
        .store
        .audit_login_lockout(email, actor, resource_type, actor, detail)
        .await
    {
        state.store.storage_health().record(&e);
        tracing::error!(error = %e, "cannot audit a login lockout");
    }
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
        Problem::internal("cannot sign a token")
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
    responses(
        (status = 200, description = "A token", body = TokenResponse),
        (status = 429, description = "Too many failed logins for the account or address, or too many logins in progress; see Retry-After")
    )
)]
pub(super) async fn login(
    State(state): State<AppState>,
    source: Option<Extension<ConnectInfo<SocketAddr>>>,
    StrictJson(request): StrictJson<LoginRequest>,
) -> Result<Response, Problem> {
    let limits = &state.login_limits;
    let mut subjects = vec![Subject::account(&request.email)];
    if let Some(Extension(ConnectInfo(addr))) = source {
        subjects.push(Subject::Address(addr.ip()));
    }
    if let Err(wait) = limits.check(Instant::now(), &subjects) {
        return Ok(too_many("too many failed logins", wait));
    }
    let Some(slot) = limits.slot().await else {
        return Ok(too_many(
            "too many logins in progress",
            Duration::from_secs(1),
        ));
    };
    // Another attempt may have locked a subject while this one waited for its slot.
    if let Err(wait) = limits.check(Instant::now(), &subjects) {
        return Ok(too_many("too many failed logins", wait));
    }
    let user = state.store.user_credentials(&request.email).await?;
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let password = request.password;
    let matches = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        match &hash {
            Some(hash) => password_matches(&password, hash),
            None => password_matches(&password, decoy_hash()),
        }
    })
    .await
    .unwrap_or(false);
    let matched = matches && user.is_some();
    for lockout in limits.record(Instant::now(), &subjects, matched) {
        audit_lockout(&state, &request.email, &lockout).await;
    }
    match user {
        Some(user) if matched => issue(&state, &user.id).map(IntoResponse::into_response),
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
