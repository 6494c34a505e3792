//! The dashboard: one self-contained page served by the control plane that drives the same REST
//! API with an API key kept in the browser's local storage. No build step, no network beyond it.

use axum::response::Html;

#[utoipa::path(
    get,
    path = "/",
    tag = "operations",
    summary = "The dashboard (HTML)",
    responses((status = 200, description = "HTML page", body = String, content_type = "text/html"))
)]
pub(super) async fn page() -> Html<&'static str> {
    Html(include_str!("dashboard.html"))
}
