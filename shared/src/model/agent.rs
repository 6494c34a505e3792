//! An agent: the persona and conversation settings that answer a call, and the voice pipeline it
//! runs on — which speech-to-text, language model and text-to-speech providers (`stt`, `llm`,
//! `tts`), how turns are taken (`turn`), which customer tools it may call (`tools`), and when it
//! reprompts or hangs up. Every pipeline field has a serde default, so agents written before the
//! pipeline existed keep working: no `stt`/`llm`/`tts` section means the offline demo providers
//! (`local`, `rules`, `espeak`), or an OpenAI-compatible model when the edge's environment names
//! one (see `freya_edge::voice`). Unknown fields are tolerated on the wire (an edge may be older
//! than its control plane) and refused at the API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::privacy::PrivacySpec;
use super::rules::RulesSpec;

mod validate;

/// What a customer writes to define an agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSpec {
    pub name: String,
    #[serde(default = "default_language")]
    pub language: String,
    #[serde(default)]
    pub system_prompt: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_message: Option<String>,
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    #[serde(default = "default_max_call_seconds")]
    pub max_call_seconds: u32,
    /// Speech-to-text provider; the offline `local` recogniser when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stt: Option<ProviderSpec>,
    /// Language model; `rules` (or the edge's environment model) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm: Option<ProviderSpec>,
    /// A second language model that answers when `llm` fails or is slower to its first token
    /// than its `timeout_ms` (1.5 s when unset), so an outage is not dead air.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub llm_fallback: Option<ProviderSpec>,
    /// Text-to-speech provider; the offline `espeak` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tts: Option<ProviderSpec>,
    /// Turn-taking timing.
    #[serde(default)]
    pub turn: TurnSpec,
    /// Customer tools the model may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolSpec>,
    /// Secret that signs tool requests (`Freya-Signature`, see `crate::signature`); a secret like
    /// `api_key`, and required when `tools` is not empty: an unsigned (or empty-key) request is
    /// one the tool's server cannot tell from a forgery.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_secret: Option<String>,
    /// Seconds of silence from the caller after the agent spoke before it asks again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silence_reprompt_seconds: Option<u32>,
    /// When the agent's own words contain one of these, it hangs up after saying them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub end_call_phrases: Vec<String>,
    /// Whether calls are recorded.
    #[serde(default)]
    pub record: bool,
    /// Where the built-in `transfer_call` may send a call: phone numbers (sent toward the same
    /// trunk or peer) or `sip:` URIs. Empty: the agent cannot transfer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub transfer_destinations: Vec<String>,
    /// What the offline `rules` replier answers (used when `llm` is `rules`, or absent with no
    /// model in the edge's environment); it also shapes the offline recogniser's grammar.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rules: Option<RulesSpec>,
    /// Personal data redacted from this agent's calls (see [`PrivacySpec`]).
    #[serde(default, skip_serializing_if = "PrivacySpec::is_empty")]
    pub privacy: PrivacySpec,
}

impl Default for AgentSpec {
    fn default() -> Self {
        AgentSpec {
            name: String::new(),
            language: default_language(),
            system_prompt: String::new(),
            first_message: None,
            variables: BTreeMap::new(),
            max_call_seconds: default_max_call_seconds(),
            stt: None,
            llm: None,
            llm_fallback: None,
            tts: None,
            turn: TurnSpec::default(),
            tools: Vec::new(),
            tool_secret: None,
            silence_reprompt_seconds: None,
            end_call_phrases: Vec::new(),
            record: false,
            transfer_destinations: Vec::new(),
            rules: None,
            privacy: PrivacySpec::default(),
        }
    }
}

/// One provider section (`stt`, `llm` or `tts`): which provider and how to reach it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderSpec {
    /// `openai`, `anthropic`, `rules` (llm); `openai`, `deepgram`, `local` (stt);
    /// `openai`, `elevenlabs`, `espeak` (tts).
    pub provider: String,
    /// The provider's model name; a per-provider default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// API root (`https://api.openai.com/v1`, `http://localhost:11434/v1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// API key (a secret: masked when read back through the API).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// Voice name or id (tts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voice: Option<String>,
    /// Sampling temperature, 0 to 2 (llm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Longest reply in tokens (llm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Budget to the first token / first byte / transcript, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
}

/// Which providers each section accepts, in the order the docs list them.
pub const STT_PROVIDERS: &[&str] = &["openai", "deepgram", "local"];
/// Language-model providers.
pub const LLM_PROVIDERS: &[&str] = &["openai", "anthropic", "rules"];
/// Text-to-speech providers.
pub const TTS_PROVIDERS: &[&str] = &["openai", "elevenlabs", "espeak"];
/// Tools every agent has; customer tools may not take these names.
pub const BUILTIN_TOOLS: &[&str] = &["end_call", "transfer_call", "send_dtmf"];

