//! IBANs, written in one piece or in groups of four (`GB82 WEST 1234 5698 7654 32`), accepted
//! only when the ISO 13616 mod-97 check holds, so a reference number that merely looks like one
//! is left alone. Spoken IBANs, letter by letter and digit by digit ("G B eight two W E S T
//! one two ..."), are read the same way.

use super::tokens::Token;
use super::{claim_or_step, words, Found, PiiKind};

/// Longest IBAN (ISO 13616) and the shortest any country uses.
const MAX_LEN: usize = 34;
const MIN_LEN: usize = 15;

/// Finds IBANs among the untaken tokens.
pub(super) fn find(toks: &[Token<'_>], taken: &mut [bool], found: &mut Vec<Found>) {
    let mut i = 0;
    while i < toks.len() {
        if taken[i] || !starts_iban(toks[i].text) {
            i += 1;
            continue;
        }
        let mut s = String::new();
        let mut best = None;
        let mut j = i;
        while j < toks.len() && !taken[j] {
            let t = toks[j].text;
            if !t.chars().all(|c| c.is_ascii_alphanumeric()) || (j > i && t.len() > 4) {
                break;
            }
            s.push_str(t);
            if s.len() > MAX_LEN {
                break;
            }
            if s.len() >= MIN_LEN && mod97(&s) {
                best = Some(j + 1);
            }
            if toks[j].stop {
                break;
            }
            j += 1;
        }
        i = claim_or_step(toks, taken, found, PiiKind::Iban, i, best);
    }
}

/// Finds IBANs read out one letter or digit at a time among the untaken tokens.
pub(super) fn find_spoken(toks: &[Token<'_>], taken: &mut [bool], found: &mut Vec<Found>) {
    let mut i = 0;
    while i + 1 < toks.len() {
        if taken[i] || taken[i + 1] || letter(&toks[i]).is_none() || letter(&toks[i + 1]).is_none()
        {
            i += 1;
            continue;
        }
        let mut s = String::new();
        let mut best = None;
        let mut repeat = 1;
        let mut j = i;
        // At most two words a character ("double five"): a bound on hostile input.
        while j < toks.len() && !taken[j] && s.len() <= MAX_LEN && j - i < 2 * MAX_LEN {
            let t = &toks[j];
            if let Some(n) = words::repeat(&t.lower) {
                repeat = n;
            } else if let Some(l) = letter(t) {
                s.push(l);
            } else if let Some(d) = words::digit(&t.lower) {
                for _ in 0..repeat {
                    s.push(char::from(b'0' + d));
                }
                repeat = 1;
            } else if t.text.len() <= 4 && t.text.bytes().all(|b| b.is_ascii_digit()) {
                s.push_str(t.text);
            } else {
                break;
            }
            let shaped = s.len() < 4 || s.as_bytes()[2..4].iter().all(u8::is_ascii_digit);
            if !shaped {
                break;
            }
            if (MIN_LEN..=MAX_LEN).contains(&s.len()) && mod97(&s) {
                best = Some(j + 1);
            }
            if t.stop {
                break;
            }
            j += 1;
        }
        i = claim_or_step(toks, taken, found, PiiKind::Iban, i, best);
    }
}

/// A letter said alone ("G", "b"); "o" and "oh" are read as zero by the digit words instead
/// only when they are not single letters, so a spelled "O" stays a letter here.
fn letter(t: &Token<'_>) -> Option<char> {
    let mut c = t.text.chars();
    match (c.next(), c.next()) {
        (Some(l), None) if l.is_ascii_alphabetic() => Some(l.to_ascii_uppercase()),
        _ => None,
    }
}

/// Two letters, two digits, then letters and digits.
fn starts_iban(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() >= 4
        && b.len() <= MAX_LEN
        && b[0].is_ascii_alphabetic()
        && b[1].is_ascii_alphabetic()
        && b[2].is_ascii_digit()
        && b[3].is_ascii_digit()
        && b.iter().all(u8::is_ascii_alphanumeric)
}

/// ISO 7064 mod 97-10 over the rearranged IBAN (country and check digits moved to the end).
pub(super) fn mod97(iban: &str) -> bool {
    let b = iban.as_bytes();
    if b.len() < 5 {
        return false;
    }
    let mut rem: u32 = 0;
    for &c in b[4..].iter().chain(&b[..4]) {
        let c = c.to_ascii_uppercase();
        let v = match c {
            b'0'..=b'9' => u32::from(c - b'0'),
            b'A'..=b'Z' => u32::from(c - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}
