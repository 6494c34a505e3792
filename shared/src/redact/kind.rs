//! The kinds of personal data the redactor knows, by the names agents configure them with.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// One kind of personal data; its name is what `privacy.redact` lists and its placeholder what
/// replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PiiKind {
    CardNumber,
    Email,
    PhoneNumber,
    UsSsn,
    Iban,
    DateOfBirth,
}

/// A kind name the redactor does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown kind `{0}`; known kinds: card_number, email, phone_number, us_ssn, iban, date_of_birth")]
pub struct UnknownPiiKind(pub String);

impl PiiKind {
    /// Every kind, in a fixed order (reports and docs list them so).
    pub const ALL: [PiiKind; 6] = [
        PiiKind::CardNumber,
        PiiKind::Email,
        PiiKind::PhoneNumber,
        PiiKind::UsSsn,
        PiiKind::Iban,
        PiiKind::DateOfBirth,
    ];

    /// The configuration name (`card_number`, ...).
    pub fn name(self) -> &'static str {
        match self {
            PiiKind::CardNumber => "card_number",
            PiiKind::Email => "email",
            PiiKind::PhoneNumber => "phone_number",
            PiiKind::UsSsn => "us_ssn",
            PiiKind::Iban => "iban",
            PiiKind::DateOfBirth => "date_of_birth",
        }
    }

    /// What replaces a finding of this kind: its name in brackets.
    pub fn placeholder(self) -> &'static str {
        match self {
            PiiKind::CardNumber => "[card_number]",
            PiiKind::Email => "[email]",
            PiiKind::PhoneNumber => "[phone_number]",
            PiiKind::UsSsn => "[us_ssn]",
            PiiKind::Iban => "[iban]",
            PiiKind::DateOfBirth => "[date_of_birth]",
        }
    }
}

impl fmt::Display for PiiKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PiiKind {
    type Err = UnknownPiiKind;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PiiKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownPiiKind(s.to_owned()))
    }
}
