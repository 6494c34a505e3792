//! Which of the two decodings of a turn to believe. The grammar decoder always answers with one
//! of the agent's phrases, so speech outside them ("do you sell bicycles") would be forced onto
//! one ("hello bye") and could hang up or transfer the caller. The open-vocabulary decoder hears
//! the same audio with no such constraint, less exactly. The grammar's words are kept when the
//! open decoder heard at least one of their meaningful words too, at the same time: the same
//! word, or a word that sounds almost the same; otherwise the open decoder's words are the
//! transcript, and a rules agent answers with its fallback line.
//!
//! Why "at the same time" for the same word too: both decoders hear the same audio, so a word
//! they both heard has overlapping times in both; the same word elsewhere in the turn is another
//! sound. A grammar forcing unrelated speech onto a keyword phrase ("I was hoping you could help
//! me" as "i want on that is all ...") is otherwise confirmed by the open decoder's "all" heard
//! half a second earlier, and hangs up on the caller.
//!
//! Why "sounds almost the same": the open decoder weighs thousands of short common words against
//! the agent's few, so where the grammar heard "bye" it often spells the same sound "i", and
//! "staff" as "stuff". Requiring the identical word threw away right answers ("bye for now"
//! heard openly as "i for out"). One phone of difference, at the same time, is the confusion
//! of a decoder hearing the same sound; speech outside the grammar differs by whole syllables
//! from what the grammar forced onto it, so it is still caught.
//!
//! One exception runs the other way: when the open decoder is sure (posterior at least
//! [`SURE_POSTERIOR`] for each word) of one of the agent's **keywords** that the grammar did not
//! decode, and the open decoder did not hear any keyword the grammar decoded as the same word,
//! the open words are the transcript even if some other grammar word was confirmed. Why it generalises: a request
//! phrased outside the grammar is forced onto the nearest phrase, whose scaffolding ("i need
//! to ... this week") the open decoder often hears too and so confirms, while the word that
//! carries the request is then the grammar's guess ("where") and not what was said ("human").
//! A posterior near 1 means the open decoder's lattice held no rival for the word, although it
//! could have spelled the sound as any of hundreds of common words, so a keyword it is sure of
//! is evidence of its own; a keyword it is unsure of is not (speech outside every rule is often
//! heard as one at a low posterior), and a keyword both decoders agree on keeps the grammar's
//! cleaner words. "Agree" means the same word here: a grammar keyword confirmed only by a word
//! one phone away is weaker evidence than a keyword the open decoder heard with no rival ("i
//! need to speak when a real human", sure of "human", whose "when" sounds like the grammar's
//! forced "where").
//!
//! Whenever the open decoder's words are the transcript, a word of a keyword after which the
//! caller **leaves the agent** (a rule whose action hangs up or transfers) is left out unless
//! the open decoder was sure of it. Why: those words are then the open decoder's own reading of
//! speech the grammar could not place, and with a vocabulary of a thousand and more words it
//! spells unrelated speech with short keywords at low posteriors ("my cat likes ..." as "bye
//! kept like ...", "I was hoping you could help me" with an unsure "somebody"); answering a
//! guess with the fallback line costs the caller a repeat, acting on it ends their call or
//! hands them to a person who was not asked for. A booking keeps its guesses: one noted by
//! mistake is recoverable, and the measurements that chose this (`loadtest/BENCHMARKS.md`)
//! lost right booking requests when every unsure keyword was dropped.

use std::collections::{HashMap, HashSet};

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
/// Posterior from which the open decoder counts as sure of a word (pocketsphinx's word
/// posteriors are near 1 for words it had no rival for, and well below for guesses).
pub(super) const SURE_POSTERIOR: f32 = 0.9;

/// The agent's keywords, as the word sequences the decoders spell, to tell the words that carry
/// a request from its scaffolding. Keywords made only of function words ("hi") are left out:
/// they carry no request, and the open decoder hears them everywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Keywords {
    phrases: Vec<Vec<String>>,
    words: HashSet<String>,
    /// Meaningful words of the keywords that hang up or transfer: acted on from the open
    /// decoder's words only when it was sure of them.
    leaving: HashSet<String>,
}

