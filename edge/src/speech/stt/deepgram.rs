//! Streaming speech-to-text over Deepgram's live WebSocket API (`/v1/listen`). The call's audio
//! goes up as binary messages of raw linear16 PCM while the caller speaks; `Results` messages
//! come back with interim hypotheses (`is_final: false`), settled text (`is_final: true`) and
//! Deepgram's own endpointing (`speech_final: true`), which the call task forwards to the turn
//! detector as an endpoint hint. `KeepAlive` text messages hold the connection open through
//! silences (Deepgram drops it after 10 s without data) and `CloseStream` flushes the last
//! results before the server closes. One tokio task per session owns the socket.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use futures::future::BoxFuture;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use crate::media::frame::SampleRate;
use crate::media::resample::Resampler;
use crate::speech::{SessionInput, SpeechError, StreamingSpeechToText, SttEvent, SttSession};

const PROVIDER: &str = "deepgram";
/// Time the server gets after `CloseStream` to send its last results and close.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Settings of a Deepgram live-transcription connection (the agent's `stt` block).
#[derive(Debug, Clone, PartialEq)]
pub struct DeepgramConfig {
    /// WebSocket endpoint, e.g. `wss://api.deepgram.com/v1/listen`.
    pub url: String,
    /// API key, sent as `Authorization: Token …`.
    pub api_key: Option<String>,
    /// Model, e.g. `nova-2`.
    pub model: String,
    /// Language, e.g. `en`.
    pub language: Option<String>,
    /// Rate the audio is sent at; frames at other rates are resampled to it.
    pub sample_rate: SampleRate,
    /// Silence (ms) after which Deepgram sets `speech_final`; `None` leaves its default.
    pub endpointing_ms: Option<u32>,
    /// Ask for `UtteranceEnd` messages after this gap (ms), when set.
    pub utterance_end_ms: Option<u32>,
    /// Send `KeepAlive` when no audio went up for this long.
    pub keep_alive_after: Duration,
    /// Limit for the WebSocket handshake.
    pub connect_timeout: Duration,
    /// Dial only public addresses (the edge's `[egress] allow_private_targets` off). The name
    /// is resolved here and the socket opened to an address that passed, because the WebSocket
    /// client would otherwise resolve it again itself, past the egress guard: a name that
    /// answers with a public address to the check and a private one to the connect (DNS
    /// rebinding) must not reach the edge's own network.
    pub public_only: bool,
}

impl Default for DeepgramConfig {
    fn default() -> Self {
        DeepgramConfig {
            url: "wss://api.deepgram.com/v1/listen".into(),
            api_key: None,
            model: "nova-2".into(),
            language: Some("en".into()),
            sample_rate: SampleRate::Hz16000,
            endpointing_ms: Some(300),
            utterance_end_ms: None,
            keep_alive_after: Duration::from_secs(4),
            connect_timeout: Duration::from_secs(5),
            public_only: true,
        }
    }
}

/// Deepgram live-transcription client; each [`start`](StreamingSpeechToText::start) opens a socket.
#[derive(Debug, Clone)]
pub struct DeepgramStt {
    config: DeepgramConfig,
}

impl DeepgramStt {
    /// A client for the given settings.
    pub fn new(config: DeepgramConfig) -> Self {
        DeepgramStt { config }
    }

    /// The full listen URL with the query parameters this configuration implies.
    pub fn listen_url(&self) -> String {
        let c = &self.config;
        let sep = if c.url.contains('?') { '&' } else { '?' };
        let mut url = format!(
            "{}{sep}encoding=linear16&sample_rate={}&channels=1&model={}&interim_results=true&punctuate=true&vad_events=true",
            c.url,
            c.sample_rate.hz(),
            c.model
        );
        if let Some(language) = &c.language {
            url.push_str("&language=");
            url.push_str(language);
        }
        if let Some(ms) = c.endpointing_ms {
            url.push_str(&format!("&endpointing={ms}"));
        }
        if let Some(ms) = c.utterance_end_ms {
            url.push_str(&format!("&utterance_end_ms={ms}"));
        }
        url
    }

