//! RTP packets on the wire (RFC 3550 §5.1): a borrowed, validated view of an incoming packet,
//! and a packetizer that writes outgoing packets into one buffer it reuses for the whole call.
//! Parsing uses `rtp-rs`, which checks every header length before handing out fields, so a
//! datagram of junk becomes a typed [`RtpError`], never a panic. Building writes into the
//! packetizer's fixed buffer: no allocation and no `Vec` growth per packet.

use rtp_rs::{RtpPacketBuilder, RtpReader, RtpReaderError};

/// Largest RTP packet the packetizer writes: fits an Ethernet MTU after IP and UDP headers.
pub const MAX_PACKET_LEN: usize = 1472;

/// Why a datagram is not a usable RTP packet, or an outgoing one could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtpError {
    /// Shorter than the 12-byte fixed header.
    #[error("RTP packet too short: {0} bytes, the fixed header needs 12")]
    TooShort(usize),
    /// Version bits are not 2.
    #[error("unsupported RTP version {0}")]
    UnsupportedVersion(u8),
    /// CSRC list or header extension runs past the end of the datagram.
    #[error("RTP header truncated: header needs {header_len} bytes, datagram has {buffer_len}")]
    HeaderTruncated {
        /// Bytes the header claims.
        header_len: usize,
        /// Bytes received.
        buffer_len: usize,
    },
    /// Padding count is zero or longer than the payload.
    #[error("invalid RTP padding length {0}")]
    InvalidPadding(u8),
    /// Payload types are 7 bits.
    #[error("RTP payload type {0} is out of range 0..=127")]
    InvalidPayloadType(u8),
    /// The payload does not fit in one packet.
    #[error("RTP payload of {0} bytes does not fit in one packet")]
    PayloadTooLarge(usize),
}

impl From<RtpReaderError> for RtpError {
    fn from(e: RtpReaderError) -> Self {
        match e {
            RtpReaderError::BufferTooShort(n) => RtpError::TooShort(n),
            RtpReaderError::UnsupportedVersion(v) => RtpError::UnsupportedVersion(v),
            RtpReaderError::HeadersTruncated {
                header_len,
                buffer_len,
            } => RtpError::HeaderTruncated {
                header_len,
                buffer_len,
            },
            RtpReaderError::PaddingLengthInvalid(n) => RtpError::InvalidPadding(n),
        }
    }
}

/// True when a datagram on a muxed RTP/RTCP port is RTCP (RFC 5761 §4: second byte 192..=223),
/// so the socket task can route it before trying to parse it as RTP.
pub fn is_rtcp(datagram: &[u8]) -> bool {
    matches!(datagram.get(1), Some(192..=223))
}

/// A validated incoming RTP packet; borrows the datagram, so parsing copies nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    /// Which codec or event format the payload is (negotiated in SDP).
    pub payload_type: u8,
    /// Start of a talk spurt (audio) or of an event (RFC 4733).
    pub marker: bool,
    /// 16-bit sequence number, wraps.
    pub sequence: u16,
    /// Media clock timestamp, wraps.
    pub timestamp: u32,
    /// Stream identifier; a change means a new source.
    pub ssrc: u32,
    /// Payload without header, extension or padding.
    pub payload: &'a [u8],
}

impl<'a> RtpPacket<'a> {
    /// Parses and validates a datagram; any malformed input is an [`RtpError`].
    pub fn parse(datagram: &'a [u8]) -> Result<Self, RtpError> {
        let reader = RtpReader::new(datagram)?;
        Ok(RtpPacket {
            payload_type: reader.payload_type(),
            marker: reader.mark(),
            sequence: u16::from(reader.sequence_number()),
            timestamp: reader.timestamp(),
            ssrc: reader.ssrc(),
            payload: reader.payload(),
        })
    }
}

/// The per-packet header fields of an outgoing packet, as the pacer hands them out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutgoingHeader {
    /// Sequence number of this packet.
    pub sequence: u16,
    /// Media timestamp of the first sample in the payload.
    pub timestamp: u32,
    /// Set on the first packet of a talk spurt.
    pub marker: bool,
}

/// Writes a call's outgoing RTP packets into one buffer allocated when the call starts.
pub struct Packetizer {
    ssrc: u32,
    buf: Box<[u8; MAX_PACKET_LEN]>,
}

