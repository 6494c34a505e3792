//! The conversation core driven by hand with simulated time: no sockets, no providers.

use super::*;
use crate::llm::{FinishReason, ToolDefinition};

const MS: Duration = Duration::from_millis(1);

pub(super) fn config() -> ConversationConfig {
    ConversationConfig {
        system_prompt: "You are the desk of Acme.".into(),
        first_message: Some("Hello.".into()),
        model: "m".into(),
        temperature: None,
        max_tokens: None,
        tools: vec![ToolDefinition {
            name: "book".into(),
            description: "books".into(),
            parameters: serde_json::json!({"type": "object"}),
        }],
        reprompt_after: Some(Duration::from_secs(8)),
        end_call_phrases: vec!["goodbye".into()],
        sentence_flush: Duration::from_millis(150),
        filler_after: Duration::from_millis(1500),
        max_tool_rounds: 4,
        transfer_destinations: Vec::new(),
        sends_digits: true,
        lines: Lines::default(),
        exits: Vec::new(),
        llm_redactor: Default::default(),
    }
}

/// A conversation plus a fake shell: plays whatever is spoken as 1 000 samples per sentence.
pub(super) struct Harness {
    pub(super) c: Conversation,
    t0: Instant,
    actions: Vec<Action>,
}

impl Harness {
    pub(super) fn new(config: ConversationConfig) -> Self {
        let t0 = Instant::now();
        let mut c = Conversation::new(t0, config);
        c.start(t0);
        let mut h = Self {
            c,
            t0,
            actions: Vec::new(),
        };
        h.drain();
        h
    }

    pub(super) fn at(&self, ms: u64) -> Instant {
        self.t0 + MS * u32::try_from(ms).unwrap()
    }

    pub(super) fn drain(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        while let Some(a) = self.c.poll_action() {
            out.push(a);
        }
        self.actions.extend(out.clone());
        out
    }

    pub(super) fn events(&mut self) -> Vec<ConversationEvent> {
        std::iter::from_fn(|| self.c.poll_event()).collect()
    }

    /// Synthesizes every `Speak` in `actions`: 1 000 samples each, done.
    pub(super) fn synthesize(&mut self, ms: u64, actions: &[Action]) {
        for a in actions {
            if let Action::Speak {
                reply, sentence, ..
            } = a
            {
                assert!(self.c.on_audio(self.at(ms), *reply, *sentence, 1000));
                self.c.on_speech_done(self.at(ms), *reply, *sentence, None);
            }
        }
    }

    /// A caller turn from `ms` to `ms + 1000` (end of turn 500 ms later) with `text`.
    pub(super) fn caller_says(&mut self, ms: u64, text: &str) -> Vec<Action> {
        self.c.on_turn(self.at(ms), TurnEvent::SpeechStarted);
        let turn = self.end_turn(ms + 1500, 1000, 500);
        self.c
            .on_transcript(self.at(ms + 1600), turn, Ok(text.into()));
        self.drain()
    }

    /// The caller's turn closes at `ms` after `speech_ms` of speech and `silence_ms` of silence:
    /// the last action must be the transcription it asks for, whose turn this returns.
    pub(super) fn end_turn(&mut self, ms: u64, speech_ms: u32, silence_ms: u32) -> u64 {
        self.c.on_turn(
            self.at(ms),
            TurnEvent::EndOfTurn {
                speech_ms,
                silence_ms,
            },
        );
        match self.drain().as_slice() {
            [.., Action::Transcribe { turn }] => *turn,
            other => panic!("expected a transcription, got {other:?}"),
        }
    }

    /// The caller says `text` at 0 ms, and the model answers its completion with `events` at
    /// 1700 ms: what the conversation does then.
    pub(super) fn model_answers(&mut self, text: &str, events: Vec<LlmEvent>) -> Vec<Action> {
        let (_, stream, _) = completion(&self.caller_says(0, text));
        self.stream(1700, stream, events)
    }

    /// Plays `speak` out: synthesized at 1710 ms, half played at 1800 ms (nothing may happen
    /// while the agent is still speaking), all played at 1900 ms; what follows the last words.
    pub(super) fn play_out(&mut self, speak: &[Action]) -> Vec<Action> {
        self.synthesize(1710, speak);
        self.c.on_played(self.at(1800), 500);
        assert!(self.drain().is_empty(), "still speaking");
        self.c.on_played(self.at(1900), 1000);
        self.drain()
    }

    /// The latency record of the turn just played; the test fails when there is none.
    pub(super) fn latency(&mut self) -> TurnLatency {
        self.events()
            .into_iter()
            .find_map(|e| match e {
                ConversationEvent::Latency(l) => Some(l),
                _ => None,
            })
            .expect("latency")
    }

