//! One call's audio, both ways, sans-IO: the caller's speech is encoded with the edge's codecs
//! (G.711, or Opus at 8 kHz in a 48 kHz RTP clock) and timed by the edge's drift-free [`Pacer`];
//! received packets are parsed with the edge's [`RtpPacket`], decoded, counted in
//! [`StreamStats`] and handed to the call's [`TurnTaking`], which decides when the caller speaks
//! and reports each turn to a watcher, if there is one. RTCP reports go both ways through
//! the edge's [`RtcpSession`], and scheduled key presses go out as RFC 4733 events in place of
//! audio. The call task owns the sockets and hands this value datagrams and ticks. Per packet,
//! nothing here allocates: buffers are fixed arrays owned by the session.

use std::time::{Duration, Instant};

use freya_edge::media::frame::SampleRate;
use freya_edge::media::g711::G711;
use freya_edge::media::opus::{OpusDecoder, OpusEncoder, OpusSettings};
use freya_edge::rtp::dtmf::{DtmfDigit, DtmfEncoder};
use freya_edge::rtp::pacer::{Pacer, PacerConfig};
use freya_edge::rtp::packet::{is_rtcp, OutgoingHeader, Packetizer, RtpPacket, MAX_PACKET_LEN};
use freya_edge::rtp::rtcp_session::{RtcpSession, RtcpStats};
use freya_edge::sip::sdp::{Codec, NegotiatedAudio};
use hdrhistogram::Histogram;
use tokio::sync::mpsc;

use crate::audio::FRAME_SAMPLES;
use crate::stream::{new_gap_histogram, StreamStats};
use crate::uac::turn_taking::{Conversation, ConversationEvent, TurnTaking};
use crate::uac::{CallConfig, DtmfPress};

/// How long each scheduled key is held.
const DTMF_PRESS: Duration = Duration::from_millis(100);

/// The codec of a call, both ways, at the load generator's 8 kHz.
enum Voice {
    G711(G711),
    Opus {
        encoder: Box<OpusEncoder>,
        decoder: Box<OpusDecoder>,
    },
}

impl Voice {
    fn new(codec: Codec) -> Result<Self, String> {
        Ok(match codec {
            Codec::Pcmu => Voice::G711(G711::Ulaw),
            Codec::Pcma => Voice::G711(G711::Alaw),
            Codec::Opus => Voice::Opus {
                encoder: Box::new(
                    OpusEncoder::new(SampleRate::Hz8000, OpusSettings::default())
                        .map_err(|e| e.to_string())?,
                ),
                decoder: Box::new(OpusDecoder::new(SampleRate::Hz8000).map_err(|e| e.to_string())?),
            },
        })
    }

    /// Encodes one 8 kHz frame into `out`; returns the payload length (0 when Opus refused).
    fn encode(&mut self, pcm: &[i16; FRAME_SAMPLES], out: &mut [u8]) -> usize {
        match self {
            Voice::G711(law) => law.encode(pcm, out),
            Voice::Opus { encoder, .. } => match encoder.encode(pcm) {
                Ok(packet) => match out.get_mut(..packet.len()) {
                    Some(dst) => {
                        dst.copy_from_slice(packet);
                        packet.len()
                    }
                    None => 0,
                },
                Err(_) => 0,
            },
        }
    }

    /// Decodes one payload into `out` at 8 kHz; returns the samples (0 for a refused packet).
    fn decode(&mut self, payload: &[u8], out: &mut [i16]) -> usize {
        match self {
            Voice::G711(law) => law.decode(payload, out),
            Voice::Opus { decoder, .. } => decoder.decode(payload, out).unwrap_or(0),
        }
    }
}

