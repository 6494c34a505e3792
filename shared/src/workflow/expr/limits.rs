//! How big one expression, and what it gives, may be, so that no customer's expression can exhaust
//! a thread's stack or an edge's memory:
//! the control plane's while it validates, an edge's while it compiles a cached flow or runs a
//! call. CEL's parser and evaluator recurse once or more per level of nesting and take a lot of
//! stack for each (an unoptimised build about 170 KiB per bracket), so a source is measured
//! *before* the parser sees it — by a scan that reads CEL's tokens as its lexer does and recurses
//! nowhere — and refused when it is longer than [`MAX_EXPRESSION_CHARS`] or nests deeper than
//! [`MAX_EXPRESSION_DEPTH`]; the parsed tree (macros expanded) is measured again, without
//! recursion, before it is kept. Parsing and evaluating what passes then run on a stack known to
//! be large enough for that depth ([`with_enough_stack`]), whatever thread calls them, and what an
//! evaluation gives is held to [`MAX_VALUE_DEPTH`] and [`MAX_VALUE_BYTES`] before it becomes a
//! variable, so values cannot grow from one `set` to the next until they exhaust either.

use cel::common::ast::IdedExpr;

/// Longest expression, in characters.
pub const MAX_EXPRESSION_CHARS: usize = 4_096;

/// Deepest nesting of an expression: brackets, `? :` conditionals, chained operators and chained
/// `.field`, `[index]` or `.method()` accesses each count a level; a lone name or literal is 1.
pub const MAX_EXPRESSION_DEPTH: usize = 64;

/// Deepest value an evaluation may give: serde_json's own parsing limit, so that every variable
/// (a function's answer, a `set` result) stays within it however often a flow loops through
/// `set x = [x]`, and converting or dropping one never recurses further.
pub const MAX_VALUE_DEPTH: usize = 128;

/// Largest value an evaluation may give, roughly in bytes (its strings and bytes, plus a word per
/// item): four times the most of a `function` answer an edge keeps, so that `set x = x + x` in a
/// loop cannot double a variable until the edge runs out of memory.
pub const MAX_VALUE_BYTES: usize = 1 << 20;

/// Stack that parsing or evaluating an expression within the limits may need, with room to
/// spare. The deepest shapes accepted (64 nested lists or maps) measured about 11 MiB in an
/// unoptimised build and 0.55 MiB in an optimised one (x86-64).
const STACK_NEEDED: usize = if cfg!(debug_assertions) {
    16 << 20
} else {
    1 << 20
};

/// Why a source is refused before it is parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Refusal {
    /// Longer than [`MAX_EXPRESSION_CHARS`]: how many characters it has.
    TooLong(usize),
    /// Nested deeper than [`MAX_EXPRESSION_DEPTH`].
    TooDeep,
    /// Something CEL's lexer rejects too, at this character (from 1).
    Lexical { at: usize, problem: String },
}

/// Runs `f` with at least [`STACK_NEEDED`] bytes of stack, on a fresh stack when the calling
/// thread has less left (a tokio worker has 2 MiB in all).
pub(super) fn with_enough_stack<R>(f: impl FnOnce() -> R) -> R {
    stacker::maybe_grow(STACK_NEEDED, 2 * STACK_NEEDED, f)
}

/// Checks `source` against both limits without parsing it. Whatever CEL's lexer would reject
/// (an unterminated string, a stray character, an unbalanced bracket) is refused here too, so
/// that the brackets counted are exactly the ones the parser would descend into.
pub(super) fn check_source(source: &str) -> Result<(), Refusal> {
    if source.len() > MAX_EXPRESSION_CHARS {
        let chars = source.chars().count();
        if chars > MAX_EXPRESSION_CHARS {
            return Err(Refusal::TooLong(chars));
        }
    }
    let chars: Vec<char> = source.chars().collect();
    if Scan::new(&chars).depth()? > MAX_EXPRESSION_DEPTH {
        return Err(Refusal::TooDeep);
    }
    Ok(())
}

