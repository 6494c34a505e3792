//! The async work of one pipeline (one voice's providers) of a call: it carries out the
//! [`ProviderRequest`](super::provider_request::ProviderRequest)s the call's voice queued —
//! speech-to-text of an utterance, a streamed completion, sentence-by-sentence synthesis
//! resampled to 8 kHz, customer tools — each in a task of its own, and brings every result back
//! through one bounded channel as a [`PipelineInput`]. Producers wait when the channel is full
//! rather than drop: it carries the agent's audio and the transcript, and the call task drains it
//! every loop. [`Providers`](super::providers::Providers) owns one per open pipeline.
//!
//! A streaming recogniser (Deepgram, or the offline `local` one) hears the caller's turn live
//! instead ([`LiveStt`]): the call's voice opens it when the caller starts and feeds it every
//! frame; `Transcribe` then only closes the stream.
//!
//! Everything of one reply shares a [`CancellationToken`]; cancelling it (barge-in, hang-up)
//! drops the model stream, the synthesis stream and any tool request at once, which aborts their
//! HTTP requests. A failing voice falls back to the offline one for that sentence, so an outage of
//! the TTS provider is still heard as words.

use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, Span};

use super::live_stt::{LiveStt, LiveSttReport};
use super::media::FRAME_SAMPLES;
use crate::llm::{cancel_on, ChatRequest, LlmError, LlmEvent, ToolCall, ToolEndpoint};
use crate::media::frame::SampleRate;
use crate::metrics::ProviderMetrics;
use crate::speech::convert::RateConverter;
use crate::speech::{SttFailure, TextToSpeech};
use crate::voice::AgentVoice;

/// Results in flight back to the call task; producers wait when it is full.
const INPUT_QUEUE: usize = 256;

/// A result for the call's voice to hand to its [`Conversation`](super::conversation::Conversation).
#[derive(Debug)]
pub enum PipelineInput {
    /// Transcript of a caller turn.
    Transcript {
        /// Turn id.
        turn: u64,
        /// The words, or why there are none.
        result: Result<String, SttFailure>,
    },
    /// Live transcription's endpointing hints and records (streaming agents only).
    LiveStt(LiveSttReport),
    /// One item of a model stream.
    Llm {
        /// Stream id.
        stream: u64,
        /// The event or error.
        item: Result<LlmEvent, LlmError>,
    },
    /// Synthesized 8 kHz audio of a sentence.
    Audio {
        /// Reply id.
        reply: u64,
        /// Sentence id.
        sentence: u64,
        /// Samples at 8 kHz.
        samples: Vec<i16>,
    },
    /// A sentence's text went to the speech provider: `chars` characters are billed now,
    /// whether or not its audio is ever played.
    Synthesizing {
        /// Reply id.
        reply: u64,
        /// Sentence id.
        sentence: u64,
        /// Characters of the sentence's text.
        chars: u64,
    },
    /// A sentence's synthesis ended.
    SpeechDone {
        /// Reply id.
        reply: u64,
        /// Sentence id.
        sentence: u64,
        /// Why it failed, if it did.
        error: Option<String>,
    },
    /// A customer tool answered.
    Tool {
        /// Reply id.
        reply: u64,
        /// The model's call id.
        call_id: String,
        /// Its result text, or the error.
        result: Result<String, String>,
    },
}

/// A customer tool as the call runs it.
#[derive(Debug, Clone)]
pub struct ToolTarget {
    /// Name, URL and timeout.
    pub endpoint: ToolEndpoint,
}

/// The reply whose work is in flight.
struct CurrentReply {
    id: u64,
    cancel: CancellationToken,
    /// Sentences for this reply's speaker task, spoken in order.
    speaker: mpsc::UnboundedSender<(u64, String)>,
    /// The turn the reply belongs to: its model, synthesis and tool spans are children.
    turn: Span,
}

/// Runs a call's provider work.
pub(crate) struct Pipeline {
    voice: AgentVoice,
    call_id: String,
    tools: Arc<[ToolTarget]>,
    tx: mpsc::Sender<PipelineInput>,
    current: Option<CurrentReply>,
    /// Streams caller turns as they are spoken, when the agent's recogniser can.
    live: Option<LiveStt>,
    /// Cancels everything when the call ends.
    call: CancellationToken,
    /// The trace of the call's turns (see [`TurnSpans`]).
    turns: TurnSpans,
    /// Provider latency and errors, for `/metrics`.
    metrics: ProviderMetrics,
}

