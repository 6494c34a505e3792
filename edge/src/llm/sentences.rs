//! Cuts a model's token stream into chunks that text-to-speech can speak, as early as possible:
//! the first sentence goes to TTS while the model still writes the second, which is most of the
//! latency a caller notices. Sans-IO: [`SentenceSplitter::push`] each token and send what it
//! returns; [`SentenceSplitter::finish`] hands over the rest when the reply ends.
//!
//! A chunk ends at a sentence end — `.` `!` `?` `…` and their kin in other scripts (`。` `！` `？`
//! `।` `؟` …), with closing quotes or brackets kept — but not at abbreviations (`Dr.`, `e.g.`),
//! initials (`J. Smith`), decimals (`3.5`), or an ellipsis or full stop followed by a lower-case
//! word. Deciding that sometimes needs the next word, so a `.` waits for the following token
//! (which usually arrives with it anyway); `!` and `?` cut at the following space. A long clause
//! is cut at a comma, semicolon or colon past `clause_min_chars`, and a chunk that reaches
//! `max_chars` without any of these is cut at its last space.
//!
//! When the model pauses after a full stop, the next word may be a second away: the owner calls
//! [`SentenceSplitter::flush_idle`] once the stream has been quiet a short while, which releases
//! a sentence whose end is certain but for the word after it (not `Dr.`, `e.g.`, `U.S.`, an
//! initial or a list number, which still wait).

/// Default length (in characters) past which a clause mark ends a chunk.
pub(crate) const DEFAULT_CLAUSE_MIN_CHARS: usize = 60;
/// Default length (in characters) at which a chunk is cut at its last space regardless.
pub(crate) const DEFAULT_MAX_CHARS: usize = 250;

/// Abbreviations that end in a full stop without ending a sentence (lower case, no final dot).
const ABBREVIATIONS: &[&str] = &[
    "mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "mt", "vs", "approx", "dept", "fig", "no",
    "nr", "tel", "ca", "cf", "gen", "gov", "lt", "col", "capt", "rev", "hon", "inc", "ltd", "co",
];

/// Splits a streamed reply into speakable chunks; see the module docs for the rules.
#[derive(Debug, Clone)]
pub struct SentenceSplitter {
    pending: String,
    clause_min_chars: usize,
    max_chars: usize,
}

impl Default for SentenceSplitter {
    fn default() -> Self {
        Self::new()
    }
}

impl SentenceSplitter {
    /// A splitter with the default clause and length limits.
    pub fn new() -> Self {
        Self::with_limits(DEFAULT_CLAUSE_MIN_CHARS, DEFAULT_MAX_CHARS)
    }

    /// A splitter cutting clauses past `clause_min_chars` and any chunk at `max_chars`.
    pub fn with_limits(clause_min_chars: usize, max_chars: usize) -> Self {
        Self {
            pending: String::new(),
            clause_min_chars,
            max_chars: max_chars.max(1),
        }
    }

    /// Adds the next token; returns the chunks it completed, in order (usually none or one).
    pub fn push(&mut self, token: &str) -> Vec<String> {
        self.pending.push_str(token);
        let mut chunks = Vec::new();
        loop {
            let leading = self.pending.len() - self.pending.trim_start().len();
            if leading > 0 {
                self.pending.drain(..leading);
            }
            let Some(cut) = self.find_cut() else { break };
            let rest = self.pending.split_off(cut);
            let chunk = std::mem::replace(&mut self.pending, rest);
            let chunk = chunk.trim_end();
            if !chunk.is_empty() {
                chunks.push(chunk.to_string());
            }
        }
        chunks
    }

    /// The reply ended: whatever is left, if anything but whitespace.
    pub fn finish(&mut self) -> Option<String> {
        let rest = std::mem::take(&mut self.pending);
        let rest = rest.trim();
        (!rest.is_empty()).then(|| rest.to_string())
    }

