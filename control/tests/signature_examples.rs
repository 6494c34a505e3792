//! The signature verification examples the README points to, `deploy/examples/verify_signature.py`
//! (Python standard library) and `verify_signature.js` (Node's `crypto`), run as written against
//! what Freya really sends: a webhook delivery from the control plane's delivery task and a tool
//! request from the edge's tool runner, both captured raw by a receiver on 127.0.0.1. Each
//! script must accept both, and refuse a tampered body, another secret and a timestamp past the
//! 300 s tolerance (the receiver's clock moved forward with the script's `--now`).

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use reqwest::StatusCode;
use serde_json::json;

use crate::support::http::{workspace_with_keys, Api};
use crate::support::local_http::serve;
use crate::support::{eventually, Backend};
use freya_edge::egress::{Egress, EgressConfig};
use freya_edge::llm::{ToolEndpoint, ToolRunner};
use freya_shared::ids::new_id;
use freya_shared::model::{CallEvent, CallEventKind};

const WEBHOOK_SECRET: &str = "whsec-examples-0123456789";
const TOOL_SECRET: &str = "tool-secret-examples";

/// One request as the receiver got it: path, `Freya-Signature` and the raw body.
#[derive(Clone, Debug)]
struct Captured {
    path: String,
    signature: String,
    body: Vec<u8>,
}

type Seen = Arc<Mutex<Vec<Captured>>>;

async fn capture(
    State(seen): State<Seen>,
    uri: axum::http::Uri,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    let signature = headers
        .get("freya-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    seen.lock().expect("lock").push(Captured {
        path: uri.path().to_string(),
        signature,
        body: body.to_vec(),
    });
    "{}"
}

async fn receiver() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route("/hook", post(capture))
        .route("/tool", post(capture))
        .with_state(seen.clone());
    let address = serve(app).await;
    (format!("http://{address}"), seen)
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/examples")
        .join(name)
}

/// Runs `program example --secret .. --signature .. --body-file .. [--now ..]`; whether it
/// accepted the request (exit 0), with its output for messages.
fn verdict(
    program: &str,
    script: &str,
    secret: &str,
    signature: &str,
    body: &[u8],
    now: Option<u64>,
) -> (bool, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let body_file = dir.path().join("body");
    std::fs::write(&body_file, body).expect("body file");
    let mut command = Command::new(program);
    command
        .arg(example(script))
        .args(["--secret", secret, "--signature", signature, "--body-file"])
        .arg(&body_file);
    if let Some(now) = now {
        command.args(["--now", &now.to_string()]);
    }
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    match output.status.code() {
        Some(0) => (true, text),
        Some(1) => (false, text),
        other => panic!("{program} {script} exited {other:?}: {text}"),
    }
}

/// The `t=` of a `Freya-Signature` value.
fn timestamp_of(signature: &str) -> u64 {
    signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split(',').next())
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no t= in {signature:?}"))
}

fn both_scripts_judge(request: &Captured, secret: &str) {
    let t = timestamp_of(&request.signature);
    let mut tampered = request.body.clone();
    tampered.extend_from_slice(b" ");
    for (program, script) in [
        ("python3", "verify_signature.py"),
        ("node", "verify_signature.js"),
    ] {
        let what = format!("{program} on {}", request.path);
        let judge = |secret: &str, body: &[u8], now: Option<u64>| {
            verdict(program, script, secret, &request.signature, body, now)
        };
        let (ok, out) = judge(secret, &request.body, None);
        assert!(ok, "{what}: the real request is accepted: {out}");
        let (ok, out) = judge(secret, &request.body, Some(t + 299));
        assert!(ok, "{what}: 299 s later is within the tolerance: {out}");
        let (ok, out) = judge(secret, &tampered, None);
        assert!(!ok, "{what}: a tampered body is refused");
        assert!(out.contains("does not match"), "{what}: {out}");
        let (ok, _) = judge("another-secret-entirely", &request.body, None);
        assert!(!ok, "{what}: another secret is refused");
        let (ok, out) = judge(secret, &request.body, Some(t + 301));
        assert!(!ok, "{what}: 301 s later is stale");
        assert!(out.contains("away from now"), "{what}: {out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_and_node_examples_verify_real_webhooks_and_tool_requests() {
    let (base, seen) = receiver().await;
    let (db, control) = support::control_plane(Backend::Sqlite).await;
    let api = Api::of(&control);
    let (ws, [_, admin, ..]) = workspace_with_keys(&control, "Verify").await;
    let hook = api
        .call(
            "POST",
            "/v1/webhooks",
            &admin,
            Some(
                json!({"url": format!("{base}/hook"), "events": ["call.started"],
                        "secret": WEBHOOK_SECRET}),
            ),
        )
        .await;
    assert_eq!(hook.status, StatusCode::CREATED, "{}", hook.body);
    let started = CallEvent::raw(new_id(), &ws, CallEventKind::Started, json!({}));
    control
        .store
        .record_call_event("edge-1", &started)
        .await
        .expect("event");
    let webhook = eventually(Duration::from_secs(15), "the webhook delivery", || {
        let seen = seen.clone();
        async move {
            let seen = seen.lock().expect("lock");
            seen.iter().find(|c| c.path == "/hook").cloned()
        }
    })
    .await;

    let egress = Egress::new(&EgressConfig {
        allow_private_targets: true,
        proxy: None,
    })
    .expect("egress");
    ToolRunner::new(egress, TOOL_SECRET)
        .run(
            &ToolEndpoint {
                name: "book".into(),
                url: format!("{base}/tool"),
                timeout: Duration::from_secs(10),
            },
            "call-1",
            &json!({"day": "friday", "note": "naïve café ✓"}),
        )
        .await
        .expect("the tool answers");
    let tool = seen
        .lock()
        .expect("lock")
        .iter()
        .find(|c| c.path == "/tool")
        .cloned()
        .expect("the tool request was captured");

    both_scripts_judge(&webhook, WEBHOOK_SECRET);
    both_scripts_judge(&tool, TOOL_SECRET);
    control.stop().await;
    db.cleanup().await;
}
