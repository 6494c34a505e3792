//! The checks an agent passes before it is stored: every problem named by its field (`name`,
//! `stt.provider`, `tools[2].url`), so the API answers one 422 listing them all. Kept apart from
//! the types in `agent.rs`, which an edge reads without ever validating.

use super::{
    AgentSpec, ProviderSpec, TurnSpec, BUILTIN_TOOLS, LLM_PROVIDERS, STT_PROVIDERS, TTS_PROVIDERS,
};
use serde_json::Value;

use crate::model::FieldError;

/// Longest accepted prompt, so one agent cannot bloat every edge's snapshot.
const MAX_PROMPT_CHARS: usize = 32_000;
/// Most tools one agent may have.
const MAX_TOOLS: usize = 32;
/// Most transfer destinations one agent may have.
const MAX_TRANSFER_DESTINATIONS: usize = 20;

/// A phone number (`+1 555-0100`) or a `sip:`/`sips:` URI with nothing in it that could break a
/// SIP header.
fn is_transfer_destination(value: &str) -> bool {
    let value = value.trim();
    let lower = value.to_ascii_lowercase();
    if let Some(rest) = lower
        .strip_prefix("sip:")
        .or_else(|| lower.strip_prefix("sips:"))
    {
        return !rest.is_empty()
            && value.len() <= 256
            && !value
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | '"'));
    }
    let digits: String = value
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '.' | '(' | ')'))
        .collect();
    let body = digits.strip_prefix('+').unwrap_or(&digits);
    !body.is_empty()
        && body.len() <= 32
        && body
            .chars()
            .all(|c| c.is_ascii_digit() || c == '*' || c == '#')
}

impl AgentSpec {
    /// Every problem with this agent, by field.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let name = self.name.trim();
        if name.is_empty() {
            errors.push(FieldError::new("name", "must not be empty"));
        } else if name.chars().count() > 200 {
            errors.push(FieldError::new("name", "must be at most 200 characters"));
        }
        let lang_ok = !self.language.is_empty()
            && self.language.len() <= 35
            && self
                .language
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-');
        if !lang_ok {
            errors.push(FieldError::new(
                "language",
                "must be a BCP 47 language tag such as `en` or `en-US`",
            ));
        }
        if self.system_prompt.chars().count() > MAX_PROMPT_CHARS {
            errors.push(FieldError::new(
                "system_prompt",
                format!("must be at most {MAX_PROMPT_CHARS} characters"),
            ));
        }
        for key in self.variables.keys() {
            if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                errors.push(FieldError::new(
                    format!("variables.{key}"),
                    "variable names use letters, digits and `_` only",
                ));
            }
        }
        check_between(
            &mut errors,
            "max_call_seconds",
            self.max_call_seconds,
            1,
            4 * 3600,
        );
        for (section, spec, allowed) in [
            ("stt", &self.stt, STT_PROVIDERS),
            ("llm", &self.llm, LLM_PROVIDERS),
            ("llm_fallback", &self.llm_fallback, LLM_PROVIDERS),
            ("tts", &self.tts, TTS_PROVIDERS),
        ] {
            if let Some(spec) = spec {
                spec.validate(section, allowed, &mut errors);
            }
        }
        self.turn.validate(&mut errors);
        self.privacy.validate(&mut errors);
        let streaming_stt = self.stt.as_ref().is_some_and(|s| s.provider == "deepgram");
        if self.turn.stt_endpointing && !streaming_stt {
            errors.push(FieldError::new(
                "turn.stt_endpointing",
                "needs `stt.provider` `deepgram` (the only recogniser that signals the end of an utterance)",
            ));
        }
        self.validate_tools(&mut errors);
        self.validate_transfer_destinations(&mut errors);
        if let Some(rules) = &self.rules {
            let tools: Vec<&str> = self.tools.iter().map(|t| t.name.as_str()).collect();
            errors.extend(rules.validate(&tools, &self.transfer_destinations));
        }
        if let Some(seconds) = self.silence_reprompt_seconds {
            check_between(&mut errors, "silence_reprompt_seconds", seconds, 1, 600);
        }
        for (i, phrase) in self.end_call_phrases.iter().enumerate() {
            if phrase.trim().is_empty() || phrase.chars().count() > 200 {
                errors.push(FieldError::new(
                    format!("end_call_phrases[{i}]"),
                    "must be 1 to 200 characters",
                ));
            }
        }
        errors
    }

    fn validate_transfer_destinations(&self, errors: &mut Vec<FieldError>) {
        if self.transfer_destinations.len() > MAX_TRANSFER_DESTINATIONS {
            errors.push(FieldError::new(
                "transfer_destinations",
                format!("at most {MAX_TRANSFER_DESTINATIONS} destinations"),
            ));
        }
        for (i, destination) in self.transfer_destinations.iter().enumerate() {
            if !is_transfer_destination(destination) {
                errors.push(FieldError::new(
                    format!("transfer_destinations[{i}]"),
                    "must be a phone number (digits, `*`, `#`, an optional leading `+`) or a `sip:` URI",
                ));
            } else if self.transfer_destinations[..i]
                .iter()
                .any(|d| d.trim() == destination.trim())
            {
                errors.push(FieldError::new(
                    format!("transfer_destinations[{i}]"),
                    "is listed twice",
                ));
            }
        }
    }

    fn validate_tools(&self, errors: &mut Vec<FieldError>) {
        if self.tools.len() > MAX_TOOLS {
            errors.push(FieldError::new(
                "tools",
                format!("at most {MAX_TOOLS} tools"),
            ));
        }
        let secret_given = self
            .tool_secret
            .as_deref()
            .is_some_and(|s| !s.trim().is_empty());
        if !self.tools.is_empty() && !secret_given {
            errors.push(FieldError::new(
                "tool_secret",
                "is required when `tools` is set: it signs every tool request (`Freya-Signature`)",
            ));
        }
        for (i, tool) in self.tools.iter().enumerate() {
            let at = |field: &str| format!("tools[{i}].{field}");
            let name_ok = !tool.name.is_empty()
                && tool.name.len() <= 64
                && tool
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
            if !name_ok {
                errors.push(FieldError::new(
                    at("name"),
                    "1 to 64 letters, digits, `_` or `-`",
                ));
            } else if BUILTIN_TOOLS.contains(&tool.name.as_str()) {
                errors.push(FieldError::new(
                    at("name"),
                    "is the name of a built-in tool",
                ));
            } else if self.tools[..i].iter().any(|t| t.name == tool.name) {
                errors.push(FieldError::new(at("name"), "is used by another tool"));
            }
            if !is_http_url(&tool.url) {
                errors.push(FieldError::new(
                    at("url"),
                    "must be an http:// or https:// URL",
                ));
            }
            if tool.parameters.get("type").and_then(Value::as_str) != Some("object") {
                errors.push(FieldError::new(
                    at("parameters"),
                    "must be a JSON Schema with `\"type\": \"object\"`",
                ));
            }
            check_between(errors, at("timeout_ms"), tool.timeout_ms, 1, 60_000);
        }
    }
}

