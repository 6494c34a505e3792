//! Live speech-to-text during the caller's turn, for agents whose recogniser streams: Deepgram,
//! and the offline `local` recogniser, which decodes as the caller speaks.
//! When the turn detector hears the caller start, the call's voice opens a session and every 20 ms frame
//! of the turn — the pre-roll the listener kept from before the start included — goes up as it
//! arrives, so the recogniser transcribes while the caller talks. At the end of the turn the call
//! sends `CloseStream` and the settled words are the transcript a few milliseconds later, instead
//! of after uploading the whole utterance.
//!
//! One session per turn: the handshake overlaps the caller's first words, an idle socket is never
//! held open between turns (Deepgram drops those after 10 s), and a failure costs one turn at
//! most. A session that cannot connect, fails mid-turn or lost frames falls back to the batch
//! path with the utterance the listener collected anyway — the caller never waits in dead air —
//! and the call records why. Endpointing signals (`speech_final`, `UtteranceEnd`) go back to the
//! call task, which may end the turn early with them.
//!
//! This is the async shell; the transcript itself is assembled by the sans-IO [`TurnTranscript`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::media::FRAME_SAMPLES;
use super::pipeline::PipelineInput;
use crate::media::frame::{PcmFrame, SampleRate};
use crate::speech::{
    SpeechError, SpeechToText, StreamingSpeechToText, SttFailure, SttSession, Transcript,
    TurnTranscript,
};

/// Frames a turn may queue for its session: 30 s, the longest utterance the listener keeps, so
/// a slow handshake loses nothing. Slots are allocated as they fill.
const TURN_QUEUE_FRAMES: usize = 1500;
/// Time the recogniser gets, once the turn has ended, to send its last words and close.
const FINISH_TIMEOUT: Duration = Duration::from_secs(5);

/// What live transcription tells the call task besides the transcript itself.
#[derive(Debug, Clone, PartialEq)]
pub enum LiveSttReport {
    /// The recogniser heard the utterance end (a hint for the turn detector).
    Endpoint {
        /// The live turn it belongs to, from [`LiveStt::begin`].
        live_turn: u64,
    },
    /// A turn was transcribed live; one per turn, for the call record.
    Streamed(StreamSummary),
    /// The live session failed; the turn went to the batch path instead.
    Failed {
        /// Provider name.
        provider: &'static str,
        /// What went wrong.
        error: String,
    },
}

/// How one live turn went.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamSummary {
    /// Provider name.
    pub provider: &'static str,
    /// Frames sent to the recogniser before the turn ended (the head start).
    pub frames_before_end: u32,
    /// Frames sent in all.
    pub frames: u32,
    /// Handshake time.
    pub connect_ms: u64,
    /// From the end of the turn to the transcript being ready.
    pub finalize_ms: u64,
    /// Provisional hypotheses received.
    pub interims: u32,
    /// The last of them (interims are not recorded one by one).
    pub last_interim: Option<String>,
    /// Endpointing signals received.
    pub endpoints: u32,
}

/// The end of a turn as the call task hands it over.
struct TurnEnd {
    turn: u64,
    /// The listener's copy of the turn, for the batch fallback.
    utterance: Vec<i16>,
    /// Frames the call could not queue (the fallback then has the full audio).
    dropped: u32,
}

/// The turn being streamed.
struct OpenTurn {
    audio: mpsc::Sender<[i16; FRAME_SAMPLES]>,
    end: oneshot::Sender<TurnEnd>,
    dropped: u32,
}

/// A call's live transcription: at most one turn open at a time.
pub struct LiveStt {
    stt: Arc<dyn StreamingSpeechToText>,
    batch: Arc<dyn SpeechToText>,
    tx: mpsc::Sender<PipelineInput>,
    call: CancellationToken,
    open: Option<OpenTurn>,
}

impl LiveStt {
    /// Streams to `stt`, falls back to `batch`, and reports through `tx` until `call` is cancelled.
    pub fn new(
        stt: Arc<dyn StreamingSpeechToText>,
        batch: Arc<dyn SpeechToText>,
        tx: mpsc::Sender<PipelineInput>,
        call: CancellationToken,
    ) -> Self {
        Self {
            stt,
            batch,
            tx,
            call,
            open: None,
        }
    }

