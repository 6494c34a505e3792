//! The audio queued for the caller (the agent's voice, prompts), taken 20 ms at a time by the
//! pacer, flushed by a barge-in, and how far into everything ever queued it has got.

use std::collections::VecDeque;

use super::FRAME_SAMPLES;

/// 8 kHz samples waiting to be sent, and the count of those that left.
#[derive(Default)]
pub(super) struct Playback {
    queue: VecDeque<i16>,
    /// Samples of queued playback consumed so far: sent, or flushed by `stop`.
    position: u64,
}

impl Playback {
    /// Queues `samples` after what is already queued.
    pub(super) fn play(&mut self, samples: &[i16]) {
        self.queue.extend(samples.iter().copied());
    }

    /// Drops whatever is queued; says whether anything was.
    pub(super) fn stop(&mut self) -> bool {
        let cut = !self.queue.is_empty();
        self.position += self.queue.len() as u64;
        self.queue.clear();
        cut
    }

    /// Samples of everything ever queued that have left the queue, played or flushed.
    pub(super) fn position(&self) -> u64 {
        self.position
    }

    /// Whether audio is queued.
    pub(super) fn is_playing(&self) -> bool {
        !self.queue.is_empty()
    }

    /// Fills `frame` with the next 20 ms (silence after the queue's end), or with silence while
    /// `held` (the queue then waits). Says whether the frame carries queued audio.
    pub(super) fn fill(&mut self, frame: &mut [i16; FRAME_SAMPLES], held: bool) -> bool {
        let had_audio = !held && !self.queue.is_empty();
        let from_queue = if held {
            0
        } else {
            self.queue.len().min(FRAME_SAMPLES)
        };
        self.position += from_queue as u64;
        for slot in frame.iter_mut() {
            *slot = if held {
                0
            } else {
                self.queue.pop_front().unwrap_or(0)
            };
        }
        had_audio
    }
}
