//! Sample-rate conversion between the rates a call touches: 8 kHz on the phone line, 16 kHz for
//! most speech-to-text engines, 24 kHz from text-to-speech, 48 kHz for Opus. Every pair of those
//! rates is a small rational ratio (L/M with L, M ≤ 6), for which a polyphase windowed-sinc FIR
//! is short, exact in length per 20 ms frame (one frame in, one frame out, from the first), and
//! allocation-free, with 2 ms of delay.
//!
//! It is ours rather than `rubato`'s because, measured against rubato 5.1 (see "Resampling" in
//! `loadtest/BENCHMARKS.md`, bench `rubato_*` in `edge/benches/media.rs`), the crate is faster per
//! frame but worse for the call's latency or its telephone band: its FFT resampler keeps 3.4 kHz
//! only with 20 ms chunks, which delay every conversion by 10 ms (20 ms more mouth-to-ear on an
//! Opus call), and at our 2 ms delay it cuts 3 kHz by 29 dB; its sinc resampler needs 128 taps
//! (8 ms delay upward) to keep 3.4 kHz, and does not give one whole frame per frame at the start.
//!
//! Design: upsample by L (conceptually inserting zeros), low-pass at the lower Nyquist, decimate
//! by M, computing only the outputs that survive (polyphase). The filter is a Blackman-windowed
//! sinc of 32 taps per unit of max(L, M), cut off at 0.45 of the lower rate, so speech up to
//! ~3.4 kHz passes at 8 kHz and images/aliases are attenuated by more than 60 dB.
//!
//! Speed: each output is one dot product of a phase's taps (stored reversed) with a contiguous
//! window of the history joined to the block, both `f32`, summed in eight lanes so the compiler
//! vectorises it. It is the edge's hottest loop under load (every TTS chunk at 24 kHz comes down
//! to 8 kHz here), so it avoids per-tap branches and the libm rounding call.

use crate::media::frame::{PcmFrame, SampleRate};

/// Zero crossings of the sinc kept on each side, per unit of max(L, M).
const HALF_TAPS_PER_RATIO: usize = 16;
/// Largest ratio among the supported rates (48 kHz ↔ 8 kHz).
const MAX_RATIO: usize = 6;
/// Taps of the longest filter; arrays are sized by it so nothing is allocated.
const MAX_TAPS: usize = 2 * HALF_TAPS_PER_RATIO * MAX_RATIO;
/// Cut-off as a fraction of the lower sample rate (0.5 would be its Nyquist frequency).
const CUTOFF: f64 = 0.45;
/// Input samples converted per pass: one 20 ms frame at the highest rate. Longer blocks are
/// converted in passes of this size, so the working buffer lives on the stack.
const CHUNK: usize = 960;
/// Lanes of the dot product; a multiple of every SIMD width the compiler may pick for `f32`.
const LANES: usize = 8;

/// Why a block could not be resampled: the caller handed the wrong frame or too small a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResampleError {
    /// The frame's rate is not the one this resampler was built for.
    #[error("resampler expects {expected} Hz input, got a {actual} Hz frame")]
    RateMismatch {
        /// Input rate this resampler converts from.
        expected: u32,
        /// Rate of the frame offered.
        actual: u32,
    },
    /// The output slice cannot hold every sample this input produces.
    #[error("resampler output needs {needed} samples, buffer holds {available}")]
    OutputTooSmall {
        /// Samples the input will produce.
        needed: usize,
        /// Capacity offered.
        available: usize,
    },
}

/// A streaming rational-ratio resampler between two [`SampleRate`]s; keeps filter history
/// across calls so consecutive frames join without clicks.
#[derive(Clone)]
pub struct Resampler {
    from: SampleRate,
    to: SampleRate,
    up: usize,
    down: usize,
    taps_per_phase: usize,
    /// Polyphase layout: phase `p`'s taps are `coeffs[p * taps_per_phase..][..taps_per_phase]`,
    /// stored newest-sample-last (reversed), so they line up with a window of the input in order.
    coeffs: [f32; MAX_TAPS],
    /// The last `taps_per_phase - 1` input samples, oldest first.
    history: [f32; MAX_TAPS],
    /// Position of the next output in the upsampled domain, relative to the next input block.
    next_t: usize,
}

const fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

