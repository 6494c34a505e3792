//! An agent's `rules` table: what the offline `rules` replier answers and does for each thing a
//! caller may want, with no language model and no network. It exists so `freya dev` holds a real
//! (if narrow) conversation out of the box, and so a small business can run a menu-like agent
//! without a model. The same table tells the offline recogniser what callers are likely to say:
//! each rule's keywords and examples become its grammar (see `freya_edge::speech::stt::local`).
//!
//! A caller's words select the rule whose keywords are said most often (ties go to the earlier
//! rule), so "hello, what are your opening hours?" is a question about hours, not a greeting.
//! A keyword counts once where it is said, however many words it has, and a keyword's word also
//! matches its plain inflections ("appointments", "booked", "closes"): see [`RulesSpec::matching`].

use serde::{Deserialize, Serialize};

use super::FieldError;

/// Most rules one agent may have.
pub const MAX_RULES: usize = 64;
/// Most keywords, and most examples, one rule may have.
pub const MAX_RULE_PHRASES: usize = 64;
/// Longest keyword, example or reply.
const MAX_PHRASE_CHARS: usize = 500;

/// The table: rules tried against each caller turn, and what to say when none matches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RulesSpec {
    /// The rules; the best match wins, the earlier one on a tie.
    pub rules: Vec<RuleSpec>,
    /// Said when no rule matches; it should tell the caller what the agent can do.
    pub fallback: String,
}

/// One thing a caller may want, how to recognise it, and the answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleSpec {
    /// A short name for what the caller wants (`hours`), for records and tests.
    pub intent: String,
    /// Words or phrases that select this rule, matched case-insensitively on word boundaries
    /// (a word of four letters or more also in its plain inflections: `book`, `booked`).
    pub keywords: Vec<String>,
    /// Things a caller might say for this intent; with the keywords they shape the offline
    /// recogniser's grammar, so it hears these phrasings best.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<String>,
    /// What the agent says.
    pub reply: String,
    /// What the agent does besides answering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<RuleAction>,
}

/// Something a rule makes the agent do, through the same tools a language model would call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleAction {
    /// Hang up after the reply.
    EndCall,
    /// Transfer the caller after the reply (to one of the agent's `transfer_destinations`).
    Transfer {
        /// Where to; must be listed in `transfer_destinations`.
        destination: String,
    },
    /// Call one of the agent's `tools` with `{"request": <the caller's words>}` before
    /// answering; the reply is said once the tool has succeeded, `failed_reply` if not.
    Tool {
        /// The tool's name, as in `tools`.
        name: String,
        /// Said when the tool fails.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        failed_reply: Option<String>,
    },
}

