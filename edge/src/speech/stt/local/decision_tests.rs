use super::*;

/// Dictionary lines of the words these tests use, as pocketsphinx's US-English one spells them.
const DICTIONARY: &str = "bye B AY\ni AY\nfor F AO R\nfor(2) F ER\nnow N AW\nout AW T\n\
    goodbye G UH D B AY\nhello HH AH L OW\nhello(2) HH EH L OW\nsell S EH L\nyou Y UW\n\
    tell T EH L\nbicycles B AY S IH K AH L Z\nopen OW P AH N\nhours AW ER Z\nwhat W AH T\n\
    are AA R\nyour Y AO R\nopening OW P AH N IH NG\nall AO L\nhuman HH Y UW M AH N\n\
    put P UH T\nme M IY\nthrough TH R UW\nto T UW\na AH\nplease P L IY Z\nbook B UH K\n\
    talk T AO K\nstaff S T AE F\nstuff S T AH F\nneed N IY D\nwhere W EH R\nweek W IY K\n\
    speak S P IY K\nwith W IH DH\nreal R IY L\nsomeone S AH M W AH N\nthat DH AE T\n\
    when W EH N\n";

/// The keywords of a table like the demo's.
fn keywords() -> Keywords {
    let phrases: Vec<Vec<String>> = [
        "hours", "open", "where", "human", "book", "bye", "goodbye", "hi", "someone", "find you",
    ]
    .iter()
    .map(|k| k.split(' ').map(String::from).collect())
    .collect();
    // The keywords of the rules the caller leaves the agent by: goodbye and a person.
    let leaving: Vec<Vec<String>> = ["bye", "goodbye", "human", "someone"]
        .iter()
        .map(|k| vec![(*k).to_string()])
        .collect();
    Keywords::new(&phrases, &leaving)
}

/// A hypothesis from `(word, start, end)` triples, as sure as a grammar search says.
fn heard(words: &[(&str, f32, f32)]) -> Hypothesis {
    Hypothesis {
        words: words
            .iter()
            .map(|(word, start, end)| TimedWord {
                word: (*word).into(),
                start: *start,
                end: *end,
                posterior: 1.0,
            })
            .collect(),
    }
}

/// Words evenly spaced, 0.2 s each.
fn said(text: &str) -> Hypothesis {
    let words: Vec<(&str, f32, f32)> = text
        .split_whitespace()
        .enumerate()
        .map(|(i, w)| (w, i as f32 * 0.2, (i + 1) as f32 * 0.2))
        .collect();
    heard(&words)
}

fn choose(grammar: &Hypothesis, open: &Hypothesis) -> String {
    transcript(
        grammar,
        open,
        &Pronunciations::parse(DICTIONARY),
        &keywords(),
    )
}

/// `said(text)` with each word's posterior.
fn unsure(text: &str, posteriors: &[f32]) -> Hypothesis {
    let mut heard = said(text);
    for (word, posterior) in heard.words.iter_mut().zip(posteriors) {
        word.posterior = *posterior;
    }
    heard
}

#[test]
fn the_grammar_wins_when_the_open_decoder_heard_its_key_word() {
    assert_eq!(
        choose(
            &said("hello what are your opening hours"),
            &said("hello what are your opening all you")
        ),
        "hello what are your opening hours"
    );
    // "human" at the same time in both, the rest heard differently.
    let grammar = heard(&[
        ("put", 0.0, 0.2),
        ("me", 0.2, 0.4),
        ("through", 0.4, 0.6),
        ("to", 0.6, 0.8),
        ("a", 0.8, 0.9),
        ("human", 0.9, 1.3),
        ("please", 1.3, 1.6),
    ]);
    let open = heard(&[
        ("book", 0.0, 0.3),
        ("talk", 0.3, 0.8),
        ("human", 0.85, 1.3),
        ("please", 1.3, 1.6),
    ]);
    assert_eq!(choose(&grammar, &open), "put me through to a human please");
}

