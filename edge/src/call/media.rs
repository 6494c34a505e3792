//! One call's RTP media, sans-IO: incoming packets through the jitter buffer and decoder
//! ([`CallCodec`]: G.711, or Opus with FEC and PLC), the caller's digits (RFC 4733 events out of
//! the stream, or tones heard in its audio; see [`CallDigits`]), outgoing audio paced every
//! 20 ms as an uninterrupted packet stream (silence when the agent has nothing to say, the
//! marker bit on each talk spurt), symmetric RTP (replies go where the caller's packets come
//! from, which is what crosses NAT; only the first source is latched, see [`SourceLatch`]:
//! packets from anyone else are dropped), RTCP sender/receiver reports (on the RTP port when
//! multiplexed, else on the odd port above; see [`RtcpSession`]), the stream's direction
//! (nothing is sent while the peer holds the call) and the timers that declare a dead call
//! ([`Liveness`]).
//!
//! The call task feeds it datagrams and time and drains packets, timeouts and events; it never
//! touches a socket, so every behaviour is tested with simulated time. Per packet it allocates
//! nothing: buffers are sized once when the call starts.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::codec::{CallCodec, MAX_PAYLOAD};
use super::digits::CallDigits;
pub use super::digits::{DtmfVia, HeardDigit, SendDtmfError};
use super::info_digits::InfoDigits;
use super::liveness::{HoldChange, Liveness, Silence};
use super::mix::{self, OutMix};
use crate::media::opus::MAX_OPUS_PACKET;
use crate::rtp::dtmf::DtmfError;
use crate::rtp::dtmf::EVENT_PAYLOAD_LEN;
use crate::rtp::jitter::{JitterBuffer, JitterConfig};
use crate::rtp::latch::{SourceLatch, SourceVerdict};
use crate::rtp::pacer::{Pacer, PacerConfig};
use crate::rtp::packet::{is_rtcp, OutgoingHeader, Packetizer, RtpPacket};
use crate::rtp::rtcp_session::RtcpSession;
use crate::sip::sdp::{Codec, Direction, NegotiatedAudio};

mod playback;
mod received;
mod settings;
use playback::Playback;
use received::ReceivedAudio;
pub use settings::{MediaSettings, MediaStats};

/// Samples in one 20 ms frame at 8 kHz.
pub const FRAME_SAMPLES: usize = 160;

/// The source id given to audio that arrives without RTP (one stream per call).
const STREAM_SSRC: u32 = 0x7757_1110;

/// What the media core tells the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaEvent {
    /// A key press, from RFC 4733 packets or heard as tones.
    Dtmf(HeardDigit),
    /// No packet from the caller for the inactivity timeout: the call is dead.
    Inactive,
    /// On hold, neither RTP nor RTCP from the caller for the hold timeout: the call is dead.
    HoldTimeout,
    /// Everything queued for playback has been sent.
    PlaybackFinished,
    /// Queued playback was dropped before it was sent (barge-in): a leg that buffers audio on
    /// the far side (a provider's media stream) clears that buffer too.
    PlaybackCut,
}

/// How much of the caller's audio the recording must leave out at a moment: the recording is
/// customer data, and what the caller keys or says at a `sensitive` gather (a card number, a
/// PIN) must not end up in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallerMask {
    /// Everything the caller says is recorded.
    Nothing,
    /// Silence while a key is pressed (the agent redacts card numbers).
    KeyTones,
    /// Silence throughout (a workflow is collecting at a `sensitive` gather).
    Everything,
}