    /// The caller started live turn `live_turn` (numbered by the call's voice; its endpoint
    /// reports carry it): connects a session for it, abandoning any turn left open.
    pub fn begin(&mut self, live_turn: u64, span: tracing::Span) {
        let (audio, audio_rx) = mpsc::channel(TURN_QUEUE_FRAMES);
        let (end, end_rx) = oneshot::channel();
        self.open = Some(OpenTurn {
            audio,
            end,
            dropped: 0,
        });
        let task = LiveTurn {
            live_turn,
            stt: self.stt.clone(),
            batch: self.batch.clone(),
            tx: self.tx.clone(),
        };
        let cancel = self.call.clone();
        let run = async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                () = task.run(audio_rx, end_rx) => {}
            }
        };
        tokio::spawn(tracing::Instrument::instrument(run, span));
    }

    /// The streaming recogniser's name, for the turn's `stt` span.
    pub fn provider(&self) -> &'static str {
        self.stt.name()
    }

    /// Whether a turn is open.
    pub fn is_open(&self) -> bool {
        self.open.is_some()
    }

    /// The next 20 ms of the open turn. Never waits: the call's media path must not stall, so a
    /// frame that finds the queue full is counted and the turn later falls back to the batch path.
    pub fn push(&mut self, frame: &[i16; FRAME_SAMPLES]) {
        if let Some(open) = self.open.as_mut() {
            if open.audio.try_send(*frame).is_err() {
                open.dropped += 1;
            }
        }
    }

    /// The open turn ended as caller turn `turn`: its transcript will arrive as
    /// [`PipelineInput::Transcript`]. Gives the utterance back when no live turn can take it.
    pub fn end(&mut self, turn: u64, utterance: Vec<i16>) -> Result<(), Vec<i16>> {
        let Some(open) = self.open.take() else {
            return Err(utterance);
        };
        let end = TurnEnd {
            turn,
            utterance,
            dropped: open.dropped,
        };
        open.end.send(end).map_err(|end| end.utterance)
    }
}

/// One turn's transcription task.
struct LiveTurn {
    live_turn: u64,
    stt: Arc<dyn StreamingSpeechToText>,
    batch: Arc<dyn SpeechToText>,
    tx: mpsc::Sender<PipelineInput>,
}

/// Why streaming stopped short of a transcript.
enum Stop {
    /// The turn was dropped without ending (a new one began, or the call is over).
    Abandoned,
    /// The session failed; the turn's end, if it had already come.
    Failed(SpeechError, Option<TurnEnd>),
}

impl LiveTurn {
    async fn run(
        self,
        mut audio: mpsc::Receiver<[i16; FRAME_SAMPLES]>,
        mut end_rx: oneshot::Receiver<TurnEnd>,
    ) {
        let mut transcript = TurnTranscript::new();
        let mut summary = StreamSummary {
            provider: self.stt.name(),
            frames_before_end: 0,
            frames: 0,
            connect_ms: 0,
            finalize_ms: 0,
            interims: 0,
            last_interim: None,
            endpoints: 0,
        };
        let streamed = self
            .stream(&mut audio, &mut end_rx, &mut transcript, &mut summary)
            .await;
        let (end, failure) = match streamed {
            Ok(end) => (end, None),
            Err(Stop::Abandoned) => return,
            Err(Stop::Failed(error, Some(end))) => (end, Some(error)),
            Err(Stop::Failed(error, None)) => match end_rx.await {
                Ok(end) => (end, Some(error)),
                Err(_) => return,
            },
        };
        let result = match failure {
            None => {
                summary.interims = transcript.interims();
                summary.endpoints = transcript.endpoints();
                summary.last_interim = transcript.last_interim().map(str::to_owned);
                self.report(LiveSttReport::Streamed(summary)).await;
                Ok(transcript.into_transcript())
            }
            Some(error) => {
                tracing::warn!(provider = self.stt.name(), %error, "live transcription failed; transcribing the turn in one piece");
                self.report(LiveSttReport::Failed {
                    provider: self.stt.name(),
                    error: error.to_string(),
                })
                .await;
                self.batch
                    .transcribe(SampleRate::Hz8000, &end.utterance)
                    .await
            }
        };
        let result = result.map(|t: Transcript| t.text).map_err(SttFailure::from);
        let _ = self
            .tx
            .send(PipelineInput::Transcript {
                turn: end.turn,
                result,
            })
            .await;
    }

