//! A fake Deepgram live-transcription server: a WebSocket endpoint on 127.0.0.1 that takes the
//! `/v1/listen?encoding=linear16&sample_rate=…` handshake (optionally checking the
//! `Authorization: Token …` header), counts the binary audio it receives, and answers with
//! scripted `Results` messages at scripted points in the audio — an interim halfway, then a
//! final with `speech_final: true`. It honours `KeepAlive` and `CloseStream` (flush, `Metadata`,
//! normal close) and can refuse the handshake or drop the stream with an error close code.
//! Like Deepgram's own endpointing, it can instead send the final once the audio has gone quiet
//! for a while after speech ([`FakeDeepgram::endpoint_after_silence`]). It notes when audio
//! arrived and when `CloseStream` did, so a test can tell audio streamed live from a burst.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{http, Message};
use tokio_tungstenite::WebSocketStream;

use super::{lock, FaultPlan, ServerTask};

/// One scripted utterance: its words, and how far into the audio its final result is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeepgramUtterance {
    /// Transcript to return.
    pub text: String,
    /// Audio (ms since the stream began) after which the final result goes out; the interim
    /// with the first half of the words goes out at half this.
    pub final_at_ms: u32,
}

/// What one connection sent the fake.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeepgramReceived {
    /// Path and query of the handshake request.
    pub uri: String,
    /// The `Authorization` header, if sent.
    pub authorization: Option<String>,
    /// Bytes of binary audio received.
    pub audio_bytes: usize,
    /// `KeepAlive` messages received.
    pub keep_alives: u32,
    /// Whether `CloseStream` was received.
    pub close_stream: bool,
    /// When the first audio arrived.
    pub first_audio_at: Option<Instant>,
    /// When the last audio arrived.
    pub last_audio_at: Option<Instant>,
    /// When `CloseStream` arrived.
    pub close_stream_at: Option<Instant>,
}

impl DeepgramReceived {
    /// How long before `CloseStream` the first audio came: about the turn's length when the
    /// audio was streamed live, about nothing when it was sent in one burst at the end.
    pub fn head_start(&self) -> Option<Duration> {
        Some(
            self.close_stream_at?
                .saturating_duration_since(self.first_audio_at?),
        )
    }

    /// Milliseconds of audio received at `rate` (the rate the handshake announced).
    pub fn audio_ms(&self, rate: u32) -> u64 {
        (self.audio_bytes as u64 / 2) * 1000 / u64::from(rate.max(1))
    }
}

#[derive(Debug, Default)]
struct Script {
    plan: FaultPlan,
    required_key: Option<String>,
    utterances: VecDeque<DeepgramUtterance>,
    error_close_at_ms: Option<u32>,
    endpoint_after_silence_ms: Option<u32>,
    connections: Vec<DeepgramReceived>,
}

type Shared = Arc<Mutex<Script>>;

/// Fake Deepgram `/v1/listen` WebSocket server.
#[derive(Debug)]
pub struct FakeDeepgram {
    server: ServerTask,
    script: Shared,
}

impl FakeDeepgram {
    /// Starts the fake on 127.0.0.1 with an ephemeral port.
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let script: Shared = Arc::default();
        let shared = script.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                tokio::spawn(serve_connection(socket, shared.clone()));
            }
        });
        Ok(FakeDeepgram {
            server: ServerTask { addr, task },
            script,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.server.addr
    }

    /// The listen URL to configure the client with (`ws://127.0.0.1:PORT/v1/listen`).
    pub fn url(&self) -> String {
        format!("ws://{}/v1/listen", self.server.addr)
    }

    /// Queues utterances for the next connection (which takes all queued so far).
    pub fn push_utterance(&self, text: impl Into<String>, final_at_ms: u32) {
        lock(&self.script).utterances.push_back(DeepgramUtterance {
            text: text.into(),
            final_at_ms,
        });
    }

    /// Refuses handshakes (401) unless they carry `Authorization: Token {key}`.
    pub fn require_api_key(&self, key: impl Into<String>) {
        lock(&self.script).required_key = Some(key.into());
    }

    /// Closes streams with code 1011 once this much audio has arrived.
    pub fn fail_after_audio_ms(&self, ms: u32) {
        lock(&self.script).error_close_at_ms = Some(ms);
    }

    /// Sends each utterance's final (`speech_final: true`) once the audio has been quiet for
    /// `ms` after speech, as Deepgram's endpointing does, instead of at its `final_at_ms`.
    pub fn endpoint_after_silence(&self, ms: u32) {
        lock(&self.script).endpoint_after_silence_ms = Some(ms);
    }

    /// Replaces the latency and failure plan (failures refuse the handshake with `fail_status`).
    pub fn set_faults(&self, plan: FaultPlan) {
        lock(&self.script).plan = plan;
    }

    /// What each connection sent, in connection order.
    pub fn connections(&self) -> Vec<DeepgramReceived> {
        lock(&self.script).connections.clone()
    }
}