/// The media state of one call.
pub struct CallMedia {
    codec: CallCodec,
    clock_rate: u32,
    payload_type: u8,
    /// Where the caller's media is taken from and ours goes.
    source: SourceLatch,
    pacer: Pacer,
    packetizer: Packetizer,
    /// The caller's audio: jitter buffer, decoded frame, when it arrived.
    received: ReceivedAudio,
    /// Key presses both ways: telephone-events, or tones in the caller's audio.
    digits: CallDigits,
    /// Our key presses going out by SIP INFO, paced as the RTP ones.
    info_digits: InfoDigits,
    rtcp: RtcpSession,
    rtcp_mux: bool,
    liveness: Liveness,
    /// The audio queued for the caller.
    playback: Playback,
    talking: bool,
    pcm: [i16; FRAME_SAMPLES],
    encoded: [u8; MAX_PAYLOAD],
    /// The caller's frame of the tick now due was already played out by `poll_received`.
    received_popped: bool,
    /// The pacer's skipped frames already reported by [`Self::take_skipped_ticks`].
    skipped_taken: u64,
    events: VecDeque<MediaEvent>,
    stats: MediaStats,
    /// Other parties' audio and the agent's route, once the call has more than one leg (a
    /// call that never does keeps no buffers for it).
    mix: Option<Box<OutMix>>,
}

/// The negotiated codec could not be set up (libopus refused to build its encoder or decoder).
#[derive(Debug, thiserror::Error)]
#[error("codec {0:?} could not be set up for this call")]
pub struct UnsupportedCodec(pub Codec);

impl CallMedia {
    /// Media for a call answered with `audio`, starting now.
    pub fn new(
        now: Instant,
        audio: &NegotiatedAudio,
        settings: &MediaSettings,
    ) -> Result<Self, UnsupportedCodec> {
        let codec = CallCodec::new(audio.codec).map_err(|_| UnsupportedCodec(audio.codec))?;
        let clock_rate = audio.codec.clock_rate();
        let mut jitter_config = JitterConfig {
            clock_rate,
            // The caller's audio goes to the VAD and speech-to-text, not to a loudspeaker: the
            // buffer need only absorb the jitter it measures. A packet that comes after its tick
            // is not lost, it starts a refill one frame later; every frame of delay saved here
            // is saved on each barge-in.
            min_delay: Duration::ZERO,
            ..JitterConfig::default()
        };
        if audio.codec == Codec::Opus {
            jitter_config.max_payload = MAX_OPUS_PACKET;
        }
        let jitter = JitterBuffer::new(jitter_config).map_err(|_| UnsupportedCodec(audio.codec))?;
        let ssrc = rand::random();
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Ok(Self {
            codec,
            clock_rate,
            payload_type: audio.payload_type,
            source: SourceLatch::new(audio.remote_rtp, audio.remote_rtcp, audio.rtcp_mux),
            pacer: Pacer::new(now, PacerConfig::new(clock_rate)),
            packetizer: Packetizer::new(ssrc),
            received: ReceivedAudio::new(now, jitter),
            // Events count their durations in their own clock, which may not be the codec's.
            digits: CallDigits::new(audio),
            info_digits: InfoDigits::default(),
            rtcp: RtcpSession::new(
                now,
                wall,
                ssrc,
                audio.codec.clock_rate(),
                settings.rtcp_interval,
                rand::random(),
            ),
            rtcp_mux: audio.rtcp_mux,
            liveness: Liveness::new(now, settings.inactivity_timeout, settings.hold_timeout),
            playback: Playback::default(),
            talking: false,
            pcm: [0; FRAME_SAMPLES],
            encoded: [0; MAX_PAYLOAD],
            received_popped: false,
            skipped_taken: 0,
            events: VecDeque::new(),
            stats: MediaStats::default(),
            mix: None,
        })
    }

    /// Queues 8 kHz audio to be played to the caller after what is already queued.
    pub fn play(&mut self, samples: &[i16]) {
        self.playback.play(samples);
    }

    /// Presses `digits` toward the peer as RFC 4733 events in our stream (the agent's audio
    /// pauses for their packets and resumes after), if the peer negotiated telephone-event.
    pub fn send_dtmf(&mut self, digits: &str) -> Result<(), SendDtmfError> {
        self.digits.send(digits)
    }