/// The `turn` spans of a call's trace, children of its `call` span: a turn opens when the
/// caller starts speaking (or, with a batch recogniser, when their utterance is transcribed;
/// or when the agent speaks first) and lasts until the next one opens, so its recognition,
/// model, synthesis and tool spans sit under it.
struct TurnSpans {
    /// The `call` span the pipeline was opened in.
    call: Span,
    current: Option<Span>,
    /// Whether the current turn already has its reply (a new utterance then opens a new turn).
    replied: bool,
    opened: u64,
}

impl TurnSpans {
    fn new() -> Self {
        Self {
            call: Span::current(),
            current: None,
            replied: false,
            opened: 0,
        }
    }

    /// Opens the next turn.
    fn open(&mut self) -> Span {
        self.opened += 1;
        let span = tracing::info_span!(parent: &self.call, "turn", turn = self.opened);
        self.current = Some(span.clone());
        self.replied = false;
        span
    }

    /// The turn a caller's utterance belongs to: the open one unless it was answered already.
    fn for_utterance(&mut self) -> Span {
        match &self.current {
            Some(span) if !self.replied => span.clone(),
            _ => self.open(),
        }
    }

    /// The turn a reply belongs to (a new one when the agent speaks first).
    fn for_reply(&mut self) -> Span {
        let span = match &self.current {
            Some(span) => span.clone(),
            None => self.open(),
        };
        self.replied = true;
        span
    }
}

impl Pipeline {
    /// A pipeline for call `call_id` with the agent's providers and tools, and the channel its
    /// results come back on; provider latency and errors are counted in `metrics`.
    pub(crate) fn new(
        voice: AgentVoice,
        call_id: String,
        tools: Vec<ToolTarget>,
        metrics: ProviderMetrics,
    ) -> (Self, mpsc::Receiver<PipelineInput>) {
        let (tx, rx) = mpsc::channel(INPUT_QUEUE);
        let call = CancellationToken::new();
        let live = voice
            .live_stt
            .clone()
            .map(|stt| LiveStt::new(stt, voice.stt.clone(), tx.clone(), call.clone()));
        let pipeline = Self {
            voice,
            call_id,
            tools: tools.into(),
            tx,
            current: None,
            live,
            call,
            turns: TurnSpans::new(),
            metrics,
        };
        (pipeline, rx)
    }

    /// The caller started live turn `live_turn`: with a streaming recogniser, opens its live
    /// session (a batch recogniser has nothing to do until the turn ends).
    pub(crate) fn begin_live_turn(&mut self, live_turn: u64) {
        let turn = self.turns.open();
        if let Some(live) = self.live.as_mut() {
            let stt =
                tracing::info_span!(parent: &turn, "stt", provider = live.provider(), live = true);
            live.begin(live_turn, stt);
        }
    }

    /// The next 20 ms of the caller's open turn, for live transcription.
    pub(crate) fn stream_caller_audio(&mut self, frame: &[i16; FRAME_SAMPLES]) {
        if let Some(live) = self.live.as_mut() {
            live.push(frame);
        }
    }

    /// Transcribes caller turn `turn`: closes the live session when one is open, else sends
    /// `samples` to the batch recogniser.
    pub(crate) fn transcribe(&mut self, turn: u64, samples: Vec<i16>) {
        let mut samples = samples;
        if let Some(live) = self.live.as_mut() {
            match live.end(turn, samples) {
                Ok(()) => return,
                Err(back) => samples = back,
            }
        }
        let stt = self.voice.stt.clone();
        let tx = self.tx.clone();
        let cancel = self.call.clone();
        let turn_span = self.turns.for_utterance();
        let span =
            tracing::info_span!(parent: &turn_span, "stt", provider = stt.name(), live = false);
        let metrics = self.metrics.clone();
        let run = async move {
            let started = Instant::now();
            let result = tokio::select! {
                _ = cancel.cancelled() => return,
                r = stt.transcribe(SampleRate::Hz8000, &samples) => r,
            };
            metrics.observe("stt", stt.name(), started.elapsed(), result.is_ok());
            let result = result.map(|t| t.text).map_err(SttFailure::from);
            let _ = tx.send(PipelineInput::Transcript { turn, result }).await;
        };
        tokio::spawn(run.instrument(span));
    }

