//! The REST API (axum): JSON under `/v1`, every error as `application/problem+json` (unknown
//! paths and unserved methods included), callers authenticated by API key or a person's JWT and
//! confined to one workspace; body limits, rate limits and CORS in front of everything; probes
//! and metrics beside it, and the dashboard at `/`.
//!
//! Who may do what: every route a [`Caller`] reaches declares its least role in the route table
//! below with [`needs`], checked once, as the caller is authenticated; handlers only check what
//! depends on the request itself (a role granted may not exceed the granter's):
//!
//! | role   | may |
//! | ------ | --- |
//! | viewer | read agents, workflows, numbers, providers (secrets masked, as an agent's keys are), calls (and their recordings), analytics, edges, the workspace and its members; validate workflows |
//! | editor | + create, change and delete agents, workflows and numbers; publish workflows; place and hang up calls, dial their legs to the agent's transfer destinations and bridge them; test a provider (`POST /v1/providers/{id}/test`) |
//! | admin  | + rename the workspace, manage members (not owners), API keys, webhooks, and create, change and delete providers, delete call recordings, read the audit log, drain an edge; make edge join tokens, revoke and delete edges, read the trust audit |
//! | owner  | + make or unmake owners, delete the workspace |

mod agents;
mod analytics;
mod audit;
mod auth;
mod body_limit;
mod call_legs;
mod call_placing;
mod calls;
mod crud;
mod dashboard;
mod edge_ca;
pub(crate) mod edge_choice;
mod edge_trust;
mod edges;
mod erasures;
mod health;
pub(crate) mod json;
mod keys;
mod login;
mod numbers;
mod openapi;
pub(crate) mod problem;
mod provider_health;
mod provider_test;
pub(crate) use provider_test::ProviderTests;
mod providers;
pub(crate) mod query;
mod rate_limit;
mod recordings;
mod resource_id;
mod sealed_recording;
mod tokens;
mod webhooks;
mod workflows;
mod workspaces;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{delete, get, patch, post, MethodRouter};
use axum::Extension;
use axum::Router;
use serde::Serialize;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::grpc::CommandHub;
use crate::metrics::ControlMetrics;
use crate::store::{Role, Store};

pub(crate) use auth::{Caller, WORKSPACE_HEADER};
pub use login::hash_password;
pub(crate) use rate_limit::RateLimiter;
pub use tokens::Claims;
pub(crate) use tokens::TokenIssuer;

/// What every handler can reach.
#[derive(Clone)]
pub(crate) struct AppState {
    pub store: Store,
    pub metrics: Arc<ControlMetrics>,
    /// An edge not heard from for this long is shown offline.
    pub offline_after_ms: i64,
    /// Signs and verifies people's tokens.
    pub tokens: Arc<TokenIssuer>,
    /// The command streams of the edges connected to this process.
    pub commands: CommandHub,
    /// Commands to edges through whichever replica holds their stream.
    pub relay: crate::grpc::CommandRelay,
    pub limiter: Arc<RateLimiter>,
    /// Password checks at once, and lockouts after repeated failures (`login.rs`).
    pub login_limits: Arc<login::LoginLimits>,
    /// `http.cors_allowed_origins`.
    pub cors_allowed_origins: Vec<String>,
    /// `webhooks.allow_private_targets`.
    pub allow_private_webhook_targets: bool,
    /// `recordings.dir`: where call recordings are read from.
    pub recordings_dir: std::path::PathBuf,
    /// What the edges' cluster gossip reports about each edge (`GET /v1/edges`).
    pub cluster: crate::cluster::ClusterBoard,
    /// What the edges' OPTIONS pings say about each SIP trunk (`GET /v1/providers`).
    pub trunk_health: crate::trunk_health::TrunkHealthBoard,
    /// The cluster CA: join tokens pin its fingerprint.
    pub ca: crate::trust::anchors::ClusterTrust,
    /// Revoked certificates, refreshed at once when this process revokes one.
    pub revoked: crate::trust::revoked::RevokedSerials,
    /// `POST /v1/providers/{id}/test`: the guarded HTTP client and the limits on tests.
    pub provider_tests: Arc<provider_test::ProviderTests>,
}

/// A page of results. Every list has this shape; `next_cursor` is set when there is more.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct List<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> List<T> {
    /// A complete, single-page list of `items`, each made into the view `T`.
    pub(crate) fn of<S: Into<T>>(items: impl IntoIterator<Item = S>) -> Self {
        Self {
            data: items.into_iter().map(Into::into).collect(),
            next_cursor: None,
        }
    }
}

/// Largest accepted request body, on every route: refused from `Content-Length` before the body
/// is read ([`body_limit`]), and cut off at this size while reading one sent without it.
const BODY_LIMIT_BYTES: usize = 1024 * 1024;

