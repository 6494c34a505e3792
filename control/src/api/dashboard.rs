//! The dashboard: a React application (`control/dashboard/`) whose production build is
//! compiled into the binary, so `cargo build` alone gives a control plane with its dashboard.
//! It drives the same REST API as everyone else, signed in with a person's token.
//!
//! Serving rules: a file of the build is served with its content type; Vite's hashed assets
//! (`/assets/*`) are cached for a year as immutable, everything else (`index.html` above all)
//! with `no-cache`, so a new binary's dashboard is seen on the next load. A browser navigating
//! to one of the application's own routes (`/calls/…`) gets `index.html`, which routes on the
//! client. Requests that are not a browser's navigation (no `text/html` in `Accept`), paths
//! under `/v1`, and paths that look like a missing file keep the API's `404` problem.

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use include_dir::{include_dir, Dir};

/// The checked-in production build (`npm run build` in `control/dashboard`).
static DIST: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/dashboard/dist");

/// Hashed file names never change content: a year, and no revalidation.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Everything else is revalidated on each load, so a new build shows at once.
const REVALIDATE: &str = "no-cache";
/// The page runs only its own scripts and talks only to its own origin: a token kept in the
/// page is worth stealing, so injected markup must not run or send it anywhere.
const PAGE_POLICY: &str =
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; object-src 'none'; \
    base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

#[utoipa::path(
    get,
    path = "/",
    tag = "operations",
    summary = "The dashboard (HTML)",
    responses((status = 200, description = "HTML page", body = String, content_type = "text/html"))
)]
pub(super) async fn page() -> Response {
    index()
}

/// The router's fallback: a file of the build, the application's page for a browser's
/// navigation to a client-side route, or the API's `404` problem.
pub(super) async fn fallback(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return super::not_found().await.into_response();
    }
    let path = uri.path();
    if let Some(file) = asset(path) {
        return file;
    }
    if is_navigation(path, &headers) {
        return index();
    }
    super::not_found().await.into_response()
}

/// `index.html`, revalidated on every load.
fn index() -> Response {
    match DIST.get_file("index.html") {
        Some(file) => file_response("index.html", file.contents()),
        None => (
            StatusCode::NOT_FOUND,
            "this binary was built without the dashboard",
        )
            .into_response(),
    }
}

/// A file of the build by its URL path, if there is one.
fn asset(path: &str) -> Option<Response> {
    let relative = path.strip_prefix('/')?;
    if relative.is_empty() || relative.split('/').any(|segment| segment == "..") {
        return None;
    }
    let file = DIST.get_file(relative)?;
    Some(file_response(relative, file.contents()))
}

/// Whether a request is a browser opening one of the application's routes: not under `/v1`,
/// no file extension in its last segment, and HTML accepted.
fn is_navigation(path: &str, headers: &HeaderMap) -> bool {
    if path == "/v1" || path.starts_with("/v1/") {
        return false;
    }
    let last = path.rsplit('/').next().unwrap_or_default();
    if last.contains('.') {
        return false;
    }
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"))
}

fn file_response(relative: &str, contents: &'static [u8]) -> Response {
    let mime = mime_guess::from_path(relative).first_or_octet_stream();
    let cache = if relative.starts_with("assets/") {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    let content_type = HeaderValue::from_str(mime.as_ref())
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let mut response = (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        contents,
    )
        .into_response();
    if relative == "index.html" {
        response.headers_mut().insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(PAGE_POLICY),
        );
    }
    response
}
