//! The far end of a Twilio call, as a test drives it: [`post_voice_webhook`] does what Twilio
//! does when a number is dialled (a signed form POST to the edge's voice webhook, the TwiML
//! read back), and [`StreamCaller`] does what Twilio's media stream does with that TwiML — opens
//! the WebSocket, sends `connected` and `start` with the `<Parameter>`s, streams the caller's
//! μ-law audio every 20 ms in real time, echoes the `mark`s it is sent (as Twilio does once
//! their audio has played) — and records what the edge sends back.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::media::g711;
use crate::twilio::messages::{Dtmf, FromTwilio, InboundMedia, MediaFormat, StreamStart, ToTwilio};
use crate::twilio::signature::expected_signature;
use crate::twilio::twiml::{find_connect_stream, ConnectStream};

/// What the edge answered the voice webhook with.
#[derive(Debug, Clone)]
pub struct WebhookAnswer {
    pub status: u16,
    pub body: String,
    /// The `<Connect><Stream>` of the TwiML, if any.
    pub stream: Option<ConnectStream>,
}

/// POSTs Twilio's voice webhook form `params` to `url`, signed with `auth_token` (what Twilio
/// would sign; pass another token to forge a bad signature). Status callbacks are POSTed the
/// same way.
pub async fn post_voice_webhook(
    url: &str,
    auth_token: &str,
    params: &[(&str, &str)],
) -> reqwest::Result<WebhookAnswer> {
    post_voice_webhook_with(&reqwest::Client::new(), url, auth_token, params).await
}

/// [`post_voice_webhook`] through `client` (one that trusts an `https://` edge's certificate).
pub async fn post_voice_webhook_with(
    client: &reqwest::Client,
    url: &str,
    auth_token: &str,
    params: &[(&str, &str)],
) -> reqwest::Result<WebhookAnswer> {
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let signature = expected_signature(auth_token, url, &owned);
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params.iter())
        .finish();
    let response = client
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-twilio-signature", signature)
        .body(body)
        .send()
        .await?;
    let status = response.status().as_u16();
    let body = response.text().await?;
    let stream = find_connect_stream(&body);
    Ok(WebhookAnswer {
        status,
        body,
        stream,
    })
}

/// What the fake heard on a stream.
#[derive(Debug, Clone, Default)]
pub struct StreamReport {
    /// `media` messages received.
    pub media_messages: usize,
    /// Their audio, decoded to 8 kHz linear PCM.
    pub heard: Vec<i16>,
    /// Received `mark` names, in order.
    pub marks: Vec<String>,
    /// `clear` messages received.
    pub clears: usize,
    /// Messages that were not valid Media Streams messages to Twilio.
    pub junk: usize,
    /// Whether the edge closed the socket (rather than the fake).
    pub closed_by_edge: bool,
}

impl StreamReport {
    /// Samples of agent audio louder than near-silence.
    pub fn voiced_samples(&self) -> usize {
        self.heard.iter().filter(|s| s.unsigned_abs() > 500).count()
    }
}

/// One stream as Twilio would run it for a call.
#[derive(Debug, Clone)]
pub struct StreamCaller {
    pub stream: ConnectStream,
    pub account_sid: String,
    pub call_sid: String,
    pub stream_sid: String,
    /// The auth token the WebSocket upgrade is signed with (`X-Twilio-Signature` over the
    /// stream URL), as Twilio does; `None` sends no signature.
    pub auth_token: Option<String>,
    /// The TLS client for a `wss://` stream; `None` trusts Mozilla's roots.
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

/// What the caller does on the stream, in order: speak samples, press keys, stay on the line.
#[derive(Debug, Clone)]
pub enum CallerAction {
    /// 8 kHz samples, sent as 20 ms μ-law frames in real time.
    Speak(Vec<i16>),
    /// Silence for this long.
    Wait(Duration),
    /// A key press.
    Press(char),
    /// Silence until the edge has sent this many `media` messages with voiced audio (or the
    /// duration passes).
    ListenFor {
        voiced_frames: usize,
        limit: Duration,
    },
}

impl StreamCaller {
    /// A caller for the stream of `stream`, as Twilio's call `call_sid` of `account_sid`.
    pub fn new(stream: ConnectStream, account_sid: &str, call_sid: &str) -> Self {
        Self {
            stream,
            account_sid: account_sid.to_owned(),
            call_sid: call_sid.to_owned(),
            stream_sid: format!("MZ{}", uuid::Uuid::new_v4().simple()),
            auth_token: None,
            tls: None,
        }
    }

