//! In-band DTMF: key presses heard as the two tones of the keypad in the caller's audio, for
//! phones and gateways that negotiate no telephone-event (RFC 4733) and send no SIP INFO. Old
//! gateways and some trunks do this; without it the caller's digits never reach a workflow.
//!
//! Sans-IO and allocation-free: the media core pushes each decoded 8 kHz frame, the detector's
//! clock is the samples it has heard, and finished presses come out of
//! [`ToneDetector::poll_digit`]. Eight Goertzel filters (the four row and four column
//! frequencies) run over blocks of [`BLOCK_SAMPLES`] (12.75 ms, a bin width of about 78 Hz, fine
//! enough to tell 697 from 770 Hz). A block *hits* a key when, as ITU-T Q.24 and the usual
//! detectors (Asterisk's `dsp.c`, spandsp) ask:
//!
//! - both its tones are loud enough ([`MIN_TONE_AMPLITUDE`], about -36 dBm0 per tone);
//! - the twist is within bounds (the column tone at most 4 dB above the row tone, at most 8 dB
//!   below it);
//! - each tone stands 8 dB above the other three of its group (relative peak);
//! - the two tones carry most of the block's energy ([`MIN_TONE_SHARE`]): speech, music and
//!   noise spread theirs.
//!
//! A press starts after [`PRESS_BLOCKS`] consecutive hits of the same key (a tone of 40 ms or
//! more always gets there, one under 25 ms never does) and ends after [`RELEASE_BLOCKS`] blocks
//! without it (the 40 ms inter-digit pause always holds two); a single block lost in the middle
//! of a press does not split it. A key held for seconds is one press.

use std::collections::VecDeque;
use std::time::Duration;

use crate::rtp::dtmf::DtmfDigit;

/// The rate the detector runs at: the call's decoded audio is 8 kHz whatever the codec.
pub const SAMPLE_RATE: u32 = 8_000;
/// Samples per analysis block (as in Asterisk and spandsp): 12.75 ms at 8 kHz.
pub const BLOCK_SAMPLES: usize = 102;
/// Consecutive hit blocks that make a press (25.5 ms of tone).
pub const PRESS_BLOCKS: u32 = 2;
/// Consecutive blocks without the key that end a press.
pub const RELEASE_BLOCKS: u32 = 2;
/// The quietest tone accepted, as a fraction of full scale: about -36 dBm0 (0 dBm0 is a sine
/// of about 0.69 of full scale in G.711).
pub const MIN_TONE_AMPLITUDE: f32 = 0.011;
/// The share of the block's energy the two tones must carry together.
pub const MIN_TONE_SHARE: f32 = 0.8;
/// Power ratio by which the column tone may exceed the row tone (reverse twist, 4 dB).
const MAX_REVERSE_TWIST: f32 = 2.51;
/// Power ratio by which the row tone may exceed the column tone (normal twist, 8 dB).
const MAX_NORMAL_TWIST: f32 = 6.31;
/// Power ratio by which a tone must exceed each other tone of its group (8 dB).
const RELATIVE_PEAK: f32 = 6.31;
/// Presses kept for `poll_digit`; the oldest goes if the call falls this far behind.
const MAX_QUEUED: usize = 8;

/// The low (row) frequencies of the keypad, in Hz.
const ROWS: [f32; 4] = [697.0, 770.0, 852.0, 941.0];
/// The high (column) frequencies of the keypad, in Hz.
const COLUMNS: [f32; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
/// The key at each row and column.
const KEYPAD: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];

/// The two frequencies of a key, row then column (for tests and tone generators).
pub fn key_frequencies(digit: DtmfDigit) -> (f32, f32) {
    let key = digit.as_char();
    for (r, row) in KEYPAD.iter().enumerate() {
        for (c, k) in row.iter().enumerate() {
            if *k == key {
                return (ROWS[r], COLUMNS[c]);
            }
        }
    }
    (0.0, 0.0)
}

/// One press heard in the audio, reported once when the key is released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToneDigit {
    /// The key.
    pub digit: DtmfDigit,
    /// How long its tones were heard (whole blocks).
    pub duration: Duration,
}

/// A press being heard.
#[derive(Debug, Clone, Copy)]
struct Press {
    digit: DtmfDigit,
    /// Blocks from its first hit to its last.
    blocks: u32,
    /// Blocks since its last hit.
    misses: u32,
}

/// Hears key presses in a stream of 8 kHz samples.
#[derive(Debug)]
pub struct ToneDetector {
    /// 2·cos(2πf/fs) for the four rows, then the four columns.
    coefficients: [f32; 8],
    /// Each filter's last two outputs.
    state: [[f32; 2]; 8],
    /// Sum of squares of the block so far.
    energy: f32,
    /// Samples of the current block so far.
    filled: usize,
    /// The key the latest consecutive blocks hit, and how many.
    run: Option<(DtmfDigit, u32)>,
    press: Option<Press>,
    digits: VecDeque<ToneDigit>,
}

impl Default for ToneDetector {
    fn default() -> Self {
        Self::new()
    }
}

