//! An agent's `privacy` section: which kinds of personal data its calls' transcripts, events and
//! webhooks have redacted (`redact`), and whether its language model sees the redacted text too
//! (`redact_before_llm`). Kinds are names (`card_number`, `email`, ...) kept as strings on the
//! wire, so an edge older than its control plane still reads an agent with a kind it does not
//! know; the API refuses unknown kinds by field.

use serde::{Deserialize, Serialize};

use super::FieldError;
use crate::redact::{PiiKind, Redactor};

/// Fields of call event payloads that are the call's own routing and identity (the numbers it
/// was placed from and to, where it was transferred, ids): its record is keyed by them and the
/// caller's erasure request finds calls by them, so they are not redacted.
pub const CALL_ROUTING_FIELDS: &[&str] = &[
    "from",
    "to",
    "via",
    "destination",
    "transferred_to",
    "whisper_to",
    "trunks",
    "sip_call_id",
    "stream_sid",
    "edge_id",
    "agent_id",
    "workflow_id",
    "provider_id",
    "provider_call_id",
    "leg",
    "kind",
    "role",
];

/// What an agent redacts and where.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivacySpec {
    /// Kinds of personal data replaced by a placeholder (`[card_number]`) in stored transcripts,
    /// events and webhook payloads.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redact: Vec<String>,
    /// Also redact what the language model receives (the caller's words and tool results).
    /// Off by default: a model asked to take a payment needs the digits.
    #[serde(default)]
    pub redact_before_llm: bool,
}

impl PrivacySpec {
    /// Whether this section changes nothing.
    pub fn is_empty(&self) -> bool {
        self.redact.is_empty() && !self.redact_before_llm
    }

    /// Whether the caller's key presses are masked (silence in the recording, `[digit]` in the
    /// record): when card numbers are redacted, since digits typed on the keypad may be one.
    pub fn masks_digits(&self) -> bool {
        self.redact.iter().any(|k| k == "card_number")
    }

    /// The redactor for the kinds listed (unknown names, which the API refuses, are skipped).
    pub fn redactor(&self) -> Redactor {
        Redactor::new(self.redact.iter().filter_map(|k| k.parse::<PiiKind>().ok()))
    }

    /// The redactor for the language model's input: the listed kinds when
    /// `redact_before_llm` is set, none otherwise.
    pub fn llm_redactor(&self) -> Redactor {
        if self.redact_before_llm {
            self.redactor()
        } else {
            Redactor::default()
        }
    }

    /// Redacts a call event's payload in place with `redactor`, every string but the
    /// [`CALL_ROUTING_FIELDS`]; returns how many findings.
    pub fn redact_event_payload(redactor: &Redactor, payload: &mut serde_json::Value) -> usize {
        redactor.redact_json_keeping(payload, CALL_ROUTING_FIELDS)
    }

    /// Every problem with this section, named `privacy.redact[i]`.
    pub fn validate(&self, errors: &mut Vec<FieldError>) {
        for (i, kind) in self.redact.iter().enumerate() {
            if let Err(e) = kind.parse::<PiiKind>() {
                errors.push(FieldError::new(
                    format!("privacy.redact[{i}]"),
                    e.to_string(),
                ));
            } else if self.redact[..i].contains(kind) {
                errors.push(FieldError::new(
                    format!("privacy.redact[{i}]"),
                    "is listed twice",
                ));
            }
        }
        if self.redact_before_llm && self.redact.is_empty() {
            errors.push(FieldError::new(
                "privacy.redact_before_llm",
                "needs `privacy.redact` to list the kinds to redact",
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_repeated_kinds_are_named_by_field() {
        let spec = PrivacySpec {
            redact: vec!["email".into(), "passport".into(), "email".into()],
            redact_before_llm: false,
        };
        let mut errors = Vec::new();
        spec.validate(&mut errors);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["privacy.redact[1]", "privacy.redact[2]"]);
        assert!(errors[0].message.contains("passport"));
    }

    #[test]
    fn the_llm_redactor_is_empty_unless_asked_for() {
        let mut spec = PrivacySpec {
            redact: vec!["email".into()],
            redact_before_llm: false,
        };
        assert!(spec.llm_redactor().is_empty());
        assert!(!spec.redactor().is_empty());
        spec.redact_before_llm = true;
        assert_eq!(spec.llm_redactor().redact("bob@example.com").0, "[email]");
    }
}