#[test]
fn the_same_word_at_another_time_does_not_confirm_the_grammar() {
    // The grammar forced "hours" onto speech where the open decoder heard "sell"; the open
    // decoder's "hours" is another sound, earlier in the turn.
    let grammar = heard(&[("what", 0.0, 0.3), ("open", 0.3, 0.6), ("hours", 0.9, 1.2)]);
    let open = heard(&[("hours", 0.3, 0.6), ("you", 0.6, 0.9), ("sell", 0.9, 1.2)]);
    assert_eq!(choose(&grammar, &open), "hours you sell");
}

#[test]
fn speech_outside_the_grammar_keeps_the_open_words() {
    assert_eq!(
        choose(&said("goodbye"), &said("you sell bicycles")),
        "you sell bicycles"
    );
}

#[test]
fn a_word_one_phone_away_at_the_same_time_confirms_the_grammar() {
    // "bye for now", heard openly as "i for out": "i" is "bye" without its B, said at once.
    let grammar = heard(&[("bye", 0.0, 0.21), ("for", 0.22, 0.48), ("now", 0.49, 0.91)]);
    let open = heard(&[("i", 0.03, 0.21), ("for", 0.22, 0.55), ("out", 0.56, 0.95)]);
    assert_eq!(choose(&grammar, &open), "bye for now");
    assert_eq!(
        choose(&said("staff"), &said("stuff")),
        "staff",
        "one vowel apart"
    );
}

#[test]
fn a_sound_alike_word_at_another_time_does_not_confirm() {
    // The same "i", but a second after the grammar's "bye": not the same sound.
    let grammar = heard(&[("bye", 0.0, 0.21)]);
    let open = heard(&[("you", 0.0, 0.2), ("i", 1.2, 1.4)]);
    assert_eq!(choose(&grammar, &open), "you i");
}

#[test]
fn words_two_phones_apart_do_not_confirm() {
    // At the same time, but whole phones apart: the grammar forced its word onto other speech.
    assert_eq!(choose(&said("hours"), &said("all")), "all");
    assert_eq!(choose(&said("goodbye"), &said("i")), "i");
}

#[test]
fn one_phone_words_are_not_confirmed_by_sounding_alike() {
    let sounds = Pronunciations::parse("a AH\ni AY\n");
    assert!(!sounds.alike("a", "i"));
    assert!(Pronunciations::parse(DICTIONARY).alike("bye", "i"));
    assert!(!Pronunciations::parse(DICTIONARY).alike("bye", "unknown"));
}

#[test]
fn either_side_alone_is_taken_as_it_is() {
    assert_eq!(choose(&said(""), &said("what time")), "what time");
    assert_eq!(choose(&said("goodbye"), &said("")), "goodbye");
    assert_eq!(choose(&said("hello"), &said("what")), "hello");
    assert_eq!(choose(&said(""), &said("")), "");
}

#[test]
fn edit_distance_counts_phones() {
    let phones = |s: &str| -> Vec<String> { s.split(' ').map(String::from).collect() };
    assert_eq!(edit_distance(&phones("B AY"), &phones("AY")), 1);
    assert_eq!(edit_distance(&phones("S T AE F"), &phones("S T AH F")), 1);
    assert_eq!(edit_distance(&phones("AW ER Z"), &phones("AO L")), 3);
}

#[test]
fn a_keyword_the_open_decoder_is_sure_of_outweighs_confirmed_scaffolding() {
    // "i need to speak with a real human", forced onto the grammar's "where": the open decoder
    // confirms the scaffolding ("need"), but heard "human" and is sure of it.
    let grammar = said("i need to the where this week");
    let open = said("i need to speak with a real human");
    assert_eq!(choose(&grammar, &open), "i need to speak with a real human");
}

#[test]
fn an_unsure_open_keyword_does_not_outweigh_the_grammar() {
    let grammar = said("i need to the where this week");
    let open = unsure(
        "i need to speak with a real human",
        &[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5],
    );
    assert_eq!(choose(&grammar, &open), "i need to the where this week");
}

