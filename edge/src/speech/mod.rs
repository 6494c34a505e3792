//! The speech half of the voice pipeline: turning the caller's audio into text (STT) and the
//! agent's words into audio (TTS), behind small object-safe traits so a call task holds an
//! `Arc<dyn SpeechToText>` / `Arc<dyn StreamingSpeechToText>` / `Arc<dyn TextToSpeech>` chosen by
//! the agent's configuration and never knows which provider it talks to. Providers live in
//! [`stt`] and [`tts`] (OpenAI-compatible HTTP, Deepgram and ElevenLabs streaming, and offline
//! pocketsphinx / espeak-ng); [`fakes`] serves the real wire protocols on 127.0.0.1 for tests.
//!
//! Shapes: batch STT takes a finished utterance (the turn detector decided where it ends);
//! streaming STT is a session that takes 20 ms frames and yields interim/final results and
//! endpointing hints; TTS turns one sentence into a stream of PCM chunks, each tagged with its
//! sample rate, and is cancelled by dropping the stream (barge-in).

pub(crate) mod convert;
pub(crate) mod error;
/// Fake speech providers: `freya-control`'s voice tests and `doctor`.
pub mod fakes;
/// Speech-to-text providers: `freya dev`/`doctor` and the load tester use the local recogniser.
pub mod stt;
/// Text-to-speech providers: `freya dev` and the load tester's narrator speak with eSpeak.
pub mod tts;
pub(crate) mod turn_transcript;
/// WAV reading and writing: the load tester and `freya-control`'s tests.
pub mod wav;

#[cfg(test)]
mod tests;

pub use error::{SpeechError, SttFailure};
pub use turn_transcript::TurnTranscript;

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use tokio::sync::mpsc;

use crate::media::frame::{PcmFrame, SampleRate};

/// What a speech-to-text engine heard.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transcript {
    /// The recognised words; empty when the engine heard no speech.
    pub text: String,
    /// Engine confidence in 0..=1, when it reports one.
    pub confidence: Option<f32>,
}

/// Batch speech-to-text: one finished utterance in, its transcript out.
pub trait SpeechToText: Send + Sync {
    /// Provider name for logs and call events (`openai`, `local`).
    fn name(&self) -> &'static str;

    /// Transcribes mono PCM at `rate`.
    fn transcribe<'a>(
        &'a self,
        rate: SampleRate,
        samples: &'a [i16],
    ) -> BoxFuture<'a, Result<Transcript, SpeechError>>;
}

/// One result from a streaming recogniser.
#[derive(Debug, Clone, PartialEq)]
pub enum SttEvent {
    /// A provisional hypothesis for the words being spoken; later results replace it.
    Interim {
        /// Hypothesis so far.
        text: String,
    },
    /// Settled words for a stretch of audio; they will not change.
    Final {
        /// The words.
        text: String,
        /// The engine detected the end of the utterance here (Deepgram `speech_final`).
        speech_final: bool,
        /// Engine confidence in 0..=1, when reported.
        confidence: Option<f32>,
    },
    /// The engine's own voice activity detector heard speech begin.
    SpeechStarted,
    /// The engine saw a gap after the last word (Deepgram `UtteranceEnd`).
    UtteranceEnd,
}

impl SttEvent {
    /// Whether this result should be passed to `TurnDetector::endpoint_hint`.
    pub fn is_endpoint(&self) -> bool {
        matches!(
            self,
            SttEvent::Final {
                speech_final: true,
                ..
            } | SttEvent::UtteranceEnd
        )
    }
}

/// Streaming speech-to-text: opens a session per caller turn (or per call).
pub trait StreamingSpeechToText: Send + Sync {
    /// Provider name for logs and call events (`deepgram`).
    fn name(&self) -> &'static str;

    /// Connects and returns a live session.
    fn start(&self) -> BoxFuture<'_, Result<SttSession, SpeechError>>;
}

/// What the call task sends a streaming session.
// Frames travel inline on purpose: boxing them would allocate once per 20 ms.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum SessionInput {
    /// The next 20 ms of caller audio.
    Frame(PcmFrame),
    /// No more audio: flush and close once the last results are in.
    Finish,
}