impl Resampler {
    /// Builds the filter for `from → to` once; all per-frame work then reuses it.
    pub fn new(from: SampleRate, to: SampleRate) -> Self {
        let (fi, fo) = (from.hz() as usize, to.hz() as usize);
        let g = gcd(fi, fo);
        let (up, down) = (fo / g, fi / g);
        let ratio = up.max(down);
        let taps = (2 * HALF_TAPS_PER_RATIO * ratio).min(MAX_TAPS);
        let taps_per_phase = taps / up;
        let mut resampler = Resampler {
            from,
            to,
            up,
            down,
            taps_per_phase,
            coeffs: [0.0; MAX_TAPS],
            history: [0.0; MAX_TAPS],
            next_t: 0,
        };
        if up != down {
            resampler.design_filter(taps, ratio);
        }
        resampler
    }

    fn design_filter(&mut self, taps: usize, ratio: usize) {
        use std::f64::consts::PI;
        let fc = CUTOFF / ratio as f64; // cycles per upsampled sample
        let centre = (taps as f64 - 1.0) / 2.0;
        let mut h = [0.0f64; MAX_TAPS];
        let mut sum = 0.0;
        for (k, slot) in h.iter_mut().enumerate().take(taps) {
            let x = k as f64 - centre;
            let sinc = if x == 0.0 {
                2.0 * fc
            } else {
                (2.0 * PI * fc * x).sin() / (PI * x)
            };
            let w = 2.0 * PI * k as f64 / (taps as f64 - 1.0);
            let blackman = 0.42 - 0.5 * w.cos() + 0.08 * (2.0 * w).cos();
            *slot = sinc * blackman;
            sum += *slot;
        }
        // Unity DC gain after zero-stuffing: the taps must sum to L.
        let gain = self.up as f64 / sum;
        let tpp = self.taps_per_phase;
        for p in 0..self.up {
            for i in 0..tpp {
                // Tap i of phase p weighs x[n - i]; reversed, it sits at tpp - 1 - i.
                let src = h.get(p + i * self.up).copied().unwrap_or(0.0);
                if let Some(dst) = self.coeffs.get_mut(p * tpp + (tpp - 1 - i)) {
                    *dst = (src * gain) as f32;
                }
            }
        }
    }

    /// The rate this resampler reads.
    pub fn input_rate(&self) -> SampleRate {
        self.from
    }

    /// The rate this resampler writes.
    pub fn output_rate(&self) -> SampleRate {
        self.to
    }

    /// How many samples `input_len` more input samples will produce (exact, given the state).
    pub fn output_len(&self, input_len: usize) -> usize {
        let end = input_len * self.up;
        if self.up == self.down {
            input_len
        } else if end <= self.next_t {
            0
        } else {
            (end - self.next_t).div_ceil(self.down)
        }
    }

    /// Forgets the filter history, e.g. when a new talk spurt or a new stream starts.
    pub fn reset(&mut self) {
        self.history = [0.0; MAX_TAPS];
        self.next_t = 0;
    }

    /// Resamples a block of any length; returns how many samples were written to `output`.
    pub fn process(&mut self, input: &[i16], output: &mut [i16]) -> Result<usize, ResampleError> {
        let needed = self.output_len(input.len());
        if output.len() < needed {
            return Err(ResampleError::OutputTooSmall {
                needed,
                available: output.len(),
            });
        }
        if self.up == self.down {
            for (o, &i) in output.iter_mut().zip(input) {
                *o = i;
            }
            return Ok(input.len());
        }
        let mut written = 0;
        for block in input.chunks(CHUNK) {
            let out = output.get_mut(written..).unwrap_or_default();
            written += self.process_chunk(block, out);
        }
        Ok(written)
    }

    /// Converts at most [`CHUNK`] samples; `output` has room for all they produce.
    fn process_chunk(&mut self, block: &[i16], output: &mut [i16]) -> usize {
        let tpp = self.taps_per_phase;
        let hist_len = tpp - 1;
        // work = history ++ block, so x[n - i] (i < tpp) is work[n + hist_len - i] and the
        // window of output n is the contiguous work[n..n + tpp].
        let mut work = [0.0f32; MAX_TAPS + CHUNK];
        let used = hist_len + block.len();
        if let (Some(head), Some(history)) =
            (work.get_mut(..hist_len), self.history.get(..hist_len))
        {
            head.copy_from_slice(history);
        }
        if let Some(tail) = work.get_mut(hist_len..used) {
            for (w, &s) in tail.iter_mut().zip(block) {
                *w = f32::from(s);
            }
        }
        let end = block.len() * self.up;
        let mut written = 0;
        while self.next_t < end {
            let n = self.next_t / self.up;
            let phase = self.next_t % self.up;
            let window = work.get(n..n + tpp).unwrap_or(&[]);
            let taps = self
                .coeffs
                .get(phase * tpp..(phase + 1) * tpp)
                .unwrap_or(&[]);
            if let Some(out) = output.get_mut(written) {
                *out = to_sample(dot(window, taps));
            }
            written += 1;
            self.next_t += self.down;
        }
        self.next_t -= end;
        if let (Some(history), Some(last)) = (
            self.history.get_mut(..hist_len),
            work.get(block.len()..used),
        ) {
            history.copy_from_slice(last);
        }
        written
    }

