//! A phone number (or any dialable name, like the dev setup's `demo`) and what answers it.

use serde::{Deserialize, Serialize};

use super::FieldError;

/// What a customer writes to route a number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhoneNumberSpec {
    /// E.164 (`+15551234567`) or a SIP user part of letters, digits, `*#._-`.
    pub number: String,
    /// The region whose edges answer it; `None` for every region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// The agent that answers calls to this number.
    pub agent_id: String,
}

impl PhoneNumberSpec {
    /// Every problem with this number, by field.
    pub fn validate(&self) -> Vec<FieldError> {
        let mut errors = Vec::new();
        if let Some(message) = number_problem(&self.number) {
            errors.push(FieldError::new("number", message));
        }
        if let Some(region) = &self.region {
            if !is_region_name(region) {
                errors.push(FieldError::new(
                    "region",
                    "must be 1-64 lowercase letters, digits or `-`",
                ));
            }
        }
        if !crate::ids::is_uuid(&self.agent_id) {
            errors.push(FieldError::new("agent_id", "must be an agent id (a UUID)"));
        }
        errors
    }
}

fn number_problem(number: &str) -> Option<&'static str> {
    if number.is_empty() || number.len() > 32 {
        return Some("must be 1-32 characters");
    }
    if let Some(digits) = number.strip_prefix('+') {
        let ok = (2..=15).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit());
        return (!ok).then_some("an E.164 number is `+` followed by 2-15 digits");
    }
    let ok = number
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "*#._-".contains(c));
    (!ok).then_some("use an E.164 number or letters, digits and `*#._-`")
}

/// Whether `name` is a usable region name (`local`, `eu-west`, `us-east-1`).
pub fn is_region_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(number: &str) -> PhoneNumberSpec {
        PhoneNumberSpec {
            number: number.into(),
            region: None,
            agent_id: crate::ids::new_id(),
        }
    }

    #[test]
    fn e164_and_sip_user_names_are_accepted() {
        for n in ["+15551234567", "demo", "support-line", "100"] {
            assert!(spec(n).validate().is_empty(), "{n}");
        }
    }

    #[test]
    fn malformed_numbers_are_refused() {
        for n in ["", "+1", "+1555abc", "has space", "sip:x@y"] {
            assert_eq!(spec(n).validate()[0].field, "number", "{n}");
        }
    }
}