impl RulesSpec {
    /// The table of the agent `freya dev` seeds: a front desk that knows its hours and address,
    /// takes booking requests through `booking_tool`, and puts callers through to
    /// `transfer_to`.
    pub fn demo(booking_tool: &str, transfer_to: &str) -> Self {
        let rule = |intent: &str, keywords: &[&str], examples: &[&str], reply: &str| RuleSpec {
            intent: intent.into(),
            keywords: keywords.iter().map(|k| (*k).to_string()).collect(),
            examples: examples.iter().map(|e| (*e).to_string()).collect(),
            reply: reply.into(),
            action: None,
        };
        let mut booking = rule(
            "booking",
            &[
                "book",
                "booking",
                "appointment",
                "reservation",
                "reserve",
                "schedule",
            ],
            &[
                "i'd like to book an appointment",
                "can i make a booking",
                "i want to make an appointment",
                "can i book a visit",
            ],
            "I have noted your booking request, and someone will call you back to confirm a time.",
        );
        booking.action = Some(RuleAction::Tool {
            name: booking_tool.into(),
            failed_reply: Some(
                "Sorry, I could not note your booking request just now. Please try again later."
                    .into(),
            ),
        });
        let mut person = rule(
            "person",
            &[
                "person",
                "human",
                "someone",
                "operator",
                "somebody",
                "staff",
                "representative",
            ],
            &[
                "can i speak to a person",
                "i want to talk to someone",
                "put me through to a human",
                "can i talk to a real person",
            ],
            "Of course. I am putting you through to a person now.",
        );
        person.action = Some(RuleAction::Transfer {
            destination: transfer_to.into(),
        });
        let mut goodbye = rule(
            "goodbye",
            &["bye", "goodbye", "that's all", "that is all"],
            &[
                "goodbye",
                "thank you goodbye",
                "thanks that's all bye",
                "that's all thank you",
            ],
            "Thank you for calling. Goodbye!",
        );
        goodbye.action = Some(RuleAction::EndCall);
        RulesSpec {
            rules: vec![
                rule(
                    "hours",
                    &["hours", "open", "opening", "close", "closing", "closed"],
                    &[
                        "what are your opening hours",
                        "when are you open",
                        "what time do you open",
                        "what time do you close",
                        "are you open on saturday",
                        "are you open today",
                    ],
                    "We are open Monday to Friday from nine in the morning until six in the evening, and on Saturday from ten until two.",
                ),
                rule(
                    "address",
                    &["address", "where", "located", "location", "directions", "find you"],
                    &[
                        "where are you",
                        "what is your address",
                        "where are you located",
                        "how do i find you",
                    ],
                    "We are at 12 Harbour Street, next to the central station.",
                ),
                booking,
                person,
                goodbye,
                // Last: a greeting loses a tie to any request said with it.
                rule(
                    "greeting",
                    &["hello", "hi", "hey", "good morning", "good afternoon"],
                    &["hello", "hi there", "good morning"],
                    "Hello! You can ask me about our opening hours, our address, or booking an appointment.",
                ),
            ],
            fallback: "Sorry, I can only help with our opening hours, our address, booking an appointment, or putting you through to a person. What would you like?".into(),
        }
    }

    /// The rule for what the caller said: the one with the most places in the turn where one of
    /// its keywords is said.
    ///
    /// Each place counts once, whatever the keyword's length. Counting a phrase's words instead
    /// let a two-word greeting ("good afternoon") or sign-off ("that's all") outweigh the one
    /// word that carries a request said with it ("can I reserve a slot, good afternoon"), against
    /// the table's own rule that a greeting loses to a request; it held for any table whose
    /// keywords differ in length, not only the demo's.
    pub fn matching(&self, caller_words: &str) -> Option<&RuleSpec> {
        let normalised = normalise(caller_words);
        let words: Vec<&str> = normalised.split(' ').filter(|w| !w.is_empty()).collect();
        let mut best: Option<(&RuleSpec, usize)> = None;
        for rule in &self.rules {
            let keywords: Vec<String> = rule.keywords.iter().map(|k| normalise(k)).collect();
            let score = (0..words.len())
                .filter(|&at| {
                    keywords
                        .iter()
                        .any(|k| !k.is_empty() && said_at(&words[at..], k))
                })
                .count();
            if score > 0 && best.is_none_or(|(_, s)| score > s) {
                best = Some((rule, score));
            }
        }
        best.map(|(rule, _)| rule)
    }

