//! Tool calls against a local axum endpoint that verifies Freya's signature like a customer would,
//! and a runner without a secret that sends nothing.

use std::time::{Duration, SystemTime};

use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use bytes::Bytes;
use serde_json::json;

use super::*;
use crate::egress::EgressConfig;
use crate::test_support::local_egress;

const SECRET: &[u8] = b"tool-secret";

async fn signed_echo(headers: HeaderMap, body: Bytes) -> (StatusCode, String) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let verdict = verify_signature(
        SECRET,
        &header(SIGNATURE_HEADER),
        &body,
        SystemTime::now(),
        TOLERANCE,
    );
    if verdict.is_err() {
        return (StatusCode::UNAUTHORIZED, "bad signature".into());
    }
    let arguments: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let reply = json!({"call_id": header(CALL_ID_HEADER), "received": arguments});
    (StatusCode::OK, reply.to_string())
}

async fn start_endpoint() -> String {
    let app = Router::new()
        .route("/hook", post(signed_echo))
        .route("/text", post(|| async { "Booked for Monday." }))
        .route(
            "/fail",
            post(|| async { (StatusCode::INTERNAL_SERVER_ERROR, "database down") }),
        )
        .route(
            "/slow",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                "late"
            }),
        );
    let address = crate::test_support::serve_locally(app).await;
    format!("http://{address}")
}

fn endpoint(base: &str, path: &str, timeout: Duration) -> ToolEndpoint {
    ToolEndpoint {
        name: "book_appointment".into(),
        url: format!("{base}{path}"),
        timeout,
    }
}

/// Asks the tool at `base` + `/hook`, for call `call_id`, to book Monday.
async fn book_monday(
    runner: &ToolRunner,
    base: &str,
    call_id: &str,
) -> Result<ToolOutput, ToolError> {
    let hook = endpoint(base, "/hook", Duration::from_secs(5));
    runner.run(&hook, call_id, &json!({"day": "monday"})).await
}

/// Runs the tool at `path` of a fresh test endpoint, signed with the secret it expects.
async fn run_on_test_endpoint(path: &str, timeout: Duration) -> Result<ToolOutput, ToolError> {
    let base = start_endpoint().await;
    let runner = ToolRunner::new(local_egress(), SECRET);
    run_tool(&runner, &base, path, timeout).await
}

/// Runs the tool at `base` + `path` for call `c` with no arguments: what most cases here ask.
async fn run_tool(
    runner: &ToolRunner,
    base: &str,
    path: &str,
    timeout: Duration,
) -> Result<ToolOutput, ToolError> {
    runner
        .run(&endpoint(base, path, timeout), "c", &json!({}))
        .await
}

#[tokio::test]
async fn signed_request_reaches_the_tool_and_its_json_comes_back() {
    let base = start_endpoint().await;
    let runner = ToolRunner::new(local_egress(), SECRET);
    let output = book_monday(&runner, &base, "call-42")
        .await
        .expect("tool answers");
    assert_eq!(
        output,
        ToolOutput::Json(json!({"call_id": "call-42", "received": {"day": "monday"}}))
    );
}

#[tokio::test]
async fn wrong_secret_is_refused_by_the_receiver() {
    let base = start_endpoint().await;
    let runner = ToolRunner::new(local_egress(), b"another-secret".to_vec());
    let error = run_tool(&runner, &base, "/hook", Duration::from_secs(5))
        .await
        .expect_err("refused");
    assert!(
        matches!(error, ToolError::Status { status: 401, .. }),
        "{error}"
    );
}

#[tokio::test]
async fn text_response_is_returned_as_text() {
    let output = run_on_test_endpoint("/text", Duration::from_secs(5))
        .await
        .expect("tool answers");
    assert_eq!(output.to_model_content(), "Booked for Monday.");
}

#[tokio::test]
async fn server_error_is_a_status_error_with_the_body() {
    let error = run_on_test_endpoint("/fail", Duration::from_secs(5))
        .await
        .expect_err("fails");
    assert_eq!(
        error,
        ToolError::Status {
            tool: "book_appointment".into(),
            status: 500,
            body: "database down".into()
        }
    );
}

#[tokio::test]
async fn slow_tool_times_out() {
    let error = run_on_test_endpoint("/slow", Duration::from_millis(200))
        .await
        .expect_err("times out");
    assert!(matches!(error, ToolError::Timeout { .. }), "{error}");
}

