//! RFC 3550 reception statistics and RTCP sender/receiver reports. The statistics (interarrival
//! jitter per §A.8, extended highest sequence per §A.1, cumulative and fraction lost per §A.3)
//! tell the far end, our dashboards and the per-turn latency breakdown how the network treats a
//! call; the jitter estimator also drives the jitter buffer's target delay. SR and RR packets are
//! small fixed layouts, so they are written and read here by hand, into and from caller buffers.

use std::time::{Duration, Instant};

const VERSION: u8 = 2;
/// Packet type of a sender report.
pub const PT_SENDER_REPORT: u8 = 200;
/// Packet type of a receiver report.
pub const PT_RECEIVER_REPORT: u8 = 201;
const HEADER_LEN: usize = 4;
const SENDER_INFO_LEN: usize = 20;
const REPORT_BLOCK_LEN: usize = 24;
/// RC is 5 bits.
pub const MAX_REPORT_BLOCKS: usize = 31;
const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;
const SEQ_MOD: u32 = 1 << 16;
/// Seconds from the NTP epoch (1900) to the Unix epoch (1970).
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;

/// Why an RTCP packet could not be read or written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RtcpError {
    /// Fewer bytes than the structure needs.
    #[error("RTCP packet too short: needs {needed} bytes, has {available}")]
    TooShort {
        /// Bytes required.
        needed: usize,
        /// Bytes present.
        available: usize,
    },
    /// Version bits are not 2.
    #[error("unsupported RTCP version {0}")]
    UnsupportedVersion(u8),
    /// More report blocks than RC can count.
    #[error("{0} report blocks exceed the RTCP maximum of 31")]
    TooManyReportBlocks(usize),
    /// The output buffer cannot hold the packet.
    #[error("RTCP output buffer too small: need {needed}, have {available}")]
    BufferTooSmall {
        /// Bytes the packet takes.
        needed: usize,
        /// Bytes offered.
        available: usize,
    },
}

/// Interarrival jitter estimator, RFC 3550 §A.8 (integer form, kept ×16 for precision).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InterarrivalJitter {
    last_transit: Option<u32>,
    jitter_x16: u32,
}

impl InterarrivalJitter {
    /// Feeds one packet: `arrival` is the arrival time in timestamp units (any fixed origin).
    pub fn update(&mut self, arrival: u32, timestamp: u32) {
        let transit = arrival.wrapping_sub(timestamp);
        if let Some(last) = self.last_transit {
            // Wrapping difference read as signed: transit times wrap with the 32-bit clocks.
            let d = i64::from((transit.wrapping_sub(last) as i32).unsigned_abs());
            let j = i64::from(self.jitter_x16);
            let next = j + d - ((j + 8) >> 4);
            self.jitter_x16 = next.clamp(0, i64::from(u32::MAX)) as u32;
        }
        self.last_transit = Some(transit);
    }

    /// Jitter in timestamp units, as carried in a report block.
    pub fn jitter(&self) -> u32 {
        self.jitter_x16 >> 4
    }

    /// Jitter with its four fractional bits, for adaptation decisions finer than one unit.
    pub fn jitter_x16(&self) -> u32 {
        self.jitter_x16
    }

    /// Starts over, for a new source.
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

/// One reception report block (RFC 3550 §6.4.1): how we receive one source, or how it receives us.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReportBlock {
    /// Source this block is about.
    pub ssrc: u32,
    /// Loss since the previous report, as a fraction of 256.
    pub fraction_lost: u8,
    /// Packets lost since the start (24-bit signed; duplicates can make it negative).
    pub cumulative_lost: i32,
    /// Cycles in the high 16 bits, highest sequence seen in the low 16.
    pub extended_highest_sequence: u32,
    /// Interarrival jitter in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP time of the last SR received from the source, or 0.
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s, or 0.
    pub delay_since_last_sr: u32,
}

/// Per-source reception statistics, RFC 3550 §A.1 and §A.3; one per incoming stream.
#[derive(Debug, Clone)]
pub struct ReceiverStats {
    ssrc: u32,
    max_seq: u16,
    cycles: u32,
    base_seq: u32,
    bad_seq: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    jitter: InterarrivalJitter,
    last_sr: Option<(u32, Instant)>,
}