#[test]
fn a_confirmed_grammar_keyword_is_kept_over_another_open_keyword() {
    // Both heard "book"; the open decoder's extra "open" does not change the request.
    assert_eq!(
        choose(&said("can i book a time"), &said("can i book a open")),
        "can i book a time"
    );
}

#[test]
fn keywords_of_function_words_alone_do_not_count() {
    // "hi" is a keyword of the greeting, but the open decoder hears it everywhere.
    assert_eq!(
        choose(&said("need where"), &said("need hi")),
        "need where",
        "the grammar's confirmed \"need\" stands"
    );
    // A phrase counts only whole: "find" without "you" is not the keyword "find you".
    assert_eq!(
        choose(&said("need where"), &said("need find that")),
        "need where"
    );
    assert_eq!(
        choose(&said("need where"), &said("need find you")),
        "need find you"
    );
}

#[test]
fn an_unsure_leaving_word_in_the_open_words_is_left_out() {
    // "my cat likes the warm weather in july": the grammar forced it onto a request the open
    // decoder did not confirm, and the open decoder spelled its first syllable "bye", unsure.
    let grammar = said("hi can i a human for wednesday");
    let open = unsure(
        "bye kept like the war whether it you like",
        &[0.35, 0.14, 1.0, 0.04, 0.47, 0.03, 0.09, 0.86, 0.94],
    );
    assert_eq!(
        choose(&grammar, &open),
        "kept like the war whether it you like"
    );
    // Likewise when the grammar heard nothing.
    assert_eq!(
        choose(&said(""), &unsure("okay goodbye", &[0.9, 0.5])),
        "okay"
    );
}

#[test]
fn a_sure_leaving_word_in_the_open_words_is_kept() {
    let open = unsure("thanks bye now", &[0.6, 0.95, 0.7]);
    assert_eq!(choose(&said("hi"), &open), "thanks bye now");
}

#[test]
fn an_unsure_transfer_word_in_the_open_words_is_left_out() {
    // "I was hoping you could help me with something", a request for nothing, heard openly
    // with an unsure "somebody"-like keyword: handing the caller to a person is not undone.
    let open = unsure("i want hoping someone is", &[0.6, 0.3, 0.2, 0.4, 0.5]);
    assert_eq!(choose(&said("where"), &open), "i want hoping is");
    // Sure of it, the open decoder's request stands.
    let open = unsure("i need a real human", &[0.9, 0.8, 0.7, 0.9, 1.0]);
    assert_eq!(choose(&said("where"), &open), "i need a real human");
}

#[test]
fn unsure_keywords_that_keep_the_caller_are_kept_in_the_open_words() {
    // A booking noted by mistake can be undone; a hang-up or a transfer cannot.
    let open = unsure(
        "least book me if off right",
        &[0.2, 0.25, 0.07, 0.3, 0.2, 0.2],
    );
    assert_eq!(choose(&said("where"), &open), "least book me if off right");
}

#[test]
fn a_leaving_word_the_grammar_heard_and_the_open_decoder_confirmed_stands() {
    // Confirmation by the other decoder is evidence enough whatever its posterior: the
    // transcript is then the grammar's.
    let open = unsure("thank you goodbye", &[0.8, 0.9, 0.4]);
    assert_eq!(
        choose(&said("thank you goodbye"), &open),
        "thank you goodbye"
    );
}

#[test]
fn a_sure_open_keyword_outweighs_a_grammar_keyword_confirmed_only_by_a_sound_alike() {
    // The open decoder heard "when" where the grammar forced "where" (one phone apart), and
    // was sure of "human": the request is the open decoder's.
    let grammar = said("i need to the where this week");
    let open = said("i need to speak when a real human");
    assert_eq!(choose(&grammar, &open), "i need to speak when a real human");
    // The same word heard by both still keeps the grammar's words.
    let open = said("i need to speak where a real human");
    assert_eq!(choose(&grammar, &open), "i need to the where this week");
    // And without a sure keyword, the sound-alike still confirms.
    let open = unsure(
        "i need to speak when a real human",
        &[1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.5],
    );
    assert_eq!(choose(&grammar, &open), "i need to the where this week");
}
