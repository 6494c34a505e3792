//! One call's audio, both ways, sans-IO: the caller's speech is encoded with the edge's G.711
//! codec and timed by the edge's drift-free [`Pacer`]; received packets are parsed with the
//! edge's [`RtpPacket`], decoded, counted in [`StreamStats`] and run through the reply
//! [`OnsetDetector`]. The call task owns the socket and hands this value datagrams and ticks.
//! Per packet, nothing here allocates: buffers are fixed arrays owned by the session.

use std::sync::Arc;
use std::time::{Duration, Instant};

use freya_edge::media::g711::G711;
use freya_edge::rtp::pacer::{Pacer, PacerConfig};
use freya_edge::rtp::packet::{is_rtcp, Packetizer, RtpPacket, MAX_PACKET_LEN};
use hdrhistogram::Histogram;

use crate::audio::{Utterance, FRAME_SAMPLES, RATE};
use crate::onset::{millis, OnsetConfig, OnsetDetector, OnsetEvent};
use crate::stream::{new_gap_histogram, StreamStats};
use crate::uac::talker::{Talker, TalkerConfig, TalkerEvent};

/// What the conversation produced, in milliseconds.
#[derive(Debug, Clone, Default)]
pub struct Conversation {
    /// From the answer to the first far-end talk spurt.
    pub first_audio_ms: Option<f64>,
    /// Per caller turn that got a reply: end of caller speech to start of the reply.
    pub v2v_ms: Vec<f64>,
    /// Caller turns spoken to the end.
    pub turns_spoken: u32,
}

/// The audio of one answered call.
pub struct MediaSession {
    law: G711,
    payload_type: u8,
    answered: Instant,
    pacer: Pacer,
    packetizer: Packetizer,
    talker: Talker,
    detector: OnsetDetector,
    stats: StreamStats,
    conversation: Conversation,
    pcm: [i16; FRAME_SAMPLES],
    payload: [u8; FRAME_SAMPLES],
    decoded: [i16; MAX_PACKET_LEN],
    /// How late each frame left behind its pacer deadline, in microseconds.
    send_lateness: Histogram<u64>,
    sent: u64,
    foreign: u64,
    tap: Option<super::AudioTap>,
}

impl MediaSession {
    /// Starts the streams at the answer: `law`/`payload_type` as negotiated.
    pub fn new(
        law: G711,
        payload_type: u8,
        answered: Instant,
        turns: Arc<[Utterance]>,
        talker: TalkerConfig,
        onset: OnsetConfig,
        late_after: Duration,
    ) -> Self {
        Self {
            law,
            payload_type,
            answered,
            pacer: Pacer::new(answered, PacerConfig::new(RATE)),
            packetizer: Packetizer::new(rand::random()),
            talker: Talker::new(turns, talker, answered),
            detector: OnsetDetector::new(onset),
            stats: StreamStats::new(RATE, answered, late_after),
            conversation: Conversation::default(),
            pcm: [0; FRAME_SAMPLES],
            payload: [0; FRAME_SAMPLES],
            decoded: [0; MAX_PACKET_LEN],
            send_lateness: new_gap_histogram(),
            sent: 0,
            foreign: 0,
            tap: None,
        }
    }

    /// Keeps a copy of everything decoded from the far end in `tap`.
    pub fn record_into(&mut self, tap: super::AudioTap) {
        self.tap = Some(tap);
    }

    /// When [`Self::tick`] must next run.
    pub fn poll_timeout(&self) -> Instant {
        self.pacer.poll_timeout()
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
            let event = self
                .talker
                .next_frame(now, self.detector.is_talking(), &mut self.pcm);
            match event {
                Some(TalkerEvent::TurnStarted(_)) => self.detector.caller_turn_started(),
                Some(TalkerEvent::TurnEnded(_, at)) => {
                    self.detector.caller_turn_ended(at);
                    self.conversation.turns_spoken += 1;
                }
                None => {}
            }
            let n = self.law.encode(&self.pcm, &mut self.payload);
            let Some(header) = self.pacer.emit() else {
                break;
            };
            if let Ok(bytes) =
                self.packetizer
                    .packetize(self.payload_type, header, &self.payload[..n])
            {
                send(bytes);
                self.sent += 1;
            }
        }
    }

    /// A datagram arrived on the RTP socket at `now`.
    pub fn on_datagram(&mut self, now: Instant, datagram: &[u8]) {
        if is_rtcp(datagram) {
            return;
        }
        let Ok(packet) = RtpPacket::parse(datagram) else {
            self.foreign += 1;
            return;
        };
        if packet.payload_type != self.payload_type {
            // telephone-event or comfort noise: counted as received media, not decoded.
            self.stats
                .record(now, packet.ssrc, packet.sequence, packet.timestamp);
            return;
        }
        self.stats
            .record(now, packet.ssrc, packet.sequence, packet.timestamp);
        let n = self.law.decode(packet.payload, &mut self.decoded);
        // Frames of other than 20 ms are judged as a whole; the detector counts frames.
        let Some(samples) = self.decoded.get(..n) else {
            return;
        };
        if let Some(tap) = &self.tap {
            if let Ok(mut heard) = tap.lock() {
                heard.extend_from_slice(samples);
            }
        }
        match self.detector.push_frame(now, samples) {
            Some(OnsetEvent::Onset { at, reply_to }) => {
                if self.conversation.first_audio_ms.is_none() {
                    self.conversation.first_audio_ms = Some(millis(self.answered, at));
                }
                if let Some(end) = reply_to {
                    self.conversation.v2v_ms.push(millis(end, at));
                    self.talker.reply_heard();
                }
            }
            Some(OnsetEvent::Offset { at }) => self.talker.far_end_quiet(at),
            None => {}
        }
    }

    /// Has the caller said everything?
    pub fn script_done(&self) -> bool {
        self.talker.is_done()
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
        &self.conversation
    }
}

/// The G.711 law of a negotiated codec; Opus is not carried by the load generator yet.
pub fn law_of(codec: freya_edge::sip::sdp::Codec) -> Option<G711> {
    match codec {
        freya_edge::sip::sdp::Codec::Pcmu => Some(G711::Ulaw),
        freya_edge::sip::sdp::Codec::Pcma => Some(G711::Alaw),
        freya_edge::sip::sdp::Codec::Opus => None,
    }
}