    /// A harness whose agent says nothing first: the caller speaks first.
    pub(super) fn without_greeting() -> Self {
        Self::new(ConversationConfig {
            first_message: None,
            ..config()
        })
    }

    pub(super) fn stream(&mut self, ms: u64, stream: u64, events: Vec<LlmEvent>) -> Vec<Action> {
        for e in events {
            self.c.on_llm(self.at(ms), stream, Ok(e));
        }
        self.drain()
    }
}

pub(crate) fn done() -> LlmEvent {
    LlmEvent::Done {
        finish_reason: FinishReason::Stop,
        usage: None,
    }
}

pub(crate) fn token(t: &str) -> LlmEvent {
    LlmEvent::Token(t.into())
}

pub(super) fn completion(actions: &[Action]) -> (u64, u64, ChatRequest) {
    actions
        .iter()
        .find_map(|a| match a {
            Action::Complete {
                reply,
                stream,
                request,
            } => Some((*reply, *stream, request.clone())),
            _ => None,
        })
        .expect("a completion request")
}

pub(super) fn spoken(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::Speak { text, .. } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn greeting_is_spoken_then_a_turn_is_answered_with_the_history() {
    let mut h = Harness::new(config());
    let greeting = h.actions.clone();
    assert_eq!(spoken(&greeting), ["Hello."]);
    h.synthesize(10, &greeting);
    h.c.on_played(h.at(200), 1000);
    assert!(!h.c.replying());

    let actions = h.caller_says(1000, "What are your hours?");
    let (_, stream, request) = completion(&actions);
    assert_eq!(
        request.messages,
        [
            ChatMessage::system("You are the desk of Acme."),
            ChatMessage::assistant("Hello."),
            ChatMessage::user("What are your hours?"),
        ]
    );
    assert!(request.tools.iter().any(|t| t.name == END_CALL_TOOL));
    let spoken_now = h.stream(
        2700,
        stream,
        vec![token("We open at nine. "), token("We close")],
    );
    assert_eq!(spoken(&spoken_now), ["We open at nine."]);
    let rest = h.stream(2710, stream, vec![token(" at five."), done()]);
    assert_eq!(spoken(&rest), ["We close at five."]);
    h.synthesize(2720, &spoken_now);
    h.synthesize(2730, &rest);
    h.c.on_played(h.at(2740), 1160);
    h.c.on_played(h.at(3000), 3000);
    assert!(!h.c.replying());
    assert_eq!(
        h.c.history().last(),
        Some(&ChatMessage::assistant(
            "We open at nine. We close at five."
        ))
    );
    let latency = h.latency();
    // Speech ended at 2000 ms; decided 2500, transcript 2600, token 2700, audio 2720, RTP 2740.
    assert_eq!(
        latency,
        TurnLatency {
            endpointing_ms: 500,
            stt_ms: Some(600),
            llm_first_token_ms: Some(700),
            tts_first_byte_ms: Some(720),
            first_rtp_ms: Some(740),
        }
    );
}

#[test]
fn barge_in_keeps_only_what_the_caller_heard() {
    let mut h = Harness::without_greeting();
    let actions = h.caller_says(0, "Tell me everything.");
    let (reply, stream, _) = completion(&actions);
    let speak = h.stream(
        1700,
        stream,
        vec![
            token("First sentence here. "),
            token("Second one has six words. "),
            token("Third never heard."),
            done(),
        ],
    );
    h.synthesize(1710, &speak);
    // 1 000 samples each: the caller heard the first and half of the second.
    h.c.on_played(h.at(1800), 1500);
    h.c.on_turn(h.at(1900), TurnEvent::BargeIn);
    let after = h.drain();
    assert_eq!(after, [Action::CancelReply { reply }]);
    assert_eq!(
        h.c.history().last(),
        Some(&ChatMessage::assistant("First sentence here. Second one—"))
    );
    let events = h.events();
    assert!(events.contains(&ConversationEvent::BargeIn {
        heard_chars: 32,
        planned_chars: 65
    }));
    assert!(events.iter().any(|e| matches!(
        e,
        ConversationEvent::Transcript {
            role: "agent",
            interrupted: true,
            ..
        }
    )));
    // Stale audio and tokens of the cancelled reply are ignored.
    h.c.on_llm(h.at(1910), stream, Ok(token("late")));
    assert!(h.drain().is_empty());
    // The next turn is answered with the truncated history.
    let next = h.caller_says(2000, "Stop.");
    let (_, _, request) = completion(&next);
    assert_eq!(
        request.messages[request.messages.len() - 2..],
        [
            ChatMessage::assistant("First sentence here. Second one—"),
            ChatMessage::user("Stop."),
        ]
    );
}

#[test]
fn a_tool_call_round_trips_with_a_filler_when_slow() {
    let mut h = Harness::without_greeting();
    let actions = h.caller_says(0, "Book me for Monday.");
    let (reply, stream, _) = completion(&actions);
    let args = serde_json::json!({"day": "monday"});
    let run = h.stream(
        1700,
        stream,
        vec![
            token("Let me check. "),
            LlmEvent::ToolCall {
                id: "c1".into(),
                name: "book".into(),
                arguments: args.clone(),
            },
            LlmEvent::Done {
                finish_reason: FinishReason::ToolCalls,
                usage: None,
            },
        ],
    );
    assert_eq!(spoken(&run), ["Let me check."]);
    assert!(run
        .iter()
        .any(|a| matches!(a, Action::RunTool { call, .. } if call.name == "book")));
    h.synthesize(1710, &run);
    h.c.on_played(h.at(1800), 1000);
    // Slow tool: the filler comes 1.5 s after the call.
    assert_eq!(h.c.poll_timeout(), Some(h.at(3200)));
    h.c.handle_timeout(h.at(3200));
    let filler = h.drain();
    assert_eq!(spoken(&filler), ["One moment, please."]);
    h.synthesize(3210, &filler);
    h.c.on_tool_result(h.at(3500), reply, "c1", Ok(r#"{"booked":true}"#.into()));
    let (_, stream2, request) = completion(&h.drain());
    let n = request.messages.len();
    assert_eq!(
        request.messages[n - 2..],
        [
            ChatMessage::Assistant {
                content: "Let me check.".into(),
                tool_calls: vec![ToolCall {
                    id: "c1".into(),
                    name: "book".into(),
                    arguments: args
                }],
            },
            ChatMessage::tool_result("c1", r#"{"booked":true}"#),
        ]
    );
    let last = h.stream(3600, stream2, vec![token("You are booked."), done()]);
    h.synthesize(3610, &last);
    h.c.on_played(h.at(5000), 3000);
    assert!(!h.c.replying());
    assert_eq!(
        h.c.history().last(),
        Some(&ChatMessage::assistant("You are booked."))
    );
    assert!(h.events().iter().any(|e| matches!(
        e,
        ConversationEvent::Tool { name, error: None, duration_ms: 1800 } if name == "book"
    )));
}

#[test]
fn a_failing_model_is_answered_with_an_apology_and_the_call_goes_on() {
    let mut h = Harness::without_greeting();
    let actions = h.caller_says(0, "Hello?");
    let (_, stream, _) = completion(&actions);
    h.c.on_llm(
        h.at(1700),
        stream,
        Err(LlmError::Status {
            provider: "openai",
            status: 500,
            body: "boom".into(),
        }),
    );
    let apology = h.drain();
    assert_eq!(spoken(&apology), [Lines::default().apology]);
    assert!(h
        .events()
        .iter()
        .any(|e| matches!(e, ConversationEvent::ProviderFailed { stage: "llm", .. })));
    h.synthesize(1710, &apology);
    h.c.on_played(h.at(2000), 1000);
    assert!(!h.c.replying());
    assert!(!h.actions.iter().any(|a| matches!(a, Action::Hangup { .. })));
    // A failing STT is apologised for too.
    h.c.on_turn(h.at(3000), TurnEvent::SpeechStarted);
    let turn = h.end_turn(4000, 500, 500);
    h.c.on_transcript(h.at(4100), turn, Err("stt down".into()));
    assert_eq!(spoken(&h.drain()), [Lines::default().apology]);
    // A recogniser that is not installed is named, to the caller and in the record.
    h.c.on_turn(h.at(6000), TurnEvent::SpeechStarted);
    let turn = h.end_turn(7000, 500, 500);
    let missing = crate::speech::SpeechError::MissingPackage {
        program: "pocketsphinx_continuous".into(),
        package: "pocketsphinx",
    };
    h.c.on_transcript(h.at(7100), turn, Err(missing.into()));
    let said = spoken(&h.drain());
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].contains("speech recogniser is not installed") && said[0].contains("pocketsphinx"),
        "{said:?}"
    );
    let recorded = std::iter::from_fn(|| h.c.poll_event()).any(|e| {
        matches!(e, ConversationEvent::ProviderFailed { stage: "stt", error }
            if error.contains("install the Debian package `pocketsphinx`"))
    });
    assert!(recorded, "a call.provider_failed names the package");
}

#[test]
fn end_call_tool_and_phrases_hang_up_after_the_last_words() {
    let mut h = Harness::without_greeting();
    let speak = h.model_answers(
        "Bye.",
        vec![
            token("Thanks for calling!"),
            LlmEvent::ToolCall {
                id: "e".into(),
                name: END_CALL_TOOL.into(),
                arguments: serde_json::json!({}),
            },
            done(),
        ],
    );
    assert!(!speak.iter().any(|a| matches!(a, Action::Hangup { .. })));
    assert_eq!(
        h.play_out(&speak),
        [Action::Hangup {
            reason: "end_call_tool"
        }]
    );

    let mut h = Harness::without_greeting();
    let speak = h.model_answers("Thanks.", vec![token("Goodbye!"), done()]);
    assert_eq!(
        h.play_out(&speak),
        [Action::Hangup {
            reason: "end_call_phrase"
        }]
    );
}

#[test]
fn a_silent_caller_is_reprompted_then_hung_up_on() {
    let mut h = Harness::new(config());
    let greeting = h.actions.clone();
    h.synthesize(10, &greeting);
    h.c.on_played(h.at(1000), 1000);
    let mut played = 1000;
    let mut now = 1000;
    let mut lines = Vec::new();
    for _ in 0..3 {
        let at = h.c.poll_timeout().expect("reprompt armed");
        assert_eq!(at, h.at(now + 8000));
        now += 8000;
        h.c.handle_timeout(at);
        let speak = h.drain();
        lines.extend(spoken(&speak));
        h.synthesize(now, &speak);
        played += 1000;
        h.c.on_played(h.at(now + 500), played);
        now += 500;
    }
    let l = Lines::default();
    assert_eq!(lines, [l.reprompt.clone(), l.reprompt, l.silence_goodbye]);
    assert_eq!(h.drain(), [Action::Hangup { reason: "silence" }]);
}

#[test]
fn speech_before_the_answer_is_audible_cancels_it_and_merges_the_turns() {
    let mut h = Harness::without_greeting();
    let (reply, _, _) = completion(&h.caller_says(0, "I want to"));
    h.c.on_turn(h.at(1700), TurnEvent::SpeechStarted);
    assert_eq!(h.drain(), [Action::CancelReply { reply }]);
    let turn = h.end_turn(2700, 500, 500);
    h.c.on_transcript(h.at(2800), turn, Ok("book a table".into()));
    let (_, _, request) = completion(&h.drain());
    assert_eq!(
        request.messages.last(),
        Some(&ChatMessage::user("I want to book a table"))
    );
}

#[test]
fn a_workflow_exit_is_offered_as_a_tool_and_ends_the_conversation_after_the_last_words() {
    let mut h = Harness::new(ConversationConfig {
        first_message: None,
        exits: vec!["wants to speak to a person".into(), "is done".into()],
        ..config()
    });
    let (_, stream, request) = completion(&h.caller_says(0, "A human, please."));
    let tool = request
        .tools
        .iter()
        .find(|t| t.name == EXIT_TOOL)
        .expect("the exit tool is offered");
    assert!(tool
        .description
        .contains("0: the caller wants to speak to a person"));
    let speak = h.stream(
        1700,
        stream,
        vec![
            token("Let me get someone."),
            LlmEvent::ToolCall {
                id: "x".into(),
                name: EXIT_TOOL.into(),
                arguments: serde_json::json!({"exit": 0}),
            },
            done(),
        ],
    );
    assert_eq!(h.c.exit_requested(), Some(0));
    assert_eq!(
        h.play_out(&speak),
        [Action::Hangup {
            reason: "workflow_exit"
        }]
    );
}

#[test]
fn without_exits_the_exit_tool_is_neither_offered_nor_obeyed() {
    let mut h = Harness::without_greeting();
    let (_, stream, request) = completion(&h.caller_says(0, "Hi."));
    assert!(!request.tools.iter().any(|t| t.name == EXIT_TOOL));
    h.stream(
        1700,
        stream,
        vec![
            LlmEvent::ToolCall {
                id: "x".into(),
                name: EXIT_TOOL.into(),
                arguments: serde_json::json!({"exit": 0}),
            },
            done(),
        ],
    );
    assert_eq!(h.c.exit_requested(), None);
}

#[test]
fn a_turn_ended_early_by_endpointing_dates_the_speech_by_its_own_silence() {
    let mut h = Harness::new(config());
    let greeting = h.actions.clone();
    h.synthesize(10, &greeting);
    h.c.on_played(h.at(200), 1000);
    h.c.on_turn(h.at(1000), TurnEvent::SpeechStarted);
    // Speech-to-text's endpointing closed the turn 120 ms after the last word.
    let turn = h.end_turn(2120, 1000, 120);
    h.c.on_transcript(h.at(2200), turn, Ok("Hi.".into()));
    let (_, stream, _) = completion(&h.drain());
    let said = h.stream(2300, stream, vec![token("Hello again."), done()]);
    h.synthesize(2310, &said);
    h.c.on_played(h.at(2320), 2000);
    let latency = h.latency();
    assert_eq!(latency.endpointing_ms, 120);
    assert_eq!(latency.first_rtp_ms, Some(320));
}
