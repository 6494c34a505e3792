//! The little WAV and raw-PCM plumbing speech providers need: write a mono 16-bit WAV of an
//! utterance (OpenAI-style transcription uploads), read one back (fakes, tests), read a WAV that
//! is still being written (espeak-ng's `--stdout`, whose header carries placeholder lengths), and
//! turn a byte stream of s16le PCM into samples when the network splits it at odd offsets.
//! Hand-written because it is a page of code and the streaming cases are exactly what WAV crates
//! do not handle.

/// Length of the canonical 44-byte header [`encode_wav`] writes.
pub const WAV_HEADER_LEN: usize = 44;

/// Why WAV bytes could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    /// Not a RIFF/WAVE file.
    #[error("not a RIFF/WAVE file")]
    NotWav,
    /// The `fmt ` chunk is missing, short, or not 16-bit PCM.
    #[error("unsupported WAV format: {0}")]
    Unsupported(String),
    /// The bytes ended before the `data` chunk.
    #[error("WAV ended before its data chunk")]
    Truncated,
}

/// Mono 16-bit PCM read from a WAV.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WavAudio {
    /// Samples per second as the header states it (may be any rate, e.g. 22050).
    pub sample_rate: u32,
    /// Channels as stated; only mono is produced by our providers.
    pub channels: u16,
    /// Interleaved samples.
    pub samples: Vec<i16>,
}

impl WavAudio {
    /// Duration of the audio, from the sample count and rate.
    pub fn duration(&self) -> std::time::Duration {
        let frames = self.samples.len() as u64 / u64::from(self.channels.max(1));
        std::time::Duration::from_micros(frames * 1_000_000 / u64::from(self.sample_rate.max(1)))
    }
}

