//! A call's key presses, both ways, sans-IO: the part of [`CallMedia`](super::media::CallMedia)
//! that owns telephone-events and tones. Digits the caller presses arrive as RFC 4733 events
//! when telephone-event was negotiated ([`DtmfReceiver`]), else as the keypad's tones in the
//! caller's audio ([`ToneDetector`]) — never both, or a phone that sends both would press every
//! key twice. Digits the agent presses leave as RFC 4733 events ([`DtmfSender`]), or are refused
//! so that the call sends them by SIP INFO.
//!
//! The event's clock may differ from the stream's: a peer with Opus (48 kHz) usually negotiates
//! `telephone-event/8000`. RFC 4733 section 2.1 wants them equal, and says nothing of what to do
//! otherwise; we do what Asterisk and FreeSWITCH do. The event's *duration* counts in the
//! event's own clock, the rate its rtpmap declares (so 100 ms is 800 units, whatever the
//! codec). Its RTP *timestamp* is taken from the stream we send (section 2.5.1.2: the event's
//! start in the stream's timeline), so our sequence of timestamps never jumps between a voice
//! packet and an event packet, which a receiver's jitter buffer would take for a reset. On
//! receipt the timestamp only tells presses apart, so its clock does not matter there.

use std::time::{Duration, Instant};

use crate::media::dtmf_tones::ToneDetector;
use crate::rtp::dtmf::{DtmfError, DtmfPacket, DtmfReceiver};
use crate::rtp::dtmf_out::DtmfSender;
use crate::sip::sdp::NegotiatedAudio;
use freya_shared::model::call_payloads::{DtmfHeard, Extra};

/// How a digit reached us; call records name it in `via`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DtmfVia {
    /// RFC 4733 telephone-event packets in the RTP stream.
    Rfc4733,
    /// The keypad's tones, heard in the caller's audio.
    Inband,
}

impl DtmfVia {
    /// The name in the `call.dtmf` record.
    pub fn as_str(self) -> &'static str {
        match self {
            DtmfVia::Rfc4733 => "rfc4733",
            DtmfVia::Inband => "inband",
        }
    }
}

/// One key the caller pressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeardDigit {
    /// The key.
    pub digit: char,
    /// How it came.
    pub via: DtmfVia,
    /// How long it was held.
    pub duration: Duration,
}

impl HeardDigit {
    /// The payload of its `call.dtmf` record (the same shape whichever way it came).
    pub fn record(&self) -> DtmfHeard {
        DtmfHeard {
            digit: self.digit.to_string(),
            via: self.via.as_str().to_owned(),
            duration_ms: Some(u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX)),
            extra: Extra::new(),
        }
    }
}

/// Why digits cannot go out in the RTP stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendDtmfError {
    /// The peer did not negotiate telephone-event: send them by SIP INFO instead.
    #[error("the peer did not negotiate telephone-event")]
    NoTelephoneEvent,
    #[error(transparent)]
    Digits(#[from] DtmfError),
}

/// The key presses of one call.
#[derive(Debug)]
pub(crate) struct CallDigits {
    /// The negotiated telephone-event payload type.
    payload_type: Option<u8>,
    receiver: DtmfReceiver,
    sender: DtmfSender,
    /// Listening for tones: only without telephone-event, and not once the peer has shown it
    /// signals digits another way.
    tones: Option<ToneDetector>,
    /// When the caller was last heard pressing a key (an event packet, or a tone in a frame).
    last_press: Option<Instant>,
}

/// How long after the last sign of a press the caller's audio still counts as part of it, for
/// a recording that masks digits: covers the jitter buffer's delay between an event packet and
/// the audio frames beside it, and the tone's tail.
pub(crate) const PRESS_HANGOVER: Duration = Duration::from_millis(200);

impl CallDigits {
    /// Digits for a call answered with `audio`: RFC 4733 at the negotiated event clock when
    /// telephone-event was negotiated, else tones.
    pub(crate) fn new(audio: &NegotiatedAudio) -> Self {
        let rate = audio.telephone_event_rate;
        Self {
            payload_type: audio.telephone_event,
            receiver: DtmfReceiver::new(rate),
            sender: DtmfSender::with_clock_rate(rate),
            tones: audio.telephone_event.is_none().then(ToneDetector::new),
            last_press: None,
        }
    }

    /// Stops listening for tones for good: the peer sends its digits another way (SIP INFO,
    /// a provider's `dtmf` messages) and tones in its audio would count each key twice.
    pub(crate) fn stop_listening_for_tones(&mut self) {
        self.tones = None;
    }

    /// Whether tones in the caller's audio are taken for digits.
    pub(crate) fn listens_for_tones(&self) -> bool {
        self.tones.is_some()
    }

    /// Whether packets of payload type `pt` are telephone-events.
    pub(crate) fn is_event(&self, pt: u8) -> bool {
        self.payload_type == Some(pt)
    }

    /// One telephone-event packet: its RTP timestamp (the press's start) and payload.
    pub(crate) fn handle_packet(
        &mut self,
        now: Instant,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<(), DtmfError> {
        self.last_press = Some(now);
        self.receiver.handle_packet(now, timestamp, payload)
    }

    /// One decoded 20 ms frame of the caller's audio (8 kHz), in order, played out at `now`.
    pub(crate) fn hear(&mut self, now: Instant, samples: &[i16]) {
        if let Some(tones) = self.tones.as_mut() {
            tones.push(samples);
            if tones.hearing_tone() {
                self.last_press = Some(now);
            }
        }
    }

    /// Whether the caller is (or was within [`PRESS_HANGOVER`]) pressing a key at `now`.
    pub(crate) fn pressing(&self, now: Instant) -> bool {
        self.last_press
            .is_some_and(|at| now.saturating_duration_since(at) < PRESS_HANGOVER)
    }

    /// Ends a press whose end packets were all lost.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.receiver.handle_timeout(now);
    }

    /// When [`handle_timeout`](Self::handle_timeout) should run next.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.receiver.poll_timeout()
    }

    /// The next key the caller pressed.
    pub(crate) fn poll_digit(&mut self) -> Option<HeardDigit> {
        if let Some(event) = self.receiver.poll_event() {
            return Some(HeardDigit {
                digit: event.digit.as_char(),
                via: DtmfVia::Rfc4733,
                duration: event.duration,
            });
        }
        let tone = self.tones.as_mut()?.poll_digit()?;
        Some(HeardDigit {
            digit: tone.digit.as_char(),
            via: DtmfVia::Inband,
            duration: tone.duration,
        })
    }

    /// Queues `digits` to be pressed toward the peer as RFC 4733 events.
    pub(crate) fn send(&mut self, digits: &str) -> Result<(), SendDtmfError> {
        if self.payload_type.is_none() {
            return Err(SendDtmfError::NoTelephoneEvent);
        }
        Ok(self.sender.push(digits)?)
    }

    /// Whether our digits are going out (a press, or the gap before the next one): the
    /// agent's speech waits meanwhile, lest a phone menu hear words between the keys.
    pub(crate) fn sending(&self) -> bool {
        self.sender.is_busy()
    }

    /// The event packet, and its payload type, for the frame that starts at `timestamp` in the
    /// stream's clock (see the module's note on clocks), if a press is on.
    pub(crate) fn poll_packet(&mut self, timestamp: u32) -> Option<(u8, DtmfPacket)> {
        let payload_type = self.payload_type?;
        self.sender.tick(timestamp).map(|p| (payload_type, p))
    }
}
