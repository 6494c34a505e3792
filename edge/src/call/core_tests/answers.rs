//! What the simulated call's fake provider side answers: transcripts, completions, speech and
//! tool results, each after a chosen simulated delay.

use std::collections::VecDeque;
use std::time::Duration;

use crate::llm::{LlmError, LlmEvent};

/// What the fake provider side answers.
pub(super) struct Answers {
    /// Transcripts, one per transcription request, in order (`Err`: the recogniser failed).
    pub transcripts: VecDeque<Result<String, String>>,
    pub stt_delay: Duration,
    /// Completions, one per request: events with the delay before each.
    pub completions: VecDeque<Vec<(Duration, Result<LlmEvent, LlmError>)>>,
    /// Audio per sentence and the delay before it; `tts_error` fails every sentence after
    /// the audio (as the shell's offline fallback would have spoken it).
    pub speech_ms: u64,
    pub tts_delay: Duration,
    pub tts_error: Option<String>,
    /// Tool results by name: delay and result.
    pub tools: Vec<(String, Duration, Result<String, String>)>,
}

impl Default for Answers {
    fn default() -> Self {
        Self {
            transcripts: VecDeque::new(),
            stt_delay: Duration::from_millis(100),
            completions: VecDeque::new(),
            speech_ms: 600,
            tts_delay: Duration::from_millis(50),
            tts_error: None,
            tools: Vec::new(),
        }
    }
}

impl Answers {
    /// One turn: the caller is heard saying `heard`, and the model says `reply`, its first word
    /// `first` ms after the request.
    pub(super) fn turn(&mut self, heard: &str, first: u64, reply: &str) {
        self.transcripts.push_back(Ok(heard.into()));
        self.completions.push_back(says(first, reply));
    }
}

/// A completion that streams `text` word by word after `first` and ends.
pub(super) fn says(first: u64, text: &str) -> Vec<(Duration, Result<LlmEvent, LlmError>)> {
    let mut events: Vec<_> = text
        .split_inclusive(' ')
        .enumerate()
        .map(|(i, w)| {
            let wait = if i == 0 { first } else { 10 };
            (Duration::from_millis(wait), Ok(LlmEvent::Token(w.into())))
        })
        .collect();
    events.push((
        Duration::from_millis(10),
        Ok(crate::call::conversation::tests::done()),
    ));
    events
}