    /// Streams a completion for `reply`, its events tagged with `stream`.
    pub(crate) fn complete(&mut self, reply: u64, stream: u64, request: ChatRequest) {
        let current = self.reply(reply);
        let cancel = current.cancel.clone();
        let span = tracing::info_span!(parent: &current.turn, "llm", stream);
        let provider = self.voice.llm.provider();
        let mut events = cancel_on(self.voice.llm.stream_chat(request), cancel);
        let tx = self.tx.clone();
        let metrics = self.metrics.clone();
        let run = async move {
            let started = Instant::now();
            let mut first = true;
            while let Some(item) = events.next().await {
                // Latency to the first event; an error at any point counts (not a barge-in's).
                match &item {
                    Err(LlmError::Cancelled) => {}
                    Err(_) => metrics.observe("llm", provider, started.elapsed(), false),
                    Ok(_) if first => metrics.observe("llm", provider, started.elapsed(), true),
                    Ok(_) => {}
                }
                first = false;
                let last = matches!(item, Ok(LlmEvent::Done { .. }) | Err(_));
                if tx.send(PipelineInput::Llm { stream, item }).await.is_err() || last {
                    return;
                }
            }
            let item = Err(LlmError::Interrupted {
                provider: "pipeline",
                reason: "the reply ended without Done".into(),
            });
            let _ = tx.send(PipelineInput::Llm { stream, item }).await;
        };
        tokio::spawn(run.instrument(span));
    }

    /// Queues one sentence of `reply` for its speaker, after the reply's earlier ones.
    pub(crate) fn speak(&mut self, reply: u64, sentence: u64, text: String) {
        let _ = self.reply(reply).speaker.send((sentence, text));
    }

    /// Runs a customer tool for `reply` (dropped with the reply).
    pub(crate) fn tool(&mut self, reply: u64, call: ToolCall) {
        let current = self.reply(reply);
        let cancel = current.cancel.clone();
        let span = tracing::info_span!(parent: &current.turn, "tool", name = %call.name);
        self.run_tool(reply, call, cancel, span);
    }

    /// Drops everything of `reply` (barge-in).
    pub(crate) fn cancel_reply(&mut self, reply: u64) {
        if self.current.as_ref().is_some_and(|c| c.id == reply) {
            if let Some(current) = self.current.take() {
                current.cancel.cancel();
            }
        }
    }

    /// Stops all provider work (the call is over).
    pub(crate) fn shutdown(&mut self) {
        self.call.cancel();
        if let Some(current) = self.current.take() {
            current.cancel.cancel();
        }
    }

    /// The in-flight work of `reply`, started (with its speaker task) on first use.
    fn reply(&mut self, reply: u64) -> &CurrentReply {
        if self.current.as_ref().is_none_or(|c| c.id != reply) {
            if let Some(old) = self.current.take() {
                old.cancel.cancel();
            }
            let cancel = self.call.child_token();
            let (speaker, sentences) = mpsc::unbounded_channel();
            let turn = self.turns.for_reply();
            tokio::spawn(speak(
                Speaker {
                    reply,
                    tts: self.voice.tts.clone(),
                    fallback: self.voice.tts_fallback.clone(),
                    turn: turn.clone(),
                    metrics: self.metrics.clone(),
                },
                sentences,
                self.tx.clone(),
                cancel.clone(),
            ));
            self.current = Some(CurrentReply {
                id: reply,
                cancel,
                speaker,
                turn,
            });
        }
        // Just set above when it was absent.
        self.current.as_ref().expect("current reply")
    }

    fn run_tool(&self, reply: u64, call: ToolCall, cancel: CancellationToken, span: Span) {
        let runner = self.voice.tools.clone();
        let tx = self.tx.clone();
        let call_id = self.call_id.clone();
        let metrics = self.metrics.clone();
        let target = self
            .tools
            .iter()
            .find(|t| t.endpoint.name == call.name)
            .cloned();
        let run = async move {
            let started = Instant::now();
            let result = match target {
                None => Err(format!("no tool named `{}`", call.name)),
                Some(target) => tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = runner.run(&target.endpoint, &call_id, &call.arguments) => {
                        r.map(|o| o.to_model_content()).map_err(|e| e.to_string())
                    }
                },
            };
            // Customer tools are one label: their names are the customer's, not a fixed set.
            metrics.observe("tool", "tool", started.elapsed(), result.is_ok());
            let _ = tx
                .send(PipelineInput::Tool {
                    reply,
                    call_id: call.id,
                    result,
                })
                .await;
        };
        tokio::spawn(run.instrument(span));
    }
}

