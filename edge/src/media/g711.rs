//! G.711 (ITU-T G.711) µ-law and A-law: the codecs every telephone network speaks, payload types
//! 0 (PCMU) and 8 (PCMA). They run on every 20 ms frame of every call, in both directions, so
//! they are written here by hand rather than pulled from a crate: the whole codec is a few lines,
//! decoding is a lookup in a 256-entry table built at compile time, and encoding is a handful of
//! integer operations with no branches on the data beyond the sign and clip.

/// Which G.711 law a call negotiated; carries its static RTP payload type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum G711 {
    /// µ-law, North America and Japan, RTP payload type 0 (PCMU).
    Ulaw,
    /// A-law, the rest of the world, RTP payload type 8 (PCMA).
    Alaw,
}

impl G711 {
    /// The static RTP payload type (RFC 3551) for this law.
    pub const fn payload_type(self) -> u8 {
        match self {
            G711::Ulaw => 0,
            G711::Alaw => 8,
        }
    }

    /// Maps a static payload type from SDP or an RTP header back to a law.
    pub const fn from_payload_type(pt: u8) -> Option<Self> {
        match pt {
            0 => Some(G711::Ulaw),
            8 => Some(G711::Alaw),
            _ => None,
        }
    }

    /// Encodes as many samples as fit in `out`; returns how many bytes were written.
    pub fn encode(self, pcm: &[i16], out: &mut [u8]) -> usize {
        match self {
            G711::Ulaw => encode_ulaw(pcm, out),
            G711::Alaw => encode_alaw(pcm, out),
        }
    }

    /// Decodes as many bytes as fit in `out`; returns how many samples were written.
    pub fn decode(self, payload: &[u8], out: &mut [i16]) -> usize {
        match self {
            G711::Ulaw => decode_ulaw(payload, out),
            G711::Alaw => decode_alaw(payload, out),
        }
    }
}

const ULAW_BIAS: i32 = 0x84;
const ULAW_CLIP: i32 = 32_635;

/// Encodes one linear sample to µ-law (the classic biased-segment algorithm).
pub const fn linear_to_ulaw(sample: i16) -> u8 {
    let mut x = sample as i32;
    let sign = if x < 0 {
        x = -x;
        0x80
    } else {
        0
    };
    if x > ULAW_CLIP {
        x = ULAW_CLIP;
    }
    x += ULAW_BIAS;
    // Segment = position of the highest set bit above bit 7 (x is in 0x84..=0x7FFF).
    let exponent = (31 - x.leading_zeros() as i32) - 7;
    let exponent = if exponent < 0 { 0 } else { exponent };
    let mantissa = (x >> (exponent + 3)) & 0x0F;
    !((sign | (exponent << 4) | mantissa) as u8)
}

const fn ulaw_to_linear_calc(code: u8) -> i16 {
    let u = !code;
    let exponent = ((u >> 4) & 0x07) as i32;
    let mantissa = (u & 0x0F) as i32;
    let magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS;
    if u & 0x80 != 0 {
        -magnitude as i16
    } else {
        magnitude as i16
    }
}

/// Encodes one linear sample to A-law (13-bit magnitude, segments, even bits inverted).
pub const fn linear_to_alaw(sample: i16) -> u8 {
    let mut value = (sample as i32) >> 3;
    let mask = if value >= 0 {
        0xD5
    } else {
        value = -value - 1;
        0x55
    };
    // Segment ends of the 13-bit magnitude.
    let mut segment = 0;
    while segment < 8 && value > (0x20 << segment) - 1 {
        segment += 1;
    }
    if segment >= 8 {
        return 0x7F ^ mask;
    }
    let shift = if segment < 2 { 1 } else { segment };
    let code = (segment << 4) | ((value >> shift) & 0x0F);
    (code as u8) ^ mask
}

const fn alaw_to_linear_calc(code: u8) -> i16 {
    let a = code ^ 0x55;
    let mut t = ((a & 0x0F) as i32) << 4;
    let segment = ((a & 0x70) >> 4) as i32;
    t = match segment {
        0 => t + 8,
        1 => t + 0x108,
        _ => (t + 0x108) << (segment - 1),
    };
    if a & 0x80 != 0 {
        t as i16
    } else {
        -t as i16
    }
}

