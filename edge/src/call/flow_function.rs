//! A workflow `function` node's HTTP request: the customer's endpoint called with the rendered
//! method, headers and JSON body, bounded by the node's timeout, its answer read as JSON (or as a
//! string when it is not JSON). It runs in a task of its own and reports back to the call task
//! through the flow's channel, so a slow endpoint never holds the call's media. The request goes
//! through the edge's egress guard ([`crate::egress`]): a URL leading to a non-public address is
//! refused before anything is sent, and the refusal is the node's failure reason, recorded in the
//! call's workflow steps like any other failure.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::egress::Egress;

/// Most of an answer's body that is kept (larger answers are cut, then read as a string).
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// A request a `function` node asks for.
#[derive(Debug, Clone)]
pub struct FunctionRequest {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Value>,
    pub timeout: Duration,
}

/// How a function request ended.
#[derive(Debug, Clone, PartialEq)]
pub enum FunctionOutcome {
    /// The endpoint answered (any status).
    Answered {
        status: u16,
        body: Value,
        elapsed: Duration,
    },
    /// It could not be asked, or did not answer in time.
    Failed { reason: String },
}

/// Sends `request` in a task of its own; its outcome comes back on `results` tagged with `seq`.
pub(crate) fn spawn(
    egress: Egress,
    seq: u64,
    request: FunctionRequest,
    results: mpsc::Sender<(u64, FunctionOutcome)>,
    cancel: CancellationToken,
) {
    tokio::spawn(async move {
        let outcome = tokio::select! {
            _ = cancel.cancelled() => return,
            outcome = call(&egress, request) => outcome,
        };
        // Waits rather than drops: the flow is waiting for exactly this answer.
        let _ = results.send((seq, outcome)).await;
    });
}

/// What a log line may say of a function's URL: its scheme, host and port, never its path,
/// query or credentials (they carry the call's values).
fn endpoint_of(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(host), Some(port)) => format!("{}://{host}:{port}", u.scheme()),
            (Some(host), None) => format!("{}://{host}", u.scheme()),
            _ => u.scheme().to_owned(),
        },
        Err(_) => "(not a URL)".to_owned(),
    }
}

