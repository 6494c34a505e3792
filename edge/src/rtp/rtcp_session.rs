//! One call's RTCP (RFC 3550 §6), sans-IO: it counts what we send and receive, sends a compound
//! report (SR, or RR before we have sent anything, with a reception block about the caller's
//! stream, plus the SDES CNAME every compound packet must carry) at a randomised interval, reads
//! the far end's SR/RR to learn how it hears us (fraction and cumulative lost, jitter) and the
//! round-trip time from the LSR/DLSR echo (§6.4.1), and says goodbye with a BYE at hang-up.
//!
//! The interval rules are simplified for a two-party call: a fixed nominal interval (5 s by
//! default), randomised 0.5–1.5× so calls started together do not report in lockstep. Wall-clock
//! time (for NTP timestamps) comes from an anchor given at creation plus the `Instant`s fed in,
//! so tests drive it with simulated time. Per report it allocates nothing.

use std::time::{Duration, Instant};

use super::rtcp::{
    ntp_from_unix, ntp_middle32, parse_compound, write_receiver_report, write_sender_report,
    ReceiverStats, ReportBlock, RtcpPacket, SenderInfo,
};

const PT_SDES: u8 = 202;
const PT_BYE: u8 = 203;
const SDES_CNAME: u8 = 1;
/// Room for SR + one block, SDES with a CNAME of up to 255 bytes, and BYE.
const REPORT_BUF: usize = 52 + 268 + 8;

/// RTCP counters and the far end's view of our stream, for the call record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RtcpStats {
    /// Compound reports we sent (the final one included).
    pub reports_sent: u64,
    /// SR/RR packets received from the far end.
    pub reports_received: u64,
    /// RTCP datagrams that could not be read, or did not start with SR/RR.
    pub junk_received: u64,
    /// The far end's latest fraction lost of our stream, out of 256.
    pub peer_fraction_lost: Option<u8>,
    /// The far end's latest cumulative count of our packets lost.
    pub peer_cumulative_lost: Option<i32>,
    /// The far end's latest interarrival jitter of our stream, in microseconds.
    pub peer_jitter_micros: Option<u32>,
    /// Latest round-trip time from an LSR/DLSR echo, in microseconds.
    pub rtt_micros: Option<u32>,
    /// The far end said BYE.
    pub peer_bye: bool,
}

/// The RTCP state of one RTP session (one call leg).
pub struct RtcpSession {
    ssrc: u32,
    clock_rate: u32,
    cname: Box<[u8]>,
    anchor: Instant,
    anchor_wall: Duration,
    interval: Duration,
    next_report: Instant,
    due: bool,
    closed: bool,
    rng: u64,
    packets_sent: u32,
    octets_sent: u32,
    last_sent: Option<(Instant, u32)>,
    source: Option<ReceiverStats>,
    stats: RtcpStats,
    buf: [u8; REPORT_BUF],
}

impl RtcpSession {
    /// Starts a session at `now` for our stream `ssrc` at `clock_rate` Hz; `wall` is the
    /// wall-clock time at `now` since the Unix epoch; `seed` randomises the report times.
    pub fn new(
        now: Instant,
        wall: Duration,
        ssrc: u32,
        clock_rate: u32,
        interval: Duration,
        seed: u64,
    ) -> Self {
        let mut cname = format!("freya-{ssrc:08x}").into_bytes();
        cname.truncate(255);
        let mut session = Self {
            ssrc,
            clock_rate: clock_rate.max(1000),
            cname: cname.into_boxed_slice(),
            anchor: now,
            anchor_wall: wall,
            interval,
            next_report: now,
            due: false,
            closed: false,
            rng: seed | 1,
            packets_sent: 0,
            octets_sent: 0,
            last_sent: None,
            source: None,
            stats: RtcpStats::default(),
            buf: [0; REPORT_BUF],
        };
        session.next_report = now + session.randomised_interval();
        session
    }

    /// Counters and the far end's view so far.
    pub fn stats(&self) -> RtcpStats {
        self.stats
    }

