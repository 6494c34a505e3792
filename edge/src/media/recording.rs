//! The call recorder: both directions of a call (the caller's decoded frames, the agent's frames
//! as sent) written to one 16-bit PCM WAV file, incrementally, so an hour-long call never sits
//! in memory and a crash loses at most the last second.
//!
//! Layout: stereo by default, the caller on the left channel and the agent on the right. Mixing
//! to mono is one `saturating_add` away and is written by the tests (`RecordingLayout::MixedMono`), but two
//! channels keep each party intact: nothing clips when both speak at once, barge-in overlaps stay
//! separable, and transcription or quality review can take one side alone; every player still
//! plays it as one conversation. The cost is twice the bytes (32 KB/s at 8 kHz, 115 MB an hour).
//!
//! Alignment is by frame index (20 ms ticks since the call started), not by arrival: the two
//! sides are produced by different stages, so a small window of slots holds whichever side came
//! first until its partner arrives, and a side that never comes for an index is recorded as
//! silence once the other side has moved a window ahead. Memory is fixed at creation (the window
//! and one output buffer); per frame there is no allocation. Every [`FLUSH_FRAMES`] frames the
//! buffer is appended to the [`RecordingSink`] and the sink is told the true lengths. On the
//! edge the sink is the sealed spool (`recordings/spool.rs`), which cannot rewrite its header:
//! the control plane gives the WAV its lengths when it opens the spool. A seekable sink
//! ([`WavFile`], the tests') rewrites the RIFF header at each flush, so a file left by a dead
//! process is a valid WAV up to its last flush; [`repair`] makes the header of such a file
//! (a plaintext recording of an earlier release) cover everything that reached the disk.

use std::io::{self, Read, Seek, SeekFrom, Write};

/// Where a recorder's bytes go: appended in order, with the WAV's lengths announced after
/// each flush for a sink that can rewrite its header.
pub(crate) trait RecordingSink {
    /// Appends `bytes` after everything appended so far.
    fn append(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// `data_len` bytes of PCM now follow the header.
    fn cover(&mut self, data_len: u32) -> io::Result<()>;
}

/// A seekable WAV whose header is rewritten with the true lengths at every flush.
#[cfg(test)]
pub(crate) struct WavFile<W: Write + Seek> {
    inner: W,
    end: u64,
}

#[cfg(test)]
impl<W: Write + Seek> WavFile<W> {
    /// A WAV written from the start of `inner`.
    pub(crate) fn new(inner: W) -> Self {
        Self { inner, end: 0 }
    }

    /// The writer.
    pub(crate) fn get_ref(&self) -> &W {
        &self.inner
    }
}

#[cfg(test)]
impl<W: Write + Seek> RecordingSink for WavFile<W> {
    fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.inner.seek(SeekFrom::Start(self.end))?;
        self.inner.write_all(bytes)?;
        self.end += bytes.len() as u64;
        Ok(())
    }

    fn cover(&mut self, data_len: u32) -> io::Result<()> {
        write_lengths(&mut self.inner, data_len)?;
        self.inner.flush()
    }
}

use crate::media::frame::{SampleRate, MAX_FRAME_SAMPLES};

/// Frames (20 ms each) buffered before a write to the file and a header rewrite: one second.
pub(crate) const FLUSH_FRAMES: usize = 50;
/// Frames one side may run ahead of the other before the missing side is taken as silence.
pub(crate) const ALIGN_WINDOW: u64 = 8;
/// Length of the canonical header this recorder writes.
pub(crate) const HEADER_LEN: u64 = 44;

/// Why a recording could not take a frame or be written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecordingError {
    /// The file could not be written (or, in [`repair`], read).
    #[error("recording file I/O failed: {0}")]
    Io(#[from] io::Error),
    /// A frame does not hold exactly 20 ms at the recording's rate.
    #[error("recording at {rate} Hz needs {expected} samples per frame, got {actual}")]
    WrongFrameLength {
        /// The recording's rate.
        rate: u32,
        /// Samples in one 20 ms frame.
        expected: usize,
        /// Samples offered.
        actual: usize,
    },
    /// The data no longer fits a WAV's 32-bit lengths (about 37 hours of stereo 8 kHz).
    #[error("recording reached the 4 GiB WAV limit")]
    Full,
    /// [`repair`] found no canonical header this recorder wrote.
    #[error("not a recording this recorder wrote: {0}")]
    NotARecording(&'static str),
}

/// How the two directions share the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum RecordingLayout {
    /// Two channels: caller left, agent right (the default, see the module notes).
    #[default]
    Stereo,
    /// One channel, both sides summed with saturation (no configuration chooses it yet).
    #[cfg(test)]
    MixedMono,
}

impl RecordingLayout {
    /// Channels in the file.
    pub(crate) const fn channels(self) -> u16 {
        match self {
            RecordingLayout::Stereo => 2,
            #[cfg(test)]
            RecordingLayout::MixedMono => 1,
        }
    }
}

/// Which party a frame belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    /// The far end: audio received from the phone network.
    Caller,
    /// Us: audio the agent sent.
    Agent,
}

