//! The one error type every speech provider returns, STT and TTS alike, so the call task can
//! match on what went wrong (the server said no, the network failed, a package is missing) and
//! pick the right call event and apology without parsing strings. Variants name the provider and,
//! where it helps the operator, the HTTP status, the program or the Debian package.

use std::time::Duration;

/// Why a speech-to-text or text-to-speech request failed.
#[derive(Debug, thiserror::Error)]
pub enum SpeechError {
    /// The HTTP request could not be sent or its body could not be read.
    #[error("{provider}: HTTP request failed: {source}")]
    Request {
        /// Provider name (`openai`, `elevenlabs`, ...).
        provider: &'static str,
        /// The transport error.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with a non-success status.
    #[error("{provider}: server answered HTTP {status}: {body}")]
    Status {
        /// Provider name.
        provider: &'static str,
        /// HTTP status code.
        status: u16,
        /// The start of the response body, for the log.
        body: String,
    },
    /// The WebSocket failed to open or broke.
    #[error("{provider}: WebSocket failed: {source}")]
    WebSocket {
        /// Provider name.
        provider: &'static str,
        /// The WebSocket error.
        #[source]
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    /// The server closed the stream with an error code or reason.
    #[error("{provider}: stream closed by the server (code {code}): {reason}")]
    ClosedByServer {
        /// Provider name.
        provider: &'static str,
        /// WebSocket close code.
        code: u16,
        /// Close reason given by the server.
        reason: String,
    },
    /// The server's answer did not have the shape its API promises.
    #[error("{provider}: unexpected response: {detail}")]
    Protocol {
        /// Provider name.
        provider: &'static str,
        /// What was wrong, naming the field.
        detail: String,
    },
    /// No answer (or no first byte) within the configured time.
    #[error("{provider}: no answer within {after:?}")]
    Timeout {
        /// Provider name.
        provider: &'static str,
        /// The configured limit.
        after: Duration,
    },
    /// An offline engine's program or data is not installed.
    #[error("`{program}` is not available: install the Debian package `{package}`")]
    MissingPackage {
        /// The program or file that was looked for.
        program: String,
        /// The Debian package that provides it.
        package: &'static str,
    },
    /// An offline engine's process failed.
    #[error("`{program}` failed: {detail}")]
    Process {
        /// The program that was run.
        program: String,
        /// Exit status and the start of its error output.
        detail: String,
    },
    /// The audio handed in cannot be used (empty utterance, bad WAV).
    #[error("{provider}: unusable audio: {detail}")]
    Audio {
        /// Provider name.
        provider: &'static str,
        /// What was wrong with it.
        detail: String,
    },
    /// A configuration value is invalid; names the key.
    #[error("invalid {field}: {detail}")]
    Config {
        /// The configuration key, e.g. `tts.sample_rate`.
        field: &'static str,
        /// Why it was rejected.
        detail: String,
    },
    /// The streaming session has ended; no more audio or results.
    #[error("{provider}: streaming session is closed")]
    SessionClosed {
        /// Provider name.
        provider: &'static str,
    },
}

impl SpeechError {
    /// Wraps a WebSocket error, boxing it (it is large).
    pub fn websocket(
        provider: &'static str,
        source: tokio_tungstenite::tungstenite::Error,
    ) -> Self {
        SpeechError::WebSocket {
            provider,
            source: Box::new(source),
        }
    }

    /// Refuses an utterance with no samples, which no recogniser can transcribe (checked before
    /// a request is made or a decoder is started for it).
    pub(crate) fn refuse_empty(provider: &'static str, samples: &[i16]) -> Result<(), Self> {
        if samples.is_empty() {
            return Err(SpeechError::Audio {
                provider,
                detail: "empty utterance".into(),
            });
        }
        Ok(())
    }

    /// Whether trying the same request again may succeed (network trouble, 5xx, 429, timeout).
    pub fn is_retryable(&self) -> bool {
        match self {
            SpeechError::Request { .. }
            | SpeechError::WebSocket { .. }
            | SpeechError::Timeout { .. } => true,
            SpeechError::Status { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// Reads at most the first 512 bytes of an error body, so a large HTML page does not flood logs.
pub(crate) async fn error_body(response: reqwest::Response) -> String {
    let bytes = response.bytes().await.unwrap_or_default();
    let end = bytes.len().min(512);
    String::from_utf8_lossy(bytes.get(..end).unwrap_or_default()).into_owned()
}

/// A caller turn that could not be transcribed, as the conversation sees it: what to record, and
/// whether the recogniser is simply not installed (then the caller is told so, not asked to
/// repeat themselves to a machine that cannot hear).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SttFailure {
    /// The error, for the call record and the logs.
    pub detail: String,
    /// The Debian package to install, when the recogniser is missing.
    pub missing_package: Option<&'static str>,
}

impl From<SpeechError> for SttFailure {
    fn from(error: SpeechError) -> Self {
        let missing_package = match &error {
            SpeechError::MissingPackage { package, .. } => Some(*package),
            _ => None,
        };
        SttFailure {
            detail: error.to_string(),
            missing_package,
        }
    }
}

impl From<String> for SttFailure {
    fn from(detail: String) -> Self {
        SttFailure {
            detail,
            missing_package: None,
        }
    }
}

impl From<&str> for SttFailure {
    fn from(detail: &str) -> Self {
        detail.to_string().into()
    }
}
