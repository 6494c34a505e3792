//! What `freya call` prints while the call goes on, so a person sees the conversation as it
//! happens: the caller's line when it starts speaking, the voice-to-voice latency as soon as the
//! agent answers, the barge-in reaction when the caller cut in, and each agent line once the
//! agent's turn is over. The [`Narrator`] turns the call's [`ConversationEvent`]s into those
//! lines without I/O; [`narrate`] is the shell that transcribes each agent turn with the local
//! recogniser in a task of its own, off the call's media path, and prints every line in the
//! order the conversation had them.

use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;

use freya_edge::media::frame::SampleRate;
use freya_edge::speech::stt::local::LocalStt;
use freya_edge::speech::SpeechToText;
use tokio::sync::mpsc;

use crate::uac::{AudioTap, ConversationEvent};

/// One line of the narration.
#[derive(Debug, Clone, PartialEq)]
pub enum Line {
    /// Printed as it is.
    Text(String),
    /// An agent turn: `header`, then what the recogniser makes of `audio` (sample positions in
    /// the agent's received audio).
    Agent {
        /// `agent (turn N, D s)`.
        header: String,
        /// The turn's samples in the received audio.
        audio: Range<usize>,
    },
}

/// Turns the call's events into lines.
#[derive(Debug, Clone)]
pub struct Narrator {
    /// What the caller says in each turn, as printed: `"the --say text"` or the `--wav` file.
    labels: Vec<String>,
    /// The agent turn under way, and where its audio starts.
    open_agent_turn: Option<(usize, usize)>,
}

impl Narrator {
    /// A narrator for a caller whose turns print as `labels`.
    pub fn new(labels: Vec<String>) -> Self {
        Self {
            labels,
            open_agent_turn: None,
        }
    }

    /// The line `event` prints, if any.
    pub fn line(&mut self, event: &ConversationEvent) -> Option<Line> {
        let line = match event {
            ConversationEvent::CallerTurnStarted { turn, over_far_end } => {
                let said = self.labels.get(*turn).map_or("(audio)", String::as_str);
                let over = if *over_far_end {
                    ", over the agent"
                } else {
                    ""
                };
                Line::Text(format!("you (turn {}{over}): {said}", turn + 1))
            }
            ConversationEvent::Answered { v2v_ms, .. } => Line::Text(format!(
                "  the agent answered {} after you stopped",
                seconds(*v2v_ms)
            )),
            ConversationEvent::BargeIn { reaction_ms, .. } => Line::Text(format!(
                "  the agent went quiet {} after you cut in",
                seconds(*reaction_ms)
            )),
            ConversationEvent::FarEndTurnStarted { turn, audio_from } => {
                self.open_agent_turn = Some((*turn, *audio_from));
                return None;
            }
            ConversationEvent::FarEndTurnEnded {
                turn,
                spoke_ms,
                audio,
            } => {
                self.open_agent_turn = None;
                Line::Agent {
                    header: format!("agent (turn {}, {})", turn + 1, seconds(*spoke_ms)),
                    audio: audio.clone(),
                }
            }
        };
        Some(line)
    }

    /// The call is over, with `heard` samples received: the agent turn still under way, if any.
    pub fn finish(&mut self, heard: usize) -> Option<Line> {
        let (turn, from) = self.open_agent_turn.take()?;
        Some(Line::Agent {
            header: format!("agent (turn {}, until the hang-up)", turn + 1),
            audio: from..heard.max(from),
        })
    }
}

/// `1840.0` as `1.84 s`.
fn seconds(ms: f64) -> String {
    format!("{:.2} s", ms / 1000.0)
}

/// An agent line with what the recogniser made of it: `None` without a recogniser.
pub fn agent_line(header: &str, text: Option<Result<String, String>>) -> String {
    match text {
        None => header.to_owned(),
        Some(Ok(text)) if text.trim().is_empty() => format!("{header}: (nothing recognised)"),
        Some(Ok(text)) => format!("{header}: \"{}\"", text.trim()),
        Some(Err(error)) => format!("{header}: (not transcribed: {error})"),
    }
}

/// A line to print once it is ready.
type Pending = Pin<Box<dyn Future<Output = String> + Send>>;

/// Prints the conversation from `events` until the call ends (every sender is dropped), each
/// agent turn transcribed from `audio` by `stt` when there is one; returns once the last line is
/// printed.
pub async fn narrate(
    mut events: mpsc::Receiver<ConversationEvent>,
    audio: AudioTap,
    labels: Vec<String>,
    stt: Option<Arc<LocalStt>>,
) {
    // Lines wait here in conversation order while their transcriptions run: a later line is
    // never printed before an agent line still being recognised.
    let (lines, mut ready) = mpsc::unbounded_channel::<Pending>();
    let printer = tokio::spawn(async move {
        while let Some(line) = ready.recv().await {
            println!("{}", line.await);
        }
    });
    let mut narrator = Narrator::new(labels);
    while let Some(event) = events.recv().await {
        if let Some(line) = narrator.line(&event) {
            let _ = lines.send(pending(line, &audio, stt.as_ref()));
        }
    }
    let heard = audio.lock().map(|a| a.len()).unwrap_or(0);
    if let Some(line) = narrator.finish(heard) {
        let _ = lines.send(pending(line, &audio, stt.as_ref()));
    }
    drop(lines);
    let _ = printer.await;
}