    /// The caller's stream statistics, once a packet has arrived.
    pub fn source(&self) -> Option<&ReceiverStats> {
        self.source.as_ref()
    }

    /// The interarrival jitter of the caller's stream, in milliseconds.
    pub fn jitter_ms(&self) -> u32 {
        self.source
            .as_ref()
            .map_or(0, |s| s.jitter().jitter() / (self.clock_rate / 1000))
    }

    /// We sent an RTP packet with `rtp_timestamp` and `payload_len` octets of payload.
    pub fn on_rtp_sent(&mut self, now: Instant, rtp_timestamp: u32, payload_len: usize) {
        self.packets_sent = self.packets_sent.wrapping_add(1);
        self.octets_sent = self
            .octets_sent
            .wrapping_add(u32::try_from(payload_len).unwrap_or(u32::MAX));
        self.last_sent = Some((now, rtp_timestamp));
    }

    /// We received an RTP packet; `timed` is false for packets whose timestamp does not follow
    /// the media clock (RFC 4733 events), which count for loss but not for jitter.
    pub fn on_rtp_received(
        &mut self,
        now: Instant,
        ssrc: u32,
        seq: u16,
        timestamp: u32,
        timed: bool,
    ) {
        let source = match &mut self.source {
            Some(source) if source.ssrc() == ssrc => source,
            other => other.insert(ReceiverStats::new(ssrc, seq)),
        };
        if timed {
            let units = now.saturating_duration_since(self.anchor).as_micros()
                * u128::from(self.clock_rate)
                / 1_000_000;
            source.update(seq, units as u32, timestamp);
        } else {
            source.update_sequence(seq);
        }
    }