    /// The stream has been idle: if the text held back ends with a sentence end that only waits
    /// for the next word to be sure (not an abbreviation, initial, decimal or list number),
    /// hand it out now rather than when the model resumes.
    pub fn flush_idle(&mut self) -> Option<String> {
        let text = self.pending.trim_end();
        let mut chars = text.char_indices().rev().peekable();
        while chars.next_if(|&(_, c)| is_closer(c)).is_some() {}
        let (last_at, last) = chars.next()?;
        if !is_terminator(last) {
            return None;
        }
        let ellipsis = last == '…' || chars.peek().is_some_and(|&(_, c)| is_terminator(c));
        let mut first_at = last_at;
        while let Some((at, _)) = chars.next_if(|&(_, c)| is_terminator(c)) {
            first_at = at;
        }
        let only_stops = text[first_at..last_at + last.len_utf8()]
            .chars()
            .all(|c| matches!(c, '.' | '…'));
        if only_stops && !ellipsis && is_abbreviation(text, first_at) {
            return None;
        }
        let chunk = text.to_string();
        self.pending.clear();
        Some(chunk)
    }

    /// Text received but not yet handed out.
    pub fn pending(&self) -> &str {
        &self.pending
    }

    /// Byte offset where the first complete chunk of `pending` ends, if one is certain yet.
    fn find_cut(&self) -> Option<usize> {
        let text = self.pending.as_str();
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let n = chars.len();
        let byte_at = |k: usize| chars.get(k).map_or(text.len(), |&(at, _)| at);
        let mut i = 0;
        while i < n {
            let c = chars[i].1;
            if is_terminator(c) {
                let mut j = i;
                while j < n && is_terminator(chars[j].1) {
                    j += 1;
                }
                let mut k = j;
                while k < n && is_closer(chars[k].1) {
                    k += 1;
                }
                if k >= n {
                    return None; // what follows decides
                }
                let run = &chars[i..j];
                if is_spaceless_terminator(run[run.len() - 1].1) {
                    return Some(byte_at(k));
                }
                if !chars[k].1.is_whitespace() {
                    i = j; // 3.5, e.g, a URL, "?!x": not an end
                    continue;
                }
                if run.iter().any(|&(_, c)| !matches!(c, '.' | '…')) {
                    return Some(byte_at(k)); // ! ? and kin end a sentence outright
                }
                let mut m = k;
                while m < n && chars[m].1.is_whitespace() {
                    m += 1;
                }
                if m >= n {
                    return None; // a full stop waits for the next word
                }
                let ellipsis = run.len() > 1 || run[0].1 == '…';
                let continues =
                    chars[m].1.is_lowercase() || (!ellipsis && is_abbreviation(text, chars[i].0));
                if !continues {
                    return Some(byte_at(k));
                }
                i = j;
                continue;
            }
            if is_clause_mark(c) && i + 1 >= self.clause_min_chars {
                if is_spaceless_clause_mark(c) {
                    return Some(byte_at(i + 1));
                }
                match chars.get(i + 1) {
                    None => return None,
                    Some(&(_, next)) if next.is_whitespace() => return Some(byte_at(i + 1)),
                    Some(_) => {} // 1,000 or 10:30
                }
            }
            i += 1;
        }
        if n > self.max_chars {
            let limit = byte_at(self.max_chars);
            let cut = text[..limit]
                .char_indices()
                .rev()
                .find(|&(at, c)| c.is_whitespace() && at > 0)
                .map_or(limit, |(at, _)| at);
            return Some(cut);
        }
        None
    }
}

fn is_terminator(c: char) -> bool {
    matches!(
        c,
        '.' | '!'
            | '?'
            | '…'
            | '‼'
            | '⁇'
            | '⁈'
            | '⁉'
            | '؟'
            | '۔'
            | '।'
            | '॥'
            | '։'
            | '።'
            | '。'
            | '！'
            | '？'
            | '｡'
    )
}

/// Terminators of scripts written without spaces between sentences.
fn is_spaceless_terminator(c: char) -> bool {
    matches!(c, '。' | '！' | '？' | '｡')
}

fn is_closer(c: char) -> bool {
    matches!(
        c,
        '"' | '\'' | ')' | ']' | '}' | '»' | '”' | '’' | '」' | '』' | '）' | '】' | '〉' | '》'
    )
}

fn is_clause_mark(c: char) -> bool {
    matches!(c, ',' | ';' | ':' | '，' | '；' | '：' | '、' | '،' | '؛')
}

fn is_spaceless_clause_mark(c: char) -> bool {
    matches!(c, '，' | '；' | '：' | '、')
}

