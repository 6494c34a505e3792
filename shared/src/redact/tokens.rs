//! Words of a text with their byte ranges: split at white space, surrounding punctuation left
//! out of the word but remembered (a full stop ends a number; a comma does not).

/// One word of the text.
#[derive(Debug, Clone)]
pub(super) struct Token<'a> {
    /// Byte range in the text, punctuation around the word excluded.
    pub start: usize,
    pub end: usize,
    /// The word as written.
    pub text: &'a str,
    /// The word in lower case, for matching.
    pub lower: String,
    /// A sentence mark (`.`, `?`, `!`, `;`) follows the word: numbers and dates stop here. A
    /// colon does not ("date of birth: ...").
    pub stop: bool,
}

const LEADING: &[char] = &['(', '"', '\'', '[', '<', '{', '“', '‘'];
const TRAILING: &[char] = &[
    '.', ',', ';', ':', '!', '?', ')', '"', '\'', ']', '>', '}', '”', '’',
];
const STOPS: &[char] = &['.', ';', '!', '?'];

/// What separates words: white space, and the quotes and brackets of JSON-like text
/// (`{"email":"bob@example.com"}` holds the word `bob@example.com`).
fn is_gap(c: char) -> bool {
    c.is_whitespace() || matches!(c, '"' | '{' | '}' | '[' | ']' | '<' | '>' | '=' | '|')
}

/// The words of `text`, in order. Linear in the length of `text`.
pub(super) fn tokenize(text: &str) -> Vec<Token<'_>> {
    let mut out: Vec<Token<'_>> = Vec::new();
    let mut offset = 0;
    for piece in text.split_inclusive(is_gap) {
        let start = offset;
        offset += piece.len();
        let word = piece.trim_end_matches(is_gap);
        let mut lead = word.len() - word.trim_start_matches(LEADING).len();
        let mut inner = word[lead..].trim_end_matches(TRAILING);
        let mut tail = &word[lead + inner.len()..];
        // An area code in parentheses, "(555)", keeps them: they are part of the number.
        if lead == 1
            && word.starts_with('(')
            && tail.starts_with(')')
            && !inner.is_empty()
            && inner.bytes().all(|b| b.is_ascii_digit())
        {
            lead = 0;
            inner = &word[..inner.len() + 2];
            tail = &word[inner.len()..];
        }
        // "(555)" keeps its parenthesis pair out; an opening one inside stays in the word.
        let stop = tail.contains(STOPS);
        if inner.is_empty() {
            if stop {
                if let Some(last) = out.last_mut() {
                    last.stop = true;
                }
            }
            continue;
        }
        let s = start + lead;
        out.push(Token {
            start: s,
            end: s + inner.len(),
            text: inner,
            lower: inner.to_lowercase(),
            stop,
        });
    }
    out
}
