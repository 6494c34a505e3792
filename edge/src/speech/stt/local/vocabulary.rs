//! What the offline recogniser listens for, turned into the files pocketsphinx reads. A general
//! English language model hears telephone audio badly ("hello, what are your opening hours" came
//! back as "ah you got"), so a call's recogniser is constrained to what its agent can handle: the
//! phrases of its `rules` table and its workflow's expected answers.
//!
//! From those phrases — the rules' **keywords** and their **examples** — this builds, with no I/O:
//! - a JSGF **grammar**: an example as a whole, or a keyword inside the plain scaffolding of an
//!   English request ("can I", "where is your", "I'd like to" before it; "please", "today",
//!   "on Monday" after it), optionally led by a greeting or filler. It decodes the phrasings the
//!   agent expects almost exactly, and holds other phrasings of the same request to the keyword
//!   that matters;
//! - an **open-vocabulary** trigram language model (ARPA text): the phrases' word sequences, plus
//!   the most frequent English words at a low weight, so speech outside the grammar is heard as
//!   other words instead of being forced onto a phrase;
//! - the **pronunciation dictionary** of exactly those words, cut from the full CMU dictionary
//!   (small dictionaries also load in milliseconds, not the full one's half second).
//!
//! Words missing from the dictionary cannot be recognised and are left out.

use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;

use freya_shared::model::rules::{RuleAction, RulesSpec};

use super::open_model::OpenModel;

/// The open vocabulary: frequent English words with their log10 probabilities.
const COMMON_WORDS: &str = include_str!("common_words.txt");
/// Words a caller often puts before what they want; allowed ahead of any phrase.
const LEADS: &[&str] = &[
    "hello",
    "hi",
    "hey",
    "yes",
    "yeah",
    "no",
    "so",
    "well",
    "okay",
    "please",
    "um",
    "uh",
    "excuse me",
];
/// How English requests begin, before the thing asked for.
const CARRIERS: &[&str] = &[
    "what are your",
    "what is your",
    "what's your",
    "what is the",
    "what's the",
    "where is your",
    "where is the",
    "where are you",
    "when are you",
    "when do you",
    "what time do you",
    "how late are you",
    "are you",
    "is there",
    "do you have",
    "can i",
    "could i",
    "can you",
    "could you",
    "can i have your",
    "can you give me your",
    "i'd like to",
    "i would like to",
    "i want to",
    "i need to",
    "i'd like",
    "i would like",
    "i want",
    "i need",
    "let me",
    "please",
    "put me through to",
    "connect me to",
    "talk to",
    "speak to",
    "to",
];
/// Small words between a request's beginning and the thing asked for.
const FILLERS: &[&str] = &[
    "a", "an", "the", "me", "my", "your", "some", "to", "in", "on", "for",
];
/// How English requests end, after the thing asked for.
const TAILS: &[&str] = &[
    "please",
    "thank you",
    "thanks",
    "now",
    "then",
    "today",
    "tomorrow",
    "this week",
    "next week",
    "for now",
    "in the morning",
    "in the afternoon",
    "on monday",
    "on tuesday",
    "on wednesday",
    "on thursday",
    "on friday",
    "on saturday",
    "on sunday",
    "for monday",
    "for tuesday",
    "for wednesday",
    "for thursday",
    "for friday",
    "for saturday",
    "for sunday",
];
/// Most keywords and examples kept, so a hostile table cannot make a grammar the decoder
/// chokes on.
pub(crate) const MAX_PHRASES: usize = 2_000;

/// A pronunciation dictionary: word → its pronunciation lines (`word PH ON ES`, variants as
/// `word(2) ...`), in the CMU dictionary's format.
#[derive(Debug, Default)]
pub(crate) struct Dictionary {
    entries: HashMap<String, Vec<String>>,
}

impl Dictionary {
    /// Parses CMU dictionary text (one `word phones...` per line).
    pub(crate) fn parse(text: &str) -> Self {
        let mut entries: HashMap<String, Vec<String>> = HashMap::new();
        for line in text.lines() {
            let Some((head, phones)) = line.split_once(char::is_whitespace) else {
                continue;
            };
            let word = head.split('(').next().unwrap_or(head);
            if word.is_empty() || phones.trim().is_empty() {
                continue;
            }
            entries
                .entry(word.to_string())
                .or_default()
                .push(line.trim_end().to_string());
        }
        Dictionary { entries }
    }