/// The depth of a parsed tree: a leaf is 1, each node above it one more.
pub(super) fn tree_depth(root: &IdedExpr) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(root, 1usize)];
    let mut children = Vec::new();
    while let Some((expr, depth)) = pending.pop() {
        deepest = deepest.max(depth);
        super::push_children(expr, &mut children);
        pending.extend(children.drain(..).map(|child| (child, depth + 1)));
    }
    deepest
}

/// Checks what an evaluation gave against [`MAX_VALUE_DEPTH`] and [`MAX_VALUE_BYTES`], without
/// recursion, before it is converted to JSON. Items shared between lists (`[x, x, x]`) are
/// counted each time, as the JSON would repeat them; the walk stops as soon as a limit is passed.
pub(super) fn check_value(value: &cel::Value) -> Result<(), String> {
    const WORD: usize = 8;
    let too_big = || format!("the result is larger than the limit of {MAX_VALUE_BYTES} bytes");
    let mut bytes = WORD;
    let mut pending = vec![(value, 1usize)];
    while let Some((value, depth)) = pending.pop() {
        if depth > MAX_VALUE_DEPTH {
            return Err(format!(
                "the result nests more than the limit of {MAX_VALUE_DEPTH} levels"
            ));
        }
        bytes = bytes.saturating_add(match value {
            cel::Value::List(items) => items.len().saturating_mul(WORD),
            cel::Value::Map(map) => map.map.len().saturating_mul(2 * WORD),
            cel::Value::String(text) => text.len(),
            cel::Value::Bytes(data) => data.len(),
            _ => 0,
        });
        if bytes > MAX_VALUE_BYTES {
            return Err(too_big());
        }
        match value {
            cel::Value::List(items) => pending.extend(items.iter().map(|v| (v, depth + 1))),
            cel::Value::Map(map) => {
                for (key, item) in map.map.iter() {
                    if let cel::objects::Key::String(key) = key {
                        bytes = bytes.saturating_add(key.len());
                    }
                    pending.push((item, depth + 1));
                }
                if bytes > MAX_VALUE_BYTES {
                    return Err(too_big());
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Operators and accesses that chain, loosest first. A chain of `||` or `&&` becomes a balanced
/// tree; the others nest one level per link (`a + b + c` is `(a + b) + c`).
#[derive(Clone, Copy)]
enum Chain {
    Or,
    And,
    Relation,
    Arithmetic,
    Member,
}

const CHAINS: usize = 5;

/// What one comma-separated item (an argument, element or entry, or the whole expression) has
/// shown so far: an upper bound on its depth, not its exact shape.
#[derive(Default)]
struct Item {
    /// `?` seen: each conditional nests the next one in its `else`.
    conditionals: usize,
    /// The current run of each chain, reset by a looser operator.
    runs: [usize; CHAINS],
    longest: [usize; CHAINS],
    /// A unary `!` or `-`, which adds a call above what it applies to.
    negated: bool,
    /// The depth of the deepest bracket inside the item, its own level included.
    deepest_bracket: usize,
}

impl Item {
    fn link(&mut self, chain: Chain) {
        let c = chain as usize;
        self.runs[c] += 1;
        self.longest[c] = self.longest[c].max(self.runs[c]);
        for run in self.runs.iter_mut().skip(c + 1) {
            *run = 0;
        }
    }

    /// After `?` or `:`, a new operand starts every chain afresh.
    fn restart(&mut self) {
        self.runs = [0; CHAINS];
    }

    fn depth(&self) -> usize {
        let balanced = |links: usize| (usize::BITS - links.leading_zeros()) as usize;
        let [or, and, relation, arithmetic, member] = self.longest;
        self.conditionals
            + balanced(or)
            + balanced(and)
            + relation
            + arithmetic
            + member
            + usize::from(self.negated)
            + self.deepest_bracket.max(1)
    }
}

/// An open bracket, or the whole source.
struct Bracket {
    opener: char,
    at: usize,
    /// The deepest of its items already ended by a comma.
    deepest_item: usize,
    item: Item,
}

impl Bracket {
    fn new(opener: char, at: usize) -> Self {
        Self {
            opener,
            at,
            deepest_item: 0,
            item: Item::default(),
        }
    }

    fn depth(&self) -> usize {
        self.deepest_item.max(self.item.depth())
    }
}

/// One pass over the characters, token by token as CEL's lexer reads them.
struct Scan<'a> {
    chars: &'a [char],
    at: usize,
    /// The source as a whole, as if bracketed.
    whole: Bracket,
    /// Every bracket still open, innermost last.
    open: Vec<Bracket>,
    /// Whether the last token ended an operand, so a `-` is a subtraction and a `[` an index.
    after_operand: bool,
}

impl<'a> Scan<'a> {
    fn new(chars: &'a [char]) -> Self {
        Self {
            chars,
            at: 0,
            whole: Bracket::new(' ', 0),
            open: Vec::new(),
            after_operand: false,
        }
    }

    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.at + ahead).copied()
    }

    fn innermost(&mut self) -> &mut Bracket {
        match self.open.last_mut() {
            Some(bracket) => bracket,
            None => &mut self.whole,
        }
    }

    fn item(&mut self) -> &mut Item {
        &mut self.innermost().item
    }

    fn refuse(&self, at: usize, problem: impl Into<String>) -> Refusal {
        Refusal::Lexical {
            at: at + 1,
            problem: problem.into(),
        }
    }

    /// An upper bound on the depth of the tree the source parses into.
    fn depth(mut self) -> Result<usize, Refusal> {
        while let Some(c) = self.peek(0) {
            let next = self.peek(1);
            let mut operand = false;
            let mut width = 1;
            match c {
                ' ' | '\t' | '\r' | '\n' | '\u{c}' => {
                    self.at += 1;
                    continue;
                }
                '/' if next == Some('/') => {
                    while self.peek(0).is_some_and(|c| c != '\n') {
                        self.at += 1;
                    }
                    continue;
                }
                '"' | '\'' => {
                    width = self.string(self.at, false)? - self.at;
                    operand = true;
                }
                'a'..='z' | 'A'..='Z' | '_' => {
                    let end = self.word_end();
                    let word: String = self.chars[self.at..end].iter().collect();
                    let raw = match word.as_str() {
                        "r" | "R" | "br" | "bR" | "Br" | "BR" => Some(true),
                        "b" | "B" => Some(false),
                        _ => None,
                    };
                    match (raw, self.chars.get(end)) {
                        (Some(raw), Some('"' | '\'')) => {
                            width = self.string(end, raw)? - self.at;
                            operand = true;
                        }
                        _ if word == "in" => {
                            self.item().link(Chain::Relation);
                            width = 2;
                        }
                        _ => {
                            width = end - self.at;
                            operand = true;
                        }
                    }
                }
                '0'..='9' => {
                    width = self.number_end() - self.at;
                    operand = true;
                }
                '.' if next.is_some_and(|n| n.is_ascii_digit()) => {
                    width = self.number_end() - self.at;
                    operand = true;
                }
                '.' => self.item().link(Chain::Member),
                '`' => {
                    width = self.escaped_name_end()? - self.at;
                    operand = true;
                }
                '(' | '[' | '{' => {
                    if c == '[' && self.after_operand {
                        self.item().link(Chain::Member);
                    }
                    self.open.push(Bracket::new(c, self.at));
                }
                ')' | ']' | '}' => {
                    self.close(c)?;
                    operand = true;
                }
                ',' => {
                    let bracket = self.innermost();
                    bracket.deepest_item = bracket.depth();
                    bracket.item = Item::default();
                }
                ':' => self.item().restart(),
                '?' => {
                    let item = self.item();
                    item.conditionals += 1;
                    item.restart();
                }
                '|' if next == Some('|') => {
                    self.item().link(Chain::Or);
                    width = 2;
                }
                '&' if next == Some('&') => {
                    self.item().link(Chain::And);
                    width = 2;
                }
                '=' | '!' if next == Some('=') => {
                    self.item().link(Chain::Relation);
                    width = 2;
                }
                '<' | '>' => {
                    self.item().link(Chain::Relation);
                    width = if next == Some('=') { 2 } else { 1 };
                }
                '+' | '*' | '/' | '%' => self.item().link(Chain::Arithmetic),
                '-' if self.after_operand => self.item().link(Chain::Arithmetic),
                '!' | '-' => self.item().negated = true,
                _ => return Err(self.refuse(self.at, format!("unexpected character {c:?}"))),
            }
            self.at += width;
            self.after_operand = operand;
        }
        match self.open.last() {
            None => Ok(self.whole.depth()),
            Some(unclosed) => Err(self.refuse(
                unclosed.at,
                format!("`{}` is never closed", unclosed.opener),
            )),
        }
    }

    /// Ends the innermost bracket with `closer`, adding its depth to the item around it.
    fn close(&mut self, closer: char) -> Result<(), Refusal> {
        let expected = match self.open.last().map(|b| b.opener) {
            Some('(') => ')',
            Some('[') => ']',
            Some('{') => '}',
            _ => return Err(self.refuse(self.at, format!("`{closer}` closes nothing"))),
        };
        if closer != expected {
            return Err(self.refuse(
                self.at,
                format!("`{closer}` where `{expected}` was expected"),
            ));
        }
        let depth = self.open.pop().map_or(0, |b| 1 + b.depth());
        let around = self.item();
        around.deepest_bracket = around.deepest_bracket.max(depth);
        Ok(())
    }

    fn word_end(&self) -> usize {
        let mut end = self.at;
        while self
            .chars
            .get(end)
            .is_some_and(|c| c.is_ascii_alphanumeric() || *c == '_')
        {
            end += 1;
        }
        end
    }

    fn digits_end(&self, mut at: usize, hex: bool) -> usize {
        while self.chars.get(at).is_some_and(|c| {
            if hex {
                c.is_ascii_hexdigit()
            } else {
                c.is_ascii_digit()
            }
        }) {
            at += 1;
        }
        at
    }

    /// The end of the number at `self.at`: `12`, `0x1F`, `3u`, `1.5`, `.5`, `2e-3`.
    fn number_end(&self) -> usize {
        let digit = |at: usize| self.chars.get(at).is_some_and(char::is_ascii_digit);
        let at = self.at;
        if self.peek(0) == Some('0')
            && self.peek(1) == Some('x')
            && self.peek(2).is_some_and(|c| c.is_ascii_hexdigit())
        {
            let end = self.digits_end(at + 2, true);
            return end + usize::from(matches!(self.chars.get(end), Some('u' | 'U')));
        }
        let mut end = self.digits_end(at, false);
        let mut float = false;
        if self.chars.get(end) == Some(&'.') && digit(end + 1) {
            end = self.digits_end(end + 1, false);
            float = true;
        }
        if matches!(self.chars.get(end), Some('e' | 'E')) {
            let sign = usize::from(matches!(self.chars.get(end + 1), Some('+' | '-')));
            if digit(end + 1 + sign) {
                end = self.digits_end(end + 1 + sign, false);
                float = true;
            }
        }
        if !float && matches!(self.chars.get(end), Some('u' | 'U')) {
            end += 1;
        }
        end
    }

    /// The end of a `` `quoted.field-name` ``.
    fn escaped_name_end(&self) -> Result<usize, Refusal> {
        let allowed = |c: &char| c.is_ascii_alphanumeric() || "_.-/ ".contains(*c);
        let mut end = self.at + 1;
        while self.chars.get(end).is_some_and(allowed) {
            end += 1;
        }
        if end > self.at + 1 && self.chars.get(end) == Some(&'`') {
            Ok(end + 1)
        } else {
            Err(self.refuse(self.at, "a `quoted` field name that is empty, unclosed or holds a character other than letters, digits, `_`, `.`, `-`, `/` and spaces"))
        }
    }

    /// The end of the string literal whose opening quote is at `start`: `'...'`, `"..."` or
    /// tripled (which may span lines); `raw` after an `r` prefix, where `\` escapes nothing.
    fn string(&self, start: usize, raw: bool) -> Result<usize, Refusal> {
        let quote = self.chars.get(start).copied();
        let is_quote = |at: usize| self.chars.get(at).copied() == quote;
        let unterminated = || self.refuse(start, "a string that is never closed");
        let tripled = is_quote(start + 1) && is_quote(start + 2);
        let mut at = if tripled { start + 3 } else { start + 1 };
        loop {
            match self.chars.get(at) {
                None => return Err(unterminated()),
                Some('\n' | '\r') if !tripled => return Err(unterminated()),
                Some(_) if is_quote(at) && !tripled => return Ok(at + 1),
                Some(_) if tripled && is_quote(at) && is_quote(at + 1) && is_quote(at + 2) => {
                    return Ok(at + 3)
                }
                Some('\\') if !raw => at = self.escape_end(at)?,
                Some(_) => at += 1,
            }
        }
    }

    /// The end of the escape sequence whose `\` is at `at`.
    fn escape_end(&self, at: usize) -> Result<usize, Refusal> {
        let all = |from: usize, n: usize, ok: fn(&char) -> bool| {
            (from..from + n).all(|i| self.chars.get(i).is_some_and(ok))
        };
        let octal = |c: &char| ('0'..='7').contains(c);
        let end = match self.chars.get(at + 1) {
            Some('a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' | '"' | '\'' | '\\' | '?' | '`') => {
                Some(at + 2)
            }
            Some('0'..='3') if all(at + 2, 2, octal) => Some(at + 4),
            Some('x' | 'X') if all(at + 2, 2, char::is_ascii_hexdigit) => Some(at + 4),
            Some('u') if all(at + 2, 4, char::is_ascii_hexdigit) => Some(at + 6),
            Some('U') if all(at + 2, 8, char::is_ascii_hexdigit) => Some(at + 10),
            _ => None,
        };
        end.ok_or_else(|| self.refuse(at, "an escape sequence CEL does not know"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(source: &str) -> usize {
        let chars: Vec<char> = source.chars().collect();
        match Scan::new(&chars).depth() {
            Ok(depth) => depth,
            Err(refusal) => panic!("{source}: {refusal:?}"),
        }
    }

    #[test]
    fn the_scan_never_measures_less_than_the_parsed_tree() {
        for source in [
            "a",
            "-a",
            "!a.b",
            "a + b * c - d / e % f",
            "a < b == c",
            "a ? b : c ? d : e",
            "a.b.c[0].d(e, f)[g]",
            "{'k': [1, 2, {'x': a.b}], 'j': -c}",
            "f(g(h(1)), [a, b][0])",
            "a || b && c || d && e && f || g || h || i",
            "a in [1, 2, 3] && !(b || c)",
            "(((a)))",
            "x.y ? [x] : {}",
            "-a.b.c - -d",
            "1.5e3 + .5 - 0x1F + 3u - 2e-3",
            "size(a) > 0 ? a[0] : null",
            "b'abc' == r'x' + '''y''' // done",
        ] {
            let program = match super::super::ENV.compile(source) {
                Ok(program) => program,
                Err(e) => panic!("{source}: {e}"),
            };
            let tree = tree_depth(program.expression());
            assert!(
                bound(source) >= tree,
                "{source}: {} < {tree}",
                bound(source)
            );
        }
    }

    #[test]
    fn each_bracket_and_chained_link_adds_a_level() {
        assert_eq!(bound("a"), 1);
        assert_eq!(bound("(a)"), 2);
        assert_eq!(bound("f(x, (y))"), 3);
        assert_eq!(bound("a + b + c"), 3);
        assert_eq!(bound("a.b.c"), 3);
        assert_eq!(bound("a ? b : c ? d : e"), 3);
        // A chain of seven `||` is a balanced tree three levels high.
        assert_eq!(bound("a || b || c || d || e || f || g || h"), 4);
    }

    #[test]
    fn strings_and_comments_hide_brackets_as_cels_lexer_does() {
        assert_eq!(bound("'((('"), 1);
        assert_eq!(bound(r"r'\' + ')))'"), 2);
        assert_eq!(bound("'''(\n(''' // ((("), 1);
        assert_eq!(bound(r"'\'(' + (a)"), 3);
    }
}