impl ReceiverStats {
    /// Starts statistics at the first packet received from `ssrc`.
    pub fn new(ssrc: u32, first_seq: u16) -> Self {
        let mut s = ReceiverStats {
            ssrc,
            max_seq: first_seq,
            cycles: 0,
            base_seq: u32::from(first_seq),
            bad_seq: SEQ_MOD + 1,
            received: 0,
            expected_prior: 0,
            received_prior: 0,
            jitter: InterarrivalJitter::default(),
            last_sr: None,
        };
        s.init_seq(first_seq);
        s
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = u32::from(seq);
        self.max_seq = seq;
        self.bad_seq = SEQ_MOD + 1;
        self.cycles = 0;
        self.received = 0;
        self.received_prior = 0;
        self.expected_prior = 0;
    }

    /// Records a received packet (`arrival` in timestamp units); returns false for a packet far
    /// outside the sequence window, which is ignored unless the next one confirms a restart.
    pub fn update(&mut self, seq: u16, arrival: u32, timestamp: u32) -> bool {
        if !self.update_sequence(seq) {
            return false;
        }
        self.jitter.update(arrival, timestamp);
        true
    }

    /// Records a received packet for the loss statistics only: for packets of the same stream
    /// whose timestamps do not follow the audio clock (RFC 4733 events keep their start time).
    pub fn update_sequence(&mut self, seq: u16) -> bool {
        let udelta = seq.wrapping_sub(self.max_seq);
        if udelta < MAX_DROPOUT {
            if seq < self.max_seq {
                self.cycles = self.cycles.wrapping_add(SEQ_MOD);
            }
            self.max_seq = seq;
        } else if u32::from(udelta) <= SEQ_MOD - u32::from(MAX_MISORDER) {
            // A very large jump: believe it only if the next packet follows on.
            if u32::from(seq) == self.bad_seq {
                self.init_seq(seq);
                self.jitter.reset();
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (SEQ_MOD - 1);
                return false;
            }
        }
        // else: duplicate or reordered packet, counted but not moving max_seq.
        self.received = self.received.wrapping_add(1);
        true
    }

    /// The source these statistics are about.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Notes a sender report from this source, so our next report block can echo LSR/DLSR.
    pub fn on_sender_report(&mut self, now: Instant, ntp_timestamp: u64) {
        self.last_sr = Some((ntp_middle32(ntp_timestamp), now));
    }

    /// Highest sequence number seen, extended with the count of wraps.
    pub fn extended_highest_sequence(&self) -> u32 {
        self.cycles.wrapping_add(u32::from(self.max_seq))
    }

    /// Packets expected from the sequence numbers seen (§A.3).
    pub fn expected(&self) -> u32 {
        self.extended_highest_sequence()
            .wrapping_sub(self.base_seq)
            .wrapping_add(1)
    }

    /// Packets received, duplicates included (as §A.3 counts them).
    pub fn received(&self) -> u32 {
        self.received
    }

    /// Expected minus received, clamped to the 24-bit signed field of a report block.
    pub fn cumulative_lost(&self) -> i32 {
        let lost = i64::from(self.expected()) - i64::from(self.received);
        lost.clamp(-0x80_0000, 0x7F_FFFF) as i32
    }

    /// The current interarrival jitter estimate.
    pub fn jitter(&self) -> &InterarrivalJitter {
        &self.jitter
    }

    /// Builds the report block for our next SR/RR, and starts the next fraction-lost interval.
    pub fn report_block(&mut self, now: Instant) -> ReportBlock {
        let expected = self.expected();
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        self.expected_prior = expected;
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.received_prior = self.received;
        let lost_interval = i64::from(expected_interval) - i64::from(received_interval);
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / i64::from(expected_interval)).min(255) as u8
        };
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((lsr, at)) => (lsr, duration_to_q16(now.saturating_duration_since(at))),
            None => (0, 0),
        };
        ReportBlock {
            ssrc: self.ssrc,
            fraction_lost,
            cumulative_lost: self.cumulative_lost(),
            extended_highest_sequence: self.extended_highest_sequence(),
            jitter: self.jitter.jitter(),
            last_sr,
            delay_since_last_sr,
        }
    }
}

