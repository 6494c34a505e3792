//! Conversion from engine output rates that are not a call [`SampleRate`] — espeak-ng speaks at
//! 22 050 Hz — to one that is. The shared [`Resampler`] covers only the small rational ratios
//! between 8/16/24/48 kHz (22 050 → 24 000 is 147/160, too long a polyphase filter for it), so
//! this does a band-limited fractional step (windowed-sinc interpolation) to 24 kHz and then
//! hands over to [`Resampler`] for the final rate. It runs on TTS chunks as they are produced, not
//! on the per-frame path, so it is written for clarity over speed.

use crate::media::frame::SampleRate;
use crate::media::resample::Resampler;

/// Zero crossings of the interpolation kernel on each side.
const HALF_TAPS: usize = 16;

/// Streams audio from any rate to a [`SampleRate`]: fractional step to 24 kHz, then [`Resampler`].
#[derive(Clone)]
pub(crate) struct RateConverter {
    from_hz: u32,
    /// Input samples consumed per output sample at the intermediate rate.
    step: f64,
    /// Kernel cut-off in cycles per input sample.
    cutoff: f64,
    /// Pending input, with `HALF_TAPS` samples of history in front.
    pending: Vec<f32>,
    /// Position of the next intermediate output within `pending`.
    pos: f64,
    /// 24 kHz → target; `None` when the target is 24 kHz or the input already is a call rate.
    stage_two: Option<Resampler>,
    scratch: Vec<i16>,
}

impl RateConverter {
    /// A converter from `from_hz` (any positive rate) to `to`.
    pub(crate) fn new(from_hz: u32, to: SampleRate) -> Self {
        let from_hz = from_hz.max(1);
        let (mid, stage_two) = match SampleRate::from_hz(from_hz) {
            // Already a call rate: the shared resampler does the whole job.
            Ok(rate) => (rate, (rate != to).then(|| Resampler::new(rate, to))),
            Err(_) => (
                SampleRate::Hz24000,
                (to != SampleRate::Hz24000).then(|| Resampler::new(SampleRate::Hz24000, to)),
            ),
        };
        let step = f64::from(from_hz) / f64::from(mid.hz());
        RateConverter {
            from_hz,
            step,
            cutoff: 0.47 * (1.0 / step).min(1.0),
            pending: vec![0.0; HALF_TAPS],
            pos: HALF_TAPS as f64,
            stage_two,
            scratch: Vec::new(),
        }
    }

    fn is_fractional(&self) -> bool {
        SampleRate::from_hz(self.from_hz).is_err()
    }

    /// Converts the next input block, appending the output to `out`.
    pub(crate) fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        if !self.is_fractional() {
            self.stage_two_into(input, out);
            return;
        }
        self.pending.extend(input.iter().map(|&s| f32::from(s)));
        let mut mid = std::mem::take(&mut self.scratch);
        mid.clear();
        while (self.pos.floor() as usize) + HALF_TAPS < self.pending.len() {
            mid.push(self.interpolate());
            self.pos += self.step;
        }
        let consumed = (self.pos.floor() as usize).saturating_sub(HALF_TAPS - 1);
        let consumed = consumed.min(self.pending.len());
        self.pending.drain(..consumed);
        self.pos -= consumed as f64;
        self.stage_two_into(&mid, out);
        self.scratch = mid;
    }

    /// Flushes the audio still held for the filter's look-ahead (call once at the end).
    pub(crate) fn finish(&mut self, out: &mut Vec<i16>) {
        let tail = [0i16; HALF_TAPS * 2];
        self.process(&tail, out);
    }

    fn stage_two_into(&mut self, input: &[i16], out: &mut Vec<i16>) {
        match &mut self.stage_two {
            None => out.extend_from_slice(input),
            Some(r) => {
                let start = out.len();
                out.resize(start + r.output_len(input.len()), 0);
                let written = r
                    .process(input, out.get_mut(start..).unwrap_or_default())
                    .unwrap_or(0);
                out.truncate(start + written);
            }
        }
    }

    /// Windowed-sinc interpolation of `pending` at `pos`.
    fn interpolate(&self) -> i16 {
        use std::f64::consts::PI;
        let centre = self.pos.floor() as isize;
        let frac = self.pos - centre as f64;
        let mut acc = 0.0f64;
        let half = HALF_TAPS as isize;
        for k in (1 - half)..=half {
            let Some(&x) = usize::try_from(centre + k)
                .ok()
                .and_then(|i| self.pending.get(i))
            else {
                continue;
            };
            let d = k as f64 - frac; // distance from the output instant, in input samples
            let arg = 2.0 * self.cutoff * d;
            let sinc = if arg.abs() < 1e-9 {
                1.0
            } else {
                (PI * arg).sin() / (PI * arg)
            };
            // Blackman window over [-HALF_TAPS, HALF_TAPS].
            let w = 0.5 + d / (2.0 * HALF_TAPS as f64);
            let window = if (0.0..=1.0).contains(&w) {
                0.42 - 0.5 * (2.0 * PI * w).cos() + 0.08 * (4.0 * PI * w).cos()
            } else {
                0.0
            };
            acc += f64::from(x) * 2.0 * self.cutoff * sinc * window;
        }
        acc.round().clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(hz: u32, freq: f64, secs: f64) -> Vec<i16> {
        let n = (f64::from(hz) * secs) as usize;
        (0..n)
            .map(|i| {
                (8000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(hz)).sin())
                    as i16
            })
            .collect()
    }

    fn rms(s: &[i16]) -> f64 {
        (s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / s.len().max(1) as f64).sqrt()
    }

    #[test]
    fn espeak_rate_to_each_call_rate_keeps_length_and_level() {
        let input = tone(22_050, 500.0, 1.0);
        for to in [SampleRate::Hz8000, SampleRate::Hz16000, SampleRate::Hz24000] {
            let mut c = RateConverter::new(22_050, to);
            let mut out = Vec::new();
            // Odd-sized blocks, as a pipe delivers them.
            for block in input.chunks(777) {
                c.process(block, &mut out);
            }
            c.finish(&mut out);
            let expected = to.hz() as usize;
            let diff = out.len().abs_diff(expected);
            assert!(diff < expected / 50, "{to:?}: {} samples", out.len());
            let level = rms(&out[out.len() / 4..out.len() * 3 / 4]) / rms(&input);
            assert!((0.95..1.05).contains(&level), "{to:?}: level {level}");
        }
    }

    #[test]
    fn a_call_rate_input_goes_straight_to_the_shared_resampler() {
        let mut c = RateConverter::new(16_000, SampleRate::Hz8000);
        let mut out = Vec::new();
        c.process(&[0; 320], &mut out);
        assert_eq!(out.len(), 160);
    }
}
