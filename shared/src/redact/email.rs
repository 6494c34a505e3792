//! E-mail addresses, written (`bob.smith@example.com`) or spoken ("bob dot smith at example dot
//! com", "jane at gmail.com"). A spoken address needs a domain that ends in a known top-level
//! domain, so "meet me at the station" stays as it is.

use super::tokens::Token;
use super::{claim, Found, PiiKind};

/// Top-level domains a spoken address may end in.
const TLDS: &[&str] = &[
    "com", "org", "net", "edu", "gov", "io", "co", "uk", "us", "ca", "de", "fr", "info", "biz",
    "me", "ai", "app", "dev", "au", "in", "es", "it", "nl", "ie", "nz", "mil", "eu",
];
/// Words that join parts of a spoken address, and what they stand for.
const JOINERS: &[&str] = &["dot", "underscore", "dash", "hyphen", "period"];
/// Words before "at" that are not the start of an address ("reach me at ...").
const NOT_LOCAL: &[&str] = &[
    "me", "us", "him", "her", "them", "is", "it's", "address", "email", "e-mail", "mail", "it",
    "look", "arrive", "arrived", "be", "was", "are", "am", "and", "or", "the", "a", "you", "we're",
    "i'm", "you're", "they're", "he's", "she's", "that's", "what's", "where's", "we", "i", "they",
    "he", "she", "that", "this", "here", "there", "out", "back", "up", "down",
];
/// Words that do not start a spoken domain ("we're at the dot com office").
const NOT_DOMAIN: &[&str] = &[
    "the", "a", "an", "my", "our", "your", "this", "that", "their", "his", "her",
];

/// Finds written and spoken addresses among the untaken tokens.
pub(super) fn find(_text: &str, toks: &[Token<'_>], taken: &mut [bool], found: &mut Vec<Found>) {
    for i in 0..toks.len() {
        if !taken[i] && written(toks[i].text) {
            claim(toks, taken, found, PiiKind::Email, i, i + 1);
        }
    }
    let mut i = 1;
    while i + 1 < toks.len() {
        if toks[i].lower != "at" || taken[i] || toks[i - 1].stop || toks[i].stop {
            i += 1;
            continue;
        }
        let Some(to) = domain_after(toks, taken, i + 1) else {
            i += 1;
            continue;
        };
        let Some(from) = local_before(toks, taken, i) else {
            i += 1;
            continue;
        };
        claim(toks, taken, found, PiiKind::Email, from, to);
        i = to;
    }
}

/// `local@domain.tld`, with a sensible local part and a dotted domain.
fn written(w: &str) -> bool {
    let Some((local, domain)) = w.split_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || "._%+-'".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels
            .iter()
            .all(|l| !l.is_empty() && l.chars().all(|c| c.is_alphanumeric() || c == '-'))
        && labels
            .last()
            .is_some_and(|t| t.len() >= 2 && t.chars().all(|c| c.is_alphabetic()));
    local_ok && domain_ok
}

fn is_word(t: &Token<'_>) -> bool {
    !t.text.is_empty()
        && t.text
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '\''))
}

/// One letter spelled out ("b o b").
fn is_letter(t: &Token<'_>) -> bool {
    let mut c = t.text.chars();
    matches!((c.next(), c.next()), (Some(l), None) if l.is_alphabetic())
}

/// The end (exclusive) of a spoken domain starting at token `i`: `word (dot word)+` ending in a
/// top-level domain, or one written `example.com`.
fn domain_after(toks: &[Token<'_>], taken: &[bool], i: usize) -> Option<usize> {
    let first = toks.get(i)?;
    if taken[i] || !is_word(first) || NOT_DOMAIN.contains(&first.lower.as_str()) {
        return None;
    }
    if first.lower.contains('.') {
        let tld = first.lower.rsplit('.').next()?;
        return TLDS.contains(&tld).then_some(i + 1);
    }
    let mut j = i + 1;
    let mut end = None;
    while j + 1 < toks.len() + 1 && j < toks.len() {
        if toks[j - 1].stop || taken[j] || !matches!(toks[j].lower.as_str(), "dot" | "period") {
            break;
        }
        let Some(label) = toks.get(j + 1) else { break };
        if taken[j + 1] || !is_word(label) {
            break;
        }
        if TLDS.contains(&label.lower.as_str()) {
            end = Some(j + 2);
        }
        j += 2;
    }
    end
}

/// The start of a spoken local part ending just before the "at" at token `at`: one word, and
/// more words joined to it by "dot", "underscore", "dash".
fn local_before(toks: &[Token<'_>], taken: &[bool], at: usize) -> Option<usize> {
    let mut from = at - 1;
    if taken[from] || !is_word(&toks[from]) || NOT_LOCAL.contains(&toks[from].lower.as_str()) {
        return None;
    }
    while from >= 2
        && JOINERS.contains(&toks[from - 1].lower.as_str())
        && !taken[from - 1]
        && !taken[from - 2]
        && !toks[from - 2].stop
        && !toks[from - 1].stop
        && is_word(&toks[from - 2])
    {
        from -= 2;
    }
    // A spelled-out name, "b o b at ...".
    if is_letter(&toks[from]) {
        while from >= 1 && !taken[from - 1] && !toks[from - 1].stop && is_letter(&toks[from - 1]) {
            from -= 1;
        }
    }
    Some(from)
}