/// The audio of one answered call.
pub struct MediaSession {
    voice: Voice,
    payload_type: u8,
    telephone_event: Option<u8>,
    /// RTP clock units in one 20 ms frame (160 for G.711, 960 for Opus).
    frame_units: u32,
    rtcp: RtcpSession,
    dtmf: Vec<DtmfPress>,
    next_press: usize,
    pressing: Option<DtmfEncoder>,
    dtmf_sent: u32,
    answered: Instant,
    pacer: Pacer,
    packetizer: Packetizer,
    turns: TurnTaking,
    /// Where the turns go as they happen, for a person watching the call.
    watcher: Option<mpsc::Sender<ConversationEvent>>,
    stats: StreamStats,
    pcm: [i16; FRAME_SAMPLES],
    payload: [u8; MAX_PACKET_LEN],
    decoded: [i16; MAX_PACKET_LEN],
    /// How late each frame left behind its pacer deadline, in microseconds.
    send_lateness: Histogram<u64>,
    sent: u64,
    foreign: u64,
    tap: Option<super::AudioTap>,
}

impl MediaSession {
    /// Starts the streams at the answer, as negotiated in `audio`; fails when the codec
    /// cannot be set up.
    pub fn new(
        audio: &NegotiatedAudio,
        answered: Instant,
        config: &CallConfig,
    ) -> Result<Self, String> {
        let clock_rate = audio.codec.clock_rate();
        let ssrc = rand::random();
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let mut dtmf = config.media.dtmf.clone();
        dtmf.sort_by_key(|press| press.at);
        Ok(Self {
            voice: Voice::new(audio.codec)?,
            payload_type: audio.payload_type,
            telephone_event: audio.telephone_event,
            frame_units: clock_rate / 50,
            rtcp: RtcpSession::new(
                answered,
                wall,
                ssrc,
                clock_rate,
                config.media.rtcp_interval,
                rand::random(),
            ),
            dtmf,
            next_press: 0,
            pressing: None,
            dtmf_sent: 0,
            answered,
            pacer: Pacer::new(answered, PacerConfig::new(clock_rate)),
            packetizer: Packetizer::new(ssrc),
            turns: TurnTaking::new(config.turns.clone(), config.talker, config.onset, answered),
            watcher: config.conversation_events.clone(),
            stats: StreamStats::new(clock_rate, answered, config.late_after),
            pcm: [0; FRAME_SAMPLES],
            payload: [0; MAX_PACKET_LEN],
            decoded: [0; MAX_PACKET_LEN],
            send_lateness: new_gap_histogram(),
            sent: 0,
            foreign: 0,
            tap: None,
        })
    }

    /// Keeps a copy of everything decoded from the far end in `tap`.
    pub fn record_into(&mut self, tap: super::AudioTap) {
        self.tap = Some(tap);
    }

    /// When [`Self::tick`] must next run.
    pub fn poll_timeout(&self) -> Instant {
        let next = self.pacer.poll_timeout();
        self.rtcp.poll_timeout().map_or(next, |rtcp| rtcp.min(next))
    }

    /// The RTCP report due at `now`, if any (after [`Self::tick`]).
    pub fn poll_rtcp(&mut self, now: Instant) -> Option<&[u8]> {
        self.rtcp.poll_transmit(now)
    }

    /// The final RTCP report with a BYE, at hang-up.
    pub fn close_rtcp(&mut self, now: Instant) -> Option<&[u8]> {
        self.rtcp.close(now)
    }

    /// RTCP counters and what the far end reports of our stream.
    pub fn rtcp(&self) -> RtcpStats {
        self.rtcp.stats()
    }

    /// Key presses sent as RFC 4733 events.
    pub fn dtmf_sent(&self) -> u32 {
        self.dtmf_sent
    }

    /// The next RFC 4733 packet if a key is being pressed (or one is due to start at `now`).
    fn dtmf_packet(&mut self, now: Instant, header: OutgoingHeader) -> Option<OutgoingHeader> {
        self.telephone_event?;
        if self.pressing.is_none() {
            let press = self.dtmf.get(self.next_press)?;
            if now < self.answered + press.at {
                return None;
            }
            self.next_press += 1;
            let digit = DtmfDigit::from_char(press.digit).ok()?;
            let press_units = u128::from(self.frame_units) * 50 * DTMF_PRESS.as_millis() / 1000;
            let units = u16::try_from(press_units).unwrap_or(u16::MAX);
            let interval = u16::try_from(self.frame_units).unwrap_or(u16::MAX);
            self.pressing = Some(DtmfEncoder::new(
                digit,
                header.timestamp,
                units,
                interval,
                10,
            ));
            self.dtmf_sent += 1;
        }
        let packet = self.pressing.as_mut()?.next();
        let Some(packet) = packet else {
            self.pressing = None;
            return None;
        };
        self.payload[..packet.payload.len()].copy_from_slice(&packet.payload);
        Some(OutgoingHeader {
            sequence: header.sequence,
            timestamp: packet.timestamp,
            marker: packet.marker,
        })
    }

