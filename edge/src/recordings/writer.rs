//! One call's recording, split across two threads so the media loop never touches the disk:
//! the call task owns a [`CallRecording`] and hands it both directions every 20 ms tick (the
//! agent's frame exactly as it was sent — so a barge-in's cut shows — and the caller's decoded
//! frame, silence when none came); a writer thread owns the file and the [`CallRecorder`].
//!
//! Ticks are gathered into one-second batches (one allocation a second, none per frame) and
//! handed over a bounded channel. Back-pressure is by decision a drop: when the disk stalls so
//! long that [`QUEUED_BATCHES`] seconds are waiting, the newest second is dropped and counted,
//! and the recorder keeps time by writing silence in its place — a call is never slowed down
//! by its recording. The file is a spool sealed to the control plane's recording key
//! (`spool.rs`). At hang-up the writer seals the last chunk, syncs the file, measures and hashes
//! it, marks its manifest finished and wakes the uploader.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};

use crate::call::media::FRAME_SAMPLES;
use crate::media::frame::SampleRate;
use crate::media::recording::{CallRecorder, RecordingLayout, Side};
use freya_shared::recording_spool::{RecordingPublicKey, SEALED_WAV};

use super::spool::SealedSpool;
use super::{RecordingManifest, RecordingOutbox};

/// Ticks (20 ms) gathered before they go to the writer: one second.
pub const BATCH_TICKS: usize = 50;
/// Most ticks of one stall kept as silence (10 minutes): a host paused for longer shortens
/// the recording rather than writing hours of silence.
pub const MAX_GAP_TICKS: u64 = 30_000;
/// Seconds of audio that may wait for the writer before new ones are dropped.
pub const QUEUED_BATCHES: usize = 16;

/// One 20 ms tick of both directions.
type Tick = ([i16; FRAME_SAMPLES], [i16; FRAME_SAMPLES]);

/// Consecutive ticks starting at `first`.
struct Batch {
    first: u64,
    ticks: Vec<Tick>,
}

/// The call task's end of a recording.
pub struct CallRecording {
    recording_id: String,
    next_tick: u64,
    batch: Batch,
    to_writer: SyncSender<Batch>,
    dropped_batches: u64,
}

const SILENCE: [i16; FRAME_SAMPLES] = [0; FRAME_SAMPLES];

impl CallRecording {
    /// Starts recording call `call_id` of `workspace_id` into `outbox`, sealed to the control
    /// plane's recording `key`: spawns the writer thread, which creates the files. Fails only if
    /// the thread cannot be spawned; a file that cannot be created is the writer's to report
    /// (the call goes on unrecorded).
    pub fn start(
        outbox: &RecordingOutbox,
        call_id: &str,
        workspace_id: &str,
        key: RecordingPublicKey,
    ) -> std::io::Result<Self> {
        let recording_id = freya_shared::ids::new_id();
        let manifest = RecordingManifest {
            recording_id: recording_id.clone(),
            call_id: call_id.to_owned(),
            workspace_id: workspace_id.to_owned(),
            format: SEALED_WAV.to_owned(),
            sample_rate: SampleRate::Hz8000.hz(),
            channels: RecordingLayout::Stereo.channels(),
            finished: None,
        };
        let (to_writer, batches) = sync_channel(QUEUED_BATCHES);
        let outbox = outbox.clone();
        let span = tracing::Span::current();
        std::thread::Builder::new()
            .name("call-recording".into())
            .spawn(move || {
                let _entered = span.enter();
                write(&outbox, manifest, &key, &batches);
            })?;
        Ok(Self::feeding(recording_id, to_writer))
    }

    /// The call task's side alone, with a writer that discards what it gets: what the media
    /// loop pays per tick, for benches.
    pub fn discarding() -> std::io::Result<Self> {
        let (to_writer, batches) = sync_channel::<Batch>(QUEUED_BATCHES);
        std::thread::Builder::new()
            .name("call-recording-discard".into())
            .spawn(move || while batches.recv().is_ok() {})?;
        Ok(Self::feeding(freya_shared::ids::new_id(), to_writer))
    }

    /// The call task's side of recording `recording_id`, at its first tick, feeding batches to
    /// a writer thread through `to_writer`.
    fn feeding(recording_id: String, to_writer: SyncSender<Batch>) -> Self {
        Self {
            recording_id,
            next_tick: 0,
            batch: Batch {
                first: 0,
                ticks: Vec::with_capacity(BATCH_TICKS),
            },
            to_writer,
            dropped_batches: 0,
        }
    }

