//! IBANs, written in one piece or in groups of four (`GB82 WEST 1234 5698 7654 32`), accepted
//! only when the ISO 13616 mod-97 check holds, so a reference number that merely looks like one
//! is left alone. Spoken letter-by-letter IBANs are not recognised.

use super::tokens::Token;
use super::{claim, Found, PiiKind};

/// Longest IBAN (ISO 13616) and the shortest any country uses.
const MAX_LEN: usize = 34;
const MIN_LEN: usize = 15;

/// Finds IBANs among the untaken tokens.
pub(super) fn find(toks: &[Token<'_>], taken: &mut [bool], found: &mut Vec<Found>) {
    let mut i = 0;
    while i < toks.len() {
        if taken[i] || !starts_iban(&toks[i].text) {
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
        match best {
            Some(to) => {
                claim(toks, taken, found, PiiKind::Iban, i, to);
                i = to;
            }
            None => i += 1,
        }
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