/// Turn-taking timing (`turn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TurnSpec {
    /// Silence after the caller's speech that ends their turn.
    #[serde(default = "default_end_of_turn_silence_ms")]
    pub end_of_turn_silence_ms: u32,
    /// Whether the caller may interrupt the agent.
    #[serde(default = "default_true")]
    pub barge_in: bool,
    /// Caller speech over the agent that counts as an interruption.
    #[serde(default = "default_barge_in_min_speech_ms")]
    pub barge_in_min_speech_ms: u32,
    /// Whether the recogniser's own end-of-utterance signal (Deepgram `speech_final`) may end
    /// the caller's turn before `end_of_turn_silence_ms` (once the VAD also hears silence): a
    /// faster answer for agents with a streaming recogniser. Needs `stt.provider` `deepgram`.
    #[serde(default)]
    pub stt_endpointing: bool,
    /// How long the model's stream may stay quiet after a finished sentence before that
    /// sentence goes to text-to-speech without the next word: a pause in the model must not
    /// hold back words already written (0 disables it).
    #[serde(default = "default_sentence_flush_ms")]
    pub sentence_flush_ms: u32,
}

impl Default for TurnSpec {
    fn default() -> Self {
        TurnSpec {
            end_of_turn_silence_ms: default_end_of_turn_silence_ms(),
            barge_in: true,
            barge_in_min_speech_ms: default_barge_in_min_speech_ms(),
            stt_endpointing: false,
            sentence_flush_ms: default_sentence_flush_ms(),
        }
    }
}

/// A customer tool: an HTTPS endpoint the model may call with JSON arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// Name the model calls it by (letters, digits, `_`, `-`).
    pub name: String,
    /// What it does, for the model.
    #[serde(default)]
    pub description: String,
    /// JSON Schema of the arguments (an object schema).
    #[serde(default = "default_parameters")]
    pub parameters: Value,
    /// Where the edge POSTs the arguments.
    pub url: String,
    /// Budget for one request, in milliseconds.
    #[serde(default = "default_tool_timeout_ms")]
    pub timeout_ms: u32,
}

fn default_language() -> String {
    "en".into()
}

fn default_max_call_seconds() -> u32 {
    900
}

fn default_sentence_flush_ms() -> u32 {
    150
}

fn default_end_of_turn_silence_ms() -> u32 {
    500
}

fn default_barge_in_min_speech_ms() -> u32 {
    200
}

fn default_true() -> bool {
    true
}

fn default_parameters() -> Value {
    serde_json::json!({"type": "object", "properties": {}})
}