    /// Every problem with the table, by field under `rules`.
    pub fn validate(&self, tools: &[&str], transfer_destinations: &[String]) -> Vec<FieldError> {
        let mut errors = Vec::new();
        let too_long = |s: &str| s.trim().is_empty() || s.chars().count() > MAX_PHRASE_CHARS;
        if self.rules.len() > MAX_RULES {
            errors.push(FieldError::new(
                "rules.rules",
                format!("at most {MAX_RULES} rules"),
            ));
        }
        if too_long(&self.fallback) {
            errors.push(FieldError::new(
                "rules.fallback",
                format!("must be 1 to {MAX_PHRASE_CHARS} characters"),
            ));
        }
        for (i, rule) in self.rules.iter().enumerate() {
            let at = |field: &str| format!("rules.rules[{i}].{field}");
            if rule.intent.trim().is_empty() || rule.intent.chars().count() > 64 {
                errors.push(FieldError::new(at("intent"), "must be 1 to 64 characters"));
            }
            if rule.keywords.is_empty() || rule.keywords.len() > MAX_RULE_PHRASES {
                errors.push(FieldError::new(
                    at("keywords"),
                    format!("must list 1 to {MAX_RULE_PHRASES} words or phrases"),
                ));
            }
            if rule.examples.len() > MAX_RULE_PHRASES {
                errors.push(FieldError::new(
                    at("examples"),
                    format!("at most {MAX_RULE_PHRASES} examples"),
                ));
            }
            for (j, phrase) in rule.keywords.iter().enumerate() {
                if too_long(phrase) || normalise(phrase).is_empty() {
                    errors.push(FieldError::new(
                        at(&format!("keywords[{j}]")),
                        format!("must hold a word, at most {MAX_PHRASE_CHARS} characters"),
                    ));
                }
            }
            for (j, phrase) in rule.examples.iter().enumerate() {
                if too_long(phrase) {
                    errors.push(FieldError::new(
                        at(&format!("examples[{j}]")),
                        format!("must be 1 to {MAX_PHRASE_CHARS} characters"),
                    ));
                }
            }
            if too_long(&rule.reply) {
                errors.push(FieldError::new(
                    at("reply"),
                    format!("must be 1 to {MAX_PHRASE_CHARS} characters"),
                ));
            }
            match &rule.action {
                Some(RuleAction::Transfer { destination })
                    if !transfer_destinations.iter().any(|d| d == destination) =>
                {
                    errors.push(FieldError::new(
                        at("action.destination"),
                        "must be one of the agent's `transfer_destinations`",
                    ));
                }
                Some(RuleAction::Tool { name, failed_reply }) => {
                    if !tools.contains(&name.as_str()) {
                        errors.push(FieldError::new(
                            at("action.name"),
                            "must name one of the agent's `tools`",
                        ));
                    }
                    if failed_reply.as_deref().is_some_and(too_long) {
                        errors.push(FieldError::new(
                            at("action.failed_reply"),
                            format!("must be 1 to {MAX_PHRASE_CHARS} characters"),
                        ));
                    }
                }
                _ => {}
            }
        }
        errors
    }
}

/// Fewest letters a keyword's word needs before its inflections match it: below that, an ending
/// makes another word ("hi" + "s" is "his").
const MIN_INFLECTED_LETTERS: usize = 4;

/// Whether `words` begin with the (normalised) `keyword`, word by word, each word as written or
/// inflected.
fn said_at(words: &[&str], keyword: &str) -> bool {
    let mut at = words.iter();
    keyword
        .split(' ')
        .all(|k| at.next().is_some_and(|w| inflection_of(w, k)))
}

/// Whether `word` is `keyword` or one of its plain English inflections: a plural or third
/// person (`-s`, `-es`, `-'s`), a past (`-ed`, `-d` after an `e`) or an `-ing` form (`close` →
/// `closing`). Why: callers say "appointments", "booked" and "closes" as naturally as the
/// keyword itself, and a table's author should not have to list every ending (the recogniser
/// and any speech-to-text service spell what was said, ending included). Only endings are
/// tried, on words of at least [`MIN_INFLECTED_LETTERS`] letters, so "book" never matches
/// "bookshelf".
fn inflection_of(word: &str, keyword: &str) -> bool {
    if word == keyword {
        return true;
    }
    if keyword.chars().count() < MIN_INFLECTED_LETTERS {
        return false;
    }
    let Some(ending) = word.strip_prefix(keyword) else {
        // "close" → "closing": the e goes before -ing.
        return keyword
            .strip_suffix('e')
            .and_then(|stem| word.strip_prefix(stem))
            == Some("ing");
    };
    match ending {
        "s" | "es" | "'s" | "ed" | "ing" => true,
        "d" => keyword.ends_with('e'),
        _ => false,
    }
}