fn refuse(status: u16, message: &str) -> ErrorResponse {
    let mut response = http::Response::new(Some(message.to_owned()));
    *response.status_mut() =
        http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    response
}

// tungstenite's handshake callback fixes its error type; its size is not ours to choose.
#[allow(clippy::result_large_err)]
async fn serve_connection(socket: TcpStream, script: Shared) {
    let mut seen = DeepgramReceived::default();
    let check = |request: &Request, response: Response| {
        seen.uri = request.uri().to_string();
        seen.authorization = request
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut s = lock(&script);
        if let Some(key) = &s.required_key {
            if seen.authorization.as_deref() != Some(format!("Token {key}").as_str()) {
                return Err(refuse(401, "invalid credentials"));
            }
        }
        if let Some(status) = s.plan.take_failure() {
            return Err(refuse(status, "scripted failure"));
        }
        Ok(response)
    };
    let accepted = tokio_tungstenite::accept_hdr_async(socket, check).await;
    let index = {
        let mut s = lock(&script);
        s.connections.push(seen.clone());
        s.connections.len() - 1
    };
    let Ok(ws) = accepted else {
        return;
    };
    let rate = query_param(&seen.uri, "sample_rate")
        .and_then(|r| r.parse::<usize>().ok())
        .unwrap_or(16_000)
        .max(1);
    let (utterances, latency, error_close_at, endpoint_after_silence) = {
        let mut s = lock(&script);
        let utterances: VecDeque<_> = s.utterances.drain(..).collect();
        (
            utterances,
            s.plan.latency,
            s.error_close_at_ms,
            s.endpoint_after_silence_ms,
        )
    };
    let mut session = Session {
        ws,
        script,
        index,
        rate,
        utterances,
        interim_sent: false,
        latency,
        endpointing: endpoint_after_silence.map(|ms| Endpointing {
            after_ms: ms,
            heard_speech: false,
            quiet_ms: 0,
        }),
    };
    let _ = session.run(error_close_at).await;
}

fn query_param<'a>(uri: &'a str, name: &str) -> Option<&'a str> {
    let query = uri.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

struct Session {
    ws: WebSocketStream<TcpStream>,
    script: Shared,
    index: usize,
    rate: usize,
    utterances: VecDeque<DeepgramUtterance>,
    interim_sent: bool,
    latency: std::time::Duration,
    endpointing: Option<Endpointing>,
}

/// Silence-based endpointing: speech heard, then `after_ms` of quiet.
struct Endpointing {
    after_ms: u32,
    heard_speech: bool,
    quiet_ms: u32,
}

/// Mean absolute level above which a chunk of s16le audio counts as speech.
const SPEECH_LEVEL: u64 = 300;

/// Whether a chunk of s16le audio is loud enough to be speech.
fn is_loud(audio: &[u8]) -> bool {
    let samples = audio.len() / 2;
    if samples == 0 {
        return false;
    }
    let sum: u64 = audio
        .chunks_exact(2)
        .map(|b| u64::from(i16::from_le_bytes([b[0], b[1]]).unsigned_abs()))
        .sum();
    sum / samples as u64 > SPEECH_LEVEL
}

type WsResult = Result<(), tokio_tungstenite::tungstenite::Error>;