/// `route` open only to callers with at least `role`: the route table's one declaration of who
/// may use a route, enforced by the [`Caller`] extractor.
fn needs(role: Role, route: MethodRouter<AppState>) -> MethodRouter<AppState> {
    route.route_layer(Extension(auth::Needs(role)))
}

/// A workspace resource on the generic CRUD path ([`crud`]), handlers in the order list,
/// create, get, patch, delete: `reader` lists it at `path` and reads it at `path/{id}`,
/// `writer` creates, changes and deletes it. Every such resource is routed, and its roles
/// declared, the one way.
fn crud_resource<L, C, G, P, D, TL, TC, TG, TP, TD>(
    path: &str,
    reader: Role,
    writer: Role,
    (list, create, read, change, remove): (L, C, G, P, D),
) -> Router<AppState>
where
    L: axum::handler::Handler<TL, AppState>,
    C: axum::handler::Handler<TC, AppState>,
    G: axum::handler::Handler<TG, AppState>,
    P: axum::handler::Handler<TP, AppState>,
    D: axum::handler::Handler<TD, AppState>,
    TL: 'static,
    TC: 'static,
    TG: 'static,
    TP: 'static,
    TD: 'static,
{
    Router::new()
        .route(
            path,
            needs(reader, get(list)).merge(needs(writer, post(create))),
        )
        .route(
            &format!("{path}/{{id}}"),
            needs(reader, get(read)).merge(needs(writer, patch(change).delete(remove))),
        )
}

fn v1() -> Router<AppState> {
    Router::new()
        .route("/auth/login", post(login::login))
        .route("/auth/refresh", post(login::refresh))
        .route(
            "/workspaces",
            get(workspaces::list).post(workspaces::create),
        )
        .route(
            "/workspaces/{workspace_id}",
            needs(Role::Viewer, get(workspaces::get))
                .merge(needs(Role::Admin, patch(workspaces::rename)))
                .merge(needs(Role::Owner, delete(workspaces::delete))),
        )
        .route(
            "/workspaces/{workspace_id}/members",
            needs(Role::Viewer, get(workspaces::members))
                .merge(needs(Role::Admin, post(workspaces::add_member))),
        )
        .route(
            "/workspaces/{workspace_id}/members/{user_id}",
            needs(
                Role::Admin,
                patch(workspaces::change_member).delete(workspaces::remove_member),
            ),
        )
        .route(
            "/workspaces/{workspace_id}/api-keys",
            needs(Role::Admin, get(keys::list).post(keys::create)),
        )
        .route(
            "/workspaces/{workspace_id}/api-keys/{key_id}",
            needs(Role::Admin, delete(keys::revoke)),
        )
        .route("/edges", needs(Role::Viewer, get(edges::list)))
        .route("/edges/{id}/drain", needs(Role::Admin, post(edges::drain)))
        .route(
            "/edges/join-tokens",
            needs(Role::Admin, post(edge_trust::create_join_token)),
        )
        .route(
            "/edges/trust-audit",
            needs(Role::Admin, get(edge_trust::audit)),
        )
        .route(
            "/edges/{id}",
            needs(Role::Admin, delete(edge_trust::delete)),
        )
        .route(
            "/edges/{id}/revoke",
            needs(Role::Admin, post(edge_trust::revoke)),
        )
        .route("/edges/ca", needs(Role::Admin, get(edge_ca::show)))
        .route(
            "/edges/ca/rotate",
            needs(Role::Admin, post(edge_ca::rotate)),
        )
        .route(
            "/edges/ca/retire",
            needs(Role::Admin, post(edge_ca::retire)),
        )
        .route(
            "/edges/{id}/renew",
            needs(Role::Admin, post(edge_ca::renew)),
        )
        .merge(crud_resource(
            "/agents",
            Role::Viewer,
            Role::Editor,
            (
                agents::list,
                agents::create,
                agents::get,
                agents::patch,
                agents::delete,
            ),
        ))
        .merge(crud_resource(
            "/phone-numbers",
            Role::Viewer,
            Role::Editor,
            (
                numbers::list,
                numbers::create,
                numbers::get,
                numbers::patch,
                numbers::delete,
            ),
        ))
        .merge(crud_resource(
            "/workflows",
            Role::Viewer,
            Role::Editor,
            (
                workflows::list,
                workflows::create,
                workflows::get,
                workflows::patch,
                workflows::delete,
            ),
        ))
        .route(
            "/workflows/validate",
            needs(Role::Viewer, post(workflows::check)),
        )
        .route(
            "/workflows/{id}/publish",
            needs(Role::Editor, post(workflows::publish)),
        )
        .route(
            "/workflows/{id}/versions",
            needs(Role::Viewer, get(workflows::versions)),
        )
        .route(
            "/workflows/{id}/versions/{version}",
            needs(Role::Viewer, get(workflows::version)),
        )
        .route(
            "/calls",
            needs(Role::Viewer, get(calls::list))
                .merge(needs(Role::Editor, post(call_placing::place))),
        )
        .route(
            "/calls/{id}",
            needs(Role::Viewer, get(calls::get))
                .merge(needs(Role::Admin, delete(erasures::erase_call))),
        )
        .route(
            "/erasures",
            needs(Role::Admin, post(erasures::erase_caller)),
        )
        .route(
            "/calls/{id}/hangup",
            needs(Role::Editor, post(calls::hangup)),
        )
        .route(
            "/calls/{id}/legs",
            needs(Role::Editor, post(call_legs::dial)),
        )
        .route(
            "/calls/{id}/legs/{leg}",
            needs(Role::Editor, delete(call_legs::hang_up)),
        )
        .route(
            "/calls/{id}/bridge",
            needs(Role::Editor, post(call_legs::bridge))
                .merge(needs(Role::Editor, delete(call_legs::unbridge))),
        )
        .route(
            "/calls/{id}/recording",
            needs(Role::Viewer, get(recordings::download))
                .merge(needs(Role::Admin, delete(recordings::delete))),
        )
        .route("/audit-log", needs(Role::Admin, get(audit::list)))
        .merge(crud_resource(
            "/providers",
            Role::Viewer,
            Role::Admin,
            (
                providers::list,
                providers::create,
                providers::get,
                providers::patch,
                providers::delete,
            ),
        ))
        .route(
            "/providers/{id}/test",
            needs(Role::Editor, post(provider_test::test)),
        )
        .merge(crud_resource(
            "/webhooks",
            Role::Admin,
            Role::Admin,
            (
                webhooks::list,
                webhooks::create,
                webhooks::get,
                webhooks::patch,
                webhooks::delete,
            ),
        ))
        .route(
            "/webhooks/{id}/deliveries",
            needs(Role::Admin, get(webhooks::deliveries)),
        )
        .route(
            "/webhooks/{id}/deliveries/{delivery_id}/redeliver",
            needs(Role::Admin, post(webhooks::redeliver)),
        )
        .route(
            "/analytics/calls",
            needs(Role::Viewer, get(analytics::calls)),
        )
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(not_found)
}