    /// An RTCP datagram from the far end (compound or not).
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) {
        let mut first = true;
        for packet in parse_compound(datagram) {
            let Ok(packet) = packet else {
                self.stats.junk_received += 1;
                return;
            };
            let blocks = match packet {
                RtcpPacket::SenderReport { ssrc, info, blocks } => {
                    if let Some(source) = self.source.as_mut().filter(|s| s.ssrc() == ssrc) {
                        source.on_sender_report(now, info.ntp_timestamp);
                    }
                    blocks
                }
                RtcpPacket::ReceiverReport { blocks, .. } => blocks,
                RtcpPacket::Other { packet_type, .. } => {
                    if first {
                        // RFC 3550 §6.1: a compound packet starts with SR or RR.
                        self.stats.junk_received += 1;
                        return;
                    }
                    if packet_type == PT_BYE {
                        self.stats.peer_bye = true;
                    }
                    continue;
                }
            };
            first = false;
            self.stats.reports_received += 1;
            let ours = self.ssrc;
            for block in blocks.filter(|b| b.ssrc == ours) {
                self.on_report_about_us(now, &block);
            }
        }
    }

    fn on_report_about_us(&mut self, now: Instant, block: &ReportBlock) {
        self.stats.peer_fraction_lost = Some(block.fraction_lost);
        self.stats.peer_cumulative_lost = Some(block.cumulative_lost);
        let micros = u64::from(block.jitter) * 1_000_000 / u64::from(self.clock_rate);
        self.stats.peer_jitter_micros = Some(u32::try_from(micros).unwrap_or(u32::MAX));
        if block.last_sr == 0 {
            return;
        }
        // §6.4.1: RTT = A - LSR - DLSR, all in the middle 32 bits of NTP time (1/65536 s).
        let arrival = ntp_middle32(self.ntp(now));
        let rtt = arrival
            .wrapping_sub(block.last_sr)
            .wrapping_sub(block.delay_since_last_sr);
        // A negative result (clock trouble, a forged echo) reads as huge: ignore it.
        if rtt < 0x8000_0000 {
            let micros = (u64::from(rtt) * 1_000_000) >> 16;
            self.stats.rtt_micros = Some(u32::try_from(micros).unwrap_or(u32::MAX));
        }
    }

    /// Advances the clock: a report falls due at its time.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.closed && now >= self.next_report {
            self.due = true;
            self.next_report = now + self.randomised_interval();
        }
    }

    /// When the next report is due (`None` once closed).
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.closed).then_some(self.next_report)
    }

    /// The report that fell due, if any, written into a buffer reused for every report.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<&[u8]> {
        if !std::mem::take(&mut self.due) || self.closed {
            return None;
        }
        let len = self.write_report(now, false)?;
        self.buf.get(..len)
    }

    /// The final report with a BYE, once, at hang-up; no reports after it.
    pub fn close(&mut self, now: Instant) -> Option<&[u8]> {
        if self.closed {
            return None;
        }
        self.closed = true;
        let len = self.write_report(now, true)?;
        self.buf.get(..len)
    }

    fn write_report(&mut self, now: Instant, bye: bool) -> Option<usize> {
        let ntp = self.ntp(now);
        let block = self.source.as_mut().map(|s| s.report_block(now));
        let blocks = block.as_slice();
        let mut len = match self.last_sent {
            Some((at, timestamp)) => {
                let elapsed = now.saturating_duration_since(at).as_micros()
                    * u128::from(self.clock_rate)
                    / 1_000_000;
                let info = SenderInfo {
                    ntp_timestamp: ntp,
                    rtp_timestamp: timestamp.wrapping_add(elapsed as u32),
                    packet_count: self.packets_sent,
                    octet_count: self.octets_sent,
                };
                write_sender_report(&mut self.buf, self.ssrc, &info, blocks).ok()?
            }
            None => write_receiver_report(&mut self.buf, self.ssrc, blocks).ok()?,
        };
        len += write_sdes_cname(self.buf.get_mut(len..)?, self.ssrc, &self.cname)?;
        if bye {
            len += write_bye(self.buf.get_mut(len..)?, self.ssrc)?;
        }
        self.stats.reports_sent += 1;
        Some(len)
    }

    /// The NTP time of `now`, from the wall-clock anchor.
    fn ntp(&self, now: Instant) -> u64 {
        let since = now.saturating_duration_since(self.anchor);
        ntp_from_unix(self.anchor_wall + since)
    }

    /// The nominal interval times a factor drawn from 0.5..1.5 (xorshift64; not for secrets).
    fn randomised_interval(&mut self) -> Duration {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        let unit = (self.rng >> 11) as f64 / (1u64 << 53) as f64;
        self.interval.mul_f64(0.5 + unit)
    }
}

/// Writes an SDES packet with one chunk holding our CNAME; returns its length.
fn write_sdes_cname(buf: &mut [u8], ssrc: u32, cname: &[u8]) -> Option<usize> {
    let cname_len = u8::try_from(cname.len()).ok()?;
    // Chunk: SSRC, CNAME item (type, length, text), then one to four zero octets to a word edge.
    let chunk = 4 + 2 + cname.len();
    let padded = (chunk / 4 + 1) * 4;
    let len = 4 + padded;
    let out = buf.get_mut(..len)?;
    out.fill(0);
    out[0] = 2 << 6 | 1;
    out[1] = PT_SDES;
    out[2..4].copy_from_slice(&u16::try_from(len / 4 - 1).ok()?.to_be_bytes());
    out[4..8].copy_from_slice(&ssrc.to_be_bytes());
    out[8] = SDES_CNAME;
    out[9] = cname_len;
    out.get_mut(10..10 + cname.len())?.copy_from_slice(cname);
    Some(len)
}

/// Writes a BYE for our SSRC; returns its length.
fn write_bye(buf: &mut [u8], ssrc: u32) -> Option<usize> {
    let out = buf.get_mut(..8)?;
    out[..4].copy_from_slice(&[2 << 6 | 1, PT_BYE, 0, 1]);
    out[4..].copy_from_slice(&ssrc.to_be_bytes());
    Some(8)
}

#[cfg(test)]
#[path = "rtcp_session_tests.rs"]
mod tests;
