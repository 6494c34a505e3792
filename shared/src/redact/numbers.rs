//! Runs of digits, written or spoken ("4111 1111 ...", "four one one one ...", "double five",
//! "oh" for zero), read as card numbers (13–19 digits passing Luhn), social security numbers
//! (nine digits in the 3-2-4 shape or after "social security") and phone numbers (ten digits,
//! a leading `+`, or the words before them say so). The words just before a run decide between
//! a phone number and an order, account or tracking number; times ("five thirty"), prices
//! (`$49.99`), quantities and years are not digit runs or are too short to be any kind.

use super::tokens::Token;
use super::{claim, claim_or_step, words, Found, PiiKind, Redactor};

/// Longest run (in words) searched for a card number inside it; longer runs are read whole.
const MAX_WINDOW_WORDS: usize = 40;
/// Most digits a run may hold and still be any kind (a 19-digit card number, with room).
const MAX_DIGITS: usize = 24;

/// What one word contributes to a digit run.
enum Piece {
    /// Digits written with numerals (`4111`, `555-123-4567`), and whether a `+` leads them.
    Written { digits: String, plus: bool },
    /// One spoken digit.
    Spoken(u8),
    /// "double" or "triple": applies to the next spoken or written digit.
    Repeat(usize),
    /// A dash between groups, or a filler word ("uh") inside a run.
    Dash,
}

/// Filler words a recogniser writes inside a number read aloud.
const FILLERS: &[&str] = &["uh", "um", "er", "erm", "ah", "hmm"];

fn piece(t: &Token<'_>) -> Option<Piece> {
    let w = t.lower.as_str();
    if let Some(d) = words::digit(w) {
        return Some(Piece::Spoken(d));
    }
    if let Some(n) = words::repeat(w) {
        return Some(Piece::Repeat(n));
    }
    if w.chars().all(|c| c == '-' || c == '–') || FILLERS.contains(&w) {
        return Some(Piece::Dash);
    }
    let body = w.strip_prefix('+');
    let plus = body.is_some();
    let body = body.unwrap_or(w);
    if !body.starts_with(|c: char| c.is_ascii_digit() || c == '(') {
        return None;
    }
    if !body
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '-' | '.' | '(' | ')'))
    {
        return None;
    }
    // One dot is a price or a decimal ("49.99"); dotted groups ("555.123.4567") are a number.
    if body.matches('.').count() == 1 {
        return None;
    }
    // A word of more digits than any kind holds is none of them (and is not copied around).
    if body.len() > 4 * MAX_DIGITS {
        return None;
    }
    let digits: String = body.chars().filter(|c| c.is_ascii_digit()).collect();
    if digits.is_empty() {
        return None;
    }
    Some(Piece::Written { digits, plus })
}

/// A run of digit words: token range, digits, and each word's digit count (its shape).
struct Run {
    from: usize,
    to: usize,
    digits: String,
    groups: Vec<usize>,
    plus: bool,
}

