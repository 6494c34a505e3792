//! Which of the two decodings of a turn to believe. The grammar decoder always answers with one
//! of the agent's phrases, so speech outside them ("do you sell bicycles") would be forced onto
//! one ("hello bye") and could hang up or transfer the caller. The open-vocabulary decoder hears
//! the same audio with no such constraint, less exactly. The grammar's words are kept when the
//! open decoder heard at least one of their meaningful words too — the same word anywhere in the
//! turn, or, at the same time, a word that sounds almost the same; otherwise the open decoder's
//! words are the transcript, and a rules agent answers with its fallback line.
//!
//! Why "sounds almost the same": the open decoder weighs thousands of short common words against
//! the agent's few, so where the grammar heard "bye" it often spells the same sound "i", and
//! "staff" as "stuff". Requiring the identical word threw away right answers ("bye for now"
//! heard openly as "i for out"). One phone of difference, at the same time, is the confusion
//! of a decoder hearing the same sound; speech outside the grammar differs by whole syllables
//! from what the grammar forced onto it, so it is still caught.

use std::collections::HashMap;

use super::hypothesis::{Hypothesis, TimedWord};

/// Words too common to show that two decodings agree.
const FUNCTION_WORDS: &[&str] = &[
    "a", "an", "the", "i", "i'd", "i'm", "me", "my", "you", "your", "we", "our", "it", "is", "are",
    "am", "be", "do", "to", "of", "on", "in", "at", "for", "and", "or", "can", "could", "would",
    "what", "please", "like", "want", "so", "well", "okay", "um", "uh", "yes", "no", "yeah", "oh",
    "ah", "hi", "hey", "hello",
];
/// Fewest phones a grammar word must have to be confirmed by a word one phone away: a
/// one-phone word is one phone away from every other one-phone word.
const MIN_ALIKE_PHONES: usize = 2;

/// Pronunciations of the words both decoders may output, to tell which sound alike.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pronunciations {
    phones: HashMap<String, Vec<Vec<String>>>,
}

impl Pronunciations {
    /// Parses dictionary text in the CMU format (`word PH ON ES`, variants as `word(2) ...`).
    pub fn parse(dictionary: &str) -> Self {
        let mut phones: HashMap<String, Vec<Vec<String>>> = HashMap::new();
        for line in dictionary.lines() {
            let mut fields = line.split_whitespace();
            let Some(head) = fields.next() else {
                continue;
            };
            let word = head.split('(').next().unwrap_or(head);
            let sounds: Vec<String> = fields.map(str::to_string).collect();
            if !word.is_empty() && !sounds.is_empty() {
                phones.entry(word.to_lowercase()).or_default().push(sounds);
            }
        }
        Pronunciations { phones }
    }

    /// Whether some pronunciation of `heard` is at most one phone (inserted, dropped or
    /// changed) from one of `expected`, which has at least [`MIN_ALIKE_PHONES`] phones.
    pub fn alike(&self, expected: &str, heard: &str) -> bool {
        let (Some(ours), Some(theirs)) = (self.phones.get(expected), self.phones.get(heard)) else {
            return false;
        };
        ours.iter()
            .filter(|a| a.len() >= MIN_ALIKE_PHONES)
            .any(|a| theirs.iter().any(|b| edit_distance(a, b) <= 1))
    }
}

/// Levenshtein distance between two phone sequences.
fn edit_distance(a: &[String], b: &[String]) -> usize {
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, x) in a.iter().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, y) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(x != y));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The transcript of a turn from the grammar's and the open model's hypotheses.
pub fn transcript(grammar: &Hypothesis, open: &Hypothesis, sounds: &Pronunciations) -> String {
    if grammar.is_empty() {
        return open.text();
    }
    let confirmed = |expected: &TimedWord| {
        open.words.iter().any(|heard| {
            heard.word == expected.word
                || (heard.overlaps(expected) && sounds.alike(&expected.word, &heard.word))
        })
    };
    let mut meaningful = grammar
        .words
        .iter()
        .filter(|w| !FUNCTION_WORDS.contains(&w.word.as_str()))
        .peekable();
    let agrees = meaningful.peek().is_none() || meaningful.any(confirmed);
    if agrees || open.is_empty() {
        grammar.text()
    } else {
        open.text()
    }
}

#[cfg(test)]
#[path = "decision_tests.rs"]
mod tests;