impl Keywords {
    /// The keywords among `phrases` (each a keyword's words); `leaving` are those of rules that
    /// hang up or transfer.
    pub(super) fn new<'a>(
        phrases: impl IntoIterator<Item = &'a Vec<String>>,
        leaving: impl IntoIterator<Item = &'a Vec<String>>,
    ) -> Self {
        let phrases: Vec<Vec<String>> = phrases
            .into_iter()
            .filter(|p| p.iter().any(|w| !is_function_word(w)))
            .cloned()
            .collect();
        let meaningful = |phrases: &[Vec<String>]| -> HashSet<String> {
            phrases
                .iter()
                .flatten()
                .filter(|w| !is_function_word(w))
                .cloned()
                .collect()
        };
        let words = meaningful(&phrases);
        let leaving = meaningful(&leaving.into_iter().cloned().collect::<Vec<_>>());
        Keywords {
            phrases,
            words,
            leaving,
        }
    }

    /// The open decoder's words as a transcript, without the leaving words it was unsure of.
    fn open_text(&self, open: &Hypothesis) -> String {
        let words: Vec<&str> = open
            .words
            .iter()
            .filter(|w| w.posterior >= SURE_POSTERIOR || !self.leaving.contains(&w.word))
            .map(|w| w.word.as_str())
            .collect();
        words.join(" ")
    }

    /// Whether `word` is a meaningful word of some keyword.
    fn has_word(&self, word: &str) -> bool {
        self.words.contains(word)
    }

    /// Keywords the open decoder heard, sure of each word, that the grammar did not decode.
    fn sure_in_open_only(&self, open: &Hypothesis, grammar: &Hypothesis) -> bool {
        self.phrases.iter().any(|phrase| {
            open.words.windows(phrase.len()).any(|heard| {
                said(heard, phrase) && heard.iter().all(|w| w.posterior >= SURE_POSTERIOR)
            }) && !grammar
                .words
                .windows(phrase.len())
                .any(|heard| said(heard, phrase))
        })
    }
}

/// Whether `heard` spells `phrase`.
fn said(heard: &[TimedWord], phrase: &[String]) -> bool {
    heard.len() == phrase.len() && heard.iter().zip(phrase).all(|(h, p)| h.word == *p)
}

/// Whether `word` is too common to carry a request or to show that two decodings agree.
fn is_function_word(word: &str) -> bool {
    FUNCTION_WORDS.contains(&word)
}

/// Pronunciations of the words both decoders may output, to tell which sound alike.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Pronunciations {
    phones: HashMap<String, Vec<Vec<String>>>,
}

impl Pronunciations {
    /// Parses dictionary text in the CMU format (`word PH ON ES`, variants as `word(2) ...`).
    pub(super) fn parse(dictionary: &str) -> Self {
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
    pub(super) fn alike(&self, expected: &str, heard: &str) -> bool {
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
pub(super) fn transcript(
    grammar: &Hypothesis,
    open: &Hypothesis,
    sounds: &Pronunciations,
    keywords: &Keywords,
) -> String {
    if grammar.is_empty() {
        return keywords.open_text(open);
    }
    let confirmed = |expected: &TimedWord| {
        open.words.iter().any(|heard| {
            heard.overlaps(expected)
                && (heard.word == expected.word || sounds.alike(&expected.word, &heard.word))
        })
    };
    let heard_too = |expected: &TimedWord| {
        open.words
            .iter()
            .any(|h| h.word == expected.word && h.overlaps(expected))
    };
    let meaningful = || grammar.words.iter().filter(|w| !is_function_word(&w.word));
    let keyword_words = || meaningful().filter(|w| keywords.has_word(&w.word));
    if keyword_words().any(heard_too) {
        return grammar.text();
    }
    if keywords.sure_in_open_only(open, grammar) {
        return keywords.open_text(open);
    }
    if keyword_words().any(confirmed) {
        return grammar.text();
    }
    let mut meaningful = meaningful().peekable();
    let agrees = meaningful.peek().is_none() || meaningful.any(confirmed);
    if agrees || open.is_empty() {
        grammar.text()
    } else {
        keywords.open_text(open)
    }
}

#[cfg(test)]
#[path = "decision_tests.rs"]
mod tests;