    /// Presses `digits` toward the peer by SIP INFO (no telephone-event): they come out of
    /// [`poll_info_digit`](Self::poll_info_digit) one at a time, spaced as RTP presses, and the
    /// agent's audio waits until the last press has ended.
    pub fn send_dtmf_info(&mut self, digits: &str) -> Result<(), DtmfError> {
        self.info_digits.push(digits)
    }

    /// The next key due to go out by SIP INFO now.
    pub fn poll_info_digit(&mut self) -> Option<char> {
        self.info_digits.poll_digit()
    }

    /// The peer signals its digits another way (SIP INFO, a provider's own messages): tones in
    /// its audio are no longer taken for digits, lest each key count twice.
    pub fn stop_listening_for_tones(&mut self) {
        self.digits.stop_listening_for_tones();
    }

    /// Whether tones in the caller's audio are taken for digits (no telephone-event, and no
    /// other way of signalling digits seen).
    pub fn listens_for_tones(&self) -> bool {
        self.digits.listens_for_tones()
    }

    /// Drops whatever is queued (the caller spoke over the agent).
    pub fn stop_playback(&mut self) {
        if self.playback.stop() {
            self.events.push_back(MediaEvent::PlaybackCut);
        }
    }

    /// Samples of everything ever queued with [`play`](Self::play) that have left the queue,
    /// played or flushed; audio queued next starts at this position once the queue is empty.
    pub fn playback_position(&self) -> u64 {
        self.playback.position()
    }

    /// The caller's 20 ms frame decoded by the last [`poll_transmit`](Self::poll_transmit), once,
    /// with when its audio arrived: turn-taking dates the caller's speech by its arrival, so the
    /// jitter buffer's playout delay is not added to the end of every turn. `None` when no packet
    /// was due (late, not sent, or lost on G.711; Opus conceals a loss).
    pub fn take_received_frame(&mut self) -> Option<(Instant, &[i16; FRAME_SAMPLES])> {
        self.received.take_frame()
    }

    /// The caller's frame played out for the latest tick, if one was, whether or not the
    /// agent's ear has taken it (the call's recording reads it after the tick's packet).
    pub fn peek_received_frame(&self) -> Option<&[i16; FRAME_SAMPLES]> {
        self.received.peek_frame()
    }

    /// The caller's frame for the recording at `now`: [`peek_received_frame`]
    /// (Self::peek_received_frame), or nothing (silence) where `mask` says the caller's audio
    /// is not to be kept: while they press keys ([`CallerMask::KeyTones`]), so the file holds
    /// no key tones, or all of it ([`CallerMask::Everything`]).
    pub fn recorded_received_frame(
        &self,
        now: Instant,
        mask: CallerMask,
    ) -> Option<&[i16; FRAME_SAMPLES]> {
        match mask {
            CallerMask::Everything => None,
            CallerMask::KeyTones if self.digits.pressing(now) => None,
            CallerMask::KeyTones | CallerMask::Nothing => self.peek_received_frame(),
        }
    }

    /// The audio the last packet from [`poll_transmit`](Self::poll_transmit) carried (silence
    /// when the agent was quiet): what the caller actually heard, cut short by a barge-in.
    pub fn sent_frame(&self) -> &[i16; FRAME_SAMPLES] {
        &self.pcm
    }

    /// Whether audio is queued or being played.
    pub fn is_playing(&self) -> bool {
        self.playback.is_playing()
    }

    /// Our direction is now `direction` (a re-INVITE was answered): says whether that put the
    /// call on hold (we send nothing, and the hold timeout replaces the RTP one) or resumed it.
    pub fn set_direction(&mut self, now: Instant, direction: Direction) -> Option<HoldChange> {
        self.liveness.set_direction(now, direction)
    }

    /// Whether the peer holds the call (we may not send).
    pub fn held(&self) -> bool {
        !self.liveness.sends()
    }

    /// Where our packets go now.
    pub fn remote(&self) -> SocketAddr {
        self.source.rtp_destination()
    }