impl ToneDetector {
    /// A detector that has heard nothing yet.
    pub fn new() -> Self {
        let mut coefficients = [0.0; 8];
        for (c, f) in coefficients
            .iter_mut()
            .zip(ROWS.iter().chain(COLUMNS.iter()))
        {
            *c = 2.0 * (2.0 * std::f32::consts::PI * f / SAMPLE_RATE as f32).cos();
        }
        Self {
            coefficients,
            state: [[0.0; 2]; 8],
            energy: 0.0,
            filled: 0,
            run: None,
            press: None,
            digits: VecDeque::with_capacity(MAX_QUEUED),
        }
    }

    /// Whether the latest block held a key's tone (a press may be under way): what a recording
    /// that masks digits leaves out.
    pub fn hearing_tone(&self) -> bool {
        self.run.is_some() || self.press.is_some()
    }

    /// Hears the next `samples` (8 kHz), in order; blocks run across calls.
    pub fn push(&mut self, samples: &[i16]) {
        for &sample in samples {
            let x = f32::from(sample) / 32768.0;
            self.energy += x * x;
            for (state, coefficient) in self.state.iter_mut().zip(self.coefficients) {
                let next = x + coefficient * state[0] - state[1];
                state[1] = state[0];
                state[0] = next;
            }
            self.filled += 1;
            if self.filled == BLOCK_SAMPLES {
                let hit = self.classify_block();
                self.on_block(hit);
                self.state = [[0.0; 2]; 8];
                self.energy = 0.0;
                self.filled = 0;
            }
        }
    }

    /// The next finished press, in order.
    pub fn poll_digit(&mut self) -> Option<ToneDigit> {
        self.digits.pop_front()
    }

    /// The key the block just finished holds, if it passes every test.
    fn classify_block(&self) -> Option<DtmfDigit> {
        let mut power = [0.0f32; 8];
        for (p, (state, coefficient)) in power
            .iter_mut()
            .zip(self.state.iter().zip(self.coefficients))
        {
            let [s1, s2] = *state;
            *p = (s1 * s1 + s2 * s2 - coefficient * s1 * s2).max(0.0);
        }
        let (rows, columns) = power.split_at(4);
        let (row, row_power) = strongest(rows);
        let (column, column_power) = strongest(columns);
        // A sine of amplitude A gives a Goertzel power of (A·N/2)².
        let half = BLOCK_SAMPLES as f32 / 2.0;
        let floor = (MIN_TONE_AMPLITUDE * half).powi(2);
        if row_power < floor || column_power < floor {
            return None;
        }
        if column_power > row_power * MAX_REVERSE_TWIST
            || row_power > column_power * MAX_NORMAL_TWIST
        {
            return None;
        }
        let stands_out = |group: &[f32], best: usize, best_power: f32| {
            group
                .iter()
                .enumerate()
                .all(|(i, &p)| i == best || p * RELATIVE_PEAK <= best_power)
        };
        if !stands_out(rows, row, row_power) || !stands_out(columns, column, column_power) {
            return None;
        }
        // And a block's energy E gives the tones N/2·E between them when they are all of it.
        if row_power + column_power < MIN_TONE_SHARE * half * self.energy {
            return None;
        }
        let key = KEYPAD.get(row)?.get(column)?;
        DtmfDigit::from_char(*key).ok()
    }

    /// Debounces the blocks' verdicts into presses.
    fn on_block(&mut self, hit: Option<DtmfDigit>) {
        self.run = match (self.run, hit) {
            (Some((digit, n)), Some(h)) if digit == h => Some((digit, n + 1)),
            (_, Some(h)) => Some((h, 1)),
            (_, None) => None,
        };
        if let Some(press) = self.press.as_mut() {
            if hit == Some(press.digit) {
                press.blocks += press.misses + 1;
                press.misses = 0;
                return;
            }
            press.misses += 1;
            if press.misses < RELEASE_BLOCKS {
                return;
            }
            self.release();
        }
        if let Some((digit, n)) = self.run.filter(|(_, n)| *n >= PRESS_BLOCKS) {
            self.press = Some(Press {
                digit,
                blocks: n,
                misses: 0,
            });
        }
    }

    fn release(&mut self) {
        let Some(press) = self.press.take() else {
            return;
        };
        let samples = u64::from(press.blocks) * BLOCK_SAMPLES as u64;
        if self.digits.len() >= MAX_QUEUED {
            self.digits.pop_front();
        }
        self.digits.push_back(ToneDigit {
            digit: press.digit,
            duration: Duration::from_micros(samples * 1_000_000 / u64::from(SAMPLE_RATE)),
        });
    }
}

/// The index and power of the strongest of a group of filters.
fn strongest(powers: &[f32]) -> (usize, f32) {
    powers.iter().copied().enumerate().fold(
        (0, 0.0),
        |best, (i, p)| if p > best.1 { (i, p) } else { best },
    )
}

#[cfg(test)]
#[path = "dtmf_tones_tests.rs"]
mod tests;