/// Who speaks one reply: its voices, and the turn its `tts` spans belong to.
struct Speaker {
    reply: u64,
    tts: Arc<dyn TextToSpeech>,
    fallback: Option<Arc<dyn TextToSpeech>>,
    turn: Span,
    metrics: ProviderMetrics,
}

/// Speaks one reply's sentences in order, each resampled to 8 kHz as its audio arrives.
async fn speak(
    speaker: Speaker,
    mut sentences: mpsc::UnboundedReceiver<(u64, String)>,
    tx: mpsc::Sender<PipelineInput>,
    cancel: CancellationToken,
) {
    let Speaker {
        reply,
        tts,
        fallback,
        turn,
        metrics,
    } = speaker;
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => return,
            next = sentences.recv() => next,
        };
        let Some((sentence, text)) = next else { return };
        // Counted once per sentence, as it goes to the provider (not again for the offline
        // fallback, which bills nothing).
        let chars = text.chars().count() as u64;
        let synthesizing = PipelineInput::Synthesizing {
            reply,
            sentence,
            chars,
        };
        if tx.send(synthesizing).await.is_err() {
            return;
        }
        let span = tracing::info_span!(parent: &turn, "tts", provider = tts.name(), sentence);
        let spoken = tokio::select! {
            _ = cancel.cancelled() => return,
            r = synthesize(reply, sentence, &text, tts.as_ref(), &tx, &metrics).instrument(span.clone()) => r,
        };
        let error = match (spoken, &fallback) {
            (Ok(()), _) => None,
            (Err((error, false)), Some(fallback)) => {
                tracing::warn!(%error, "TTS failed; speaking with the offline voice");
                let again = tokio::select! {
                    _ = cancel.cancelled() => return,
                    r = synthesize(reply, sentence, &text, fallback.as_ref(), &tx, &metrics).instrument(span) => r,
                };
                Some(match again {
                    Ok(()) => error,
                    Err((second, _)) => format!("{error}; fallback: {second}"),
                })
            }
            (Err((error, _)), _) => Some(error),
        };
        let done = PipelineInput::SpeechDone {
            reply,
            sentence,
            error,
        };
        if tx.send(done).await.is_err() {
            return;
        }
    }
}

/// Synthesizes one sentence; on failure, the error and whether any audio had been sent.
async fn synthesize(
    reply: u64,
    sentence: u64,
    text: &str,
    tts: &dyn TextToSpeech,
    tx: &mpsc::Sender<PipelineInput>,
    metrics: &ProviderMetrics,
) -> Result<(), (String, bool)> {
    let started = Instant::now();
    let mut stream = tts.synthesize(text);
    let mut converter: Option<RateConverter> = None;
    let mut sent_any = false;
    let mut first = true;
    while let Some(chunk) = stream.next().await {
        if first || chunk.is_err() {
            metrics.observe("tts", tts.name(), started.elapsed(), chunk.is_ok());
            first = false;
        }
        let chunk = chunk.map_err(|e| (e.to_string(), sent_any))?;
        let converter = converter
            .get_or_insert_with(|| RateConverter::new(chunk.rate.hz(), SampleRate::Hz8000));
        let mut samples = Vec::with_capacity(chunk.samples.len() / 2 + 64);
        converter.process(&chunk.samples, &mut samples);
        if samples.is_empty() {
            continue;
        }
        sent_any = true;
        let audio = PipelineInput::Audio {
            reply,
            sentence,
            samples,
        };
        if tx.send(audio).await.is_err() {
            return Ok(());
        }
    }
    if let Some(converter) = converter.as_mut() {
        let mut tail = Vec::new();
        converter.finish(&mut tail);
        if !tail.is_empty() {
            sent_any = true;
            let _ = tx
                .send(PipelineInput::Audio {
                    reply,
                    sentence,
                    samples: tail,
                })
                .await;
        }
    }
    if !sent_any {
        return Err((format!("{}: no audio for a sentence", tts.name()), false));
    }
    tracing::debug!(
        provider = tts.name(),
        ms = started.elapsed().as_millis() as u64,
        "sentence synthesized"
    );
    Ok(())
}
