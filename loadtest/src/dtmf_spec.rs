//! Key presses in a scenario, written `DIGITS@SECONDS`: `5@2.5` presses 5 two and a half
//! seconds after the answer, `123#@4` presses 1, 2, 3 and # from four seconds on, one every
//! [`DIGIT_SPACING`]; plain `123` presses them [`DEFAULT_AFTER`] after the answer. The UAC sends
//! each as RFC 4733 events (see `uac::media`).

use std::time::Duration;

use freya_edge::rtp::dtmf::DtmfDigit;

use crate::uac::DtmfPress;

/// Time from one key of a group to the next: a 100 ms press and a 150 ms pause.
pub const DIGIT_SPACING: Duration = Duration::from_millis(250);
/// When keys given without `@SECONDS` are pressed, after the answer.
pub const DEFAULT_AFTER: Duration = Duration::from_secs(1);

/// Parses one `DIGITS[@SECONDS]` spec; the error says what is wrong with it.
pub fn parse_dtmf(spec: &str) -> Result<Vec<DtmfPress>, String> {
    let (digits, secs) = match spec.split_once('@') {
        None => (spec, DEFAULT_AFTER.as_secs_f64()),
        Some((digits, at)) => {
            let secs: f64 = at
                .trim()
                .parse()
                .ok()
                .filter(|s: &f64| *s >= 0.0 && s.is_finite() && *s < 86_400.0)
                .ok_or_else(|| format!("{at:?} in {spec:?} is not a number of seconds"))?;
            (digits, secs)
        }
    };
    if digits.is_empty() {
        return Err(format!("{spec:?} names no key"));
    }
    let start = Duration::from_secs_f64(secs);
    digits
        .chars()
        .zip(0u32..)
        .map(|(c, n)| {
            DtmfDigit::from_char(c)
                .map(|d| DtmfPress {
                    at: start + DIGIT_SPACING * n,
                    digit: d.as_char(),
                })
                .map_err(|e| format!("{e} (in {spec:?})"))
        })
        .collect()
}

/// Parses every spec, in time order.
pub fn parse_all(specs: &[String]) -> Result<Vec<DtmfPress>, String> {
    let mut presses = Vec::new();
    for spec in specs {
        presses.extend(parse_dtmf(spec)?);
    }
    presses.sort_by_key(|p| p.at);
    Ok(presses)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_of_keys_are_spaced_and_sorted() {
        let presses = parse_all(&["9@3".into(), "1a#@0.5".into()]).expect("valid");
        let got: Vec<(u128, char)> = presses
            .iter()
            .map(|p| (p.at.as_millis(), p.digit))
            .collect();
        assert_eq!(got, [(500, '1'), (750, 'A'), (1000, '#'), (3000, '9')]);
    }

    #[test]
    fn keys_without_a_time_are_pressed_a_second_after_the_answer() {
        let got: Vec<(u128, char)> = parse_dtmf("12")
            .expect("valid")
            .iter()
            .map(|p| (p.at.as_millis(), p.digit))
            .collect();
        assert_eq!(got, [(1000, '1'), (1250, '2')]);
        assert!(parse_dtmf("").is_err(), "no key");
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        for (spec, says) in [
            ("5@soon", "number of seconds"),
            ("5@-1", "number of seconds"),
            ("@2", "names no key"),
            ("5x@2", "'x' is not a DTMF digit"),
        ] {
            let err = parse_dtmf(spec).expect_err(spec);
            assert!(err.contains(says), "{spec}: {err}");
        }
    }
}