    /// Sends every frame due at `now` through `send`.
    pub fn tick(&mut self, now: Instant, mut send: impl FnMut(&[u8])) {
        let deadline = self.pacer.poll_timeout();
        let due = self.pacer.handle_timeout(now);
        if due > 0 {
            let late = now.saturating_duration_since(deadline).as_micros();
            let _ = self
                .send_lateness
                .record(u64::try_from(late).unwrap_or(u64::MAX).clamp(1, 60_000_000));
        }
        for _ in 0..due {
            let Some(header) = self.pacer.emit() else {
                break;
            };
            if let Some(event_header) = self.dtmf_packet(now, header) {
                let te = self.telephone_event.unwrap_or(101);
                if let Ok(bytes) = self
                    .packetizer
                    .packetize(te, event_header, &self.payload[..4])
                {
                    send(bytes);
                    self.sent += 1;
                    self.rtcp.on_rtp_sent(now, header.timestamp, 4);
                }
                continue;
            }
            self.turns.next_frame(now, &mut self.pcm);
            self.forward_events();
            let n = self.voice.encode(&self.pcm, &mut self.payload);
            if let Ok(bytes) =
                self.packetizer
                    .packetize(self.payload_type, header, &self.payload[..n])
            {
                send(bytes);
                self.sent += 1;
                self.rtcp.on_rtp_sent(now, header.timestamp, n);
            }
        }
        self.rtcp.handle_timeout(now);
    }

    /// A datagram arrived on the RTP socket at `now`.
    pub fn on_datagram(&mut self, now: Instant, datagram: &[u8]) {
        if is_rtcp(datagram) {
            self.rtcp.handle_datagram(now, datagram);
            return;
        }
        let Ok(packet) = RtpPacket::parse(datagram) else {
            self.foreign += 1;
            return;
        };
        self.rtcp.on_rtp_received(
            now,
            packet.ssrc,
            packet.sequence,
            packet.timestamp,
            packet.payload_type == self.payload_type,
        );
        if packet.payload_type != self.payload_type {
            // telephone-event or comfort noise: counted as received media, not decoded.
            self.stats
                .record(now, packet.ssrc, packet.sequence, packet.timestamp);
            return;
        }
        self.stats
            .record(now, packet.ssrc, packet.sequence, packet.timestamp);
        let n = self.voice.decode(packet.payload, &mut self.decoded);
        // Frames of other than 20 ms are judged as a whole; the detector counts frames.
        let Some(samples) = self.decoded.get(..n) else {
            return;
        };
        if let Some(tap) = &self.tap {
            if let Ok(mut heard) = tap.lock() {
                heard.extend_from_slice(samples);
            }
        }
        self.turns.push_frame(now, samples);
        self.forward_events();
    }

    /// Hands the conversation's new events to the watcher, or drops them without one.
    fn forward_events(&mut self) {
        while let Some(event) = self.turns.poll_event() {
            if let Some(watcher) = &self.watcher {
                // A watcher that fell behind loses the event: the call's timing never waits
                // for a terminal.
                let _ = watcher.try_send(event);
            }
        }
    }

    /// Has the caller said everything?
    pub fn script_done(&self) -> bool {
        self.turns.script_done()
    }

    /// Packets sent so far.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Datagrams on the RTP port that were not RTP.
    pub fn foreign(&self) -> u64 {
        self.foreign
    }

    /// The receive statistics.
    pub fn stats(&self) -> &StreamStats {
        &self.stats
    }

    /// Lateness of our own sends behind the pacer clock, in microseconds.
    pub fn send_lateness(&self) -> &Histogram<u64> {
        &self.send_lateness
    }

    /// The conversation's latencies so far.
    pub fn conversation(&self) -> &Conversation {
        self.turns.conversation()
    }
}