impl Session {
    async fn run(&mut self, error_close_at: Option<u32>) -> WsResult {
        let mut audio_bytes = 0usize;
        while let Some(message) = self.ws.next().await {
            match message? {
                Message::Binary(audio) => {
                    audio_bytes += audio.len();
                    let now = Instant::now();
                    self.record(|r| {
                        r.audio_bytes += audio.len();
                        r.first_audio_at.get_or_insert(now);
                        r.last_audio_at = Some(now);
                    });
                    let audio_ms = (audio_bytes / 2 * 1000 / self.rate) as u32;
                    if error_close_at.is_some_and(|at| audio_ms >= at) {
                        let frame = CloseFrame {
                            code: CloseCode::Error,
                            reason: "NET-0001 scripted failure".into(),
                        };
                        return self.ws.close(Some(frame)).await;
                    }
                    if self.endpointing.is_some() {
                        let chunk_ms = (audio.len() / 2 * 1000 / self.rate) as u32;
                        self.endpoint_on_silence(is_loud(&audio), chunk_ms).await?;
                    } else {
                        self.advance(audio_ms).await?;
                    }
                }
                Message::Text(text) if text.contains("KeepAlive") => {
                    self.record(|r| r.keep_alives += 1);
                }
                Message::Text(text) if text.contains("CloseStream") => {
                    let now = Instant::now();
                    self.record(|r| {
                        r.close_stream = true;
                        r.close_stream_at = Some(now);
                    });
                    if self.interim_sent {
                        if let Some(u) = self.utterances.pop_front() {
                            self.send_result(&u.text, true, false).await?;
                        }
                    }
                    let metadata = serde_json::json!({
                        "type": "Metadata", "transaction_key": "deprecated",
                        "request_id": "fake", "duration": audio_bytes as f64 / 2.0 / self.rate as f64,
                        "channels": 1
                    });
                    self.ws.send(Message::text(metadata.to_string())).await?;
                    return self.ws.close(None).await;
                }
                Message::Close(_) => return Ok(()),
                _ => {}
            }
        }
        Ok(())
    }

    /// Sends the interim and final results the audio so far has reached.
    async fn advance(&mut self, audio_ms: u32) -> WsResult {
        while let Some(u) = self.utterances.front().cloned() {
            if !self.interim_sent && audio_ms >= u.final_at_ms / 2 {
                self.interim_sent = true;
                self.ws
                    .send(Message::text(
                        r#"{"type":"SpeechStarted","channel":[0],"timestamp":0.0}"#,
                    ))
                    .await?;
                let words: Vec<&str> = u.text.split_whitespace().collect();
                let half = words.get(..words.len().div_ceil(2)).unwrap_or_default();
                self.send_result(&half.join(" "), false, false).await?;
            }
            if audio_ms < u.final_at_ms {
                return Ok(());
            }
            tokio::time::sleep(self.latency).await;
            self.send_result(&u.text, true, true).await?;
            self.utterances.pop_front();
            self.interim_sent = false;
        }
        Ok(())
    }

    /// Silence-based endpointing: the interim once speech is heard, the final after the quiet.
    async fn endpoint_on_silence(&mut self, loud: bool, chunk_ms: u32) -> WsResult {
        let Some(e) = self.endpointing.as_mut() else {
            return Ok(());
        };
        if loud {
            e.heard_speech = true;
            e.quiet_ms = 0;
        } else {
            e.quiet_ms = e.quiet_ms.saturating_add(chunk_ms);
        }
        let (heard, ended) = (e.heard_speech, e.heard_speech && e.quiet_ms >= e.after_ms);
        let Some(u) = self.utterances.front().cloned() else {
            return Ok(());
        };
        if heard && !self.interim_sent {
            self.interim_sent = true;
            let words: Vec<&str> = u.text.split_whitespace().collect();
            let half = words.get(..words.len().div_ceil(2)).unwrap_or_default();
            self.send_result(&half.join(" "), false, false).await?;
        }
        if ended {
            tokio::time::sleep(self.latency).await;
            self.send_result(&u.text, true, true).await?;
            self.utterances.pop_front();
            self.interim_sent = false;
            if let Some(e) = self.endpointing.as_mut() {
                e.heard_speech = false;
            }
        }
        Ok(())
    }

    async fn send_result(&mut self, text: &str, is_final: bool, speech_final: bool) -> WsResult {
        let message = serde_json::json!({
            "type": "Results", "channel_index": [0, 1], "duration": 1.0, "start": 0.0,
            "is_final": is_final, "speech_final": speech_final, "from_finalize": false,
            "channel": {"alternatives": [{"transcript": text, "confidence": 0.97, "words": []}]},
            "metadata": {"request_id": "fake", "model_info": {"name": "fake"}}
        });
        self.ws.send(Message::text(message.to_string())).await
    }

    fn record(&self, update: impl FnOnce(&mut DeepgramReceived)) {
        if let Some(r) = lock(&self.script).connections.get_mut(self.index) {
            update(r);
        }
    }
}