    /// Datagrams dropped so far for coming from an address other than the caller's (what
    /// [`MediaStats::foreign_received`] says, without building the rest of the stats).
    pub fn foreign_received(&self) -> u64 {
        self.source.foreign()
    }

    /// Counters so far.
    pub fn stats(&self) -> MediaStats {
        let mut stats = self.stats;
        stats.foreign_received = self.source.foreign();
        stats.jitter = self.received.jitter().stats();
        stats.interarrival_jitter_ms = self.rtcp.jitter_ms();
        stats.jitter_buffer_ms =
            u32::try_from(self.received.jitter().target_delay().as_millis()).unwrap_or(u32::MAX);
        stats.rtcp = self.rtcp.stats();
        stats.repair = self.codec.repair();
        stats
    }

    /// Does RTCP share the RTP socket (RFC 5761)? If not, the call's RTCP socket feeds
    /// [`handle_rtcp`](Self::handle_rtcp) and sends what [`poll_rtcp_transmit`](Self::poll_rtcp_transmit) gives.
    pub fn rtcp_muxed(&self) -> bool {
        self.rtcp_mux
    }

    /// One datagram from the RTCP socket (or an RTCP one from the RTP socket).
    pub fn handle_rtcp(&mut self, now: Instant, source: SocketAddr, datagram: &[u8]) {
        if !self.source.handle_rtcp(source) {
            self.warn_foreign(now);
            return;
        }
        let before = self.rtcp.stats().reports_received;
        self.rtcp.handle_datagram(now, datagram);
        // Symmetric RTCP, as for RTP: reports go back where real reports come from.
        if self.rtcp.stats().reports_received > before {
            self.source.rtcp_report_from(source);
            self.liveness.on_rtcp(now);
        }
    }

    /// The RTCP report due now, if any, and where it goes.
    pub fn poll_rtcp_transmit(&mut self, now: Instant) -> Option<(SocketAddr, &[u8])> {
        let to = self.rtcp_destination();
        self.rtcp.poll_transmit(now).map(|bytes| (to, bytes))
    }

    /// The final RTCP report with a BYE, at hang-up (once).
    pub fn close_rtcp(&mut self, now: Instant) -> Option<(SocketAddr, &[u8])> {
        let to = self.rtcp_destination();
        self.rtcp.close(now).map(|bytes| (to, bytes))
    }

    fn rtcp_destination(&self) -> SocketAddr {
        self.source.rtcp_destination()
    }

    /// A warning in the call's log when foreign packets were dropped, at most once per
    /// [`FOREIGN_REPORT_INTERVAL`](crate::rtp::latch::FOREIGN_REPORT_INTERVAL) however many.
    fn warn_foreign(&mut self, now: Instant) {
        if let Some(report) = self.source.poll_foreign_report(now) {
            tracing::warn!(
                dropped = report.dropped,
                from = %report.source,
                latched = %report.latched,
                total = self.source.foreign(),
                "dropped media from an address other than the caller's"
            );
        }
    }