impl Packetizer {
    /// One per outgoing stream; `ssrc` is this stream's random identifier.
    pub fn new(ssrc: u32) -> Self {
        Packetizer {
            ssrc,
            buf: Box::new([0; MAX_PACKET_LEN]),
        }
    }

    /// Our stream's SSRC, for RTCP sender reports.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Writes one packet and returns its bytes, valid until the next call.
    pub fn packetize(
        &mut self,
        payload_type: u8,
        header: OutgoingHeader,
        payload: &[u8],
    ) -> Result<&[u8], RtpError> {
        if payload_type > 127 {
            return Err(RtpError::InvalidPayloadType(payload_type));
        }
        let builder = RtpPacketBuilder::new()
            .payload_type(payload_type)
            .marked(header.marker)
            .sequence(header.sequence.into())
            .timestamp(header.timestamp)
            .ssrc(self.ssrc)
            .payload(payload);
        let len = builder
            .build_into(&mut self.buf[..])
            .map_err(|_| RtpError::PayloadTooLarge(payload.len()))?;
        Ok(self.buf.get(..len).unwrap_or(&[]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    const PACKET: [u8; 16] = [
        0x80, 0x80, 0x12, 0x34, 0x00, 0x00, 0x03, 0x20, 0xDE, 0xAD, 0xBE, 0xEF, 1, 2, 3, 4,
    ];

    #[test]
    fn parses_the_fixed_header_and_payload() {
        let p = RtpPacket::parse(&PACKET).unwrap();
        assert_eq!(p.payload_type, 0);
        assert!(p.marker);
        assert_eq!(p.sequence, 0x1234);
        assert_eq!(p.timestamp, 800);
        assert_eq!(p.ssrc, 0xDEAD_BEEF);
        assert_eq!(p.payload, &[1, 2, 3, 4]);
    }

    #[test]
    fn packetized_packet_parses_back() {
        let mut packetizer = Packetizer::new(42);
        let header = OutgoingHeader {
            sequence: 65535,
            timestamp: u32::MAX,
            marker: true,
        };
        let bytes = packetizer.packetize(8, header, &[9; 160]).unwrap().to_vec();
        let p = RtpPacket::parse(&bytes).unwrap();
        assert_eq!((p.payload_type, p.marker, p.sequence), (8, true, 65535));
        assert_eq!((p.timestamp, p.ssrc, p.payload.len()), (u32::MAX, 42, 160));
    }

    #[test]
    fn oversize_payload_and_bad_payload_type_are_errors() {
        let mut packetizer = Packetizer::new(1);
        let header = OutgoingHeader {
            sequence: 0,
            timestamp: 0,
            marker: false,
        };
        assert_eq!(
            packetizer.packetize(0, header, &[0; MAX_PACKET_LEN]),
            Err(RtpError::PayloadTooLarge(MAX_PACKET_LEN))
        );
        assert_eq!(
            packetizer.packetize(200, header, &[]),
            Err(RtpError::InvalidPayloadType(200))
        );
    }

    #[test]
    fn every_truncation_of_a_valid_packet_is_an_error_or_a_packet() {
        // With CSRCs, an extension and padding, so every length check is exercised.
        let full: [u8; 28] = [
            0xB1, 0x00, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, // V=2 P X CC=1
            0, 0, 0, 7, // CSRC
            0xBE, 0xDE, 0, 1, 1, 2, 3, 4, // extension, one word
            0xAA, 0xBB, 0, 2, // payload + 2 padding bytes
        ];
        assert_eq!(RtpPacket::parse(&full).unwrap().payload, &[0xAA, 0xBB]);
        for len in 0..full.len() {
            assert!(RtpPacket::parse(&full[..len]).is_err(), "len {len}");
        }
    }

    #[test]
    fn random_bytes_never_panic() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut buf = [0u8; 64];
        for _ in 0..20_000 {
            let len = rng.gen_range(0..buf.len());
            rng.fill(&mut buf[..len]);
            if rng.gen_bool(0.5) {
                buf[0] = (buf[0] & 0x3F) | 0x80; // make version 2 common
            }
            let _ = RtpPacket::parse(&buf[..len]);
            let _ = is_rtcp(&buf[..len]);
        }
    }

    #[test]
    fn rtcp_is_told_apart_from_rtp() {
        assert!(is_rtcp(&[0x80, 200, 0, 6]));
        assert!(!is_rtcp(&PACKET));
        assert!(!is_rtcp(&[]));
    }
}