/// A live streaming-recognition session: push frames, read events. Dropping it aborts the
/// provider task and closes the connection.
#[derive(Debug)]
pub struct SttSession {
    provider: &'static str,
    input: mpsc::Sender<SessionInput>,
    events: mpsc::Receiver<Result<SttEvent, SpeechError>>,
    task: tokio::task::JoinHandle<()>,
    dropped_frames: u64,
}

impl SttSession {
    /// Frames queued for a provider before new ones are dropped (2 s of audio).
    pub const INPUT_QUEUE_FRAMES: usize = 100;

    /// Wraps a provider task that reads `input` and writes `events` (for provider modules).
    pub fn new(
        provider: &'static str,
        input: mpsc::Sender<SessionInput>,
        events: mpsc::Receiver<Result<SttEvent, SpeechError>>,
        task: tokio::task::JoinHandle<()>,
    ) -> Self {
        SttSession {
            provider,
            input,
            events,
            task,
            dropped_frames: 0,
        }
    }

    /// Queues one frame without waiting. Back-pressure decision: when the provider falls 2 s
    /// behind, the frame is dropped (counted in [`dropped_frames`](Self::dropped_frames)) rather
    /// than stalling the call's media path.
    pub fn push_frame(&mut self, frame: &PcmFrame) -> Result<(), SpeechError> {
        match self.input.try_send(SessionInput::Frame(frame.clone())) {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.dropped_frames += 1;
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(SpeechError::SessionClosed {
                provider: self.provider,
            }),
        }
    }

    /// Queues one frame, waiting while the provider's queue is full: for audio that is already
    /// buffered (a turn's start replayed once the connection is up, a finished utterance), where
    /// dropping would cut words and waiting stalls nobody. Results arriving meanwhile go to
    /// `on_event`, so a provider blocked on a full result queue cannot deadlock the sender.
    pub async fn send_frame(
        &mut self,
        frame: &PcmFrame,
        mut on_event: impl FnMut(Result<SttEvent, SpeechError>),
    ) -> Result<(), SpeechError> {
        let provider = self.provider;
        let send = self.input.send(SessionInput::Frame(frame.clone()));
        tokio::pin!(send);
        loop {
            tokio::select! {
                biased;
                sent = &mut send => {
                    return sent.map_err(|_| SpeechError::SessionClosed { provider });
                }
                Some(event) = self.events.recv() => on_event(event),
            }
        }
    }

    /// Frames dropped because the provider could not keep up.
    pub fn dropped_frames(&self) -> u64 {
        self.dropped_frames
    }

    /// Ends the audio; the remaining results arrive and then [`next_event`](Self::next_event)
    /// returns `None`.
    pub async fn finish(&self) -> Result<(), SpeechError> {
        self.input
            .send(SessionInput::Finish)
            .await
            .map_err(|_| SpeechError::SessionClosed {
                provider: self.provider,
            })
    }

    /// The next result; `None` once the session has closed.
    pub async fn next_event(&mut self) -> Option<Result<SttEvent, SpeechError>> {
        self.events.recv().await
    }

    /// The provider name.
    pub fn provider(&self) -> &'static str {
        self.provider
    }
}

impl Drop for SttSession {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A piece of synthesized speech: mono PCM at `rate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioChunk {
    /// Sample rate of `samples`.
    pub rate: SampleRate,
    /// Mono 16-bit samples, any length.
    pub samples: Vec<i16>,
}

/// Synthesized audio as it is produced; dropping the stream cancels the synthesis.
pub type AudioStream = BoxStream<'static, Result<AudioChunk, SpeechError>>;

/// Streaming text-to-speech: one sentence or clause in, audio chunks out as they are made.
pub trait TextToSpeech: Send + Sync {
    /// Provider name for logs and call events (`openai`, `elevenlabs`, `espeak`).
    fn name(&self) -> &'static str;

    /// Starts synthesizing `text`; errors (including connection failures) arrive on the stream.
    fn synthesize(&self, text: &str) -> AudioStream;
}