    /// Whether `word` can be recognised.
    pub(crate) fn contains(&self, word: &str) -> bool {
        self.entries.contains_key(word)
    }
}

/// What a caller is expected to say: short keywords, and whole example requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExpectedSpeech {
    /// Words or short phrases that carry a request (`hours`, `book`, `a person`).
    pub keywords: Vec<String>,
    /// Whole requests as callers say them (`what are your opening hours`).
    pub examples: Vec<String>,
    /// The keywords after which the caller leaves the agent, hung up (`bye`) or transferred
    /// (`a person`): acted on from the open-vocabulary decoder's words only when it is sure of
    /// them (see `decision`).
    pub leaving: Vec<String>,
}

impl ExpectedSpeech {
    /// What callers of an agent with `rules` are expected to say: its keywords and examples.
    pub fn of_rules(rules: &RulesSpec) -> Self {
        ExpectedSpeech {
            keywords: rules
                .rules
                .iter()
                .flat_map(|r| r.keywords.clone())
                .collect(),
            examples: rules
                .rules
                .iter()
                .flat_map(|r| r.examples.clone())
                .collect(),
            leaving: rules
                .rules
                .iter()
                .filter(|r| {
                    matches!(
                        r.action,
                        Some(RuleAction::EndCall | RuleAction::Transfer { .. })
                    )
                })
                .flat_map(|r| r.keywords.clone())
                .collect(),
        }
    }

    /// Whether nothing is expected.
    pub fn is_empty(&self) -> bool {
        self.keywords.is_empty() && self.examples.is_empty()
    }
}

/// The phrases a recogniser listens for, in the words its dictionary knows.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Vocabulary {
    /// Keywords as dictionary words, deduplicated, in first-seen order.
    keywords: Vec<Vec<String>>,
    /// Examples likewise.
    examples: Vec<Vec<String>>,
    /// The keywords after which the caller leaves the agent, as dictionary words.
    leaving: Vec<Vec<String>>,
    /// The scaffolding phrases (leads, carriers, fillers, tails) the dictionary can spell.
    scaffold: Scaffold,
    /// Common words (with log10 probabilities) the dictionary knows, most frequent first.
    common: Vec<(String, f64)>,
}

/// The request scaffolding, cut to what the dictionary can spell.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Scaffold {
    leads: Vec<String>,
    carriers: Vec<String>,
    fillers: Vec<String>,
    tails: Vec<String>,
}

impl Scaffold {
    fn new(dictionary: &Dictionary) -> Self {
        let known = |phrases: &[&str]| -> Vec<String> {
            phrases
                .iter()
                .filter(|p| words_of(p).all(|w| dictionary.contains(&w)))
                .map(|p| (*p).to_string())
                .collect()
        };
        Scaffold {
            leads: known(LEADS),
            carriers: known(CARRIERS),
            fillers: known(FILLERS),
            tails: known(TAILS),
        }
    }

    fn words(&self) -> impl Iterator<Item = String> + '_ {
        self.leads
            .iter()
            .chain(&self.carriers)
            .chain(&self.fillers)
            .chain(&self.tails)
            .flat_map(|p| words_of(p))
    }
}