    /// Opens a `wss://` stream with `tls` (one that trusts the edge's certificate).
    pub fn trusting(mut self, tls: std::sync::Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Signs the WebSocket upgrade with `auth_token`, as Twilio signs it with the account's.
    pub fn signed_with(mut self, auth_token: &str) -> Self {
        self.auth_token = Some(auth_token.to_owned());
        self
    }

    /// Opens the WebSocket, plays `actions`, then stops the stream (unless the edge closed it
    /// first) and reports what was received.
    pub async fn run(&self, actions: &[CallerAction]) -> anyhow::Result<StreamReport> {
        let mut request = self.stream.url.as_str().into_client_request()?;
        if let Some(token) = &self.auth_token {
            let signature = expected_signature(token, &self.stream.url, &[]);
            request
                .headers_mut()
                .insert("x-twilio-signature", signature.parse()?);
        }
        let connector = self.tls.clone().map(tokio_tungstenite::Connector::Rustls);
        let (mut socket, _) =
            tokio_tungstenite::connect_async_tls_with_config(request, None, false, connector)
                .await?;
        let mut report = StreamReport::default();
        let connected = FromTwilio::Connected {
            protocol: "Call".into(),
            version: "1.0.0".into(),
        };
        socket
            .send(Message::text(serde_json::to_string(&connected)?))
            .await?;
        let start = FromTwilio::Start {
            stream_sid: self.stream_sid.clone(),
            start: StreamStart {
                stream_sid: self.stream_sid.clone(),
                account_sid: self.account_sid.clone(),
                call_sid: self.call_sid.clone(),
                tracks: vec!["inbound".into()],
                custom_parameters: self.stream.parameters.iter().cloned().collect(),
                media_format: MediaFormat {
                    encoding: "audio/x-mulaw".into(),
                    sample_rate: 8000,
                    channels: 1,
                },
            },
        };
        socket
            .send(Message::text(serde_json::to_string(&start)?))
            .await?;
        let mut chunk = 0u64;
        let mut ticker = tokio::time::interval(Duration::from_millis(20));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let silence = vec![0i16; 160];
        'actions: for action in actions {
            let (frames, until_voiced): (Vec<Vec<i16>>, Option<usize>) = match action {
                CallerAction::Speak(samples) => {
                    (samples.chunks(160).map(|c| c.to_vec()).collect(), None)
                }
                CallerAction::Wait(d) => {
                    (vec![silence.clone(); (d.as_millis() / 20) as usize], None)
                }
                CallerAction::ListenFor {
                    voiced_frames,
                    limit,
                } => (
                    vec![silence.clone(); (limit.as_millis() / 20) as usize],
                    Some(*voiced_frames),
                ),
                CallerAction::Press(digit) => {
                    let dtmf = FromTwilio::Dtmf {
                        stream_sid: self.stream_sid.clone(),
                        dtmf: Dtmf {
                            track: "inbound_track".into(),
                            digit: digit.to_string(),
                        },
                    };
                    socket
                        .send(Message::text(serde_json::to_string(&dtmf)?))
                        .await?;
                    continue;
                }
            };
            let mut voiced_frames = 0usize;
            for frame in frames {
                loop {
                    tokio::select! {
                        _ = ticker.tick() => break,
                        message = socket.next() => match message {
                            Some(Ok(Message::Text(text))) => {
                                if self.take(&text, &mut report, &mut socket).await? {
                                    voiced_frames += 1;
                                }
                            }
                            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => {
                                report.closed_by_edge = true;
                                break 'actions;
                            }
                            Some(Ok(_)) => {}
                        }
                    }
                }
                if until_voiced.is_some_and(|wanted| voiced_frames >= wanted) {
                    break;
                }
                chunk += 1;
                let mut mulaw = vec![0u8; frame.len()];
                g711::encode_ulaw(&frame, &mut mulaw);
                let media = FromTwilio::Media {
                    stream_sid: self.stream_sid.clone(),
                    media: InboundMedia {
                        track: "inbound".into(),
                        chunk,
                        timestamp: (chunk - 1) * 20,
                        payload: base64_encode(&mulaw),
                    },
                };
                socket
                    .send(Message::text(serde_json::to_string(&media)?))
                    .await?;
            }
        }
        if !report.closed_by_edge {
            let stop = FromTwilio::Stop {
                stream_sid: self.stream_sid.clone(),
            };
            socket
                .send(Message::text(serde_json::to_string(&stop)?))
                .await?;
            let _ = socket.close(None).await;
        }
        Ok(report)
    }

    /// Records one message from the edge (echoing marks); says whether it was voiced audio.
    async fn take<S>(
        &self,
        text: &str,
        report: &mut StreamReport,
        socket: &mut S,
    ) -> anyhow::Result<bool>
    where
        S: futures::Sink<Message> + Unpin,
        S::Error: std::error::Error + Send + Sync + 'static,
    {
        match serde_json::from_str::<ToTwilio>(text) {
            Ok(ToTwilio::Media { stream_sid, media }) if stream_sid == self.stream_sid => {
                report.media_messages += 1;
                let Ok(mulaw) = base64_decode(&media.payload) else {
                    report.junk += 1;
                    return Ok(false);
                };
                let start = report.heard.len();
                report.heard.resize(start + mulaw.len(), 0);
                g711::decode_ulaw(&mulaw, &mut report.heard[start..]);
                Ok(report.heard[start..].iter().any(|s| s.unsigned_abs() > 500))
            }
            Ok(ToTwilio::Mark { stream_sid, mark }) if stream_sid == self.stream_sid => {
                report.marks.push(mark.name.clone());
                // Twilio echoes a mark once the audio before it has played; ours plays at once.
                let echo = FromTwilio::Mark {
                    stream_sid: self.stream_sid.clone(),
                    mark,
                };
                socket
                    .send(Message::text(serde_json::to_string(&echo)?))
                    .await?;
                Ok(false)
            }
            Ok(ToTwilio::Clear { stream_sid }) if stream_sid == self.stream_sid => {
                report.clears += 1;
                Ok(false)
            }
            _ => {
                report.junk += 1;
                Ok(false)
            }
        }
    }
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn base64_decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(text)
}