/// A wall-clock time as a 64-bit NTP timestamp, for the SR's sender info.
pub fn ntp_from_unix(since_unix_epoch: Duration) -> u64 {
    let secs = since_unix_epoch.as_secs().wrapping_add(NTP_UNIX_OFFSET) & 0xFFFF_FFFF;
    let frac = (u64::from(since_unix_epoch.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// The middle 32 bits of an NTP timestamp: the LSR field format.
pub fn ntp_middle32(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

fn duration_to_q16(d: Duration) -> u32 {
    let q = (d.as_nanos() << 16) / 1_000_000_000;
    u32::try_from(q).unwrap_or(u32::MAX)
}

/// The sender-info section of an SR: what we sent, and when in both clocks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderInfo {
    /// Wall-clock time of this report (see [`ntp_from_unix`]).
    pub ntp_timestamp: u64,
    /// The RTP timestamp corresponding to the same instant.
    pub rtp_timestamp: u32,
    /// Packets sent since the stream started.
    pub packet_count: u32,
    /// Payload octets sent since the stream started.
    pub octet_count: u32,
}

/// Writes an SR; returns its length. `buf` is the socket task's reused send buffer.
pub fn write_sender_report(
    buf: &mut [u8],
    ssrc: u32,
    info: &SenderInfo,
    blocks: &[ReportBlock],
) -> Result<usize, RtcpError> {
    let len = HEADER_LEN + 4 + SENDER_INFO_LEN + blocks.len() * REPORT_BLOCK_LEN;
    let mut w = Writer::start(buf, len, PT_SENDER_REPORT, blocks.len())?;
    w.u32(ssrc);
    w.u32((info.ntp_timestamp >> 32) as u32);
    w.u32(info.ntp_timestamp as u32);
    w.u32(info.rtp_timestamp);
    w.u32(info.packet_count);
    w.u32(info.octet_count);
    w.blocks(blocks);
    Ok(len)
}

/// Writes an RR (we receive but have not sent); returns its length.
pub fn write_receiver_report(
    buf: &mut [u8],
    ssrc: u32,
    blocks: &[ReportBlock],
) -> Result<usize, RtcpError> {
    let len = HEADER_LEN + 4 + blocks.len() * REPORT_BLOCK_LEN;
    let mut w = Writer::start(buf, len, PT_RECEIVER_REPORT, blocks.len())?;
    w.u32(ssrc);
    w.blocks(blocks);
    Ok(len)
}

/// Big-endian writer over a buffer whose length was checked up front.
struct Writer<'a> {
    buf: &'a mut [u8],
    at: usize,
}

impl<'a> Writer<'a> {
    fn start(buf: &'a mut [u8], len: usize, pt: u8, count: usize) -> Result<Self, RtcpError> {
        if count > MAX_REPORT_BLOCKS {
            return Err(RtcpError::TooManyReportBlocks(count));
        }
        if buf.len() < len {
            return Err(RtcpError::BufferTooSmall {
                needed: len,
                available: buf.len(),
            });
        }
        let mut w = Writer { buf, at: 0 };
        w.bytes(&[VERSION << 6 | count as u8, pt]);
        w.bytes(&((len / 4 - 1) as u16).to_be_bytes());
        Ok(w)
    }

    fn bytes(&mut self, bytes: &[u8]) {
        if let Some(dst) = self.buf.get_mut(self.at..self.at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
        self.at += bytes.len();
    }

    fn u32(&mut self, v: u32) {
        self.bytes(&v.to_be_bytes());
    }

    fn blocks(&mut self, blocks: &[ReportBlock]) {
        for b in blocks {
            self.u32(b.ssrc);
            let lost = (b.cumulative_lost as u32).to_be_bytes();
            self.bytes(&[b.fraction_lost, lost[1], lost[2], lost[3]]);
            self.u32(b.extended_highest_sequence);
            self.u32(b.jitter);
            self.u32(b.last_sr);
            self.u32(b.delay_since_last_sr);
        }
    }
}

/// One packet of a compound RTCP datagram, borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RtcpPacket<'a> {
    /// SR: sender info plus reception reports.
    SenderReport {
        /// Reporting sender.
        ssrc: u32,
        /// What it sent.
        info: SenderInfo,
        /// How it receives others.
        blocks: ReportBlocks<'a>,
    },
    /// RR: reception reports only.
    ReceiverReport {
        /// Reporter.
        ssrc: u32,
        /// How it receives others.
        blocks: ReportBlocks<'a>,
    },
    /// SDES, BYE, APP, feedback: passed through for whoever cares.
    Other {
        /// RTCP packet type.
        packet_type: u8,
        /// Bytes after the 4-byte header.
        body: &'a [u8],
    },
}

/// Report blocks of a parsed SR/RR, decoded lazily so parsing allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlocks<'a> {
    bytes: &'a [u8],
}

impl Iterator for ReportBlocks<'_> {
    type Item = ReportBlock;
    fn next(&mut self) -> Option<ReportBlock> {
        let (b, rest) = self.bytes.split_first_chunk::<REPORT_BLOCK_LEN>()?;
        self.bytes = rest;
        let word = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        // 24-bit signed cumulative lost: sign-extend through the top byte.
        let cumulative_lost = (u32::from_be_bytes([b[5], b[6], b[7], 0]) as i32) >> 8;
        Some(ReportBlock {
            ssrc: word(0),
            fraction_lost: b[4],
            cumulative_lost,
            extended_highest_sequence: word(8),
            jitter: word(12),
            last_sr: word(16),
            delay_since_last_sr: word(20),
        })
    }
}

