//! What stands in front of every request: rate limits per credential and per IP (429 with
//! `Retry-After`), CORS for configured origins only; and no part of the API left answering 501.

use crate::support;

use reqwest::StatusCode;

use crate::support::http::Api;
use crate::support::{control_config, Backend, TestDb};
use freya_control::server::ControlPlane;

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut config = control_config(&db.url);
    config.rate_limits.burst = 3;
    config.rate_limits.per_key_per_minute = 60;
    config.rate_limits.per_ip_per_minute = 600;
    let control = ControlPlane::start(&config).await.expect("control starts");
    let api = Api::of(&control);
    let (_, [owner, admin, _, _]) = support::http::workspace_with_keys(&control, "R").await;
    for _ in 0..3 {
        assert_eq!(
            api.call("GET", "/v1/agents", &owner, None).await.status,
            StatusCode::OK
        );
    }
    let limited = api.call("GET", "/v1/agents", &owner, None).await;
    assert_eq!(
        limited.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        limited.body
    );
    let retry: u64 = limited.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=2).contains(&retry), "{retry}");
    // Another key has its own bucket; but the IP's burst of 3 is shared and spent too.
    api.expect(429, "GET", "/v1/agents", &admin, None).await;
    control.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn cors_answers_preflight_for_configured_origins_only() {
    let db = TestDb::new(Backend::Sqlite).await;
    let mut config = control_config(&db.url);
    config.http.cors_allowed_origins = vec!["https://app.example.com".into()];
    let control = ControlPlane::start(&config).await.expect("control starts");
    let api = Api::of(&control);
    let preflight = |origin: &'static str| {
        api.http
            .request(reqwest::Method::OPTIONS, format!("{}/v1/agents", api.base))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .send()
    };
    let allowed = preflight("https://app.example.com")
        .await
        .expect("preflight");
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let other = preflight("https://evil.example.com")
        .await
        .expect("preflight");
    assert!(!other.headers().contains_key("access-control-allow-origin"));
    control.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn formerly_unbuilt_parts_of_the_api_answer_for_real_not_501() {
    let (db, control, api) = support::http::started(Backend::Sqlite).await;
    let (_, [owner, ..]) = support::http::workspace_with_keys(&control, "N").await;
    for (method, path, expected) in [
        ("GET", "/v1/providers", StatusCode::OK),
        ("GET", "/v1/webhooks", StatusCode::OK),
        ("GET", "/v1/analytics/calls", StatusCode::OK),
        ("GET", "/openapi.json", StatusCode::OK),
        ("GET", "/docs", StatusCode::OK),
        // A path under a built prefix that names nothing is a 404, not a 501.
        ("GET", "/v1/analytics/costs", StatusCode::NOT_FOUND),
    ] {
        let answer = api.call(method, path, &owner, None).await;
        assert_eq!(answer.status, expected, "{method} {path}");
    }
    control.stop().await;
    db.cleanup().await;
}
