//! Text-to-speech over ElevenLabs' HTTP streaming endpoint,
//! `POST {base_url}/v1/text-to-speech/{voice_id}/stream?output_format=pcm_{rate}`, which answers
//! with raw mono s16le PCM at the requested rate, chunked as it is synthesized. We chose the
//! HTTP stream over WebSocket input streaming because our LLM stage already cuts replies into
//! sentences and sends each one whole: one short request per sentence gets the same first-byte
//! latency, needs no connection state, and cancels by dropping the stream (barge-in).

use std::time::Duration;

use serde::Serialize;

use crate::media::frame::SampleRate;
use crate::speech::tts::openai::pcm_response_stream;
use crate::speech::{AudioStream, SpeechError, TextToSpeech};

const PROVIDER: &str = "elevenlabs";

/// Settings of the ElevenLabs client (the agent's `tts` block).
#[derive(Debug, Clone, PartialEq)]
pub struct ElevenLabsConfig {
    /// API root without the version, e.g. `https://api.elevenlabs.io`.
    pub base_url: String,
    /// API key, sent as `xi-api-key`.
    pub api_key: Option<String>,
    /// Voice id.
    pub voice_id: String,
    /// Model, e.g. `eleven_flash_v2_5`.
    pub model_id: String,
    /// PCM rate to ask for (`pcm_8000`, `pcm_16000`, `pcm_24000`, `pcm_48000`).
    pub sample_rate: SampleRate,
    /// Limit until the response headers arrive.
    pub first_byte_timeout: Duration,
}

impl Default for ElevenLabsConfig {
    fn default() -> Self {
        ElevenLabsConfig {
            base_url: "https://api.elevenlabs.io".into(),
            api_key: None,
            voice_id: "21m00Tcm4TlvDq8ikWAM".into(),
            model_id: "eleven_flash_v2_5".into(),
            sample_rate: SampleRate::Hz16000,
            first_byte_timeout: Duration::from_secs(10),
        }
    }
}

/// Client for ElevenLabs' streaming text-to-speech.
#[derive(Debug, Clone)]
pub struct ElevenLabsTts {
    config: ElevenLabsConfig,
    url: String,
    http: reqwest::Client,
}

#[derive(Serialize)]
struct StreamRequest<'a> {
    text: &'a str,
    model_id: &'a str,
}

impl ElevenLabsTts {
    /// A client with its own connection pool; rejects a voice id that cannot sit in a URL path.
    pub fn new(config: ElevenLabsConfig) -> Result<Self, SpeechError> {
        Self::with_client(config, reqwest::Client::new())
    }

    /// A client sharing an existing connection pool.
    pub fn with_client(
        config: ElevenLabsConfig,
        http: reqwest::Client,
    ) -> Result<Self, SpeechError> {
        let valid_id = !config.voice_id.is_empty()
            && config
                .voice_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        if !valid_id {
            return Err(SpeechError::Config {
                field: "tts.voice",
                detail: format!("`{}` is not an ElevenLabs voice id", config.voice_id),
            });
        }
        let url = format!(
            "{}/v1/text-to-speech/{}/stream?output_format=pcm_{}",
            config.base_url.trim_end_matches('/'),
            config.voice_id,
            config.sample_rate.hz()
        );
        Ok(ElevenLabsTts { config, url, http })
    }
}

impl TextToSpeech for ElevenLabsTts {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn synthesize(&self, text: &str) -> AudioStream {
        let body = StreamRequest {
            text,
            model_id: &self.config.model_id,
        };
        let mut request = self.http.post(&self.url).json(&body);
        if let Some(key) = &self.config.api_key {
            request = request.header("xi-api-key", key);
        }
        pcm_response_stream(
            PROVIDER,
            request,
            self.config.sample_rate,
            self.config.first_byte_timeout,
        )
    }
}
