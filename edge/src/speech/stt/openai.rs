//! Batch speech-to-text over the OpenAI `/audio/transcriptions` API: the finished utterance is
//! uploaded as a 16-bit mono WAV in a multipart form with the model and language, and the JSON
//! answer's `text` is the transcript. `base_url` decides the server, so the same client works
//! with OpenAI, Groq, a local faster-whisper / whisper.cpp server or anything else that speaks
//! this API. Batch means its latency adds to every turn after end-of-speech; see the Deepgram
//! client for streaming.

use std::time::Duration;

use futures::future::BoxFuture;
use serde::Deserialize;

use crate::media::frame::SampleRate;
use crate::speech::error::{error_body, SpeechError};
use crate::speech::wav::encode_wav;
use crate::speech::{SpeechToText, Transcript};

const PROVIDER: &str = "openai";

/// Settings of an OpenAI-compatible transcription endpoint (the agent's `stt` block).
#[derive(Debug, Clone, PartialEq)]
pub struct OpenAiSttConfig {
    /// API root including the version, e.g. `https://api.openai.com/v1`.
    pub base_url: String,
    /// Bearer token; `None` for local servers that need none.
    pub api_key: Option<String>,
    /// Model name, e.g. `whisper-1`.
    pub model: String,
    /// ISO-639-1 language hint, e.g. `en`.
    pub language: Option<String>,
    /// Limit for the whole request, upload to answer.
    pub timeout: Duration,
}

impl Default for OpenAiSttConfig {
    fn default() -> Self {
        OpenAiSttConfig {
            base_url: "https://api.openai.com/v1".into(),
            api_key: None,
            model: "whisper-1".into(),
            language: None,
            timeout: Duration::from_secs(15),
        }
    }
}

/// Client for `{base_url}/audio/transcriptions`.
#[derive(Debug, Clone)]
pub struct OpenAiStt {
    config: OpenAiSttConfig,
    url: String,
    http: reqwest::Client,
}

#[derive(Deserialize)]
struct TranscriptionResponse {
    text: String,
}

impl OpenAiStt {
    /// A client with its own connection pool.
    pub fn new(config: OpenAiSttConfig) -> Self {
        Self::with_client(config, reqwest::Client::new())
    }

    /// A client sharing an existing connection pool.
    pub fn with_client(config: OpenAiSttConfig, http: reqwest::Client) -> Self {
        let url = format!(
            "{}/audio/transcriptions",
            config.base_url.trim_end_matches('/')
        );
        OpenAiStt { config, url, http }
    }

    async fn request(&self, wav: Vec<u8>) -> Result<Transcript, SpeechError> {
        let request_error = |source| SpeechError::Request {
            provider: PROVIDER,
            source,
        };
        let file = reqwest::multipart::Part::bytes(wav)
            .file_name("utterance.wav")
            .mime_str("audio/wav")
            .map_err(request_error)?;
        let mut form = reqwest::multipart::Form::new()
            .part("file", file)
            .text("model", self.config.model.clone())
            .text("response_format", "json");
        if let Some(language) = &self.config.language {
            form = form.text("language", language.clone());
        }
        let mut request = self.http.post(&self.url).multipart(form);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.map_err(request_error)?;
        let status = response.status();
        if !status.is_success() {
            return Err(SpeechError::Status {
                provider: PROVIDER,
                status: status.as_u16(),
                body: error_body(response).await,
            });
        }
        let body = response.bytes().await.map_err(request_error)?;
        let parsed: TranscriptionResponse =
            serde_json::from_slice(&body).map_err(|e| SpeechError::Protocol {
                provider: PROVIDER,
                detail: format!("transcription JSON: {e}"),
            })?;
        Ok(Transcript {
            text: parsed.text.trim().to_owned(),
            confidence: None,
        })
    }
}

impl SpeechToText for OpenAiStt {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn transcribe<'a>(
        &'a self,
        rate: SampleRate,
        samples: &'a [i16],
    ) -> BoxFuture<'a, Result<Transcript, SpeechError>> {
        Box::pin(async move {
            SpeechError::refuse_empty(PROVIDER, samples)?;
            let wav = encode_wav(rate.hz(), samples);
            tokio::time::timeout(self.config.timeout, self.request(wav))
                .await
                .map_err(|_| SpeechError::Timeout {
                    provider: PROVIDER,
                    after: self.config.timeout,
                })?
        })
    }
}