/// `line`, its transcription started now in a task of its own.
fn pending(line: Line, audio: &AudioTap, stt: Option<&Arc<LocalStt>>) -> Pending {
    let (header, range) = match line {
        Line::Text(text) => return Box::pin(std::future::ready(text)),
        Line::Agent { header, audio } => (header, audio),
    };
    let Some(stt) = stt.cloned() else {
        return Box::pin(std::future::ready(agent_line(&header, None)));
    };
    let samples: Vec<i16> = audio
        .lock()
        .map(|a| a.get(range).map(<[i16]>::to_vec).unwrap_or_default())
        .unwrap_or_default();
    let transcription = tokio::spawn(async move {
        stt.transcribe(SampleRate::Hz8000, &samples)
            .await
            .map(|t| t.text)
            .map_err(|e| e.to_string())
    });
    Box::pin(async move {
        let text = transcription.await.unwrap_or_else(|e| Err(e.to_string()));
        agent_line(&header, Some(text))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(line: Option<Line>) -> String {
        match line {
            Some(Line::Text(t)) => t,
            other => panic!("not a text line: {other:?}"),
        }
    }

    #[test]
    fn caller_lines_name_the_turn_and_say_when_they_cut_in() {
        let mut n = Narrator::new(vec!["\"Hello\"".into(), "(bye.wav)".into()]);
        let line = n.line(&ConversationEvent::CallerTurnStarted {
            turn: 0,
            over_far_end: false,
        });
        assert_eq!(text(line), "you (turn 1): \"Hello\"");
        let line = n.line(&ConversationEvent::CallerTurnStarted {
            turn: 1,
            over_far_end: true,
        });
        assert_eq!(text(line), "you (turn 2, over the agent): (bye.wav)");
    }

    #[test]
    fn latencies_are_printed_in_seconds() {
        let mut n = Narrator::new(Vec::new());
        let line = n.line(&ConversationEvent::Answered {
            turn: 0,
            v2v_ms: 1_840.0,
        });
        assert_eq!(text(line), "  the agent answered 1.84 s after you stopped");
        let line = n.line(&ConversationEvent::BargeIn {
            turn: 1,
            reaction_ms: 420.0,
        });
        assert_eq!(text(line), "  the agent went quiet 0.42 s after you cut in");
    }

    #[test]
    fn an_agent_turn_is_printed_when_it_is_over_with_its_audio() {
        let mut n = Narrator::new(Vec::new());
        assert_eq!(
            n.line(&ConversationEvent::FarEndTurnStarted {
                turn: 1,
                audio_from: 800,
            }),
            None
        );
        let line = n.line(&ConversationEvent::FarEndTurnEnded {
            turn: 1,
            spoke_ms: 1_840.0,
            audio: 800..24_000,
        });
        assert_eq!(
            line,
            Some(Line::Agent {
                header: "agent (turn 2, 1.84 s)".into(),
                audio: 800..24_000,
            })
        );
        assert_eq!(n.finish(30_000), None, "nothing left open");
    }

    #[test]
    fn an_agent_turn_under_way_at_the_hang_up_is_still_printed() {
        let mut n = Narrator::new(Vec::new());
        n.line(&ConversationEvent::FarEndTurnStarted {
            turn: 2,
            audio_from: 8_000,
        });
        assert_eq!(
            n.finish(12_000),
            Some(Line::Agent {
                header: "agent (turn 3, until the hang-up)".into(),
                audio: 8_000..12_000,
            })
        );
    }

    #[test]
    fn agent_lines_carry_the_recognised_text_when_there_is_a_recogniser() {
        let header = "agent (turn 2, 1.84 s)";
        assert_eq!(agent_line(header, None), header);
        assert_eq!(
            agent_line(header, Some(Ok(" we are open monday to friday ".into()))),
            "agent (turn 2, 1.84 s): \"we are open monday to friday\""
        );
        assert_eq!(
            agent_line(header, Some(Ok(String::new()))),
            "agent (turn 2, 1.84 s): (nothing recognised)"
        );
        assert_eq!(
            agent_line(header, Some(Err("decoder crashed".into()))),
            "agent (turn 2, 1.84 s): (not transcribed: decoder crashed)"
        );
    }
}
