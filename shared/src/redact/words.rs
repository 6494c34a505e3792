//! Number words as recognisers write them: single digits ("oh" and "o" for zero), cardinals and
//! ordinals up to thirty-one (days of the month), and the tens ("eighty" in "nineteen eighty").

/// A single spoken digit.
pub(super) fn digit(word: &str) -> Option<u8> {
    Some(match word {
        "zero" | "oh" | "o" => 0,
        "one" => 1,
        "two" => 2,
        "three" => 3,
        "four" => 4,
        "five" => 5,
        "six" => 6,
        "seven" => 7,
        "eight" => 8,
        "nine" => 9,
        _ => return None,
    })
}

/// "double" and "triple" before a digit.
pub(super) fn repeat(word: &str) -> Option<usize> {
    match word {
        "double" => Some(2),
        "triple" => Some(3),
        _ => None,
    }
}

/// Ten to nineteen.
pub(super) fn teen(word: &str) -> Option<u32> {
    Some(match word {
        "ten" => 10,
        "eleven" => 11,
        "twelve" => 12,
        "thirteen" => 13,
        "fourteen" => 14,
        "fifteen" => 15,
        "sixteen" => 16,
        "seventeen" => 17,
        "eighteen" => 18,
        "nineteen" => 19,
        _ => return None,
    })
}

/// Twenty, thirty, ... ninety.
pub(super) fn tens(word: &str) -> Option<u32> {
    Some(match word {
        "twenty" => 20,
        "thirty" => 30,
        "forty" => 40,
        "fifty" => 50,
        "sixty" => 60,
        "seventy" => 70,
        "eighty" => 80,
        "ninety" => 90,
        _ => return None,
    })
}

/// An ordinal word, first to nineteenth, twentieth, thirtieth.
fn ordinal(word: &str) -> Option<u32> {
    Some(match word {
        "first" => 1,
        "second" => 2,
        "third" => 3,
        "fourth" => 4,
        "fifth" => 5,
        "sixth" => 6,
        "seventh" => 7,
        "eighth" => 8,
        "ninth" => 9,
        "tenth" => 10,
        "eleventh" => 11,
        "twelfth" => 12,
        "thirteenth" => 13,
        "fourteenth" => 14,
        "fifteenth" => 15,
        "sixteenth" => 16,
        "seventeenth" => 17,
        "eighteenth" => 18,
        "nineteenth" => 19,
        "twentieth" => 20,
        "thirtieth" => 30,
        _ => return None,
    })
}

/// A number below 100 spoken from `words[i]`: ("twenty", "one") or "twenty-one" or "seven";
/// `ordinal` also accepts "twenty first". Returns the value and how many words it took.
pub(super) fn small_number(words: &[&str], i: usize, ordinals: bool) -> Option<(u32, usize)> {
    let w = *words.get(i)?;
    if let Some((a, b)) = w.split_once('-') {
        let t = tens(a)?;
        let u = unit(b, ordinals)?;
        return Some((t + u, 1));
    }
    if let Some(t) = tens(w) {
        if let Some(u) = words.get(i + 1).and_then(|n| unit(n, ordinals)) {
            return Some((t + u, 2));
        }
        return Some((t, 1));
    }
    if ordinals {
        if let Some(v) = ordinal(w) {
            return Some((v, 1));
        }
    }
    if let Some(v) = teen(w) {
        return Some((v, 1));
    }
    match digit(w) {
        Some(d) if d > 0 && w != "o" && w != "oh" => Some((d as u32, 1)),
        _ => None,
    }
}

fn unit(word: &str, ordinals: bool) -> Option<u32> {
    if ordinals {
        if let Some(v) = ordinal(word).filter(|v| *v < 10) {
            return Some(v);
        }
    }
    match digit(word) {
        Some(d) if d > 0 && word != "o" && word != "oh" => Some(d as u32),
        _ => None,
    }
}
