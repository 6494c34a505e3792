//! The dashboard as the control plane serves it: the embedded build's files with their cache
//! rules, `index.html` for a browser opening a client-side route, and the API's 404 problem
//! for everything else (API paths, missing files, clients that do not ask for HTML).

use reqwest::header::{ACCEPT, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use reqwest::StatusCode;

use crate::support::http::started;
use crate::support::Backend;

#[tokio::test]
async fn the_dashboard_is_served_with_its_cache_rules_and_a_route_fallback() {
    let (db, control, api) = started(Backend::Sqlite).await;
    let get = |path: &str, accept: &str| {
        api.http
            .get(format!("{}{path}", api.base))
            .header(ACCEPT, accept)
            .send()
    };
    let header = |r: &reqwest::Response, name| {
        r.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };

    let index = get("/", "text/html").await.expect("index");
    assert_eq!(index.status(), StatusCode::OK);
    assert_eq!(header(&index, CACHE_CONTROL), "no-cache");
    assert!(header(&index, CONTENT_TYPE).starts_with("text/html"));
    assert!(header(&index, CONTENT_SECURITY_POLICY).contains("script-src 'self'"));
    let html = index.text().await.expect("html");
    let script = html
        .split("src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("index.html names its script")
        .to_owned();
    assert!(script.starts_with("/assets/"), "{script}");

    let asset = get(&script, "*/*").await.expect("asset");
    assert_eq!(asset.status(), StatusCode::OK);
    assert_eq!(
        header(&asset, CACHE_CONTROL),
        "public, max-age=31536000, immutable"
    );
    assert!(header(&asset, CONTENT_TYPE).contains("javascript"));

    // A browser opening a client-side route gets the application.
    let route = get("/calls/0000", "text/html,application/xhtml+xml")
        .await
        .expect("route");
    assert_eq!(route.status(), StatusCode::OK);
    assert_eq!(header(&route, CACHE_CONTROL), "no-cache");
    assert_eq!(route.text().await.expect("route body"), html);

    // Everything else keeps the API's 404 problem.
    for (path, accept) in [
        ("/v1/nothing", "text/html"),
        ("/v1", "text/html"),
        ("/assets/missing-0000.js", "text/html"),
        ("/calls", "application/json"),
    ] {
        let answer = get(path, accept).await.expect("request");
        assert_eq!(answer.status(), StatusCode::NOT_FOUND, "{path} ({accept})");
        assert_eq!(
            header(&answer, CONTENT_TYPE),
            "application/problem+json",
            "{path}"
        );
    }
    let post = api
        .http
        .post(format!("{}/calls", api.base))
        .header(ACCEPT, "text/html")
        .send()
        .await
        .expect("post");
    assert_eq!(post.status(), StatusCode::NOT_FOUND);

    control.stop().await;
    db.cleanup().await;
}
