//! Text-to-speech over the OpenAI `/audio/speech` API with `response_format: "pcm"`: the answer
//! is raw 24 kHz mono s16le audio with no header, sent chunked as it is synthesized, so the
//! first words can be paced out to the caller before the sentence is finished. Network chunks
//! split samples at arbitrary byte offsets; [`Pcm16Decoder`] keeps the odd byte for the next
//! chunk. Any server that implements this API (OpenAI, Kokoro-FastAPI, openedai-speech, ...)
//! works by changing `base_url`. Dropping the stream closes the connection (barge-in).

use std::time::Duration;

use futures::{future, StreamExt, TryFutureExt, TryStreamExt};
use serde::Serialize;

use crate::media::frame::SampleRate;
use crate::speech::error::{error_body, SpeechError};
use crate::speech::wav::Pcm16Decoder;
use crate::speech::{AudioChunk, AudioStream, TextToSpeech};

const PROVIDER: &str = "openai";
/// The rate of `response_format: "pcm"`, fixed by the API.
pub(crate) const OPENAI_PCM_RATE: SampleRate = SampleRate::Hz24000;

/// Settings of an OpenAI-compatible speech endpoint (the agent's `tts` block).
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiTtsConfig {
    /// API root including the version, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Bearer token; `None` for local servers that need none.
    pub api_key: Option<String>,
    /// Model, e.g. `tts-1`.
    pub model: String,
    /// Voice, e.g. `alloy`.
    pub voice: String,
    /// Speaking speed, 0.25–4.0; `None` for the server default.
    pub speed: Option<f32>,
    /// Limit until the response headers arrive (the first byte follows right after).
    pub first_byte_timeout: Duration,
}

impl Default for OpenAiTtsConfig {
    fn default() -> Self {
        OpenAiTtsConfig {
            base_url: "https://api.openai.com/v1".into(),
            api_key: None,
            model: "tts-1".into(),
            voice: "alloy".into(),
            speed: None,
            first_byte_timeout: Duration::from_secs(10),
        }
    }
}

/// Client for `{base_url}/audio/speech`.
#[derive(Debug, Clone)]
pub struct OpenAiTts {
    config: OpenAiTtsConfig,
    url: String,
    http: reqwest::Client,
}

#[derive(Serialize)]
struct SpeechRequest<'a> {
    model: &'a str,
    input: &'a str,
    voice: &'a str,
    response_format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    speed: Option<f32>,
}

impl OpenAiTts {
    /// A client with its own connection pool.
    pub fn new(config: OpenAiTtsConfig) -> Self {
        Self::with_client(config, reqwest::Client::new())
    }

    /// A client sharing an existing connection pool.
    pub fn with_client(config: OpenAiTtsConfig, http: reqwest::Client) -> Self {
        let url = format!("{}/audio/speech", config.base_url.trim_end_matches('/'));
        OpenAiTts { config, url, http }
    }
}

impl TextToSpeech for OpenAiTts {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn synthesize(&self, text: &str) -> AudioStream {
        let body = SpeechRequest {
            model: &self.config.model,
            input: text,
            voice: &self.config.voice,
            response_format: "pcm",
            speed: self.config.speed,
        };
        let mut request = self.http.post(&self.url).json(&body);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key);
        }
        pcm_response_stream(
            PROVIDER,
            request,
            OPENAI_PCM_RATE,
            self.config.first_byte_timeout,
        )
    }
}

/// Sends `request` and streams its raw s16le body as chunks at `rate` (shared with ElevenLabs).
pub(crate) fn pcm_response_stream(
    provider: &'static str,
    request: reqwest::RequestBuilder,
    rate: SampleRate,
    first_byte_timeout: Duration,
) -> AudioStream {
    let request_error = move |source| SpeechError::Request { provider, source };
    let response = async move {
        let response = tokio::time::timeout(first_byte_timeout, request.send())
            .await
            .map_err(|_| SpeechError::Timeout {
                provider,
                after: first_byte_timeout,
            })?
            .map_err(request_error)?;
        let status = response.status();
        if !status.is_success() {
            return Err(SpeechError::Status {
                provider,
                status: status.as_u16(),
                body: error_body(response).await,
            });
        }
        Ok(response.bytes_stream().map_err(request_error))
    };
    let mut decoder = Pcm16Decoder::default();
    response
        .try_flatten_stream()
        .try_filter_map(move |bytes| {
            let mut samples = Vec::new();
            decoder.decode_into(&bytes, &mut samples);
            future::ready(Ok(
                (!samples.is_empty()).then_some(AudioChunk { rate, samples })
            ))
        })
        .boxed()
}
