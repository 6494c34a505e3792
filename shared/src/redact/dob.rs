//! Dates of birth: a date ("03/14/1985", "March 14th, 1985", "the fourteenth of March nineteen
//! eighty five") within a few words of "born", "birthday", "birth" or "DOB" in the same sentence.
//! Dates elsewhere (an order placed on March 3rd, a delivery on the 14th) are not personal and
//! stay; so does a year alone ("born in 1985").

use super::tokens::Token;
use super::{claim, words, Found, PiiKind};

/// How far (in words) from a birth word a date may start after it, or end before it.
const AFTER: usize = 12;
const BEFORE: usize = 10;

/// Finds dates near birth words among the untaken tokens.
pub(super) fn find(toks: &[Token<'_>], taken: &mut [bool], found: &mut Vec<Found>) {
    let lower: Vec<&str> = toks.iter().map(|t| t.lower.as_str()).collect();
    for t in 0..toks.len() {
        if !is_trigger(lower[t]) {
            continue;
        }
        // After the birth word, to the end of its sentence.
        let mut i = t + 1;
        let mut limit = (t + 1 + AFTER).min(toks.len());
        if toks[t].stop {
            limit = i;
        }
        while i < limit {
            if let Some(end) = date_at(toks, &lower, taken, i) {
                claim(toks, taken, found, PiiKind::DateOfBirth, i, end);
                i = end;
                continue;
            }
            if toks[i].stop {
                break;
            }
            i += 1;
        }
        // Before it, within its sentence.
        let mut from = t;
        while from > 0 && t - from < BEFORE && !toks[from - 1].stop {
            from -= 1;
        }
        let mut i = from;
        while i < t {
            match date_at(toks, &lower, taken, i) {
                Some(end) if end <= t => {
                    claim(toks, taken, found, PiiKind::DateOfBirth, i, end);
                    i = end;
                }
                _ => i += 1,
            }
        }
    }
}

fn is_trigger(w: &str) -> bool {
    let w = w
        .strip_suffix("'s")
        .or_else(|| w.strip_suffix("’s"))
        .unwrap_or(w);
    matches!(
        w,
        "born" | "birthday" | "birth" | "birthdate" | "dob" | "d.o.b" | "bday" | "b-day"
    )
}

fn month(w: &str) -> bool {
    matches!(
        w,
        "january"
            | "february"
            | "march"
            | "april"
            | "may"
            | "june"
            | "july"
            | "august"
            | "september"
            | "october"
            | "november"
            | "december"
            | "jan"
            | "feb"
            | "mar"
            | "apr"
            | "jun"
            | "jul"
            | "aug"
            | "sep"
            | "sept"
            | "oct"
            | "nov"
            | "dec"
    )
}

/// The end of a date starting at token `i`, if one does.
fn date_at(toks: &[Token<'_>], lower: &[&str], taken: &[bool], i: usize) -> Option<usize> {
    if taken[i] {
        return None;
    }
    if numeric_date(lower[i]) {
        return Some(i + 1);
    }
    let free = |k: usize| k < toks.len() && !taken[k] && !toks[k - 1].stop;
    // "nineteen eighty five, March the second": the year first.
    if let Some(y) = year_at(lower, i) {
        if free(y) && y > i && (i + 1..y).all(|k| !taken[k]) && month(lower[y]) {
            let mut j = y + 1;
            if free(j) && lower[j] == "the" && free(j + 1) {
                j += 1;
            }
            if free(j) {
                if let Some(n) = day_at(lower, j) {
                    return Some(n);
                }
            }
        }
    }
    if month(lower[i]) {
        // "March 14th, 1985", "March the fourteenth", "March 1985".
        let mut j = i + 1;
        let mut day = false;
        if free(j) && lower[j] == "the" && free(j + 1) {
            if let Some(n) = day_at(lower, j + 1) {
                j = n;
                day = true;
            }
        } else if free(j) {
            if let Some(n) = day_at(lower, j) {
                j = n;
                day = true;
            }
        }
        let mut year = false;
        if free(j) {
            if let Some(n) = year_at(lower, j) {
                j = n;
                year = true;
            }
        }
        return (day || year).then_some(j);
    }
    // "14 March 1985", "the fourteenth of March nineteen eighty five".
    let start = if lower[i] == "the" { i + 1 } else { i };
    if start > i && !free(start) {
        return None;
    }
    let mut j = day_at(lower, start)?;
    if free(j) && lower[j] == "of" {
        j += 1;
    }
    if !free(j) || !month(lower[j]) {
        return None;
    }
    j += 1;
    if free(j) {
        if let Some(n) = year_at(lower, j) {
            j = n;
        }
    }
    Some(j)
}

/// `03/14/1985`, `14.03.85`, `1985-03-14`.
fn numeric_date(w: &str) -> bool {
    let parts: Vec<&str> = w.split(['/', '-', '.']).collect();
    if parts.len() != 3
        || !parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    {
        return false;
    }
    let l: Vec<usize> = parts.iter().map(|p| p.len()).collect();
    matches!(l.as_slice(), [1..=2, 1..=2, 2 | 4] | [4, 1..=2, 1..=2])
}

/// A day of the month at `i`: `14`, `14th`, "fourteenth", "twenty first", "fourteen".
fn day_at(lower: &[&str], i: usize) -> Option<usize> {
    let w = *lower.get(i)?;
    let digits = w.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let suffix = &w[digits.len()..];
    if !digits.is_empty()
        && digits.len() <= 2
        && digits.bytes().all(|b| b.is_ascii_digit())
        && matches!(suffix, "" | "st" | "nd" | "rd" | "th")
    {
        let v: u32 = digits.parse().ok()?;
        return (1..=31).contains(&v).then_some(i + 1);
    }
    let (v, n) = words::small_number(lower, i, true)?;
    (1..=31).contains(&v).then_some(i + n)
}

/// A year at `i`: `1985`, `'85`, "nineteen eighty five", "nineteen oh five", "two thousand
/// (and) three", "twenty twelve".
fn year_at(lower: &[&str], i: usize) -> Option<usize> {
    let w = *lower.get(i)?;
    if w.len() == 4 && w.bytes().all(|b| b.is_ascii_digit()) {
        let y: u32 = w.parse().ok()?;
        return (1900..=2099).contains(&y).then_some(i + 1);
    }
    if w.len() == 3 && w.starts_with('\'') && w[1..].bytes().all(|b| b.is_ascii_digit()) {
        return Some(i + 1);
    }
    match w {
        "nineteen" | "twenty" => {
            let next = *lower.get(i + 1)?;
            if next == "oh" || next == "o" {
                let d = words::digit(lower.get(i + 2)?)?;
                return (d > 0).then_some(i + 3);
            }
            if next == "hundred" {
                return Some(i + 2);
            }
            let (v, n) = words::small_number(lower, i + 1, false)?;
            (v >= 10).then_some(i + 1 + n)
        }
        "two" if lower.get(i + 1) == Some(&"thousand") => {
            let mut j = i + 2;
            if lower.get(j) == Some(&"and") {
                j += 1;
            }
            match words::small_number(lower, j, false) {
                Some((_, n)) => Some(j + n),
                None => Some(i + 2),
            }
        }
        _ => None,
    }
}
