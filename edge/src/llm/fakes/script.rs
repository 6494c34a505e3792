//! What a fake provider is told to answer: a [`FakeReply`] — text tokens, tool calls, first-token
//! latency, inter-token delay, and how it fails, if it does. Written once, played in either wire
//! protocol by the fake server.

use std::time::Duration;

use serde_json::Value;

use super::Step;

/// A tool call the fake model makes.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeToolCall {
    /// Call id.
    pub id: String,
    /// Tool name.
    pub name: String,
    /// Arguments, streamed as JSON fragments.
    pub arguments: Value,
}

/// How a scripted reply fails.
#[derive(Debug, Clone, PartialEq)]
pub enum FakeFailure {
    /// Answer this HTTP status and body instead of a stream.
    Status {
        /// HTTP status code (500, 429, …).
        status: u16,
        /// Response body.
        body: String,
    },
    /// Abort the connection after this many tokens, without ending the stream properly.
    CutAfter(usize),
    /// After the tokens, send the protocol's in-stream error and end.
    ErrorEvent {
        /// Provider error type (`overloaded_error`, `server_error`).
        kind: String,
        /// Error message.
        message: String,
    },
}

/// One scripted reply.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeReply {
    /// Text tokens, streamed in order.
    pub tokens: Vec<String>,
    /// Tool calls, streamed after the text.
    pub tool_calls: Vec<FakeToolCall>,
    /// How the reply fails, if it does.
    pub failure: Option<FakeFailure>,
    /// Pause before the first token (or before a failure status).
    pub first_token_delay: Duration,
    /// Pause before each later token or tool-call fragment.
    pub token_delay: Duration,
    /// An extra pause before the token at this index (0-based; text tokens come first): a
    /// model that goes quiet mid-reply, as one does while it thinks between sentences.
    pub pause: Option<(usize, Duration)>,
}

impl FakeReply {
    /// `text` streamed word by word (spaces kept with the following word).
    pub fn text(text: &str) -> Self {
        let tokens = text
            .split_inclusive(' ')
            .map(str::to_string)
            .collect::<Vec<_>>();
        Self::tokens(tokens)
    }

    /// Exactly these tokens.
    pub fn tokens(tokens: Vec<String>) -> Self {
        Self {
            tokens,
            tool_calls: Vec::new(),
            failure: None,
            first_token_delay: Duration::ZERO,
            token_delay: Duration::ZERO,
            pause: None,
        }
    }

    /// A reply that only calls one tool.
    pub fn tool_call(id: &str, name: &str, arguments: Value) -> Self {
        Self::tokens(Vec::new()).and_tool_call(id, name, arguments)
    }

    /// An HTTP failure instead of a stream.
    pub fn status(status: u16, body: &str) -> Self {
        Self::tokens(Vec::new()).failing(FakeFailure::Status {
            status,
            body: body.to_string(),
        })
    }

    /// Adds a tool call after the text.
    pub fn and_tool_call(mut self, id: &str, name: &str, arguments: Value) -> Self {
        self.tool_calls.push(FakeToolCall {
            id: id.to_string(),
            name: name.to_string(),
            arguments,
        });
        self
    }

    /// Makes the reply fail as described.
    pub fn failing(mut self, failure: FakeFailure) -> Self {
        self.failure = Some(failure);
        self
    }

    /// Cuts the connection after `tokens` tokens.
    pub fn cut_after(self, tokens: usize) -> Self {
        self.failing(FakeFailure::CutAfter(tokens))
    }

    /// Waits `delay` before the first token.
    pub fn with_first_token_delay(mut self, delay: Duration) -> Self {
        self.first_token_delay = delay;
        self
    }

    /// Waits `delay` before each later token.
    pub fn with_token_delay(mut self, delay: Duration) -> Self {
        self.token_delay = delay;
        self
    }

    /// Waits `delay` more before the token at `index` (0-based).
    pub fn with_pause_before_token(mut self, index: usize, delay: Duration) -> Self {
        self.pause = Some((index, delay));
        self
    }

    /// Goes quiet for `delay` after the token that ends the first sentence (the first one ending
    /// in `.`, `?` or `!` and a space): the stream a sentence-flush figure is measured on. No
    /// pause when no token ends a sentence before the last.
    pub fn with_pause_after_first_sentence(self, delay: Duration) -> Self {
        let ends = |t: &String| t.trim_end().ends_with(['.', '?', '!']);
        match self.tokens.iter().position(ends) {
            Some(i) if i + 1 < self.tokens.len() => self.with_pause_before_token(i + 1, delay),
            _ => self,
        }
    }
}

/// Splits `text` into about `parts` pieces on character boundaries (tool arguments streamed
/// in fragments, as real providers do).
pub(super) fn fragments(text: &str, parts: usize) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let size = chars.len().div_ceil(parts.max(1)).max(1);
    chars.chunks(size).map(|c| c.iter().collect()).collect()
}

/// A rough token count for fake usage figures.
pub(super) fn rough_tokens(body: &Value) -> u32 {
    (body.to_string().len() / 4) as u32
}

/// The model a request names, as the reply echoes it.
pub(super) fn model_of(request: &Value) -> &str {
    request
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("fake")
}

/// A reply's steps as either protocol writes them: frames sent at once, and tokens counted
/// against the script's [`FakeFailure::CutAfter`], so both protocols cut at the same token.
pub(super) struct StepWriter {
    steps: Vec<Step>,
    cut_after: Option<usize>,
    sent: usize,
}

impl StepWriter {
    /// A writer for `reply`, opening with `first`.
    pub(super) fn new(reply: &FakeReply, first: String) -> Self {
        let cut_after = match reply.failure {
            Some(FakeFailure::CutAfter(n)) => Some(n),
            _ => None,
        };
        StepWriter {
            steps: vec![Step::Frame(first)],
            cut_after,
            sent: 0,
        }
    }

    /// A frame sent at once.
    pub(super) fn frame(&mut self, frame: String) {
        self.steps.push(Step::Frame(frame));
    }

    /// A token sent after the scripted delay; `false` when the script cut the stream here
    /// instead (the caller then stops writing).
    pub(super) fn token(&mut self, frame: String) -> bool {
        if self.cut_after == Some(self.sent) {
            self.steps.push(Step::Cut);
            return false;
        }
        self.steps.push(Step::Token(frame));
        self.sent += 1;
        true
    }

    /// Tokens sent so far (the usage figures).
    pub(super) fn sent(&self) -> usize {
        self.sent
    }

    /// After the tokens: `true`, with the stream cut, when the script cuts it past its last
    /// token; the caller then stops writing.
    pub(super) fn cut_at_end(&mut self) -> bool {
        if self.cut_after.is_some() {
            self.steps.push(Step::Cut);
        }
        self.cut_after.is_some()
    }

    /// The steps written.
    pub(super) fn finish(self) -> Vec<Step> {
        self.steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_after_the_first_sentence_falls_before_the_second_sentence() {
        let second = Duration::from_secs(1);
        let reply = FakeReply::text("First sentence is here. Second one.")
            .with_pause_after_first_sentence(second);
        assert_eq!(reply.tokens[4], "Second ");
        assert_eq!(reply.pause, Some((4, second)));
        let one = FakeReply::text("Only one sentence.").with_pause_after_first_sentence(second);
        assert_eq!(one.pause, None, "no pause after the last token");
    }
}