    /// Resamples one 20 ms frame into a frame at the output rate (no heap; frames are inline).
    pub fn process_frame(&mut self, input: &PcmFrame) -> Result<PcmFrame, ResampleError> {
        if input.sample_rate() != self.from {
            return Err(ResampleError::RateMismatch {
                expected: self.from.hz(),
                actual: input.sample_rate().hz(),
            });
        }
        let mut out = PcmFrame::silence(self.to);
        self.process(input.samples(), out.samples_mut())?;
        Ok(out)
    }
}

/// Dot product in [`LANES`] independent sums: no loop-carried dependency on one accumulator, so
/// it compiles to packed multiply-adds.
fn dot(window: &[f32], taps: &[f32]) -> f32 {
    let mut lanes = [0.0f32; LANES];
    let (w_chunks, t_chunks) = (window.chunks_exact(LANES), taps.chunks_exact(LANES));
    let (w_rest, t_rest) = (w_chunks.remainder(), t_chunks.remainder());
    for (w, t) in w_chunks.zip(t_chunks) {
        for ((lane, &x), &c) in lanes.iter_mut().zip(w).zip(t) {
            *lane += x * c;
        }
    }
    let tail: f32 = w_rest.iter().zip(t_rest).map(|(&x, &c)| x * c).sum();
    lanes.iter().sum::<f32>() + tail
}

