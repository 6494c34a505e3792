//! The one normal form of a dialable number, shared by the control plane (which stores every
//! number in it and keeps it globally unique) and the edge (which routes a dialled number by
//! it). Both sides must agree exactly: when they did not — the store compared exact strings while
//! the edge ignored a leading `+` — a workspace could claim `15551234567` and receive the calls
//! of another workspace's `+15551234567`.
//!
//! A number made of digits (with an optional `+` and the visual separators people write:
//! spaces, `-`, `.`, `(`, `)`) is an E.164 number: `+` and 2 to 15 digits, the first of which
//! (the country code's) is never 0. `15551234567`, `+1 (555) 123-4567` and `+15551234567` are
//! all `+15551234567`. Anything with a letter or `*#_` is a SIP user name (the dev setup's
//! `demo`, `support-line`) and is kept as written: SIP compares user parts case-sensitively.

/// Longest number or name accepted, before separators are removed.
pub const MAX_DIALABLE_LEN: usize = 32;

/// Why a string is not a dialable number, said to whoever wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DialableError {
    #[error("must be 1-32 characters")]
    Length,
    #[error("an E.164 number is `+` and 2-15 digits")]
    DigitCount,
    #[error(
        "an E.164 number starts with its country code, never 0: write +44 20 7946 0000, \
         not 020 7946 0000 or 0044 20 7946 0000"
    )]
    LeadingZero,
    #[error("use an E.164 number (+15551234567) or a SIP name of letters, digits and `*#._-`")]
    Characters,
}

/// The normal form of `raw`: `+` and digits for a phone number, the name itself for a SIP name.
pub fn normalize_dialable(raw: &str) -> Result<String, DialableError> {
    let raw = raw.trim();
    if raw.is_empty() || raw.len() > MAX_DIALABLE_LEN {
        return Err(DialableError::Length);
    }
    let is_separator = |c: char| matches!(c, ' ' | '-' | '.' | '(' | ')');
    let compact: String = raw.chars().filter(|&c| !is_separator(c)).collect();
    let digits = compact.strip_prefix('+').unwrap_or(&compact);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if !(2..=15).contains(&digits.len()) {
            return Err(DialableError::DigitCount);
        }
        if digits.starts_with('0') {
            return Err(DialableError::LeadingZero);
        }
        return Ok(format!("+{digits}"));
    }
    if raw.starts_with('+') {
        return Err(DialableError::DigitCount);
    }
    let name_ok = raw
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "*#._-".contains(c));
    if name_ok {
        Ok(raw.to_owned())
    } else {
        Err(DialableError::Characters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spelling_of_a_phone_number_has_one_normal_form() {
        for spelling in [
            "+15551234567",
            "15551234567",
            "+1 (555) 123-4567",
            "1.555.123.4567",
            " +1 555 123 4567 ",
        ] {
            assert_eq!(
                normalize_dialable(spelling).as_deref(),
                Ok("+15551234567"),
                "{spelling}"
            );
        }
        assert_eq!(normalize_dialable("100").as_deref(), Ok("+100"));
    }

    #[test]
    fn sip_names_are_kept_as_written() {
        for name in ["demo", "support-line", "Sales_2", "*99#", "ext.100a"] {
            assert_eq!(normalize_dialable(name).as_deref(), Ok(name), "{name}");
        }
    }

    #[test]
    fn what_is_not_a_number_is_refused_with_the_reason() {
        let cases = [
            ("", DialableError::Length),
            ("   ", DialableError::Length),
            (&"9".repeat(33), DialableError::Length),
            ("+1", DialableError::DigitCount),
            ("1234567890123456", DialableError::DigitCount),
            ("+1555abc", DialableError::DigitCount),
            ("+", DialableError::DigitCount),
            ("020 7946 0000", DialableError::LeadingZero),
            ("+0044207946000", DialableError::LeadingZero),
            ("has space", DialableError::Characters),
            ("sip:x@y", DialableError::Characters),
            ("a/../b", DialableError::Characters),
            ("déjà", DialableError::Characters),
        ];
        for (raw, expected) in cases {
            assert_eq!(normalize_dialable(raw), Err(expected), "{raw:?}");
        }
    }
}