    /// A TCP connection to the listen URL's host: to the first of its addresses that answers,
    /// only public ones when [`DeepgramConfig::public_only`].
    async fn open_tcp(
        &self,
        uri: &tokio_tungstenite::tungstenite::http::Uri,
    ) -> Result<tokio::net::TcpStream, SpeechError> {
        let io_error = |e: std::io::Error| {
            SpeechError::websocket(PROVIDER, tokio_tungstenite::tungstenite::Error::Io(e))
        };
        let host = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']'))
            .ok_or_else(|| SpeechError::Config {
                field: "stt.base_url",
                detail: "the URL has no host".into(),
            })?;
        let default_port = if uri.scheme_str() == Some("wss") {
            443
        } else {
            80
        };
        let port = uri.port_u16().unwrap_or(default_port);
        let found: Vec<std::net::SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(io_error)?
            .collect();
        let allowed = if self.config.public_only {
            crate::egress::public_addresses(&found)
        } else {
            found
        };
        if allowed.is_empty() {
            return Err(SpeechError::Config {
                field: "stt.base_url",
                detail: format!(
                    "{host} has no public address ([egress] allow_private_targets is off)"
                ),
            });
        }
        let mut last = None;
        for addr in allowed {
            match tokio::net::TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(io_error(last.unwrap_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::NotFound, "no address")
        })))
    }

    async fn connect(&self) -> Result<SttSession, SpeechError> {
        let mut request = self
            .listen_url()
            .into_client_request()
            .map_err(|e| SpeechError::websocket(PROVIDER, e))?;
        if let Some(key) = &self.config.api_key {
            let value = HeaderValue::from_str(&format!("Token {key}")).map_err(|_| {
                SpeechError::Config {
                    field: "stt.api_key",
                    detail: "contains characters not allowed in an HTTP header".into(),
                }
            })?;
            request.headers_mut().insert("Authorization", value);
        }
        let connect = async {
            let stream = self.open_tcp(request.uri()).await?;
            tokio_tungstenite::client_async_tls(request, stream)
                .await
                .map_err(|e| match e {
                    tokio_tungstenite::tungstenite::Error::Http(response) => SpeechError::Status {
                        provider: PROVIDER,
                        status: response.status().as_u16(),
                        body: response
                            .body()
                            .as_deref()
                            .map(|b| String::from_utf8_lossy(b).into_owned())
                            .unwrap_or_default(),
                    },
                    other => SpeechError::websocket(PROVIDER, other),
                })
        };
        let (socket, _) = tokio::time::timeout(self.config.connect_timeout, connect)
            .await
            .map_err(|_| SpeechError::Timeout {
                provider: PROVIDER,
                after: self.config.connect_timeout,
            })??;
        let (input_tx, input_rx) = mpsc::channel(SttSession::INPUT_QUEUE_FRAMES);
        // Results are decisions, not audio: the task waits for the reader rather than drop one.
        let (events_tx, events_rx) = mpsc::channel(64);
        let task = tokio::spawn(run_session(
            socket,
            input_rx,
            events_tx,
            self.config.sample_rate,
            self.config.keep_alive_after,
        ));
        Ok(SttSession::new(PROVIDER, input_tx, events_rx, task))
    }
}

