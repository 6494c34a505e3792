//! An agent: the persona and conversation settings that answer a call. The voice pipeline's
//! provider settings join this document as the pipeline grows; unknown fields are tolerated on
//! the wire (an edge may be older than its control plane) and refused at the API.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::FieldError;

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
}

fn default_language() -> String {
    "en".into()
}

fn default_max_call_seconds() -> u32 {
    900
}

/// Longest accepted prompt, so one agent cannot bloat every edge's snapshot.
const MAX_PROMPT_CHARS: usize = 32_000;

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
        if self.max_call_seconds == 0 || self.max_call_seconds > 4 * 3600 {
            errors.push(FieldError::new(
                "max_call_seconds",
                "must be between 1 and 14400",
            ));
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_in_a_minimal_agent() {
        let spec: AgentSpec = serde_json::from_str(r#"{"name":"Desk"}"#).expect("parses");
        assert_eq!(spec.language, "en");
        assert_eq!(spec.max_call_seconds, 900);
        assert!(spec.validate().is_empty());
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
}