impl ProviderSpec {
    fn validate(&self, section: &str, allowed: &[&str], errors: &mut Vec<FieldError>) {
        if !allowed.contains(&self.provider.as_str()) {
            errors.push(FieldError::new(
                format!("{section}.provider"),
                format!("must be one of: {}", allowed.join(", ")),
            ));
        }
        if let Some(url) = &self.base_url {
            let websocket =
                section == "stt" && (url.starts_with("ws://") || url.starts_with("wss://"));
            if !is_http_url(url) && !websocket {
                errors.push(FieldError::new(
                    format!("{section}.base_url"),
                    "must be an http:// or https:// URL",
                ));
            }
        }
        if let Some(model) = &self.model {
            if model.trim().is_empty() || model.len() > 200 {
                errors.push(FieldError::new(
                    format!("{section}.model"),
                    "must be 1 to 200 characters",
                ));
            }
        }
        if let Some(t) = self.temperature {
            if !section.starts_with("llm") {
                errors.push(FieldError::new(
                    format!("{section}.temperature"),
                    "only a language model has a temperature",
                ));
            } else if !(0.0..=2.0).contains(&t) {
                errors.push(FieldError::new(
                    format!("{section}.temperature"),
                    "must be between 0 and 2",
                ));
            }
        }
        if let Some(ms) = self.timeout_ms {
            check_between(errors, format!("{section}.timeout_ms"), ms, 1, 120_000);
        }
    }
}

impl TurnSpec {
    fn validate(&self, errors: &mut Vec<FieldError>) {
        let silence = self.end_of_turn_silence_ms;
        check_between(errors, "turn.end_of_turn_silence_ms", silence, 100, 5000);
        let speech = self.barge_in_min_speech_ms;
        check_between(errors, "turn.barge_in_min_speech_ms", speech, 40, 3000);
        if self.sentence_flush_ms > 2000 {
            errors.push(FieldError::new(
                "turn.sentence_flush_ms",
                "must be at most 2000",
            ));
        }
    }
}

/// A problem "must be between `low` and `high`" for `field` when `value` lies outside them.
fn check_between(
    errors: &mut Vec<FieldError>,
    field: impl Into<String>,
    value: u32,
    low: u32,
    high: u32,
) {
    if !(low..=high).contains(&value) {
        errors.push(FieldError::new(
            field,
            format!("must be between {low} and {high}"),
        ));
    }
}

fn is_http_url(url: &str) -> bool {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    matches!(rest, Some(host) if !host.is_empty() && !host.starts_with('/') && !url.contains(char::is_whitespace))
}