impl StreamingSpeechToText for DeepgramStt {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn start(&self) -> BoxFuture<'_, Result<SttSession, SpeechError>> {
        Box::pin(self.connect())
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type EventSender = mpsc::Sender<Result<SttEvent, SpeechError>>;

/// Owns the socket: frames up, results down, keep-alives in between.
async fn run_session(
    socket: Socket,
    mut input: mpsc::Receiver<SessionInput>,
    events: EventSender,
    wire_rate: SampleRate,
    keep_alive_after: Duration,
) {
    let (mut sink, mut stream) = socket.split();
    let mut resampler: Option<Resampler> = None;
    // Reused for every frame: once the socket has written a frame's `Bytes`, `reserve` reclaims it.
    let mut buf = BytesMut::with_capacity(wire_rate.samples_per_frame() * 2);
    let mut input_open = true;
    let mut keep_alive = tokio::time::interval(keep_alive_after);
    keep_alive.reset();
    // After `CloseStream`, how long the server gets to flush and close before we walk away.
    let mut close_deadline = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = tokio::time::sleep_until(close_deadline), if !input_open => {
                let _ = events
                    .send(Err(SpeechError::Timeout { provider: PROVIDER, after: CLOSE_GRACE }))
                    .await;
                return;
            }
            command = input.recv(), if input_open => {
                let message = match command {
                    Some(SessionInput::Frame(frame)) => {
                        let frame = if frame.sample_rate() == wire_rate {
                            frame
                        } else {
                            let r = match &mut resampler {
                                Some(r) if r.input_rate() == frame.sample_rate() => r,
                                slot => slot.insert(Resampler::new(frame.sample_rate(), wire_rate)),
                            };
                            match r.process_frame(&frame) {
                                Ok(f) => f,
                                Err(_) => continue,
                            }
                        };
                        buf.reserve(frame.samples().len() * 2);
                        for s in frame.samples() {
                            buf.put_i16_le(*s);
                        }
                        Message::Binary(buf.split().freeze())
                    }
                    Some(SessionInput::Finish) | None => {
                        input_open = false;
                        close_deadline = tokio::time::Instant::now() + CLOSE_GRACE;
                        Message::text(r#"{"type":"CloseStream"}"#)
                    }
                };
                keep_alive.reset();
                if let Err(e) = sink.send(message).await {
                    let _ = events.send(Err(SpeechError::websocket(PROVIDER, e))).await;
                    return;
                }
            }
            _ = keep_alive.tick(), if input_open => {
                if let Err(e) = sink.send(Message::text(r#"{"type":"KeepAlive"}"#)).await {
                    let _ = events.send(Err(SpeechError::websocket(PROVIDER, e))).await;
                    return;
                }
            }
            message = stream.next() => {
                let outcome = match message {
                    None => return,
                    Some(Err(e)) => Err(SpeechError::websocket(PROVIDER, e)),
                    Some(Ok(Message::Text(text))) => match parse_message(text.as_str()) {
                        Ok(Some(event)) => Ok(event),
                        Ok(None) => continue,
                        Err(e) => Err(e),
                    },
                    Some(Ok(Message::Close(frame))) => match frame {
                        Some(f) if f.code != CloseCode::Normal => Err(SpeechError::ClosedByServer {
                            provider: PROVIDER,
                            code: u16::from(f.code),
                            reason: f.reason.to_string(),
                        }),
                        _ => return,
                    },
                    Some(Ok(_)) => continue,
                };
                let fatal = outcome.is_err();
                if events.send(outcome).await.is_err() || fatal {
                    return;
                }
            }
        }
    }
}

#[derive(Deserialize)]
struct ServerMessage {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    is_final: bool,
    #[serde(default)]
    speech_final: bool,
    channel: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct ResultsChannel {
    alternatives: Vec<Alternative>,
}

#[derive(Deserialize)]
struct Alternative {
    transcript: String,
    confidence: Option<f32>,
}

/// Maps one server message to an event; `Ok(None)` for messages the call does not need.
pub(crate) fn parse_message(text: &str) -> Result<Option<SttEvent>, SpeechError> {
    let protocol = |detail: String| SpeechError::Protocol {
        provider: PROVIDER,
        detail,
    };
    let message: ServerMessage =
        serde_json::from_str(text).map_err(|e| protocol(format!("message JSON: {e}")))?;
    match message.kind.as_str() {
        "Results" => {
            let channel: ResultsChannel = message
                .channel
                .map(serde_json::from_value)
                .transpose()
                .map_err(|e| protocol(format!("Results.channel: {e}")))?
                .ok_or_else(|| protocol("Results without `channel`".into()))?;
            let best = channel.alternatives.into_iter().next();
            let (text, confidence) = best
                .map(|a| (a.transcript, a.confidence))
                .unwrap_or_default();
            if message.is_final {
                Ok(Some(SttEvent::Final {
                    text,
                    speech_final: message.speech_final,
                    confidence,
                }))
            } else if text.is_empty() {
                Ok(None)
            } else {
                Ok(Some(SttEvent::Interim { text }))
            }
        }
        "SpeechStarted" => Ok(Some(SttEvent::SpeechStarted)),
        "UtteranceEnd" => Ok(Some(SttEvent::UtteranceEnd)),
        _ => Ok(None), // Metadata and future message types.
    }
}