    /// One datagram from the RTP socket.
    pub fn handle_datagram(&mut self, now: Instant, source: SocketAddr, datagram: &[u8]) {
        if is_rtcp(datagram) {
            // Multiplexed (RFC 5761), or a peer that sends it there anyway.
            self.handle_rtcp(now, source, datagram);
            return;
        }
        let Ok(packet) = RtpPacket::parse(datagram) else {
            self.stats.junk_received += 1;
            return;
        };
        if packet.payload_type != self.payload_type && !self.digits.is_event(packet.payload_type) {
            self.stats.junk_received += 1;
            return;
        }
        // Symmetric RTP: answer where the media really comes from, which is where the first
        // packets came from; nobody else's are taken (see `SourceLatch`).
        match self.source.handle_rtp(source) {
            SourceVerdict::Accept => {}
            SourceVerdict::Latched { from, to } => {
                if from != to {
                    tracing::debug!(%from, %to, "latching RTP onto the address packets come from");
                }
            }
            SourceVerdict::Foreign => {
                self.warn_foreign(now);
                return;
            }
        }
        self.liveness.on_rtp(now);
        self.stats.packets_received += 1;
        let is_event = self.digits.is_event(packet.payload_type);
        self.rtcp.on_rtp_received(
            now,
            packet.ssrc,
            packet.sequence,
            packet.timestamp,
            !is_event,
        );
        if is_event {
            self.received
                .push_foreign(now, packet.sequence, packet.ssrc);
            if self
                .digits
                .handle_packet(now, packet.timestamp, packet.payload)
                .is_err()
            {
                self.stats.junk_received += 1;
            }
            self.drain_dtmf();
            return;
        }
        self.received.push(
            now,
            packet.sequence,
            packet.timestamp,
            packet.ssrc,
            packet.payload,
        );
    }

    /// One audio payload that arrived without RTP around it — a provider's media stream
    /// (Twilio's `media` messages) numbers its frames itself: `sequence` counts frames,
    /// `timestamp` is in samples. It goes through the same jitter buffer and decoder as RTP.
    pub fn handle_payload(&mut self, now: Instant, sequence: u16, timestamp: u32, payload: &[u8]) {
        self.liveness.on_rtp(now);
        self.stats.packets_received += 1;
        self.rtcp
            .on_rtp_received(now, STREAM_SSRC, sequence, timestamp, true);
        self.received
            .push(now, sequence, timestamp, STREAM_SSRC, payload);
    }