/// Rounds half away from zero and saturates, without a libm call (`as` saturates in Rust).
fn to_sample(value: f32) -> i16 {
    let rounded = (value + 0.5f32.copysign(value)) as i32;
    rounded.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    const RATES: [SampleRate; 4] = [
        SampleRate::Hz8000,
        SampleRate::Hz16000,
        SampleRate::Hz24000,
        SampleRate::Hz48000,
    ];

    fn tone(rate: SampleRate, freq: f64, amplitude: f64, frame: usize) -> PcmFrame {
        let n = rate.samples_per_frame();
        let mut f = PcmFrame::silence(rate);
        for (i, s) in f.samples_mut().iter_mut().enumerate() {
            let t = (frame * n + i) as f64 / rate.hz() as f64;
            *s = (amplitude * (2.0 * std::f64::consts::PI * freq * t).sin()) as i16;
        }
        f
    }

    fn rms(samples: &[i16]) -> f64 {
        let sum: f64 = samples.iter().map(|&s| f64::from(s) * f64::from(s)).sum();
        (sum / samples.len() as f64).sqrt()
    }

    #[test]
    fn every_rate_pair_yields_exactly_one_frame_per_frame() {
        for from in RATES {
            for to in RATES {
                let mut r = Resampler::new(from, to);
                for i in 0..5 {
                    let out = r.process_frame(&tone(from, 440.0, 8000.0, i)).unwrap();
                    assert_eq!(out.samples().len(), to.samples_per_frame());
                }
            }
        }
    }

    #[test]
    fn dc_passes_at_unity_gain() {
        for from in RATES {
            for to in RATES {
                let mut r = Resampler::new(from, to);
                let input =
                    PcmFrame::from_samples(from, &vec![10_000; from.samples_per_frame()]).unwrap();
                let mut out = r.process_frame(&input).unwrap();
                for _ in 0..4 {
                    out = r.process_frame(&input).unwrap();
                }
                for &s in out.samples() {
                    assert!((i32::from(s) - 10_000).abs() < 100, "{from:?}->{to:?}: {s}");
                }
            }
        }
    }

    #[test]
    fn speech_band_tone_survives_up_and_down() {
        let mut up = Resampler::new(SampleRate::Hz8000, SampleRate::Hz48000);
        let mut down = Resampler::new(SampleRate::Hz48000, SampleRate::Hz8000);
        let (mut sum_in, mut sum_out) = (0.0, 0.0);
        for i in 0..20 {
            let input = tone(SampleRate::Hz8000, 1000.0, 10_000.0, i);
            let out = down
                .process_frame(&up.process_frame(&input).unwrap())
                .unwrap();
            if i >= 5 {
                sum_in += rms(input.samples());
                sum_out += rms(out.samples());
            }
        }
        let gain = sum_out / sum_in;
        assert!((0.95..1.05).contains(&gain), "gain {gain}");
    }

    #[test]
    fn a_sine_through_8_48_8_khz_keeps_its_frequency_and_joins_frames_without_clicks() {
        let mut up = Resampler::new(SampleRate::Hz8000, SampleRate::Hz48000);
        let mut down = Resampler::new(SampleRate::Hz48000, SampleRate::Hz8000);
        let mut heard = Vec::new();
        for i in 0..40 {
            let input = tone(SampleRate::Hz8000, 700.0, 10_000.0, i);
            let wide = up.process_frame(&input).unwrap();
            heard.extend_from_slice(down.process_frame(&wide).unwrap().samples());
        }
        let steady = &heard[1600..];
        // 700 Hz over 0.6 s: 840 zero crossings.
        let crossings = steady
            .windows(2)
            .filter(|w| (w[0] < 0) != (w[1] < 0))
            .count();
        assert!((crossings as i64 - 840).abs() <= 2, "{crossings} crossings");
        // The largest step between neighbours: a click at a frame edge would stand out from
        // the sine's own slope (2π·700/8000·10 000 ≈ 5 500 per sample).
        let step = |w: &[i16]| (i32::from(w[1]) - i32::from(w[0])).abs();
        let at_edges = (1..steady.len() / 160)
            .map(|f| step(&steady[f * 160 - 1..=f * 160]))
            .max()
            .unwrap();
        let inside = steady.windows(2).map(step).max().unwrap();
        assert!(
            at_edges <= inside,
            "edge step {at_edges} > largest step {inside}"
        );
        assert!(inside < 5_800, "{inside}");
    }

    #[test]
    fn tone_above_the_new_nyquist_is_filtered_out() {
        let mut down = Resampler::new(SampleRate::Hz48000, SampleRate::Hz8000);
        let mut worst: f64 = 0.0;
        for i in 0..20 {
            let out = down
                .process_frame(&tone(SampleRate::Hz48000, 6000.0, 10_000.0, i))
                .unwrap();
            if i >= 5 {
                worst = worst.max(rms(out.samples()));
            }
        }
        // Input RMS is ~7071; require at least 40 dB of attenuation.
        assert!(worst < 70.0, "alias rms {worst}");
    }

    #[test]
    fn the_output_does_not_depend_on_how_the_input_is_cut_into_blocks() {
        let input: Vec<i16> = (0..10)
            .flat_map(|i| {
                tone(SampleRate::Hz24000, 523.0, 9_000.0, i)
                    .samples()
                    .to_vec()
            })
            .collect();
        let run = |cuts: &[usize]| {
            let mut r = Resampler::new(SampleRate::Hz24000, SampleRate::Hz8000);
            let mut out = Vec::new();
            let (mut at, mut k) = (0, 0);
            while at < input.len() {
                let len = cuts[k % cuts.len()].min(input.len() - at);
                let mut buf = vec![0i16; r.output_len(len)];
                let n = r.process(&input[at..at + len], &mut buf).unwrap();
                out.extend_from_slice(&buf[..n]);
                at += len;
                k += 1;
            }
            out
        };
        let whole = run(&[input.len()]);
        assert_eq!(whole.len(), input.len() / 3);
        assert_eq!(run(&[480]), whole);
        assert_eq!(run(&[1, 7, 95, 2000, 3]), whole);
    }

    #[test]
    fn wrong_rate_and_short_buffer_are_errors() {
        let mut r = Resampler::new(SampleRate::Hz16000, SampleRate::Hz24000);
        let err = r
            .process_frame(&PcmFrame::silence(SampleRate::Hz8000))
            .unwrap_err();
        assert!(matches!(err, ResampleError::RateMismatch { .. }));
        let mut small = [0i16; 10];
        let err = r.process(&[0; 320], &mut small).unwrap_err();
        assert_eq!(
            err,
            ResampleError::OutputTooSmall {
                needed: 480,
                available: 10
            }
        );
    }
}