#[tokio::test]
async fn unreachable_tool_is_a_connect_error() {
    let address = crate::test_support::closed_address().await;
    let runner = ToolRunner::new(local_egress(), SECRET);
    let error = run_tool(
        &runner,
        &format!("http://{address}"),
        "/hook",
        Duration::from_secs(5),
    )
    .await
    .expect_err("unreachable");
    assert!(matches!(error, ToolError::Connect { .. }), "{error}");
}

#[tokio::test]
async fn non_http_urls_are_refused_before_sending() {
    let runner = ToolRunner::new(local_egress(), SECRET);
    let tool = ToolEndpoint {
        name: "t".into(),
        url: "ftp://example.invalid/x".into(),
        timeout: Duration::from_secs(1),
    };
    let error = runner
        .run(&tool, "c", &json!({}))
        .await
        .expect_err("refused");
    assert!(matches!(error, ToolError::InvalidUrl { .. }));
}

#[test]
fn verification_rejects_tampering_staleness_and_junk() {
    let now = SystemTime::now();
    let ts = freya_shared::signature::unix_seconds(now);
    let body = br#"{"day":"monday"}"#;
    let signature = sign(SECRET, ts, body).expect("sign");
    let check = |sig: &str, body: &[u8]| verify_signature(SECRET, sig, body, now, TOLERANCE);
    assert_eq!(check(&signature, body), Ok(ts));
    assert_eq!(
        check(&signature, br#"{"day":"friday"}"#),
        Err(SignatureError::Mismatch)
    );
    assert_eq!(
        check(&sign(SECRET, ts - 600, body).expect("sign"), body),
        Err(SignatureError::Stale { age_seconds: 600 })
    );
    assert!(matches!(
        check("sha256=abc", body),
        Err(SignatureError::Malformed(_))
    ));
}

/// Counts the requests that reach it, answering each with 200 and `reply`.
async fn counting_endpoint(
    reply: &'static str,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    let app = Router::new().route(
        "/hook",
        post(move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                reply
            }
        }),
    );
    let address = crate::test_support::serve_locally(app).await;
    (address, hits)
}

#[tokio::test]
async fn a_runner_without_a_secret_sends_nothing_rather_than_sign_with_an_empty_key() {
    use std::sync::atomic::Ordering;
    let (address, hits) = counting_endpoint("ok").await;
    let base = format!("http://{address}");
    let runner = ToolRunner::new(local_egress(), Vec::new());
    let error = book_monday(&runner, &base, "c").await.expect_err("refused");
    assert!(matches!(error, ToolError::Unsigned { .. }), "{error}");
    assert!(error.to_string().contains("tool_secret"), "{error}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "an unsigned request left");
    // The same endpoint is reached by a runner with a secret: the refusal was the runner's.
    run_tool(
        &ToolRunner::new(local_egress(), SECRET),
        &base,
        "/hook",
        Duration::from_secs(5),
    )
    .await
    .expect("reached");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_tool_on_loopback_is_refused_with_private_targets_off_and_receives_nothing() {
    use std::sync::atomic::Ordering;
    let (address, hits) = counting_endpoint("secret internal data").await;
    let guarded = Egress::new(&EgressConfig::default()).expect("client");
    let runner = ToolRunner::new(guarded, SECRET);
    for url in [
        format!("http://{address}"),
        format!("http://localhost:{}", address.port()),
        format!("http://[::ffff:127.0.0.1]:{}", address.port()),
    ] {
        let tool = endpoint(&url, "/hook", Duration::from_secs(5));
        let error = runner
            .run(&tool, "c", &json!({}))
            .await
            .expect_err("refused");
        assert!(
            matches!(error, ToolError::Refused { .. } | ToolError::Connect { .. }),
            "{url}: {error}"
        );
        assert!(
            error.to_string().contains("allow_private_targets"),
            "{url}: the refusal names the switch: {error}"
        );
    }
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the listener was reached");
    // The same endpoint answers through a guard that allows it: the refusals were the guard's.
    let allowed = run_tool(
        &ToolRunner::new(local_egress(), SECRET),
        &format!("http://{address}"),
        "/hook",
        Duration::from_secs(5),
    )
    .await
    .expect("reached");
    assert_eq!(allowed.to_model_content(), "secret internal data");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}