fn default_tool_timeout_ms() -> u32 {
    5000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_in_a_minimal_agent() {
        let spec: AgentSpec = serde_json::from_str(r#"{"name":"Desk"}"#).expect("parses");
        assert_eq!(spec.language, "en");
        assert_eq!(spec.max_call_seconds, 900);
        assert_eq!(spec.turn, TurnSpec::default());
        assert_eq!(spec.turn.end_of_turn_silence_ms, 500);
        assert!(spec.turn.barge_in);
        assert!(!spec.turn.stt_endpointing);
        assert!(spec.llm.is_none() && spec.tools.is_empty() && !spec.record);
        assert!(spec.validate().is_empty());
    }

    #[test]
    fn stt_endpointing_is_accepted_with_a_streaming_recogniser() {
        let spec: AgentSpec = serde_json::from_value(serde_json::json!({
            "name": "Desk",
            "stt": {"provider": "deepgram"},
            "turn": {"stt_endpointing": true}
        }))
        .expect("parses");
        assert!(spec.turn.stt_endpointing);
        assert_eq!(spec.turn.end_of_turn_silence_ms, 500, "the rest defaults");
        assert_eq!(spec.validate(), Vec::new());
    }

    #[test]
    fn transfer_destinations_are_numbers_or_sip_uris_named_by_index() {
        let spec: AgentSpec = serde_json::from_value(serde_json::json!({
            "name": "Desk",
            "transfer_destinations": ["+1 555-0100", "sip:sales@pbx.example", "sales team",
                                      "sip:a@b>", "+1 555-0100", "1234"]
        }))
        .expect("parses");
        let errors: Vec<(String, String)> = spec
            .validate()
            .into_iter()
            .map(|e| (e.field, e.message))
            .collect();
        let fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "transfer_destinations[2]",
                "transfer_destinations[3]",
                "transfer_destinations[4]"
            ],
            "{errors:?}"
        );
        assert!(errors[2].1.contains("twice"));
    }

    #[test]
    fn problems_are_reported_by_field() {
        let spec: AgentSpec = serde_json::from_str(
            r#"{"name":" ","language":"e n","variables":{"bad key":"x"},"max_call_seconds":0}"#,
        )
        .expect("parses");
        let fields: Vec<String> = spec.validate().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            ["name", "language", "variables.bad key", "max_call_seconds"]
        );
    }

    #[test]
    fn the_issue_example_parses_and_validates() {
        let spec: AgentSpec = serde_json::from_value(serde_json::json!({
            "name": "Front desk", "language": "en",
            "system_prompt": "You are the front desk of {{business_name}} ...",
            "first_message": "Hello, thanks for calling.",
            "variables": {"business_name": "Acme"},
            "stt": {"provider": "openai", "model": "whisper-1", "base_url": "https://api.openai.com/v1", "api_key": "k"},
            "llm": {"provider": "openai", "model": "gpt-4o-mini", "base_url": "https://api.openai.com/v1", "api_key": "k", "temperature": 0.3},
            "tts": {"provider": "openai", "model": "tts-1", "voice": "alloy", "base_url": "https://api.openai.com/v1", "api_key": "k"},
            "turn": {"end_of_turn_silence_ms": 500, "barge_in": true, "barge_in_min_speech_ms": 200},
            "tools": [{"name": "book_appointment", "description": "...", "parameters": {"type": "object"},
                       "url": "https://example.com/hooks/book", "timeout_ms": 5000}],
            "tool_secret": "a-long-random-secret",
            "max_call_seconds": 900, "silence_reprompt_seconds": 8, "end_call_phrases": ["goodbye"],
            "record": false
        }))
        .expect("parses");
        assert_eq!(spec.validate(), Vec::new());
        let back: AgentSpec =
            serde_json::from_value(serde_json::to_value(&spec).expect("serializes"))
                .expect("parses");
        assert_eq!(back, spec);
    }

    #[test]
    fn tools_without_a_secret_are_refused_naming_tool_secret() {
        for secret in [None, Some(""), Some("  ")] {
            let mut spec: AgentSpec = serde_json::from_value(serde_json::json!({
                "name": "Desk",
                "tools": [{"name": "book", "url": "https://example.com/book"}]
            }))
            .expect("parses");
            spec.tool_secret = secret.map(str::to_string);
            let fields: Vec<String> = spec.validate().into_iter().map(|e| e.field).collect();
            assert_eq!(fields, ["tool_secret"], "secret {secret:?}");
        }
    }

    #[test]
    fn pipeline_problems_name_their_field() {
        let spec: AgentSpec = serde_json::from_value(serde_json::json!({
            "name": "Desk",
            "stt": {"provider": "whisperx"},
            "llm": {"provider": "openai", "base_url": "ftp://x", "temperature": 3.5},
            "tts": {"provider": "espeak", "temperature": 1.0},
            "turn": {"end_of_turn_silence_ms": 10, "stt_endpointing": true},
            "tools": [
                {"name": "end_call", "url": "https://x"},
                {"name": "ok", "url": "nope", "parameters": {"type": "string"}, "timeout_ms": 0},
                {"name": "ok", "url": "https://x"}
            ],
            "silence_reprompt_seconds": 0,
            "end_call_phrases": [" "]
        }))
        .expect("parses");
        let fields: Vec<String> = spec.validate().into_iter().map(|e| e.field).collect();
        assert_eq!(
            fields,
            [
                "stt.provider",
                "llm.base_url",
                "llm.temperature",
                "tts.temperature",
                "turn.end_of_turn_silence_ms",
                "turn.stt_endpointing",
                "tool_secret",
                "tools[0].name",
                "tools[1].url",
                "tools[1].parameters",
                "tools[1].timeout_ms",
                "tools[2].name",
                "silence_reprompt_seconds",
                "end_call_phrases[0]",
            ]
        );
    }

    #[test]
    fn numbers_out_of_range_name_their_bounds_and_the_bounds_themselves_pass() {
        let with = |max_call: u32, reprompt: u32, tool_ms: u32, stt_ms: u32, silence: u32| {
            let spec: AgentSpec = serde_json::from_value(serde_json::json!({
                "name": "Desk",
                "max_call_seconds": max_call,
                "silence_reprompt_seconds": reprompt,
                "stt": {"provider": "local", "timeout_ms": stt_ms},
                "turn": {"end_of_turn_silence_ms": silence, "barge_in_min_speech_ms": 3001},
                "tools": [{"name": "book", "url": "https://x", "timeout_ms": tool_ms}],
                "tool_secret": "s3cret-s3cret-s3cret"
            }))
            .expect("parses");
            spec.validate()
                .into_iter()
                .map(|e| (e.field, e.message))
                .filter(|(field, _)| field != "tool_secret")
                .collect::<Vec<_>>()
        };
        let between = |field: &str, low: u32, high: u32| {
            (
                field.to_owned(),
                format!("must be between {low} and {high}"),
            )
        };
        assert_eq!(
            with(14_401, 601, 0, 120_001, 99),
            [
                between("max_call_seconds", 1, 14_400),
                between("stt.timeout_ms", 1, 120_000),
                between("turn.end_of_turn_silence_ms", 100, 5000),
                between("turn.barge_in_min_speech_ms", 40, 3000),
                between("tools[0].timeout_ms", 1, 60_000),
                between("silence_reprompt_seconds", 1, 600),
            ]
        );
        assert_eq!(
            with(14_400, 600, 60_000, 120_000, 5000),
            [between("turn.barge_in_min_speech_ms", 40, 3000)]
        );
    }
}
