//! What a streaming recogniser said about one caller turn, assembled from its events: the settled
//! words (every `Final`, in order), the latest provisional hypothesis, and whether the engine
//! signalled the end of the utterance. Sans-IO, so the live transcription task and the
//! stream-as-batch adapter share one definition of "the transcript" and it is tested without a
//! socket.

use super::{SttEvent, Transcript};

/// The transcript of one turn, built as the recogniser's events arrive.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TurnTranscript {
    finals: String,
    confidence: Option<f32>,
    last_interim: Option<String>,
    interims: u32,
    endpoints: u32,
}

impl TurnTranscript {
    /// An empty transcript.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one event; returns whether it is an endpointing signal (`speech_final` or
    /// `UtteranceEnd`) the turn detector may act on.
    pub fn on_event(&mut self, event: &SttEvent) -> bool {
        match event {
            SttEvent::Interim { text } => {
                self.interims += 1;
                self.last_interim = Some(text.trim().to_string());
            }
            SttEvent::Final {
                text, confidence, ..
            } => {
                let text = text.trim();
                if !text.is_empty() {
                    if !self.finals.is_empty() {
                        self.finals.push(' ');
                    }
                    self.finals.push_str(text);
                    self.confidence = confidence.or(self.confidence);
                }
            }
            SttEvent::SpeechStarted | SttEvent::UtteranceEnd => {}
        }
        let endpoint = event.is_endpoint();
        if endpoint {
            self.endpoints += 1;
        }
        endpoint
    }

    /// The settled words so far, space-joined.
    pub fn text(&self) -> &str {
        &self.finals
    }

    /// The most recent provisional hypothesis, if any came.
    pub fn last_interim(&self) -> Option<&str> {
        self.last_interim.as_deref()
    }

    /// Provisional hypotheses received.
    pub fn interims(&self) -> u32 {
        self.interims
    }

    /// Endpointing signals received.
    pub fn endpoints(&self) -> u32 {
        self.endpoints
    }

    /// The settled words as a [`Transcript`].
    pub fn into_transcript(self) -> Transcript {
        Transcript {
            text: self.finals,
            confidence: self.confidence,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fin(text: &str, speech_final: bool) -> SttEvent {
        SttEvent::Final {
            text: text.into(),
            speech_final,
            confidence: Some(0.9),
        }
    }

    #[test]
    fn finals_are_joined_and_interims_only_remembered() {
        let mut t = TurnTranscript::new();
        assert!(!t.on_event(&SttEvent::SpeechStarted));
        assert!(!t.on_event(&SttEvent::Interim {
            text: "what are".into()
        }));
        assert!(!t.on_event(&fin(" What are your ", false)));
        assert!(!t.on_event(&SttEvent::Interim {
            text: "opening".into()
        }));
        assert!(t.on_event(&fin("opening hours?", true)));
        assert!(
            !t.on_event(&fin("  ", false)),
            "an empty final adds nothing"
        );
        assert_eq!(t.text(), "What are your opening hours?");
        assert_eq!(t.last_interim(), Some("opening"));
        assert_eq!((t.interims(), t.endpoints()), (2, 1));
        let transcript = t.into_transcript();
        assert_eq!(transcript.text, "What are your opening hours?");
        assert_eq!(transcript.confidence, Some(0.9));
    }

    #[test]
    fn utterance_end_is_an_endpoint_and_a_turn_without_finals_is_empty() {
        let mut t = TurnTranscript::new();
        assert!(t.on_event(&SttEvent::UtteranceEnd));
        assert_eq!(t.endpoints(), 1);
        assert_eq!(t.last_interim(), None);
        assert_eq!(t.into_transcript(), Transcript::default());
    }
}