/// What a recording holds so far, for the call record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RecordingStats {
    /// Frames (20 ms ticks) written to the file or its buffer.
    pub frames: u64,
    /// Ticks where the caller's frame never came and silence was recorded.
    pub caller_gaps: u64,
    /// Ticks where the agent's frame never came and silence was recorded.
    pub agent_gaps: u64,
    /// Frames dropped because their tick had already been written, or were pushed twice.
    pub dropped: u64,
}

#[derive(Clone, Copy)]
struct Slot {
    index: u64,
    caller: Option<[i16; MAX_FRAME_SAMPLES]>,
    agent: Option<[i16; MAX_FRAME_SAMPLES]>,
}

const EMPTY_SLOT: Slot = Slot {
    index: 0,
    caller: None,
    agent: None,
};

/// Records one call into a WAV file, aligning the two directions by frame index.
pub(crate) struct CallRecorder<W: RecordingSink> {
    writer: W,
    rate: SampleRate,
    layout: RecordingLayout,
    slots: Box<[Slot; ALIGN_WINDOW as usize]>,
    /// Index of the next tick to write.
    next: u64,
    /// One past the highest index pushed so far.
    end: u64,
    buffer: Vec<u8>,
    /// Buffered bytes that trigger a flush: [`FLUSH_FRAMES`] frames.
    flush_bytes: usize,
    /// Bytes of PCM already in the file (after the header).
    written: u64,
    stats: RecordingStats,
}

impl<W: RecordingSink> CallRecorder<W> {
    /// Starts a recording at `rate` in `layout`: writes the header (empty data) first and
    /// allocates the alignment window and the output buffer, once.
    pub(crate) fn new(
        mut writer: W,
        rate: SampleRate,
        layout: RecordingLayout,
    ) -> Result<Self, RecordingError> {
        writer.append(&header(rate, layout, 0))?;
        let frame_bytes = rate.samples_per_frame() * 2 * usize::from(layout.channels());
        Ok(CallRecorder {
            writer,
            rate,
            layout,
            slots: Box::new([EMPTY_SLOT; ALIGN_WINDOW as usize]),
            next: 0,
            end: 0,
            buffer: Vec::with_capacity(FLUSH_FRAMES * frame_bytes),
            flush_bytes: FLUSH_FRAMES * frame_bytes,
            written: 0,
            stats: RecordingStats::default(),
        })
    }

    /// Takes one 20 ms frame of `side` for tick `index` (counted from the call's start). A frame
    /// for a tick already written, or pushed twice, is dropped and counted; a frame more than
    /// [`ALIGN_WINDOW`] ticks ahead first writes the older ticks, with silence where a side is
    /// missing (a long jump, e.g. a hold, writes silence for the whole gap, keeping time true).
    pub(crate) fn push(
        &mut self,
        side: Side,
        index: u64,
        pcm: &[i16],
    ) -> Result<(), RecordingError> {
        let expected = self.rate.samples_per_frame();
        if pcm.len() != expected {
            return Err(RecordingError::WrongFrameLength {
                rate: self.rate.hz(),
                expected,
                actual: pcm.len(),
            });
        }
        if index < self.next {
            self.stats.dropped += 1;
            return Ok(());
        }
        while index >= self.next + ALIGN_WINDOW {
            self.emit_next()?;
        }
        let slot = self.slot_mut(index);
        if slot.index != index {
            *slot = Slot {
                index,
                caller: None,
                agent: None,
            };
        }
        let place = match side {
            Side::Caller => &mut slot.caller,
            Side::Agent => &mut slot.agent,
        };
        if place.is_some() {
            self.stats.dropped += 1;
            return Ok(());
        }
        let mut samples = [0i16; MAX_FRAME_SAMPLES];
        if let Some(dst) = samples.get_mut(..expected) {
            dst.copy_from_slice(pcm);
        }
        *place = Some(samples);
        self.end = self.end.max(index + 1);
        while self.next < self.end {
            let slot = self.slot(self.next);
            if slot.index == self.next && slot.caller.is_some() && slot.agent.is_some() {
                self.emit_next()?;
            } else {
                break;
            }
        }
        Ok(())
    }

    /// Writes every tick still waiting (missing sides as silence), flushes, writes the final
    /// header and hands the writer back.
    pub(crate) fn finish(mut self) -> Result<(W, RecordingStats), RecordingError> {
        while self.next < self.end {
            self.emit_next()?;
        }
        self.flush()?;
        Ok((self.writer, self.stats))
    }

    fn slot(&self, index: u64) -> &Slot {
        let at = (index % ALIGN_WINDOW) as usize;
        self.slots.get(at).unwrap_or(&EMPTY_SLOT)
    }

    fn slot_mut(&mut self, index: u64) -> &mut Slot {
        // The window is a fixed array of ALIGN_WINDOW slots, so this index is always in range.
        let at = (index % ALIGN_WINDOW) as usize % self.slots.len();
        &mut self.slots[at]
    }

