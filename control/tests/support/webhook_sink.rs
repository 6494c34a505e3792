//! A webhook receiver on 127.0.0.1 that keeps every JSON body it is sent, for tests that
//! count which webhooks the control plane delivered (once per call, never twice).

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use reqwest::StatusCode;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

/// Webhook bodies received, as JSON, in order.
pub type Seen = Arc<Mutex<Vec<Value>>>;

/// Starts a receiver answering 200 to every POST at `/hook` until `stop` is cancelled; what it
/// was sent, and its URL.
pub async fn webhook_receiver(stop: CancellationToken) -> (Seen, String) {
    let seen: Seen = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(|State(seen): State<Seen>, body: Bytes| async move {
                if let Ok(value) = serde_json::from_slice(&body) {
                    seen.lock().expect("lock").push(value);
                }
                StatusCode::OK
            }),
        )
        .with_state(seen.clone());
    let addr = super::local_http::serve_until(app, stop).await;
    (seen, format!("http://{addr}/hook"))
}

/// A receiver subscribed through the API (with `key`) to `call.ended`: the bodies it gets.
pub async fn call_ended_hooks(api: &super::http::Api, key: &str, stop: CancellationToken) -> Seen {
    let (seen, url) = webhook_receiver(stop).await;
    let secret = "whsec-0123456789abcdef";
    let body = serde_json::json!({"url": url, "events": ["call.ended"], "secret": secret});
    api.create("/v1/webhooks", key, body).await;
    seen
}

/// How many bodies of `seen` mention both `call_id` and `reason`.
pub fn ended_with(seen: &Seen, call_id: &str, reason: &str) -> usize {
    let bodies = seen.lock().expect("lock");
    bodies
        .iter()
        .map(Value::to_string)
        .filter(|b| b.contains(call_id) && b.contains(reason))
        .count()
}