    /// The recording's id (its file name on the edge, its key on the control plane).
    pub fn id(&self) -> &str {
        &self.recording_id
    }

    /// Takes one tick: what was sent to the caller and what was received from them (`None`
    /// when no frame was played out this tick — recorded as silence), after `gap` ticks a
    /// stalled edge skipped. The gap is recorded as silence (at most [`MAX_GAP_TICKS`]), so the
    /// recording keeps the call's time rather than losing the stall.
    pub fn on_tick(
        &mut self,
        gap: u64,
        sent: &[i16; FRAME_SAMPLES],
        received: Option<&[i16; FRAME_SAMPLES]>,
    ) {
        if gap > 0 {
            if !self.batch.ticks.is_empty() {
                self.hand_over();
            }
            self.next_tick += gap.min(MAX_GAP_TICKS);
            self.batch.first = self.next_tick;
        }
        self.batch
            .ticks
            .push((*received.unwrap_or(&SILENCE), *sent));
        self.next_tick += 1;
        if self.batch.ticks.len() >= BATCH_TICKS {
            self.hand_over();
        }
    }

    /// Sends the current batch to the writer and starts the next one.
    fn hand_over(&mut self) {
        let full = std::mem::replace(
            &mut self.batch,
            Batch {
                first: self.next_tick,
                ticks: Vec::with_capacity(BATCH_TICKS),
            },
        );
        match self.to_writer.try_send(full) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                // By decision: a stalled disk costs the recording a second, never the call.
                self.dropped_batches += 1;
                if self.dropped_batches == 1 {
                    tracing::warn!(
                        "the recording's writer is behind; dropping audio from the recording"
                    );
                }
            }
            // The writer gave up (its file could not be created); it said why.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Ends the recording at hang-up: the rest goes to the writer, which finishes, syncs and
    /// queues the file for upload on its own thread.
    pub fn finish(mut self) {
        if !self.batch.ticks.is_empty() {
            self.hand_over();
        }
        if self.dropped_batches > 0 {
            tracing::warn!(
                seconds = self.dropped_batches,
                "the recording lost audio to a slow disk"
            );
        }
    }
}

/// The writer thread: creates the files, writes batches as they come, and finishes the
/// recording when the call task drops its end of the channel.
fn write(
    outbox: &RecordingOutbox,
    manifest: RecordingManifest,
    key: &RecordingPublicKey,
    batches: &Receiver<Batch>,
) {
    let path = outbox.audio_path(&manifest.recording_id, &manifest.format);
    if let Err(e) = outbox.save_manifest(&manifest) {
        tracing::error!(error = %e, "cannot start the call's recording; the call goes on unrecorded");
        return;
    }
    let spool = SealedSpool::create(&path, key, &manifest.recording_id);
    let recorder = spool
        .map_err(crate::media::recording::RecordingError::from)
        .and_then(|s| CallRecorder::new(s, SampleRate::Hz8000, RecordingLayout::Stereo));
    let mut recorder = match recorder {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, file = %path.display(), "cannot create the call's recording; the call goes on unrecorded");
            let _ = outbox.remove(&manifest.recording_id);
            return;
        }
    };
    let mut failed = None;
    while let Ok(batch) = batches.recv() {
        if failed.is_some() {
            continue;
        }
        for (tick, (caller, agent)) in (batch.first..).zip(batch.ticks.iter()) {
            let pushed = recorder
                .push(Side::Caller, tick, caller)
                .and_then(|()| recorder.push(Side::Agent, tick, agent));
            if let Err(e) = pushed {
                tracing::error!(error = %e, "the call's recording stopped");
                failed = Some(e);
                break;
            }
        }
    }
    let finished = recorder
        .finish()
        .map_err(|e| e.to_string())
        .and_then(|(spool, _)| spool.finish().map_err(|e| e.to_string()))
        .and_then(|()| outbox.finish(manifest, false).map_err(|e| e.to_string()));
    match finished {
        Ok(m) => {
            if let Some(f) = &m.finished {
                tracing::info!(recording = %m.recording_id, bytes = f.bytes, duration_ms = f.duration_ms,
                    "call recording finished");
            }
            outbox.notify_ready();
        }
        // The manifest stays unfinished: the next start repairs what reached the disk.
        Err(e) => {
            tracing::error!(error = %e, file = %path.display(), "cannot finish the call's recording")
        }
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