/// Lower case, punctuation to spaces, single spaces: so "Hello," matches `hello`.
pub fn normalise(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '\'' {
                c.to_lowercase().next().unwrap_or(c)
            } else {
                ' '
            }
        })
        .collect();
    cleaned.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn demo() -> RulesSpec {
        RulesSpec::demo("record_booking", "operator")
    }

    fn intent(words: &str) -> Option<String> {
        demo().matching(words).map(|r| r.intent.clone())
    }

    #[test]
    fn the_most_specific_rule_wins_over_a_greeting() {
        assert_eq!(
            intent("Hello, what are your opening hours?").as_deref(),
            Some("hours")
        );
        assert_eq!(intent("hello").as_deref(), Some("greeting"));
        assert_eq!(intent("where are you located").as_deref(), Some("address"));
        assert_eq!(
            intent("thanks, that's all, bye").as_deref(),
            Some("goodbye")
        );
    }

    #[test]
    fn keywords_match_whole_words_only() {
        assert_eq!(intent("this is thin"), None);
        assert_eq!(intent("I'd like a bookshelf"), None);
        assert_eq!(intent(""), None);
    }

    #[test]
    fn a_phrase_keyword_counts_once_so_a_greeting_loses_to_the_request_said_with_it() {
        // "good afternoon" is two words but one greeting; "reserve" carries the request.
        assert_eq!(
            intent("can I reserve a table, good afternoon").as_deref(),
            Some("booking")
        );
        assert_eq!(
            intent("where is it, that's all").as_deref(),
            Some("address")
        );
        assert_eq!(intent("good afternoon").as_deref(), Some("greeting"));
        // Two places where keywords are said outweigh one.
        assert_eq!(
            intent("where is the address, you are open").as_deref(),
            Some("address")
        );
    }

    #[test]
    fn keywords_match_their_plain_inflections() {
        assert_eq!(
            intent("any appointments next month").as_deref(),
            Some("booking")
        );
        assert_eq!(intent("I booked last week").as_deref(), Some("booking"));
        assert_eq!(intent("when it closes").as_deref(), Some("hours"));
        assert_eq!(intent("scheduling a visit").as_deref(), Some("booking"));
        assert_eq!(intent("is it still opened").as_deref(), Some("hours"));
        // Short keywords take no endings, and other words that merely start alike do not match.
        assert_eq!(intent("his car"), None);
        assert_eq!(intent("a bookseller"), None);
        assert_eq!(intent("the opener"), None);
    }

    #[test]
    fn the_demo_table_is_valid_with_its_tool_and_destination() {
        let errors = demo().validate(&["record_booking"], &["operator".into()]);
        assert!(errors.is_empty(), "{errors:?}");
    }

    #[test]
    fn actions_must_name_what_the_agent_has() {
        let errors = demo().validate(&[], &[]);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"rules.rules[2].action.name"), "{fields:?}");
        assert!(
            fields.contains(&"rules.rules[3].action.destination"),
            "{fields:?}"
        );
    }

    #[test]
    fn empty_keywords_and_replies_are_refused_by_field() {
        let mut table = demo();
        table.rules[0].keywords = vec!["  ,  ".into()];
        table.rules[1].reply = String::new();
        table.fallback = " ".into();
        let errors = table.validate(&["record_booking"], &["operator".into()]);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "rules.fallback",
                "rules.rules[0].keywords[0]",
                "rules.rules[1].reply"
            ]
        );
    }

    #[test]
    fn actions_read_and_write_as_tagged_objects() {
        let action: RuleAction =
            serde_json::from_str(r#"{"type": "transfer", "destination": "+15550100"}"#)
                .expect("valid action");
        assert_eq!(
            action,
            RuleAction::Transfer {
                destination: "+15550100".into()
            }
        );
        assert!(serde_json::from_str::<RuleAction>(r#"{"type": "launch"}"#).is_err());
        assert_eq!(
            serde_json::to_string(&RuleAction::EndCall).expect("serialises"),
            r#"{"type":"end_call"}"#
        );
    }
}