/// Whether the word before the full stop at byte `dot` is an abbreviation, an initial, or the
/// number of a list item at the start of the chunk.
fn is_abbreviation(text: &str, dot: usize) -> bool {
    let before = &text[..dot];
    let start = before
        .char_indices()
        .rev()
        .find(|&(_, c)| !(c.is_alphanumeric() || c == '.'))
        .map_or(0, |(at, c)| at + c.len_utf8());
    let word = &before[start..];
    if word.is_empty() {
        return false;
    }
    let lower = word.to_lowercase();
    let mut letters = word.chars();
    let single_initial =
        matches!((letters.next(), letters.next()), (Some(c), None) if c.is_uppercase());
    ABBREVIATIONS.contains(&lower.as_str())
        || word.contains('.') // e.g, i.e, a.m, U.S
        || single_initial
        || (word.chars().all(|c| c.is_ascii_digit()) && before[..start].trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `tokens` one by one and returns every chunk, including the final rest.
    fn split(tokens: &[&str]) -> Vec<String> {
        let mut splitter = SentenceSplitter::new();
        let mut chunks: Vec<String> = tokens.iter().flat_map(|t| splitter.push(t)).collect();
        chunks.extend(splitter.finish());
        chunks
    }

    fn whole(text: &str) -> Vec<String> {
        split(&[text])
    }

    #[test]
    fn first_sentence_is_released_as_soon_as_the_next_word_arrives() {
        let mut splitter = SentenceSplitter::new();
        assert!(splitter.push("Hello").is_empty());
        assert!(splitter.push(" there.").is_empty());
        assert_eq!(splitter.push(" How"), vec!["Hello there."]);
        assert!(splitter.push(" are you?").is_empty());
        assert_eq!(splitter.finish().as_deref(), Some("How are you?"));
        assert_eq!(splitter.finish(), None);
    }

    #[test]
    fn exclamation_and_question_cut_at_the_following_space() {
        let mut splitter = SentenceSplitter::new();
        assert_eq!(splitter.push("Great! "), vec!["Great!"]);
        assert_eq!(splitter.push("Really?! "), vec!["Really?!"]);
    }

    #[test]
    fn abbreviations_initials_and_decimals_do_not_end_a_sentence() {
        assert_eq!(
            whole("Dr. Smith sees you at 3.5 p.m. today. Bring e.g. your card. J. R. R. Tolkien wrote it."),
            [
                "Dr. Smith sees you at 3.5 p.m. today.",
                "Bring e.g. your card.",
                "J. R. R. Tolkien wrote it."
            ]
        );
    }

    #[test]
    fn ellipsis_mid_sentence_stays_but_ends_a_sentence_before_a_capital() {
        assert_eq!(
            whole("Well... maybe tomorrow. I see… Let me check."),
            ["Well... maybe tomorrow.", "I see…", "Let me check."]
        );
    }

    #[test]
    fn full_stop_before_a_lower_case_word_is_not_an_end() {
        assert_eq!(
            whole("It costs approx. five dollars."),
            ["It costs approx. five dollars."]
        );
        assert_eq!(whole("Call ext. four now."), ["Call ext. four now."]);
    }

    #[test]
    fn closing_quotes_and_brackets_stay_with_their_sentence() {
        assert_eq!(
            whole("She said \"Stop.\" Then she left. (It was late.) Okay."),
            [
                "She said \"Stop.\"",
                "Then she left.",
                "(It was late.)",
                "Okay."
            ]
        );
    }

    #[test]
    fn list_numbers_at_the_start_are_not_sentences() {
        assert_eq!(
            whole("1. First item. 2. Second item."),
            ["1. First item.", "2. Second item."]
        );
    }

    #[test]
    fn scripts_without_spaces_and_other_terminators_are_cut() {
        assert_eq!(whole("你好。我很好！谢谢"), ["你好。", "我很好！", "谢谢"]);
        assert_eq!(whole("नमस्ते। आप कैसे हैं?"), ["नमस्ते।", "आप कैसे हैं?"]);
        assert_eq!(whole("مرحبا؟ نعم"), ["مرحبا؟", "نعم"]);
        assert_eq!(
            whole("¿Qué hora es? Son las tres."),
            ["¿Qué hora es?", "Son las tres."]
        );
    }

    #[test]
    fn long_clauses_are_cut_at_commas_and_short_ones_are_not() {
        let mut splitter = SentenceSplitter::with_limits(20, 250);
        assert!(splitter.push("Yes, sure").is_empty());
        assert_eq!(
            splitter.push(", I can book that appointment for you, and then"),
            vec!["Yes, sure, I can book that appointment for you,"]
        );
        let mut splitter = SentenceSplitter::with_limits(5, 250);
        let mut chunks =
            splitter.push("We have 1,000 rooms; all of them face the sea, at 10:30 daily.");
        chunks.extend(splitter.finish());
        assert_eq!(
            chunks,
            [
                "We have 1,000 rooms;",
                "all of them face the sea,",
                "at 10:30 daily."
            ]
        );
        let mut splitter = SentenceSplitter::with_limits(5, 250);
        assert_eq!(
            splitter.push("我们有很多房间，都朝海"),
            vec!["我们有很多房间，"]
        );
    }

    #[test]
    fn a_chunk_without_punctuation_is_cut_at_a_space_at_the_length_limit() {
        let mut splitter = SentenceSplitter::with_limits(60, 20);
        let chunks = splitter.push("one two three four five six seven eight");
        assert_eq!(chunks, ["one two three four"]);
        assert_eq!(splitter.finish().as_deref(), Some("five six seven eight"));
        let mut splitter = SentenceSplitter::with_limits(60, 5);
        assert_eq!(splitter.push("abcdefghij"), ["abcde"]);
    }

    #[test]
    fn an_idle_stream_releases_a_finished_sentence_without_the_next_word() {
        let mut splitter = SentenceSplitter::new();
        assert!(splitter.push("First sentence is here. ").is_empty());
        assert_eq!(
            splitter.flush_idle().as_deref(),
            Some("First sentence is here.")
        );
        assert_eq!(splitter.flush_idle(), None, "nothing is held back any more");
        assert_eq!(splitter.push("Second one. Third"), ["Second one."]);
        assert_eq!(splitter.flush_idle(), None, "no sentence end yet");
        for ended in [
            "She said \"Stop.\"",
            "Really?",
            "I see…",
            "Wait...",
            "你好。",
        ] {
            let mut splitter = SentenceSplitter::new();
            let _ = splitter.push(ended);
            let flushed = splitter.flush_idle();
            assert!(flushed.is_some(), "{ended:?} is a finished sentence");
        }
    }

    #[test]
    fn an_idle_stream_keeps_abbreviations_numbers_and_initials_whole() {
        for held in [
            "Please see Dr.",
            "Bring a card, e.g.",
            "It was made in the U.S.",
            "1.",
            "Written by J.",
            "It costs 3.5",
            "Hello there",
        ] {
            let mut splitter = SentenceSplitter::new();
            assert!(splitter.push(held).is_empty(), "{held:?}");
            assert_eq!(
                splitter.flush_idle(),
                None,
                "{held:?} waits for the next word"
            );
            assert_eq!(splitter.pending(), held);
        }
        // "3." at the end of a sentence that does not start with it is a sentence end.
        let mut splitter = SentenceSplitter::new();
        let _ = splitter.push("The answer is 3.");
        assert_eq!(splitter.flush_idle().as_deref(), Some("The answer is 3."));
    }

    #[test]
    fn whitespace_only_produces_nothing() {
        assert!(whole("  \n ").is_empty());
        assert!(split(&[]).is_empty());
    }

    #[test]
    fn every_split_point_gives_the_same_chunks() {
        let texts = [
            "Hello there. How are you? Dr. Who is here… Wait... what? Fine! 3.5 is \"fine.\" Bye.",
            "你好。我很好！ Okay, then. E.g. this. Done",
            "A long opening clause that keeps going and going, then a turn; finally the end.",
        ];
        for text in texts {
            let expected = whole(text);
            let bounds: Vec<usize> = text.char_indices().map(|(at, _)| at).collect();
            for &a in &bounds {
                assert_eq!(
                    split(&[&text[..a], &text[a..]]),
                    expected,
                    "split at {a} of {text:?}"
                );
            }
            let chars: Vec<String> = text.chars().map(String::from).collect();
            let refs: Vec<&str> = chars.iter().map(String::as_str).collect();
            assert_eq!(split(&refs), expected, "char by char: {text:?}");
        }
    }
}