/// Finds the kinds `redactor` wants among the digit runs of the untaken tokens.
pub(super) fn find(
    redactor: &Redactor,
    toks: &[Token<'_>],
    taken: &mut [bool],
    found: &mut Vec<Found>,
) {
    let wants_any = [PiiKind::CardNumber, PiiKind::UsSsn, PiiKind::PhoneNumber]
        .into_iter()
        .any(|k| redactor.wants(k));
    if !wants_any {
        return;
    }
    let mut i = 0;
    while i < toks.len() {
        let Some(run) = run_at(toks, taken, i) else {
            i += 1;
            continue;
        };
        let next = run.to;
        let before = context_before(toks, run.from);
        let after = context_after(toks, run.to);
        if let Some(kind) = classify(redactor, &run, &before, &after) {
            claim(toks, taken, found, kind, run.from, run.to);
        } else if redactor.wants(PiiKind::CardNumber) && run.to - run.from <= MAX_WINDOW_WORDS {
            cards_inside(toks, taken, found, run.from, run.to);
        }
        i = next.max(i + 1);
    }
}

/// The longest digit run starting at token `i`, if one starts there.
fn run_at(toks: &[Token<'_>], taken: &[bool], i: usize) -> Option<Run> {
    let mut run = Run {
        from: i,
        to: i,
        digits: String::new(),
        groups: Vec::new(),
        plus: false,
    };
    let mut pending_repeat = 1;
    let mut j = i;
    while j < toks.len() && !taken[j] {
        let p = match piece(&toks[j]) {
            Some(p) => p,
            // "four one one one for one one one ...": "for" (or "to") heard for a digit, but
            // only between two spoken digits.
            None => match spoken_homophone(toks, taken, j) {
                Some(d) => Piece::Spoken(d),
                None => break,
            },
        };
        match p {
            Piece::Dash if j == i => return None,
            Piece::Dash => {}
            Piece::Repeat(n) => pending_repeat = n,
            Piece::Spoken(d) => {
                for _ in 0..pending_repeat {
                    run.digits.push(char::from(b'0' + d));
                }
                run.groups.push(pending_repeat);
                pending_repeat = 1;
            }
            Piece::Written { digits, plus } => {
                if j == i {
                    run.plus = plus;
                } else if plus {
                    break;
                }
                let mut n = digits.len();
                if pending_repeat > 1 && digits.len() == 1 {
                    n = pending_repeat;
                    for _ in 1..pending_repeat {
                        run.digits.push_str(&digits);
                    }
                }
                run.digits.push_str(&digits);
                // "555-123-4567" counts as the groups it is written in.
                let parts: Vec<usize> = digits_groups(toks[j].text);
                if parts.len() > 1 {
                    run.groups.extend(parts);
                } else {
                    run.groups.push(n);
                }
                pending_repeat = 1;
            }
        }
        run.to = j + 1;
        if toks[j].stop || run.digits.len() > 4 * MAX_DIGITS {
            break;
        }
        j += 1;
    }
    // A trailing "double" or dash is not part of the run.
    while run.to > run.from
        && matches!(
            piece(&toks[run.to - 1]),
            Some(Piece::Dash | Piece::Repeat(_))
        )
    {
        run.to -= 1;
    }
    (!run.digits.is_empty()).then_some(run)
}

fn spoken_homophone(toks: &[Token<'_>], taken: &[bool], j: usize) -> Option<u8> {
    let d = match toks[j].lower.as_str() {
        "for" => 4,
        "to" | "too" => 2,
        _ => return None,
    };
    let spoken = |k: usize| !taken[k] && words::digit(&toks[k].lower).is_some();
    let between = j > 0
        && j + 1 < toks.len()
        && spoken(j - 1)
        && spoken(j + 1)
        && !toks[j - 1].stop
        && !toks[j].stop;
    between.then_some(d)
}

fn digits_groups(text: &str) -> Vec<usize> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .map(str::len)
        .collect()
}

/// Up to six lower-case words before token `from`, nearest first, stopping at a sentence mark,
/// with a trailing "'s" dropped ("my phone's ...").
fn context_before<'t>(toks: &'t [Token<'_>], from: usize) -> Vec<&'t str> {
    let lo = from.saturating_sub(6);
    let mut out = Vec::with_capacity(6);
    for t in toks[lo..from].iter().rev() {
        if t.stop {
            break;
        }
        out.push(bare(&t.lower));
    }
    out
}

/// Up to four words after the run ending before `to`, within its sentence ("..., that's my
/// social").
fn context_after<'t>(toks: &'t [Token<'_>], to: usize) -> Vec<&'t str> {
    if to == 0 || toks[to - 1].stop {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(4);
    for t in toks.iter().skip(to).take(4) {
        out.push(bare(&t.lower));
        if t.stop {
            break;
        }
    }
    out
}

fn bare(w: &str) -> &str {
    w.strip_suffix("'s")
        .or_else(|| w.strip_suffix("’s"))
        .unwrap_or(w)
}

/// Words that say the digits after them are a phone number.
const PHONE_WORDS: &[&str] = &[
    "phone",
    "telephone",
    "cell",
    "mobile",
    "call",
    "reach",
    "text",
    "fax",
    "landline",
    "dial",
    "callback",
    "contact",
    "ring",
    "whatsapp",
];
/// Words that say the digits after them are not personal: an order, a parcel, an account.
const NOT_PHONE_WORDS: &[&str] = &[
    "order",
    "invoice",
    "tracking",
    "confirmation",
    "account",
    "reference",
    "ref",
    "ticket",
    "case",
    "policy",
    "member",
    "membership",
    "id",
    "serial",
    "model",
    "part",
    "item",
    "sku",
    "zip",
    "postcode",
    "pin",
    "routing",
    "transaction",
    "booking",
    "reservation",
    "customer",
    "claim",
    "receipt",
    "shipment",
    "package",
    "parcel",
    "voucher",
    "coupon",
    "promo",
    "code",
    "flight",
    "room",
    "extension",
    "ext",
    "badge",
    "employee",
    "record",
    "loyalty",
    "rewards",
];
const SSN_WORDS: &[&str] = &["social", "ssn", "security"];

/// Which of the wanted kinds the whole run is, if any.
fn classify(redactor: &Redactor, run: &Run, before: &[&str], after: &[&str]) -> Option<PiiKind> {
    let d = run.digits.as_bytes();
    let n = d.len();
    if n > MAX_DIGITS {
        return None;
    }
    let mut phone_context = None;
    let mut ssn_context = after.iter().any(|w| SSN_WORDS.contains(w));
    for (k, w) in before.iter().enumerate() {
        if SSN_WORDS.contains(w) {
            ssn_context = true;
        }
        if phone_context.is_none() {
            if NOT_PHONE_WORDS.contains(w) {
                phone_context = Some(false);
            } else if PHONE_WORDS.contains(w) {
                phone_context = Some(true);
            } else if *w == "number" {
                // "my number is ...", unless it is "my order number": the word before decides.
                if let Some(&("my" | "your" | "his" | "her" | "our" | "their" | "best")) =
                    before.get(k + 1)
                {
                    phone_context = Some(true);
                }
            }
        }
    }
    if redactor.wants(PiiKind::CardNumber) && (13..=19).contains(&n) && luhn(d) && !run.plus {
        return Some(PiiKind::CardNumber);
    }
    if redactor.wants(PiiKind::UsSsn)
        && n == 9
        && ssn_valid(d)
        && (ssn_context || run.groups == [3, 2, 4])
    {
        return Some(PiiKind::UsSsn);
    }
    if redactor.wants(PiiKind::PhoneNumber) && phone_context != Some(false) && !ssn_context {
        let nanp = |d: &[u8]| d.len() == 10 && (b'2'..=b'9').contains(&d[0]);
        let shaped = matches!(run.groups.as_slice(), [3, 3, 4] | [1, 3, 3, 4] | [3, 4]);
        let is_phone = (run.plus && (8..=15).contains(&n))
            || nanp(d)
            || (n == 11 && d[0] == b'1' && nanp(&d[1..]))
            || (n == 11 && d[0] == b'0' && run.groups.len() > 1)
            || (phone_context == Some(true) && (7..=15).contains(&n))
            || (shaped && n >= 7);
        if is_phone {
            return Some(PiiKind::PhoneNumber);
        }
    }
    None
}

/// Card numbers inside a longer run ("oh 4111 1111 1111 1111 12 25"): the longest Luhn-valid
/// window of whole words at each start, left to right.
fn cards_inside(
    toks: &[Token<'_>],
    taken: &mut [bool],
    found: &mut Vec<Found>,
    from: usize,
    to: usize,
) {
    let mut i = from;
    while i < to {
        let mut hit = None;
        // A card number is at most 19 digits: at most that many words, and a few "double"s.
        for j in (i + 1..=to.min(i + 24)).rev() {
            if let Some(run) = run_at_bounded(toks, taken, i, j) {
                let n = run.digits.len();
                if (13..=19).contains(&n) && luhn(run.digits.as_bytes()) {
                    hit = Some(j);
                    break;
                }
            }
        }
        i = claim_or_step(toks, taken, found, PiiKind::CardNumber, i, hit);
    }
}

fn run_at_bounded(toks: &[Token<'_>], taken: &[bool], i: usize, j: usize) -> Option<Run> {
    let run = run_at(&toks[..j], taken, i)?;
    (run.to == j).then_some(run)
}

/// The Luhn check digit test, over ASCII digits.
pub(super) fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (k, c) in digits.iter().rev().enumerate() {
        let mut v = u32::from(c - b'0');
        if k % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// The SSA's rules: no area 000, 666 or 9xx, no group 00, no serial 0000.
fn ssn_valid(d: &[u8]) -> bool {
    let area = &d[..3];
    area != b"000" && area != b"666" && area[0] != b'9' && &d[3..5] != b"00" && &d[5..9] != b"0000"
}
