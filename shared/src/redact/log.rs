//! What a log line may show of a call's personal data. Logs are kept longer, copied further and
//! read by more people than the call's record, so caller content reaches them only through
//! these wrappers, whose `Display` and `Debug` do the hiding: a phone number is always masked
//! (`+1555•••0123`), and a text of the caller's (a transcript, a tool's arguments, a function's
//! answer) is redacted with the call's [`Redactor`] — or left out entirely when the call has
//! none to trust ([`LogPrivacy::strict`]). The wrappers are carried by the call (its core holds
//! one [`LogPrivacy`]), so a new log line cannot forget to ask for the call's rules.

use std::fmt;

use super::Redactor;

/// What stands in for a value a log line must not carry at all.
pub const REDACTED: &str = "[redacted]";

/// The masking character run between a number's kept head and tail.
const MASK: &str = "•••";

/// A call's rules for its log lines: the agent's (or workflow's) redactor.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogPrivacy {
    redactor: Redactor,
    strict: bool,
}

impl LogPrivacy {
    /// Log lines of a call redacted with `redactor` (the kinds its agent lists); with an empty
    /// one, caller texts are logged as they are, numbers still masked.
    pub fn new(redactor: Redactor) -> Self {
        Self {
            redactor,
            strict: false,
        }
    }

    /// Log lines that carry no caller text at all (a gather marked `sensitive`).
    pub fn strict() -> Self {
        Self {
            redactor: Redactor::default(),
            strict: true,
        }
    }

    /// A caller's text as a log line may show it.
    pub fn text<'a>(&'a self, text: &'a str) -> Sensitive<'a> {
        Sensitive {
            text,
            redactor: (!self.strict).then_some(&self.redactor),
        }
    }

    /// A phone number (or SIP user) as a log line may show it: always masked.
    pub fn number<'a>(&self, number: &'a str) -> MaskedNumber<'a> {
        MaskedNumber(number)
    }
}

/// A caller's text bound for a log line; shows only what its call's rules allow.
#[derive(Clone, Copy)]
pub struct Sensitive<'a> {
    text: &'a str,
    /// `None`: nothing of it is shown.
    redactor: Option<&'a Redactor>,
}

impl fmt::Display for Sensitive<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.redactor {
            None => f.write_str(REDACTED),
            Some(r) if r.is_empty() => f.write_str(self.text),
            Some(r) => f.write_str(&r.redact(self.text).0),
        }
    }
}

impl fmt::Debug for Sensitive<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

/// A phone number or SIP address bound for a log line: the country and area code and the last
/// four digits stay (enough to tell calls apart and to match a complaint), the middle goes.
/// `+15550100123` shows as `+1555•••0123`, `sip:alice@pbx.example` as `sip:•••@pbx.example`,
/// a short extension as `•••23`.
#[derive(Clone, Copy)]
pub struct MaskedNumber<'a>(pub &'a str);

impl fmt::Display for MaskedNumber<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let raw = self.0;
        // A SIP URI: the scheme and host are the trunk's, the user part is the person's.
        if let Some(at) = raw.rfind('@') {
            let (user, host) = raw.split_at(at);
            let scheme = ["sips:", "sip:", "tel:"]
                .into_iter()
                .find(|s| user.starts_with(s))
                .unwrap_or("");
            return write!(f, "{scheme}{MASK}{host}");
        }
        let body = raw
            .strip_prefix("tel:")
            .or_else(|| raw.strip_prefix("sip:"))
            .unwrap_or(raw);
        let plus = if body.starts_with('+') { "+" } else { "" };
        let digits: Vec<char> = body.chars().filter(char::is_ascii_digit).collect();
        if digits.len() >= 10 {
            let head: String = digits[..4].iter().collect();
            let tail: String = digits[digits.len() - 4..].iter().collect();
            write!(f, "{plus}{head}{MASK}{tail}")
        } else if digits.len() >= 3 {
            let tail: String = digits[digits.len() - 2..].iter().collect();
            write!(f, "{plus}{MASK}{tail}")
        } else {
            f.write_str(MASK)
        }
    }
}

impl fmt::Debug for MaskedNumber<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::PiiKind;

    #[test]
    fn numbers_keep_their_head_and_tail_only() {
        let show = |n: &str| MaskedNumber(n).to_string();
        assert_eq!(show("+15550100123"), "+1555•••0123");
        assert_eq!(show("tel:+442079460958"), "+4420•••0958");
        assert_eq!(show("5550100123"), "5550•••0123");
        assert_eq!(show("sip:alice@pbx.example"), "sip:•••@pbx.example");
        assert_eq!(show("bob@10.0.0.1:5060"), "•••@10.0.0.1:5060");
        assert_eq!(show("1234"), "•••34");
        assert_eq!(show("anonymous"), "•••");
        assert_eq!(
            format!("{:?}", MaskedNumber("+15550100123")),
            "\"+1555•••0123\""
        );
    }

    #[test]
    fn texts_are_redacted_by_the_calls_rules_or_left_out() {
        let said = "card 4111 1111 1111 1111, mail bob@example.com";
        let redacting = LogPrivacy::new(Redactor::new([PiiKind::CardNumber, PiiKind::Email]));
        assert_eq!(
            redacting.text(said).to_string(),
            "card [card_number], mail [email]"
        );
        assert!(!format!("{:?}", redacting.text(said)).contains("4111"));
        assert_eq!(LogPrivacy::strict().text(said).to_string(), REDACTED);
        assert_eq!(LogPrivacy::default().text(said).to_string(), said);
    }
}