    /// Advances the clocks: plays out received audio and sends what is due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.digits.handle_timeout(now);
        self.info_digits.handle_timeout(now);
        self.drain_dtmf();
        match self.liveness.handle_timeout(now) {
            Some(Silence::RtpTimeout) => self.events.push_back(MediaEvent::Inactive),
            Some(Silence::HoldTimeout) => self.events.push_back(MediaEvent::HoldTimeout),
            None => {}
        }
        self.pacer.handle_timeout(now);
        self.rtcp.handle_timeout(now);
    }

    /// Plays out the caller's frame of the tick now due, with when its audio arrived, before
    /// [`poll_transmit`](Self::poll_transmit) decides what to send in that tick: what the agent
    /// hears in it (a barge-in) can still silence the same tick. `None` when no tick is due, its
    /// frame was already played out, or no packet was due (see
    /// [`take_received_frame`](Self::take_received_frame)).
    pub fn poll_received(&mut self, now: Instant) -> Option<(Instant, &[i16; FRAME_SAMPLES])> {
        if self.pacer.due() == 0 || self.received_popped {
            return None;
        }
        self.received_popped = true;
        self.play_out_received(now);
        self.take_received_frame()
    }

    /// This leg's outgoing mix (other parties, where the agent's voice goes).
    pub(crate) fn mix_mut(&mut self) -> &mut OutMix {
        self.mix.get_or_insert_with(Box::default)
    }

    /// Ticks the pacer skipped after a stall since the last call: the recording keeps them as
    /// silence, so it stays as long as the call.
    pub fn take_skipped_ticks(&mut self) -> u64 {
        let skipped = self.pacer.stats().skipped;
        let new = skipped.saturating_sub(self.skipped_taken);
        self.skipped_taken = skipped;
        new
    }

    /// Whether a 20 ms tick is due (its packet not yet chosen).
    pub fn tick_due(&self) -> bool {
        self.pacer.due() > 0
    }
    /// When the next 20 ms tick falls due (a call's other legs start on this grid).
    pub fn next_tick(&self) -> Instant {
        self.pacer.poll_timeout()
    }

    /// The RTP clock rate of the stream we send (8 kHz for G.711, 48 kHz for Opus).
    pub fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    /// The next packet to send, written into a buffer reused for every packet.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<(SocketAddr, &[u8])> {
        if self.pacer.due() == 0 {
            return None;
        }
        // Play out one received frame per sent frame: both run on the 20 ms clock.
        if !std::mem::take(&mut self.received_popped) {
            self.play_out_received(now);
        }
        if !self.liveness.sends() {
            // On hold: the tick passes unsent (RTCP goes on), queued playback waits, and the
            // first packet after the hold starts a talk spurt.
            self.pacer.idle();
            self.talking = false;
            mix::discard(&mut self.mix);
            return None;
        }
        if let Some((payload_type, header, payload)) = self.next_dtmf_event() {
            mix::discard(&mut self.mix);
            self.rtcp.on_rtp_sent(now, header.timestamp, payload.len());
            let remote = self.source.rtp_destination();
            let packet = self
                .packetizer
                .packetize(payload_type, header, &payload)
                .ok()?;
            return Some((remote, packet));
        }
        // Between our digits the speech queued waits (silence goes out), and resumes after the
        // last digit's end.
        let held =
            self.digits.sending() || self.info_digits.holds_speech(now) || mix::paused(&self.mix);
        let had_audio = self.playback.fill(&mut self.pcm, held);
        mix::finish(&mut self.mix, &mut self.pcm);
        if had_audio && !self.talking {
            self.pacer.mark_talk_spurt();
        }
        if !had_audio && self.talking {
            self.events.push_back(MediaEvent::PlaybackFinished);
        }
        self.talking = had_audio;
        let header = self.pacer.emit()?;
        let written = self.codec.encode(&self.pcm, &mut self.encoded);
        self.stats.packets_sent += 1;
        self.rtcp.on_rtp_sent(now, header.timestamp, written);
        let payload = self.encoded.get(..written).unwrap_or_default();
        let packet = self
            .packetizer
            .packetize(self.payload_type, header, payload)
            .ok()?;
        Some((self.source.rtp_destination(), packet))
    }

    /// Plays out the caller's frame for the tick now due; tones are listened for in what was
    /// really received.
    fn play_out_received(&mut self, now: Instant) {
        if let Some(frame) = self.received.play_out(now, &mut self.codec) {
            self.digits.hear(now, frame);
            self.drain_dtmf();
        }
    }

    /// This frame's telephone-event packet, when a key press is on: it takes the frame's
    /// sequence number and the press's own timestamp (in the stream's clock, even when the
    /// event's differs: see [`CallDigits`]), and the voice after it starts a new spurt.
    fn next_dtmf_event(&mut self) -> Option<(u8, OutgoingHeader, [u8; EVENT_PAYLOAD_LEN])> {
        let timestamp = self.pacer.due_timestamp()?;
        let (payload_type, event) = self.digits.poll_packet(timestamp)?;
        let mut header = self.pacer.emit()?;
        header.timestamp = event.timestamp;
        header.marker = event.marker;
        self.pacer.mark_talk_spurt();
        self.talking = false;
        self.stats.packets_sent += 1;
        Some((payload_type, header, event.payload))
    }

    /// When `handle_timeout` should run next.
    pub fn poll_timeout(&self) -> Instant {
        let mut next = self.pacer.poll_timeout();
        if let Some(dtmf) = self.digits.poll_timeout() {
            next = next.min(dtmf);
        }
        if let Some(info) = self.info_digits.poll_timeout() {
            next = next.min(info);
        }
        if let Some(rtcp) = self.rtcp.poll_timeout() {
            next = next.min(rtcp);
        }
        if let Some(dead) = self.liveness.poll_timeout() {
            next = next.min(dead);
        }
        next
    }

    /// The next event for the call.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    fn drain_dtmf(&mut self) {
        while let Some(heard) = self.digits.poll_digit() {
            self.events.push_back(MediaEvent::Dtmf(heard));
        }
    }
}

#[cfg(test)]
#[path = "media_tests.rs"]
pub(super) mod tests;

#[cfg(test)]
#[path = "media_digits_tests.rs"]
mod digits_tests;