    /// Connects, streams the turn's frames as they come, and once the turn has ended flushes the
    /// recogniser; returns the turn's end with `transcript` complete.
    async fn stream(
        &self,
        audio: &mut mpsc::Receiver<[i16; FRAME_SAMPLES]>,
        end_rx: &mut oneshot::Receiver<TurnEnd>,
        transcript: &mut TurnTranscript,
        summary: &mut StreamSummary,
    ) -> Result<TurnEnd, Stop> {
        let connecting = Instant::now();
        let mut session = self.stt.start().await.map_err(|e| Stop::Failed(e, None))?;
        summary.connect_ms = millis(connecting.elapsed());
        let mut frame = PcmFrame::silence(SampleRate::Hz8000);
        let end = loop {
            tokio::select! {
                // Audio first: every frame queued before the end must go up before it.
                biased;
                samples = audio.recv() => {
                    let Some(samples) = samples else {
                        // The call let go of the turn: it ended it (the end was sent before the
                        // audio queue closed) or dropped it.
                        match (&mut *end_rx).await {
                            Ok(end) => break end,
                            Err(_) => return Err(Stop::Abandoned),
                        }
                    };
                    frame.samples_mut().copy_from_slice(&samples);
                    self.send(&mut session, &frame, transcript)
                        .await
                        .map_err(|e| Stop::Failed(e, None))?;
                    summary.frames_before_end += 1;
                }
                end = &mut *end_rx => match end {
                    Ok(end) => break end,
                    Err(_) => return Err(Stop::Abandoned),
                },
                event = session.next_event() => {
                    let event = event.unwrap_or(Err(SpeechError::SessionClosed {
                        provider: session.provider(),
                    }));
                    let event = event.map_err(|e| Stop::Failed(e, None))?;
                    self.on_event(&event, transcript);
                }
            }
        };
        summary.frames = summary.frames_before_end;
        let ended = Instant::now();
        let flushed = tokio::time::timeout(FINISH_TIMEOUT, async {
            // Frames queued just before the end (the call queues them first, so all are here).
            while let Ok(samples) = audio.try_recv() {
                frame.samples_mut().copy_from_slice(&samples);
                self.send(&mut session, &frame, transcript).await?;
                summary.frames += 1;
            }
            session.finish().await?;
            while let Some(event) = session.next_event().await {
                self.on_event(&event?, transcript);
            }
            Ok::<(), SpeechError>(())
        })
        .await;
        summary.finalize_ms = millis(ended.elapsed());
        let failure = match flushed {
            Ok(Ok(())) if end.dropped == 0 => return Ok(end),
            Ok(Ok(())) => SpeechError::Protocol {
                provider: session.provider(),
                detail: format!("{} frames of the turn could not be queued", end.dropped),
            },
            Ok(Err(e)) => e,
            Err(_) => SpeechError::Timeout {
                provider: session.provider(),
                after: FINISH_TIMEOUT,
            },
        };
        Err(Stop::Failed(failure, Some(end)))
    }

    /// Sends one frame, taking the results that arrive meanwhile.
    async fn send(
        &self,
        session: &mut SttSession,
        frame: &PcmFrame,
        transcript: &mut TurnTranscript,
    ) -> Result<(), SpeechError> {
        let mut failure = None;
        let sent = session
            .send_frame(frame, |event| match event {
                Ok(event) => self.on_event(&event, transcript),
                Err(e) => failure = failure.take().or(Some(e)),
            })
            .await;
        match (failure, sent) {
            (Some(e), _) | (None, Err(e)) => Err(e),
            (None, Ok(())) => Ok(()),
        }
    }

    fn on_event(&self, event: &crate::speech::SttEvent, transcript: &mut TurnTranscript) {
        if let crate::speech::SttEvent::Interim { text } = event {
            // Its length only: log lines never carry what the caller said.
            tracing::debug!(chars = text.chars().count(), "interim transcript");
        }
        if transcript.on_event(event) {
            // A hint only: when the call task is busy enough to fill its queue, it can go.
            let hint = LiveSttReport::Endpoint {
                live_turn: self.live_turn,
            };
            let _ = self.tx.try_send(PipelineInput::LiveStt(hint));
        }
    }

    /// Records waits rather than drop: they are part of the call's record.
    async fn report(&self, report: LiveSttReport) {
        let _ = self.tx.send(PipelineInput::LiveStt(report)).await;
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
#[path = "live_stt_tests.rs"]
mod tests;