/// The CORS layer for `origins` (`*` for any); `None` when CORS is off.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()))
    };
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PATCH,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static(WORKSPACE_HEADER),
                HeaderName::from_static("idempotency-key"),
            ])
            .expose_headers([header::RETRY_AFTER]),
    )
}

/// The whole HTTP surface of the control plane.
pub(crate) fn router(state: AppState) -> Router {
    let v1 = v1().layer(middleware::from_fn_with_state(
        state.clone(),
        rate_limit::limit,
    ));
    let router = Router::new()
        .route("/", get(dashboard::page))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::openapi_json))
        .route("/docs", get(openapi::docs_page))
        .method_not_allowed_fallback(method_not_allowed)
        .nest("/v1", v1)
        .fallback(dashboard::fallback)
        .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
        .layer(middleware::from_fn_with_state(
            BODY_LIMIT_BYTES,
            body_limit::refuse_oversized,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            health::watch_storage,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            count_requests,
        ))
        .layer(middleware::from_fn(record_source));
    let router = match cors(&state.cors_allowed_origins) {
        Some(layer) => router.layer(layer),
        None => router,
    };
    router.with_state(state)
}

/// Any path no route serves, under `/v1` or not: a problem, like every other error.
async fn not_found() -> problem::Problem {
    problem::Problem::new(
        axum::http::StatusCode::NOT_FOUND,
        "Not found",
        "no such endpoint",
    )
}

/// A route that exists, asked with a method it does not serve. The router still adds the
/// `Allow` header listing the methods it does.
async fn method_not_allowed(method: Method) -> problem::Problem {
    problem::Problem::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "Method not allowed",
        format!("this endpoint does not serve {method}; the Allow header lists what it does"),
    )
}

/// Serves the request with the client's address as the source every audit entry of its changes
/// records. Requests that did not come over a socket (none in practice) record none.
async fn record_source(request: Request, next: Next) -> Response {
    let source = request
        .extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map(|axum::extract::ConnectInfo(addr)| addr.ip());
    match source {
        Some(ip) => crate::store::with_request_source(ip, next.run(request)).await,
        None => next.run(request).await,
    }
}

async fn count_requests(State(state): State<AppState>, request: Request, next: Next) -> Response {
    state.metrics.http_requests.inc();
    next.run(request).await
}
