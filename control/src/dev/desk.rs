//! The demo business's booking desk: the endpoint the `freya dev` demo agent's `record_booking`
//! tool calls when a caller asks for an appointment. It checks the request's signature like any
//! customer endpoint should (`Freya-Signature` under the agent's tool secret), appends the
//! request to `DATA_DIR/bookings.jsonl` (readable by its owner only) and answers with a booking
//! reference the agent can use. It exists so the demo exercises a real signed tool call end to
//! end; it is served only by `freya dev`, at `POST /demo/bookings`.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use freya_edge::llm::tools::{verify_signature, CALL_ID_HEADER, SIGNATURE_HEADER, TOLERANCE};
use serde_json::json;
use tokio::sync::Mutex;

/// Where the desk serves.
pub const PATH: &str = "/demo/bookings";
/// Largest request body: a booking is a sentence.
const BODY_LIMIT_BYTES: usize = 16 * 1024;

/// The desk's settings.
#[derive(Clone)]
pub struct DemoDesk {
    /// The JSON-lines file bookings are appended to.
    pub bookings_file: PathBuf,
    /// The demo agent's tool secret, which signs its tool requests.
    pub tool_secret: String,
    /// One writer at a time, so lines never interleave.
    lock: Arc<Mutex<()>>,
}

impl DemoDesk {
    /// A desk writing to `bookings_file` and trusting requests signed with `tool_secret`.
    pub fn new(bookings_file: PathBuf, tool_secret: String) -> Self {
        DemoDesk {
            bookings_file,
            tool_secret,
            lock: Arc::new(Mutex::new(())),
        }
    }

    /// Its routes, to merge into the control plane's.
    pub fn router(self) -> Router {
        Router::new()
            .route(PATH, post(record_booking))
            .layer(DefaultBodyLimit::max(BODY_LIMIT_BYTES))
            .with_state(self)
    }
}

fn problem(status: StatusCode, detail: impl Into<String>) -> Response {
    let body = json!({"type": "about:blank", "title": status.canonical_reason().unwrap_or(""),
                      "status": status.as_u16(), "detail": detail.into()});
    (
        status,
        [("content-type", "application/problem+json")],
        body.to_string(),
    )
        .into_response()
}

async fn record_booking(State(desk): State<DemoDesk>, headers: HeaderMap, body: Bytes) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    if let Err(e) = verify_signature(
        desk.tool_secret.as_bytes(),
        header(SIGNATURE_HEADER),
        &body,
        SystemTime::now(),
        TOLERANCE,
    ) {
        return problem(StatusCode::UNAUTHORIZED, format!("bad tool signature: {e}"));
    }
    let request = match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(value) => match value.get("request").and_then(|r| r.as_str()) {
            Some(text) => text.chars().take(1_000).collect::<String>(),
            None => {
                return problem(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "field `request` must be a string",
                )
            }
        },
        Err(e) => return problem(StatusCode::BAD_REQUEST, format!("body is not JSON: {e}")),
    };
    let reference = format!("B-{}", &uuid::Uuid::now_v7().simple().to_string()[20..]);
    let line = json!({
        "reference": reference,
        "received_at_ms": freya_shared::ids::now_ms(),
        "call_id": header(CALL_ID_HEADER),
        "request": request,
    });
    let _guard = desk.lock.lock().await;
    let written = append_private(&desk.bookings_file, &line.to_string());
    match written {
        Ok(()) => (StatusCode::CREATED, Json(json!({"reference": reference}))).into_response(),
        Err(e) => {
            tracing::warn!(file = %desk.bookings_file.display(), error = %e, "could not record a demo booking");
            problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "the booking could not be saved",
            )
        }
    }
}

/// Appends one line and syncs it, creating the file readable by its owner only.
fn append_private(path: &std::path::Path, line: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    writeln!(file, "{line}")?;
    file.sync_data()
}
