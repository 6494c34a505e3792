//! Personal data taken out of text before it is kept, sent on or shown to a language model: card
//! numbers (Luhn-checked), e-mail addresses, phone numbers, US social security numbers, IBANs
//! (mod-97 checked) and dates of birth, written ("4111 1111 1111 1111", "bob@example.com") or
//! spoken as a recogniser spells them out ("four one one one ...", "double five", "oh" for zero,
//! "bob dot smith at example dot com"). Each finding is replaced by a typed placeholder
//! (`[card_number]`, `[email]`, ...), so a transcript still reads as a conversation.
//!
//! A plain value with no I/O: the control plane runs it on events before storing them and before
//! webhooks are queued, the edge on what its language model receives. Work is linear in the
//! input and the input is capped ([`MAX_REDACT_BYTES`]); what lies past the cap is dropped, never
//! passed through unredacted. Log lines take a call's data only through [`LogPrivacy`]'s
//! wrappers, which mask numbers and redact texts when they are formatted.

mod dob;
mod email;
mod iban;
mod json;
mod kind;
mod log;
mod numbers;
mod tokens;
mod words;

pub use kind::{PiiKind, UnknownPiiKind};
pub use log::{LogPrivacy, MaskedNumber, Sensitive, REDACTED};

use tokens::Token;

/// Longest text redacted, in bytes: a transcript line is a few hundred bytes, so this only bites
/// on hostile or broken input, whose remainder is dropped rather than kept unredacted.
pub const MAX_REDACT_BYTES: usize = 64 * 1024;

/// What stands in for text cut at [`MAX_REDACT_BYTES`].
pub const TRUNCATED: &str = "[truncated]";

/// One piece of personal data found in a text: its kind and its byte range in that text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub kind: PiiKind,
    pub start: usize,
    pub end: usize,
}

/// Finds and replaces the configured kinds of personal data; built once per agent, used for
/// every line of its calls.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Redactor {
    kinds: Vec<PiiKind>,
}

impl Redactor {
    /// A redactor for `kinds`; with none it changes nothing.
    pub fn new(kinds: impl IntoIterator<Item = PiiKind>) -> Self {
        let mut kinds: Vec<PiiKind> = kinds.into_iter().collect();
        kinds.sort();
        kinds.dedup();
        Self { kinds }
    }

    /// Whether this redactor would change nothing (no kinds configured).
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }

    fn wants(&self, kind: PiiKind) -> bool {
        self.kinds.contains(&kind)
    }

    /// `text` with every finding replaced by its placeholder, and the findings (byte ranges in
    /// `text`, in order). Text past [`MAX_REDACT_BYTES`] is replaced by [`TRUNCATED`].
    pub fn redact(&self, text: &str) -> (String, Vec<Found>) {
        if self.kinds.is_empty() {
            return (text.to_owned(), Vec::new());
        }
        let (text, truncated) = cap(text);
        let found = self.find(text);
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for f in &found {
            out.push_str(&text[at..f.start]);
            out.push_str(f.kind.placeholder());
            at = f.end;
        }
        out.push_str(&text[at..]);
        if truncated {
            out.push_str(TRUNCATED);
        }
        (out, found)
    }

    /// The findings in `text` (capped at [`MAX_REDACT_BYTES`]), in order, not overlapping.
    pub fn find(&self, text: &str) -> Vec<Found> {
        let (text, _) = cap(text);
        let toks = tokens::tokenize(text);
        let mut taken = vec![false; toks.len()];
        let mut found = Vec::new();
        // Most specific first: an address or an IBAN holds digits a number would claim.
        if self.wants(PiiKind::Email) {
            email::find(text, &toks, &mut taken, &mut found);
        }
        if self.wants(PiiKind::Iban) {
            iban::find(&toks, &mut taken, &mut found);
            iban::find_spoken(&toks, &mut taken, &mut found);
        }
        if self.wants(PiiKind::DateOfBirth) {
            dob::find(&toks, &mut taken, &mut found);
        }
        numbers::find(self, &toks, &mut taken, &mut found);
        found.sort_by_key(|f| f.start);
        found
    }
}

/// `text` cut to at most [`MAX_REDACT_BYTES`] at a character boundary, and whether it was cut.
fn cap(text: &str) -> (&str, bool) {
    if text.len() <= MAX_REDACT_BYTES {
        return (text, false);
    }
    let mut end = MAX_REDACT_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (&text[..end], true)
}

/// Claims tokens `from..to` as `kind` when a finding ends at `to`, and says where a scan goes
/// on: after the finding, or at the next token when there was none.
fn claim_or_step(
    toks: &[Token<'_>],
    taken: &mut [bool],
    found: &mut Vec<Found>,
    kind: PiiKind,
    from: usize,
    to: Option<usize>,
) -> usize {
    match to {
        Some(to) => {
            claim(toks, taken, found, kind, from, to);
            to
        }
        None => from + 1,
    }
}

/// Marks tokens `from..to` taken and records a finding spanning them.
fn claim(
    toks: &[Token<'_>],
    taken: &mut [bool],
    found: &mut Vec<Found>,
    kind: PiiKind,
    from: usize,
    to: usize,
) {
    for t in taken.iter_mut().take(to).skip(from) {
        *t = true;
    }
    found.push(Found {
        kind,
        start: toks[from].start,
        end: toks[to - 1].end,
    });
}

#[cfg(test)]
mod tests;