    /// Writes tick `next` into the buffer (flushing when it is full) and advances.
    fn emit_next(&mut self) -> Result<(), RecordingError> {
        let index = self.next;
        let n = self.rate.samples_per_frame();
        let layout = self.layout;
        let slot = self.slot_mut(index);
        let (caller, agent) = if slot.index == index {
            (slot.caller.take(), slot.agent.take())
        } else {
            (None, None)
        };
        const SILENCE: [i16; MAX_FRAME_SAMPLES] = [0; MAX_FRAME_SAMPLES];
        self.stats.caller_gaps += u64::from(caller.is_none());
        self.stats.agent_gaps += u64::from(agent.is_none());
        let left = caller.as_ref().unwrap_or(&SILENCE);
        let right = agent.as_ref().unwrap_or(&SILENCE);
        for (&l, &r) in left.iter().zip(right.iter()).take(n) {
            match layout {
                RecordingLayout::Stereo => {
                    self.buffer.extend_from_slice(&l.to_le_bytes());
                    self.buffer.extend_from_slice(&r.to_le_bytes());
                }
                #[cfg(test)]
                RecordingLayout::MixedMono => {
                    self.buffer
                        .extend_from_slice(&l.saturating_add(r).to_le_bytes());
                }
            }
        }
        self.next += 1;
        self.stats.frames += 1;
        if self.buffer.len() >= self.flush_bytes {
            self.flush()?;
        }
        Ok(())
    }

    /// Appends the buffer to the sink, then announces the lengths: data first, so a crash in
    /// between leaves a header that understates, never overstates.
    fn flush(&mut self) -> Result<(), RecordingError> {
        let total = self.written + self.buffer.len() as u64;
        let data_len = u32::try_from(total)
            .ok()
            .filter(|&n| n <= u32::MAX - 36)
            .ok_or(RecordingError::Full)?;
        self.writer.append(&self.buffer)?;
        self.written = total;
        self.buffer.clear();
        self.writer.cover(data_len)?;
        Ok(())
    }
}

/// Writes the RIFF and data chunk lengths for `data_len` bytes of PCM.
fn write_lengths<W: Write + Seek>(writer: &mut W, data_len: u32) -> io::Result<()> {
    writer.seek(SeekFrom::Start(4))?;
    writer.write_all(&(36 + data_len).to_le_bytes())?;
    writer.seek(SeekFrom::Start(40))?;
    writer.write_all(&data_len.to_le_bytes())
}

/// The canonical 44-byte header of a 16-bit PCM WAV.
fn header(rate: SampleRate, layout: RecordingLayout, data_len: u32) -> [u8; HEADER_LEN as usize] {
    let channels = layout.channels();
    let block_align = channels * 2;
    let mut h = [0u8; HEADER_LEN as usize];
    let fields: [&[u8]; 12] = [
        b"RIFF",
        &(36 + data_len).to_le_bytes(),
        b"WAVEfmt ",
        &16u32.to_le_bytes(),
        &1u16.to_le_bytes(), // PCM
        &channels.to_le_bytes(),
        &rate.hz().to_le_bytes(),
        &(rate.hz() * u32::from(block_align)).to_le_bytes(),
        &block_align.to_le_bytes(),
        &16u16.to_le_bytes(), // bits per sample
        b"data",
        &data_len.to_le_bytes(),
    ];
    let mut at = 0;
    for field in fields {
        if let Some(dst) = h.get_mut(at..at + field.len()) {
            dst.copy_from_slice(field);
        }
        at += field.len();
    }
    h
}

/// Makes the header of a recording left by a dead process cover all the whole sample frames
/// that reached the disk; returns the data length now stated. Refuses files whose first 44
/// bytes are not a header this recorder wrote.
pub(crate) fn repair<F: Read + Write + Seek>(file: &mut F) -> Result<u32, RecordingError> {
    let mut head = [0u8; HEADER_LEN as usize];
    file.seek(SeekFrom::Start(0))?;
    file.read_exact(&mut head).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => RecordingError::NotARecording("shorter than a header"),
        _ => RecordingError::Io(e),
    })?;
    let magic_ok = head.get(0..4) == Some(b"RIFF")
        && head.get(8..16) == Some(b"WAVEfmt ")
        && head.get(36..40) == Some(b"data");
    if !magic_ok {
        return Err(RecordingError::NotARecording(
            "no canonical RIFF/WAVE header",
        ));
    }
    let block_align = head
        .get(32..34)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .filter(|&b| b == 2 || b == 4)
        .ok_or(RecordingError::NotARecording("not 16-bit mono or stereo"))?;
    let file_len = file.seek(SeekFrom::End(0))?;
    let data = file_len.saturating_sub(HEADER_LEN);
    let data = data - data % u64::from(block_align);
    let data_len = u32::try_from(data)
        .ok()
        .filter(|&n| n <= u32::MAX - 36)
        .ok_or(RecordingError::Full)?;
    write_lengths(file, data_len)?;
    file.flush()?;
    Ok(data_len)
}

#[cfg(test)]
#[path = "recording_tests.rs"]
mod tests;