/// Encodes mono s16le samples as a canonical WAV file.
pub fn encode_wav(sample_rate: u32, samples: &[i16]) -> Vec<u8> {
    let data_len = u32::try_from(samples.len() * 2).unwrap_or(u32::MAX - 36);
    let mut out = Vec::with_capacity(WAV_HEADER_LEN + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&sample_rate.to_le_bytes());
    out.extend_from_slice(&(sample_rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes()); // block align
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for s in samples {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out
}

/// Decodes a complete WAV held in memory.
pub fn decode_wav(bytes: &[u8]) -> Result<WavAudio, WavError> {
    let mut reader = WavStreamReader::default();
    let mut samples = Vec::new();
    reader.push(bytes, &mut samples)?;
    let (sample_rate, channels) = reader.format().ok_or(WavError::Truncated)?;
    Ok(WavAudio {
        sample_rate,
        channels,
        samples,
    })
}

/// Reads a WAV that arrives in pieces, trusting the header for the format but not for lengths:
/// the data runs until the stream ends (espeak-ng writes `0x7ffff000` as its placeholder).
#[derive(Debug, Default)]
pub struct WavStreamReader {
    header: Vec<u8>,
    format: Option<(u32, u16)>,
    in_data: bool,
    pcm: Pcm16Decoder,
}

impl WavStreamReader {
    /// The sample rate and channel count, once the `fmt ` chunk has been read.
    pub fn format(&self) -> Option<(u32, u16)> {
        self.format
    }

    /// Consumes the next bytes, appending any complete samples to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<i16>) -> Result<(), WavError> {
        if self.in_data {
            self.pcm.decode_into(bytes, out);
            return Ok(());
        }
        self.header.extend_from_slice(bytes);
        if let Some(data_start) = self.parse_header()? {
            self.in_data = true;
            let rest = std::mem::take(&mut self.header);
            self.pcm
                .decode_into(rest.get(data_start..).unwrap_or_default(), out);
        }
        Ok(())
    }

    /// Walks the chunks buffered so far; returns where PCM data starts once the header is whole.
    fn parse_header(&mut self) -> Result<Option<usize>, WavError> {
        let h = &self.header;
        if h.len() < 12 {
            return Ok(None);
        }
        if h.get(0..4) != Some(b"RIFF") || h.get(8..12) != Some(b"WAVE") {
            return Err(WavError::NotWav);
        }
        let mut pos = 12;
        loop {
            let Some(chunk) = h.get(pos..pos + 8) else {
                return Ok(None);
            };
            let id = chunk.get(..4).unwrap_or_default();
            let len = u32::from_le_bytes([chunk[4], chunk[5], chunk[6], chunk[7]]) as usize;
            let body = pos + 8;
            if id == b"data" {
                if self.format.is_none() {
                    return Err(WavError::Unsupported("data chunk before fmt chunk".into()));
                }
                return Ok(Some(body));
            }
            let Some(content) = h.get(body..body + len) else {
                return Ok(None);
            };
            if id == b"fmt " {
                self.format = Some(parse_fmt(content)?);
            }
            pos = body + len + (len & 1);
        }
    }
}

fn parse_fmt(content: &[u8]) -> Result<(u32, u16), WavError> {
    let field = |at: usize, n: usize| content.get(at..at + n);
    let (Some(tag), Some(ch), Some(rate), Some(bits)) =
        (field(0, 2), field(2, 2), field(4, 4), field(14, 2))
    else {
        return Err(WavError::Unsupported(
            "fmt chunk shorter than 16 bytes".into(),
        ));
    };
    let tag = u16::from_le_bytes([tag[0], tag[1]]);
    let channels = u16::from_le_bytes([ch[0], ch[1]]);
    let rate = u32::from_le_bytes([rate[0], rate[1], rate[2], rate[3]]);
    let bits = u16::from_le_bytes([bits[0], bits[1]]);
    // 0xFFFE is WAVE_FORMAT_EXTENSIBLE, which some engines use for plain PCM too.
    if !(tag == 1 || tag == 0xFFFE) || bits != 16 || channels == 0 || rate == 0 {
        return Err(WavError::Unsupported(format!(
            "format tag {tag}, {bits} bits, {channels} channels, {rate} Hz (need 16-bit PCM)"
        )));
    }
    Ok((rate, channels))
}

/// Turns s16le bytes into samples across arbitrary chunk boundaries (an odd split keeps one
/// byte back until its partner arrives).
#[derive(Debug, Default, Clone)]
pub struct Pcm16Decoder {
    carry: Option<u8>,
}

impl Pcm16Decoder {
    /// Appends every sample completed by `bytes` to `out`.
    pub fn decode_into(&mut self, mut bytes: &[u8], out: &mut Vec<i16>) {
        out.reserve(bytes.len() / 2 + 1);
        if let Some(low) = self.carry.take() {
            match bytes.split_first() {
                Some((&high, rest)) => {
                    out.push(i16::from_le_bytes([low, high]));
                    bytes = rest;
                }
                None => {
                    self.carry = Some(low);
                    return;
                }
            }
        }
        let mut pairs = bytes.chunks_exact(2);
        out.extend(pairs.by_ref().map(|p| i16::from_le_bytes([p[0], p[1]])));
        self.carry = pairs.remainder().first().copied();
    }

    /// Whether half a sample is still waiting (a stream that ends here was cut mid-sample).
    pub fn has_partial_sample(&self) -> bool {
        self.carry.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encode_then_decode_round_trips() {
        let samples: Vec<i16> = (0..500).map(|i| (i * 37 - 9000) as i16).collect();
        let wav = encode_wav(16_000, &samples);
        assert_eq!(wav.len(), WAV_HEADER_LEN + 1000);
        let back = decode_wav(&wav).unwrap();
        assert_eq!(back.sample_rate, 16_000);
        assert_eq!(back.samples, samples);
        assert_eq!(back.duration(), std::time::Duration::from_micros(31_250));
    }

    #[test]
    fn a_wav_fed_one_byte_at_a_time_decodes_the_same() {
        let samples: Vec<i16> = (0..101).map(|i| (i * -211) as i16).collect();
        let mut wav = encode_wav(22_050, &samples);
        // espeak-ng's streaming placeholder lengths must not matter.
        wav[4..8].copy_from_slice(&0x7fff_f024u32.to_le_bytes());
        wav[40..44].copy_from_slice(&0x7fff_f000u32.to_le_bytes());
        let mut reader = WavStreamReader::default();
        let mut out = Vec::new();
        for b in &wav {
            reader.push(std::slice::from_ref(b), &mut out).unwrap();
        }
        assert_eq!(reader.format(), Some((22_050, 1)));
        assert_eq!(out, samples);
    }

    #[test]
    fn garbage_is_not_a_wav() {
        assert_eq!(decode_wav(b"<html>oops</html>"), Err(WavError::NotWav));
        assert_eq!(decode_wav(b"RIFF"), Err(WavError::Truncated));
    }

    #[test]
    fn odd_byte_splits_keep_samples_whole() {
        let samples = [1i16, -2, 300, -32768, 32767];
        let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
        for split in [1, 3, 5, 7, 9] {
            let mut d = Pcm16Decoder::default();
            let mut out = Vec::new();
            d.decode_into(&bytes[..split], &mut out);
            assert!(d.has_partial_sample());
            d.decode_into(&[], &mut out);
            d.decode_into(&bytes[split..], &mut out);
            assert_eq!(out, samples, "split at {split}");
            assert!(!d.has_partial_sample());
        }
    }
}
