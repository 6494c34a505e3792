//! Pronunciations the recogniser's dictionary lacks because it is American. The CMU dictionary
//! spells "staff", "after" and "can't" with the vowel of "cat" (`AE`); callers from the south of
//! England, and the British voices of the demo's corpus, say them with the vowel of "father"
//! (`AA`), the "trap–bath split". A word said with a vowel its dictionary does not know is
//! heard as another word ("member of staff" came back as "may love talk"), so for every word
//! the recogniser listens for, this adds the British variant beside the American one.
//!
//! Why it generalises: the split is a regular rule of the accent, not a list of words. The
//! `AE` becomes `AA` before `F`, `TH` and `S` ("staff", "path", "ask", "last") and before `N`
//! followed by `T`, `S` or `CH` ("can't", "answer", "chance"). The rule overreaches a little
//! ("gas", "maths" keep `AE` in Britain too); a variant nobody says costs only a little
//! confusability, as the decoder still has the American spelling. No I/O.

/// The vowel of "cat", as the CMU dictionary spells it (pocketsphinx's has no stress marks).
const TRAP: &str = "AE";
/// The vowel of "father".
const BATH: &str = "AA";

/// The British ("bath") variant of `phones`, when the split changes any of its vowels.
pub(super) fn bath_variant(phones: &[&str]) -> Option<Vec<String>> {
    let mut changed = false;
    let variant = phones
        .iter()
        .enumerate()
        .map(|(i, phone)| {
            let next = phones.get(i + 1).copied();
            let after_next = phones.get(i + 2).copied();
            let splits = *phone == TRAP
                && match next {
                    Some("F" | "TH" | "S") => true,
                    Some("N") => matches!(after_next, Some("T" | "S" | "CH")),
                    _ => false,
                };
            changed |= splits;
            if splits { BATH } else { phone }.to_string()
        })
        .collect();
    changed.then_some(variant)
}

/// `lines` (one word's pronunciations in the CMU format, `word PH ON ES`, variants as
/// `word(2) ...`) with the British variant of each added after them, numbered on, unless the
/// dictionary already has it.
pub(super) fn with_british_variants(word: &str, lines: &[String]) -> Vec<String> {
    let spelled: Vec<Vec<&str>> = lines
        .iter()
        .map(|line| line.split_whitespace().skip(1).collect())
        .collect();
    let mut out = lines.to_vec();
    let mut known: Vec<Vec<String>> = spelled
        .iter()
        .map(|p| p.iter().map(|s| (*s).to_string()).collect())
        .collect();
    for phones in &spelled {
        if let Some(variant) = bath_variant(phones) {
            if !known.contains(&variant) {
                out.push(format!("{word}({}) {}", known.len() + 1, variant.join(" ")));
                known.push(variant);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phones(s: &str) -> Vec<&str> {
        s.split(' ').collect()
    }

    #[test]
    fn the_bath_vowel_replaces_the_trap_vowel_before_f_th_s_and_n_with_a_consonant() {
        let variant = |s: &str| bath_variant(&phones(s)).map(|v| v.join(" "));
        assert_eq!(variant("S T AE F").as_deref(), Some("S T AA F"), "staff");
        assert_eq!(variant("P AE TH").as_deref(), Some("P AA TH"), "path");
        assert_eq!(variant("L AE S T").as_deref(), Some("L AA S T"), "last");
        assert_eq!(variant("K AE N T").as_deref(), Some("K AA N T"), "can't");
        assert_eq!(
            variant("AE F T ER N UW N").as_deref(),
            Some("AA F T ER N UW N"),
            "afternoon"
        );
        // The trap vowel elsewhere stays: "cat", "can", "and", "thanks".
        for trap in ["K AE T", "K AE N", "AE N D", "TH AE NG K S", "HH AE"] {
            assert_eq!(variant(trap), None, "{trap}");
        }
    }

    #[test]
    fn a_variant_is_added_once_and_numbered_after_the_others() {
        let lines = vec!["staff S T AE F".to_string()];
        assert_eq!(
            with_british_variants("staff", &lines),
            ["staff S T AE F", "staff(2) S T AA F"]
        );
        let both = vec!["bath B AE TH".to_string(), "bath(2) B AA TH".to_string()];
        assert_eq!(with_british_variants("bath", &both), both);
        let plain = vec!["cat K AE T".to_string()];
        assert_eq!(with_british_variants("cat", &plain), plain);
    }
}