impl Vocabulary {
    /// The vocabulary of `expected` over `dictionary`; `None` when no phrase has a known word.
    pub(crate) fn new(expected: &ExpectedSpeech, dictionary: &Dictionary) -> Option<Self> {
        let mut seen = BTreeSet::new();
        let mut budget = MAX_PHRASES;
        let mut keep = |phrases: &[String]| -> Vec<Vec<String>> {
            let mut kept = Vec::new();
            for phrase in phrases {
                let words: Vec<String> = words_of(phrase)
                    .filter(|w| dictionary.contains(w))
                    .collect();
                if budget > 0 && !words.is_empty() && seen.insert(words.clone()) {
                    kept.push(words);
                    budget -= 1;
                }
            }
            kept
        };
        let keywords = keep(&expected.keywords);
        let examples = keep(&expected.examples);
        if keywords.is_empty() && examples.is_empty() {
            return None;
        }
        let leaving = expected
            .leaving
            .iter()
            .take(MAX_PHRASES)
            .map(|phrase| {
                words_of(phrase)
                    .filter(|w| dictionary.contains(w))
                    .collect::<Vec<String>>()
            })
            .filter(|words| !words.is_empty())
            .collect();
        let common = COMMON_WORDS
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (p, w) = l.split_once(' ')?;
                Some((w.trim().to_string(), p.parse::<f64>().ok()?))
            })
            .filter(|(w, _)| dictionary.contains(w))
            .collect();
        Some(Vocabulary {
            keywords,
            examples,
            leaving,
            scaffold: Scaffold::new(dictionary),
            common,
        })
    }

    /// Keywords, as words.
    pub(crate) fn keywords(&self) -> impl Iterator<Item = &Vec<String>> {
        self.keywords.iter()
    }

    /// The keywords after which the caller leaves the agent (hung up or transferred), as words.
    pub(crate) fn leaving(&self) -> impl Iterator<Item = &Vec<String>> {
        self.leaving.iter()
    }

    /// Keywords and examples, as words.
    pub(crate) fn phrases(&self) -> impl Iterator<Item = &Vec<String>> {
        self.keywords.iter().chain(&self.examples)
    }

    /// Every word either model may output.
    fn words(&self) -> BTreeSet<String> {
        self.phrases()
            .flatten()
            .cloned()
            .chain(self.common.iter().map(|(w, _)| w.clone()))
            .chain(self.scaffold.words())
            .collect()
    }

    /// The JSGF grammar: an example, or a keyword in a request's scaffolding.
    pub(crate) fn jsgf(&self) -> String {
        let alternatives = |phrases: &[Vec<String>]| -> String {
            let mut joined: Vec<String> = phrases.iter().map(|p| p.join(" ")).collect();
            joined.sort();
            joined.join(" | ")
        };
        let scaffold = &self.scaffold;
        // Only rules with a body may be referred to: an empty rule is not valid JSGF.
        let optional = |name: &str, body: &[String]| {
            if body.is_empty() {
                String::new()
            } else {
                format!("[<{name}>] ")
            }
        };
        let mut request = Vec::new();
        if !self.examples.is_empty() {
            request.push("<example>".to_string());
        }
        if !self.keywords.is_empty() {
            request.push(format!(
                "{}{}<keyword>",
                optional("carrier", &scaffold.carriers),
                optional("filler", &scaffold.fillers)
            ));
        }
        let tail = optional("tail", &scaffold.tails);
        let mut out = format!(
            "#JSGF V1.0;\ngrammar freya;\npublic <utterance> = {}( {} ) {}{};\n",
            optional("lead", &scaffold.leads),
            request.join(" | "),
            tail,
            tail.trim_end()
        );
        let mut rule = |name: &str, body: String| {
            if !body.is_empty() {
                let _ = writeln!(out, "<{name}> = {body};");
            }
        };
        rule("lead", scaffold.leads.join(" | "));
        rule("tail", scaffold.tails.join(" | "));
        rule("carrier", scaffold.carriers.join(" | "));
        rule("filler", scaffold.fillers.join(" | "));
        rule("example", alternatives(&self.examples));
        rule("keyword", alternatives(&self.keywords));
        out
    }

    /// The open-vocabulary trigram model, in ARPA text.
    pub(crate) fn arpa(&self) -> String {
        let phrases: Vec<Vec<String>> = self.phrases().cloned().collect();
        OpenModel::estimate(&phrases, &self.common).to_arpa()
    }

    /// The pronunciations of every word the grammar and the open model use.
    pub(crate) fn dictionary(&self, full: &Dictionary) -> String {
        let mut out = String::new();
        for word in self.words() {
            for line in full.entries.get(&word).into_iter().flatten() {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

/// Lower-case words, as the CMU dictionary spells them.
pub(crate) fn words_of(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !(c.is_alphanumeric() || c == '\''))
        .map(|w| w.trim_matches('\'').to_lowercase())
        .filter(|w| !w.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dictionary() -> Dictionary {
        Dictionary::parse(
            "hello HH AH L OW\nhello(2) HH EH L OW\nwhat W AH T\nare AA R\nyour Y AO R\n\
             hours AW ER Z\nopen OW P AH N\nthe DH AH\nto T UW\nbye B AY\ngoodbye G UH D B AY\n\
             hi HH AY\nyes Y EH S\n",
        )
    }

    fn expected(keywords: &[&str], examples: &[&str]) -> ExpectedSpeech {
        ExpectedSpeech {
            keywords: keywords.iter().map(|k| (*k).to_string()).collect(),
            examples: examples.iter().map(|e| (*e).to_string()).collect(),
            leaving: Vec::new(),
        }
    }

    #[test]
    fn phrases_keep_only_words_the_dictionary_knows() {
        let vocabulary = Vocabulary::new(
            &expected(
                &["freya", "Goodbye!"],
                &["Hello, what are your HOURS?", "hello what are your hours"],
            ),
            &dictionary(),
        )
        .expect("some words are known");
        let phrases: Vec<&Vec<String>> = vocabulary.phrases().collect();
        assert_eq!(
            phrases,
            [
                &vec!["goodbye".to_string()],
                &["hello", "what", "are", "your", "hours"]
                    .map(String::from)
                    .to_vec(),
            ]
        );
        assert!(Vocabulary::new(&expected(&["freya xyzzy"], &[]), &dictionary()).is_none());
    }

    #[test]
    fn the_grammar_offers_examples_whole_and_keywords_in_a_request() {
        let vocabulary = Vocabulary::new(
            &expected(&["hours", "bye"], &["what are your hours"]),
            &dictionary(),
        )
        .expect("known words");
        let jsgf = vocabulary.jsgf();
        assert!(jsgf.starts_with("#JSGF V1.0;"));
        // No tail is spelled by this dictionary, so none is referred to.
        assert!(
            jsgf.contains(
                "public <utterance> = [<lead>] ( <example> | [<carrier>] [<filler>] <keyword> ) ;"
            ),
            "{jsgf}"
        );
        assert!(jsgf.contains("<keyword> = bye | hours;"), "{jsgf}");
        assert!(jsgf.contains("<example> = what are your hours;"), "{jsgf}");
        // Scaffolding the dictionary cannot spell is left out; what it can is kept.
        assert!(jsgf.contains("<carrier> = what are your | to;"), "{jsgf}");
        assert!(jsgf.contains("<lead> = hello | hi | yes;"), "{jsgf}");
        assert!(!jsgf.contains("<tail>"), "{jsgf}");
    }

    #[test]
    fn the_keywords_of_rules_that_hang_up_or_transfer_are_the_leaving_words() {
        let demo = RulesSpec::demo("record_booking", "operator");
        let speech = ExpectedSpeech::of_rules(&demo);
        assert_eq!(
            speech.leaving,
            [
                "person",
                "human",
                "someone",
                "operator",
                "somebody",
                "staff",
                "representative",
                "bye",
                "goodbye",
                "that's all",
                "that is all"
            ]
        );
        // A booking is an action too, but the caller stays with the agent.
        assert!(!speech.leaving.iter().any(|k| k == "book" || k == "hours"));
        let vocabulary = Vocabulary::new(
            &ExpectedSpeech {
                leaving: vec!["Bye!".into(), "freya".into()],
                ..expected(&["bye"], &[])
            },
            &dictionary(),
        )
        .expect("known words");
        let leaving: Vec<&Vec<String>> = vocabulary.leaving().collect();
        assert_eq!(
            leaving,
            [&vec!["bye".to_string()]],
            "unknown words left out"
        );
    }

    #[test]
    fn a_flow_with_only_keywords_has_no_example_rule() {
        let vocabulary =
            Vocabulary::new(&expected(&["yes", "bye"], &[]), &dictionary()).expect("known words");
        let jsgf = vocabulary.jsgf();
        assert!(
            jsgf.contains("( [<carrier>] [<filler>] <keyword> )"),
            "{jsgf}"
        );
        assert!(!jsgf.contains("<example>"), "{jsgf}");
    }

    #[test]
    fn the_dictionary_has_every_variant_of_every_word_used() {
        let full = dictionary();
        let vocabulary =
            Vocabulary::new(&expected(&["hello", "open"], &[]), &full).expect("known words");
        let dict = vocabulary.dictionary(&full);
        assert!(
            dict.contains("hello HH AH L OW\nhello(2) HH EH L OW\n"),
            "{dict}"
        );
        assert!(dict.contains("open OW P AH N"));
        // Common words and leads the dictionary knows are there too; unknown ones are not.
        assert!(dict.contains("the DH AH") && dict.contains("yes Y EH S"));
        assert!(!dict.contains("okay"));
    }
}