/// Iterates the packets of a compound RTCP datagram; stops after the first malformed one.
pub fn parse_compound(datagram: &[u8]) -> RtcpPackets<'_> {
    RtcpPackets { rest: datagram }
}

/// Iterator returned by [`parse_compound`].
#[derive(Debug, Clone)]
pub struct RtcpPackets<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for RtcpPackets<'a> {
    type Item = Result<RtcpPacket<'a>, RtcpError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let result = parse_one(self.rest);
        match result {
            Ok((_, rest)) => self.rest = rest,
            Err(_) => self.rest = &[],
        }
        Some(result.map(|(packet, _)| packet))
    }
}

fn too_short(needed: usize, available: usize) -> RtcpError {
    RtcpError::TooShort { needed, available }
}

fn parse_one(buf: &[u8]) -> Result<(RtcpPacket<'_>, &[u8]), RtcpError> {
    let (&[first, packet_type, len_hi, len_lo], _) = buf
        .split_first_chunk::<HEADER_LEN>()
        .ok_or(too_short(HEADER_LEN, buf.len()))?;
    let version = first >> 6;
    if version != VERSION {
        return Err(RtcpError::UnsupportedVersion(version));
    }
    let count = usize::from(first & 0x1F);
    let len = (usize::from(u16::from_be_bytes([len_hi, len_lo])) + 1) * 4;
    let packet = buf.get(..len).ok_or(too_short(len, buf.len()))?;
    let rest = buf.get(len..).unwrap_or(&[]);
    let body = packet.get(HEADER_LEN..).unwrap_or(&[]);
    let word = |at: usize| -> Result<u32, RtcpError> {
        body.get(at..at + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_be_bytes)
            .ok_or(too_short(HEADER_LEN + at + 4, packet.len()))
    };
    let blocks_at = |at: usize| -> Result<ReportBlocks<'_>, RtcpError> {
        let end = at + count * REPORT_BLOCK_LEN;
        body.get(at..end)
            .map(|bytes| ReportBlocks { bytes })
            .ok_or(too_short(HEADER_LEN + end, packet.len()))
    };
    let parsed = match packet_type {
        PT_SENDER_REPORT => RtcpPacket::SenderReport {
            ssrc: word(0)?,
            info: SenderInfo {
                ntp_timestamp: u64::from(word(4)?) << 32 | u64::from(word(8)?),
                rtp_timestamp: word(12)?,
                packet_count: word(16)?,
                octet_count: word(20)?,
            },
            blocks: blocks_at(24)?,
        },
        PT_RECEIVER_REPORT => RtcpPacket::ReceiverReport {
            ssrc: word(0)?,
            blocks: blocks_at(4)?,
        },
        other => RtcpPacket::Other {
            packet_type: other,
            body,
        },
    };
    Ok((parsed, rest))
}

#[cfg(test)]
#[path = "rtcp_tests.rs"]
mod tests;
