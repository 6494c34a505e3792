//! A fake ElevenLabs server for `POST /v1/text-to-speech/{voice_id}/stream?output_format=pcm_N`:
//! checks the `xi-api-key` header when told to, records each request, and streams a tone (or
//! scripted audio) as raw s16le PCM at the requested rate in odd-sized chunks.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use super::{error_response, lock, pcm_body, serve_router, tone, FaultPlan, ServerTask};

/// One request the fake received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElevenLabsRequest {
    /// Voice id from the path.
    pub voice_id: String,
    /// `output_format` query parameter, e.g. `pcm_16000`.
    pub output_format: String,
    /// `text` from the body.
    pub text: String,
    /// `model_id` from the body.
    pub model_id: Option<String>,
    /// The `xi-api-key` header, if sent.
    pub api_key: Option<String>,
}

#[derive(Debug, Default)]
struct Script {
    plan: FaultPlan,
    required_key: Option<String>,
    audio_ms: u32,
    requests: Vec<ElevenLabsRequest>,
}

type Shared = Arc<Mutex<Script>>;

/// Fake ElevenLabs streaming text-to-speech server.
#[derive(Debug)]
pub struct FakeElevenLabs {
    server: ServerTask,
    script: Shared,
}

impl FakeElevenLabs {
    /// Starts the fake on 127.0.0.1 with an ephemeral port.
    pub async fn start() -> std::io::Result<Self> {
        let script: Shared = Arc::new(Mutex::new(Script {
            audio_ms: 500,
            ..Script::default()
        }));
        let router = Router::new()
            .route("/v1/text-to-speech/{voice_id}/stream", post(stream))
            .with_state(script.clone());
        let server = serve_router(router).await?;
        Ok(FakeElevenLabs { server, script })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// The `base_url` to configure clients with (`http://127.0.0.1:PORT`).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.server.addr)
    }

    /// Answers 401 unless requests carry this `xi-api-key`.
    pub fn require_api_key(&self, key: impl Into<String>) {
        lock(&self.script).required_key = Some(key.into());
    }

    /// Length of the tone each request returns.
    pub fn set_audio_ms(&self, ms: u32) {
        lock(&self.script).audio_ms = ms;
    }

    /// Replaces the latency and failure plan.
    pub fn set_faults(&self, plan: FaultPlan) {
        lock(&self.script).plan = plan;
    }

    /// Requests received so far.
    pub fn requests(&self) -> Vec<ElevenLabsRequest> {
        lock(&self.script).requests.clone()
    }
}

#[derive(Deserialize)]
struct StreamBody {
    text: String,
    #[serde(default)]
    model_id: Option<String>,
}

async fn stream(
    State(script): State<Shared>,
    Path(voice_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    Json(body): Json<StreamBody>,
) -> Response {
    let output_format = query
        .get("output_format")
        .cloned()
        .unwrap_or_else(|| "mp3_44100_128".into());
    let api_key = headers
        .get("xi-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (plan, failure, authorised, audio_ms) = {
        let mut s = lock(&script);
        let authorised = s.required_key.is_none() || s.required_key == api_key;
        s.requests.push(ElevenLabsRequest {
            voice_id,
            output_format: output_format.clone(),
            text: body.text,
            model_id: body.model_id,
            api_key,
        });
        let failure = s.plan.take_failure();
        (s.plan.clone(), failure, authorised, s.audio_ms)
    };
    tokio::time::sleep(plan.latency).await;
    if !authorised {
        return error_response(401, "invalid xi-api-key");
    }
    if let Some(status) = failure {
        return error_response(status, "scripted speech failure");
    }
    let rate = output_format
        .strip_prefix("pcm_")
        .and_then(|r| r.parse::<u32>().ok());
    let Some(rate) = rate else {
        return error_response(400, "this fake only speaks pcm_<rate> output formats");
    };
    let audio = tone(rate, audio_ms);
    ([("content-type", "audio/pcm")], pcm_body(&audio, &plan)).into_response()
}
