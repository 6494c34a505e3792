//! A fake OpenAI audio server: `POST /v1/audio/transcriptions` (multipart WAV upload → scripted
//! `{"text": …}`) and `POST /v1/audio/speech` (JSON → raw 24 kHz s16le PCM, streamed in odd-sized
//! chunks). It records every utterance's WAV bytes, rate and duration and every speech request,
//! so tests can assert that the real client sent what the caller said.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Multipart, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use super::{error_response, lock, pcm_body, serve_router, tone, FaultPlan, ServerTask};
use crate::speech::wav::decode_wav;

/// One utterance the fake transcription endpoint received.
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedUtterance {
    /// The uploaded file as sent.
    pub wav: Vec<u8>,
    /// Sample rate from the WAV header.
    pub sample_rate: u32,
    /// Audio length from the WAV.
    pub duration: Duration,
    /// The `model` form field.
    pub model: String,
    /// The `language` form field, if sent.
    pub language: Option<String>,
    /// The `Authorization` header, if sent.
    pub authorization: Option<String>,
}

/// One request the fake speech endpoint received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedSpeechRequest {
    /// `model`.
    pub model: String,
    /// `input`: the text to speak.
    pub input: String,
    /// `voice`.
    pub voice: String,
    /// `response_format`.
    pub response_format: String,
    /// The `Authorization` header, if sent.
    pub authorization: Option<String>,
}

#[derive(Debug, Default)]
struct Script {
    plan: FaultPlan,
    transcripts: VecDeque<String>,
    default_transcript: String,
    speech_audio: Option<Vec<i16>>,
    utterances: Vec<ReceivedUtterance>,
    speech_requests: Vec<ReceivedSpeechRequest>,
}

type Shared = Arc<Mutex<Script>>;

/// Fake OpenAI `/audio/transcriptions` + `/audio/speech` server.
#[derive(Debug)]
pub struct FakeOpenAiSpeech {
    server: ServerTask,
    script: Shared,
}

impl FakeOpenAiSpeech {
    /// Starts the fake on 127.0.0.1 with an ephemeral port.
    pub async fn start() -> std::io::Result<Self> {
        let script: Shared = Arc::new(Mutex::new(Script {
            default_transcript: "hello".into(),
            ..Script::default()
        }));
        let router = Router::new()
            .route("/v1/audio/transcriptions", post(transcribe))
            .route("/v1/audio/speech", post(speech))
            .with_state(script.clone());
        let server = serve_router(router).await?;
        Ok(FakeOpenAiSpeech { server, script })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// The `base_url` to configure clients with (`http://127.0.0.1:PORT/v1`).
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.server.addr)
    }

    /// Queues transcripts, answered in order; after them, the default transcript.
    pub fn push_transcripts<I: IntoIterator<Item = S>, S: Into<String>>(&self, texts: I) {
        lock(&self.script)
            .transcripts
            .extend(texts.into_iter().map(Into::into));
    }

    /// Sets the answer used when no queued transcript is left.
    pub fn set_default_transcript(&self, text: impl Into<String>) {
        lock(&self.script).default_transcript = text.into();
    }

    /// Sets the 24 kHz audio every speech request returns (default: a 500 ms tone).
    pub fn set_speech_audio(&self, samples: Vec<i16>) {
        lock(&self.script).speech_audio = Some(samples);
    }

    /// Replaces the latency and failure plan.
    pub fn set_faults(&self, plan: FaultPlan) {
        lock(&self.script).plan = plan;
    }

    /// Utterances received so far.
    pub fn utterances(&self) -> Vec<ReceivedUtterance> {
        lock(&self.script).utterances.clone()
    }

    /// Speech requests received so far.
    pub fn speech_requests(&self) -> Vec<ReceivedSpeechRequest> {
        lock(&self.script).speech_requests.clone()
    }
}

fn authorization(headers: &HeaderMap) -> Option<String> {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

async fn transcribe(
    State(script): State<Shared>,
    headers: HeaderMap,
    mut form: Multipart,
) -> Response {
    let (mut wav, mut model, mut language) = (None, None, None);
    loop {
        let field = match form.next_field().await {
            Ok(Some(field)) => field,
            Ok(None) => break,
            Err(e) => return error_response(400, &format!("bad multipart body: {e}")),
        };
        let name = field.name().unwrap_or_default().to_owned();
        let Ok(value) = field.bytes().await else {
            return error_response(400, "unreadable multipart field");
        };
        match name.as_str() {
            "file" => wav = Some(value.to_vec()),
            "model" => model = Some(String::from_utf8_lossy(&value).into_owned()),
            "language" => language = Some(String::from_utf8_lossy(&value).into_owned()),
            _ => {}
        }
    }
    let (Some(wav), Some(model)) = (wav, model) else {
        return error_response(400, "`file` and `model` are required");
    };
    let audio = match decode_wav(&wav) {
        Ok(audio) => audio,
        Err(e) => return error_response(400, &format!("`file` is not a usable WAV: {e}")),
    };
    let (latency, failure, text) = {
        let mut s = lock(&script);
        s.utterances.push(ReceivedUtterance {
            sample_rate: audio.sample_rate,
            duration: audio.duration(),
            wav,
            model,
            language,
            authorization: authorization(&headers),
        });
        let failure = s.plan.take_failure();
        let text = match s.transcripts.pop_front() {
            Some(text) => text,
            None => s.default_transcript.clone(),
        };
        (s.plan.latency, failure, text)
    };
    tokio::time::sleep(latency).await;
    match failure {
        Some(status) => error_response(status, "scripted transcription failure"),
        None => Json(serde_json::json!({ "text": text })).into_response(),
    }
}

#[derive(Deserialize)]
struct SpeechBody {
    model: String,
    input: String,
    voice: String,
    #[serde(default)]
    response_format: Option<String>,
}

async fn speech(
    State(script): State<Shared>,
    headers: HeaderMap,
    Json(body): Json<SpeechBody>,
) -> Response {
    let format = body.response_format.unwrap_or_else(|| "mp3".into());
    let (plan, failure, audio) = {
        let mut s = lock(&script);
        s.speech_requests.push(ReceivedSpeechRequest {
            model: body.model,
            input: body.input,
            voice: body.voice,
            response_format: format.clone(),
            authorization: authorization(&headers),
        });
        let failure = s.plan.take_failure();
        let audio = s.speech_audio.clone().unwrap_or_else(|| tone(24_000, 500));
        (s.plan.clone(), failure, audio)
    };
    tokio::time::sleep(plan.latency).await;
    if let Some(status) = failure {
        return error_response(status, "scripted speech failure");
    }
    if format != "pcm" {
        return error_response(400, "this fake only speaks response_format `pcm`");
    }
    ([("content-type", "audio/pcm")], pcm_body(&audio, &plan)).into_response()
}
