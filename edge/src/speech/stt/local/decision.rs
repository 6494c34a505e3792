//! Which of the two decodings of a turn to believe. The grammar decoder always answers with one
//! of the agent's phrases, so speech outside them ("do you sell bicycles") would be forced onto
//! one ("hello bye") and could hang up or transfer the caller. The open-vocabulary decoder hears
//! the same audio with no such constraint, less exactly. The grammar's words are kept when the
//! open decoder heard at least one of their meaningful words too; otherwise the open decoder's
//! words are the transcript, and a rules agent answers with its fallback line.

use super::vocabulary::words_of;

/// Words too common to show that two decodings agree.
const FUNCTION_WORDS: &[&str] = &[
    "a", "an", "the", "i", "i'd", "i'm", "me", "my", "you", "your", "we", "our", "it", "is", "are",
    "am", "be", "do", "to", "of", "on", "in", "at", "for", "and", "or", "can", "could", "would",
    "what", "please", "like", "want", "so", "well", "okay", "um", "uh", "yes", "no", "yeah", "oh",
    "ah", "hi", "hey", "hello",
];

/// The transcript of a turn from the grammar's and the open model's hypotheses.
pub fn transcript(grammar: &str, open: &str) -> String {
    let grammar_words: Vec<String> = words_of(grammar).collect();
    let open_words: Vec<String> = words_of(open).collect();
    if grammar_words.is_empty() {
        return open_words.join(" ");
    }
    let meaningful: Vec<&String> = grammar_words
        .iter()
        .filter(|w| !FUNCTION_WORDS.contains(&w.as_str()))
        .collect();
    let agrees = meaningful.is_empty() || meaningful.iter().any(|w| open_words.contains(w));
    if agrees || open_words.is_empty() {
        grammar_words.join(" ")
    } else {
        open_words.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::transcript;

    #[test]
    fn the_grammar_wins_when_the_open_decoder_heard_its_key_word() {
        assert_eq!(
            transcript(
                "hello what are your opening hours",
                "hello what are your opening all you"
            ),
            "hello what are your opening hours"
        );
        assert_eq!(
            transcript("put me through to a human please", "book talk human please"),
            "put me through to a human please"
        );
    }

    #[test]
    fn speech_outside_the_grammar_keeps_the_open_words() {
        assert_eq!(
            transcript("goodbye", "you sell bicycles"),
            "you sell bicycles"
        );
    }

    #[test]
    fn either_side_alone_is_taken_as_it_is() {
        assert_eq!(transcript("", "what time"), "what time");
        assert_eq!(transcript("goodbye", ""), "goodbye");
        assert_eq!(transcript("hello", "what"), "hello");
        assert_eq!(transcript("", ""), "");
    }
}