const fn build_table(alaw: bool) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = if alaw {
            alaw_to_linear_calc(i as u8)
        } else {
            ulaw_to_linear_calc(i as u8)
        };
        i += 1;
    }
    table
}

static ULAW_TABLE: [i16; 256] = build_table(false);
static ALAW_TABLE: [i16; 256] = build_table(true);

/// Decodes one µ-law byte (table lookup).
#[inline]
pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_TABLE[usize::from(code)]
}

/// Decodes one A-law byte (table lookup).
#[inline]
pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW_TABLE[usize::from(code)]
}

/// Encodes a buffer to µ-law; returns the number of bytes written (the shorter length).
pub fn encode_ulaw(pcm: &[i16], out: &mut [u8]) -> usize {
    out.iter_mut()
        .zip(pcm)
        .map(|(o, &s)| *o = linear_to_ulaw(s))
        .count()
}

/// Encodes a buffer to A-law; returns the number of bytes written (the shorter length).
pub fn encode_alaw(pcm: &[i16], out: &mut [u8]) -> usize {
    out.iter_mut()
        .zip(pcm)
        .map(|(o, &s)| *o = linear_to_alaw(s))
        .count()
}

/// Decodes a µ-law payload; returns the number of samples written (the shorter length).
pub fn decode_ulaw(payload: &[u8], out: &mut [i16]) -> usize {
    out.iter_mut()
        .zip(payload)
        .map(|(o, &b)| *o = ulaw_to_linear(b))
        .count()
}

/// Decodes an A-law payload; returns the number of samples written (the shorter length).
pub fn decode_alaw(payload: &[u8], out: &mut [i16]) -> usize {
    out.iter_mut()
        .zip(payload)
        .map(|(o, &b)| *o = alaw_to_linear(b))
        .count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ulaw_known_values() {
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0x80), 32_124);
        assert_eq!(ulaw_to_linear(0x00), -32_124);
        assert_eq!(ulaw_to_linear(0xF0), 120);
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(32_767), 0x80);
        assert_eq!(linear_to_ulaw(-32_768), 0x00);
        assert_eq!(linear_to_ulaw(-1), 0x7F);
    }

    #[test]
    fn alaw_known_values() {
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32_256);
        assert_eq!(alaw_to_linear(0x2A), -32_256);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(-8), 0x55);
        assert_eq!(linear_to_alaw(32_767), 0xAA);
        assert_eq!(linear_to_alaw(-32_768), 0x2A);
    }

    #[test]
    fn every_code_survives_decode_then_encode() {
        for code in 0..=255u8 {
            assert_eq!(
                linear_to_alaw(alaw_to_linear(code)),
                code,
                "A-law {code:#04x}"
            );
            let back = linear_to_ulaw(ulaw_to_linear(code));
            // 0x7F (negative zero) legitimately re-encodes as 0xFF (positive zero).
            if code != 0x7F {
                assert_eq!(back, code, "µ-law {code:#04x}");
            }
        }
    }

    #[test]
    fn round_trip_error_is_within_one_half_quantization_step() {
        for x in i16::MIN..=i16::MAX {
            let bound = i32::from(x).abs() / 32 + 16;
            let u = i32::from(ulaw_to_linear(linear_to_ulaw(x)));
            let a = i32::from(alaw_to_linear(linear_to_alaw(x)));
            // Above the clip level the error is the clip itself (at most ~640).
            assert!((u - i32::from(x)).abs() <= bound, "µ-law {x} -> {u}");
            assert!((a - i32::from(x)).abs() <= bound, "A-law {x} -> {a}");
        }
    }

    #[test]
    fn buffers_encode_and_decode_to_the_shorter_length() {
        let pcm = [0i16, 1000, -1000, 32_000];
        let mut bytes = [0u8; 3];
        assert_eq!(G711::Ulaw.encode(&pcm, &mut bytes), 3);
        let mut back = [0i16; 8];
        assert_eq!(G711::Ulaw.decode(&bytes, &mut back), 3);
        assert!((i32::from(back[1]) - 1000).abs() < 40);
        assert_eq!(G711::from_payload_type(8), Some(G711::Alaw));
        assert_eq!(G711::Alaw.payload_type(), 8);
    }
}