async fn call(egress: &Egress, request: FunctionRequest) -> FunctionOutcome {
    let started = Instant::now();
    let url = match egress.check_url(&request.url) {
        Ok(url) => url,
        Err(error) => {
            // The URL's path and query are rendered from the call's variables (a card number,
            // an address): the log names the endpoint only. The reason, with the URL, is in the
            // call's workflow step, which the control plane redacts as the agent asks.
            tracing::warn!(endpoint = %endpoint_of(&request.url), "function request refused");
            return FunctionOutcome::Failed {
                reason: format!("refused: {error}"),
            };
        }
    };
    let method = match reqwest::Method::from_bytes(request.method.as_bytes()) {
        Ok(method) => method,
        Err(_) => {
            return FunctionOutcome::Failed {
                reason: format!("`{}` is not an HTTP method", request.method),
            }
        }
    };
    let mut builder = egress
        .client()
        .request(method, url)
        .timeout(request.timeout)
        .header(reqwest::header::ACCEPT, "application/json");
    for (name, value) in &request.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    if let Some(body) = &request.body {
        builder = builder.json(body);
    }
    let answer = async {
        let response = builder.send().await?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await?;
        Ok::<_, reqwest::Error>((status, bytes))
    };
    match tokio::time::timeout(request.timeout, answer).await {
        Err(_) => FunctionOutcome::Failed {
            reason: format!("timed out after {} ms", request.timeout.as_millis()),
        },
        Ok(Err(e)) => FunctionOutcome::Failed {
            reason: if e.is_timeout() {
                format!("timed out after {} ms", request.timeout.as_millis())
            } else {
                format!(
                    "request failed: {}",
                    freya_shared::error_chain::error_chain(&e.without_url())
                )
            },
        },
        Ok(Ok((status, bytes))) => {
            let kept = bytes.get(..MAX_ANSWER_BYTES).unwrap_or(&bytes);
            let body = serde_json::from_slice(kept)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(kept).into_owned()));
            FunctionOutcome::Answered {
                status,
                body,
                elapsed: started.elapsed(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;

    async fn server() -> std::net::SocketAddr {
        let app = axum::Router::new()
            .route(
                "/lookup",
                post(|axum::Json(body): axum::Json<Value>| async move {
                    axum::Json(serde_json::json!({"tier": "gold", "echo": body}))
                }),
            )
            .route("/text", post(|| async { "plain words" }))
            .route(
                "/slow",
                post(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            );
        let addr = crate::test_support::serve_locally(app).await;
        addr
    }

    fn request(url: String, timeout_ms: u64) -> FunctionRequest {
        FunctionRequest {
            url,
            method: "POST".into(),
            headers: vec![("x-caller".into(), "+1555".into())],
            body: Some(serde_json::json!({"phone": "+1555"})),
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    #[tokio::test]
    async fn json_answers_are_parsed_text_kept_and_slow_endpoints_time_out() {
        let addr = server().await;
        let http = crate::test_support::local_egress();
        match call(&http, request(format!("http://{addr}/lookup"), 5_000)).await {
            FunctionOutcome::Answered { status, body, .. } => {
                assert_eq!(status, 200);
                assert_eq!(body["tier"], "gold");
                assert_eq!(body["echo"]["phone"], "+1555");
            }
            other => panic!("expected an answer, got {other:?}"),
        }
        match call(&http, request(format!("http://{addr}/text"), 5_000)).await {
            FunctionOutcome::Answered { body, .. } => assert_eq!(body, "plain words"),
            other => panic!("expected an answer, got {other:?}"),
        }
        match call(&http, request(format!("http://{addr}/slow"), 200)).await {
            FunctionOutcome::Failed { reason } => assert!(reason.contains("timed out"), "{reason}"),
            other => panic!("expected a timeout, got {other:?}"),
        }
        let mut bad = request(format!("http://{addr}/lookup"), 1_000);
        bad.method = "NOT A METHOD".into();
        assert!(matches!(
            call(&http, bad).await,
            FunctionOutcome::Failed { .. }
        ));
    }

    #[tokio::test]
    async fn a_function_on_loopback_is_refused_with_private_targets_off_and_sends_nothing() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::Arc;
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        let app = axum::Router::new().fallback(move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
                "internal"
            }
        });
        let addr = crate::test_support::serve_locally(app).await;
        let guarded = Egress::new(&crate::egress::EgressConfig::default()).expect("client");
        for url in [
            format!("http://{addr}/"),
            format!("http://localhost:{}/", addr.port()),
            format!("http://[::ffff:127.0.0.1]:{}/", addr.port()),
            format!("http://[64:ff9b::7f00:1]:{}/", addr.port()),
            format!("http://[::127.0.0.1]:{}/", addr.port()),
            format!("http://[2002:7f00:1::]:{}/", addr.port()),
        ] {
            match call(&guarded, request(url.clone(), 5_000)).await {
                FunctionOutcome::Failed { reason } => {
                    assert!(reason.contains("allow_private_targets"), "{url}: {reason}")
                }
                other => panic!("{url} was fetched: {other:?}"),
            }
        }
        assert_eq!(hits.load(Ordering::SeqCst), 0, "the listener was reached");
    }

    /// A log line's writer into a shared buffer, to read what was logged.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Ok(mut b) = self.0.lock() {
                b.extend_from_slice(buf);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_refused_function_logs_its_endpoint_never_the_values_in_its_url() {
        let logs = Captured::default();
        let writer = logs.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        let guarded = Egress::new(&crate::egress::EgressConfig::default()).expect("client");
        let url = "http://127.0.0.1:9/pay?card=4111111111111111&email=bob@example.com";
        let outcome = call(&guarded, request(url.into(), 5_000)).await;
        assert!(
            matches!(outcome, FunctionOutcome::Failed { .. }),
            "{outcome:?}"
        );
        let text = String::from_utf8(logs.0.lock().expect("logs").clone()).expect("UTF-8");
        assert!(text.contains("function request refused"), "{text}");
        assert!(text.contains("http://127.0.0.1:9"), "{text}");
        assert!(!text.contains("4111") && !text.contains("bob@"), "{text}");
    }
}
