//! The vocabulary of a [`Conversation`](super::Conversation): its configuration and fixed
//! lines, the [`Action`]s it asks the call task to carry out, and the [`ConversationEvent`]s it
//! reports for the call record.

use std::time::Duration;

use crate::llm::{ChatRequest, FallbackNotice, ToolCall, ToolDefinition};

/// Fixed lines the agent speaks without asking the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lines {
    /// After a provider failure.
    pub apology: String,
    /// When the caller has been silent for `silence_reprompt_seconds`.
    pub reprompt: String,
    /// While a slow tool runs.
    pub filler: String,
    /// Before hanging up on a caller who stays silent.
    pub silence_goodbye: String,
    /// When a transfer the agent asked for did not go through.
    pub transfer_failed: String,
    /// When the recogniser is not installed (`{package}`: the Debian package to install).
    pub recogniser_missing: String,
}

impl Default for Lines {
    fn default() -> Self {
        Self {
            apology: "Sorry, I'm having trouble right now. Could you say that again?".into(),
            reprompt: "Are you still there?".into(),
            filler: "One moment, please.".into(),
            silence_goodbye: "I can't hear anything, so I'll hang up now. Goodbye.".into(),
            transfer_failed: "Sorry, I could not transfer your call. How else can I help?".into(),
            recogniser_missing: "Sorry, I cannot understand speech on this line: its speech recogniser is not installed. The server needs the package {package}.".into(),
        }
    }
}

/// How the conversation behaves, from the agent's configuration.
#[derive(Debug, Clone)]
pub struct ConversationConfig {
    /// The system prompt with its variables filled in.
    pub system_prompt: String,
    /// The greeting, variables filled in.
    pub first_message: Option<String>,
    /// Model name for requests.
    pub model: String,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Reply length bound.
    pub max_tokens: Option<u32>,
    /// Customer tools offered to the model (the built-in `end_call` is added).
    pub tools: Vec<ToolDefinition>,
    /// Caller silence after the agent spoke before a reprompt.
    pub reprompt_after: Option<Duration>,
    /// Phrases that end the call once the agent has said them (lower case).
    pub end_call_phrases: Vec<String>,
    /// How long the model's stream may be quiet after a finished sentence before the sentence
    /// is spoken without waiting for the next word (`turn.sentence_flush_ms`; zero: never).
    pub sentence_flush: std::time::Duration,
    /// How long a tool may run before the filler line is spoken.
    pub filler_after: Duration,
    /// Model rounds (tool call → result → model) allowed per reply.
    pub max_tool_rounds: u32,
    /// Where the built-in `transfer_call` may send the call (numbers or SIP URIs); empty: the
    /// tool is not offered.
    pub transfer_destinations: Vec<String>,
    /// Whether the call can carry digits out: when not, `send_dtmf` answers the model with an
    /// error it can act on (and the call records it) instead of pretending the keys went.
    pub sends_digits: bool,
    /// Fixed lines.
    pub lines: Lines,
    /// When a workflow hands the call to this agent: the natural-language conditions on which
    /// the model may hand it back (offered as the built-in `leave_conversation` tool).
    pub exits: Vec<String>,
    /// What is taken out of the caller's words and tool results before the model sees them
    /// (`privacy.redact_before_llm`); empty: the model sees them as they are.
    pub llm_redactor: freya_shared::redact::Redactor,
}

impl ConversationConfig {
    /// `text` as the model may see it: redacted when the agent asks for it
    /// (`privacy.redact_before_llm`), else as it is.
    pub(super) fn for_model(&self, text: String) -> String {
        if self.llm_redactor.is_empty() {
            return text;
        }
        // A tool's JSON result keeps its shape: its strings are redacted one by one.
        if let Ok(mut json) = serde_json::from_str::<serde_json::Value>(&text) {
            if json.is_object() || json.is_array() {
                self.llm_redactor.redact_json(&mut json);
                return json.to_string();
            }
        }
        self.llm_redactor.redact(&text).0
    }
}

/// What the call task must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send the utterance collected for caller turn `turn` to speech-to-text.
    Transcribe {
        /// The turn's id, to echo with the transcript.
        turn: u64,
    },
    /// Start a streamed completion; echo `stream` with each event.
    Complete {
        /// The reply it belongs to.
        reply: u64,
        /// The stream's id.
        stream: u64,
        /// The request.
        request: ChatRequest,
    },
    /// Synthesize `text` after the reply's previous sentences and queue its audio.
    Speak {
        /// The reply it belongs to.
        reply: u64,
        /// The sentence's id, to echo with its audio.
        sentence: u64,
        /// What to say.
        text: String,
    },
    /// Run a customer tool; echo `reply` and the call's id with the result.
    RunTool {
        /// The reply it belongs to.
        reply: u64,
        /// The model's call.
        call: ToolCall,
    },
    /// Stop everything of `reply` now: model stream, synthesis, tools, queued audio.
    CancelReply {
        /// The reply.
        reply: u64,
    },
    /// Transfer the call blindly to `destination` (the agent's last words have been played).
    Transfer {
        /// One of the agent's transfer destinations: a number or a SIP URI.
        destination: String,
        /// `Some` for a warm transfer (`mode: "warm"`): the summary to whisper to the answering
        /// party, empty when none was given.
        warm: Option<String>,
    },
    /// Press `digits` toward the far end (RFC 4733, or SIP INFO).
    SendDtmf {
        /// Keys, checked: 0-9, `*`, `#`, A-D.
        digits: String,
    },
    /// End the call (the agent's last words have been played).
    Hangup {
        /// Why, for the record (`end_call_tool`, `end_call_phrase`, `silence`).
        reason: &'static str,
    },
}

/// Something the call record should show.
#[derive(Debug, Clone, PartialEq)]
pub enum ConversationEvent {
    /// A line of the transcript; offsets in ms since the call started.
    Transcript {
        /// `caller` or `agent`.
        role: &'static str,
        /// The words (for the agent: those the caller heard).
        text: String,
        /// When the line started.
        start_ms: u64,
        /// When it ended.
        end_ms: u64,
        /// The agent was cut off by the caller.
        interrupted: bool,
    },
    /// Per-turn latency, in ms after the end of the caller's speech.
    Latency(TurnLatency),
    /// The caller talked over the agent.
    BargeIn {
        /// Characters of the reply the caller heard.
        heard_chars: usize,
        /// Characters the reply had so far.
        planned_chars: usize,
    },
    /// A tool finished (or failed).
    Tool {
        /// Tool name.
        name: String,
        /// Error text when it failed.
        error: Option<String>,
        /// How long it took.
        duration_ms: u64,
    },
    /// A provider failed; the caller heard an apology (or the fallback voice).
    ProviderFailed {
        /// `stt`, `llm` or `tts`.
        stage: &'static str,
        /// What went wrong.
        error: String,
    },
    /// The agent asked whether the caller is still there.
    Reprompt,
    /// The agent's fallback model answered a turn the primary did not (once per turn).
    LlmFellBack(FallbackNotice),
}

/// Where the time of one turn went, from the end of the caller's speech.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TurnLatency {
    /// End of speech to the end-of-turn decision (endpointing).
    pub endpointing_ms: u64,
    /// To the final transcript.
    pub stt_ms: Option<u64>,
    /// To the model's first token.
    pub llm_first_token_ms: Option<u64>,
    /// To the first synthesized audio.
    pub tts_first_byte_ms: Option<u64>,
    /// To the first RTP packet carrying the reply.
    pub first_rtp_ms: Option<u64>,
}
