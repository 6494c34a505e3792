//! Simulated parties of a call's added legs, for the harness: each answers with PCMU, sends a
//! pure tone (or silence) every 20 ms from its own address, and what reaches it is kept
//! decoded. `tone_level` measures a frequency in frames (Goertzel), so a test can tell who hears
//! whom in a mix.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::harness::Sim;
use crate::call::core::{AgentMode, LegError, LegId, LegSignal};
use crate::call::media::tests::{audio, caller_packet};
use crate::call::media::FRAME_SAMPLES;
use crate::call::task::CallSignal;

const FRAME: Duration = Duration::from_millis(20);

/// One dialled party on the simulated network.
pub(super) struct Party {
    pub leg: LegId,
    pub from: SocketAddr,
    /// Its tone (Hz); `None`: silence.
    pub tone: Option<f64>,
    /// Sends nothing at all (a dead line).
    pub mute: bool,
    /// A leg another edge carries: its frames come over the (simulated) mesh.
    pub remote: bool,
    /// Over the mesh, every `loss_every`-th frame is lost (0: none).
    pub loss_every: u16,
    seq: u16,
    next_send: Instant,
}

/// A pure tone frame of amplitude 3000 at `hz`, the `i`-th of its stream.
pub(super) fn tone(hz: f64, i: usize) -> [i16; FRAME_SAMPLES] {
    let mut f = [0i16; FRAME_SAMPLES];
    for (k, s) in f.iter_mut().enumerate() {
        let t = (i * FRAME_SAMPLES + k) as f64 / 8000.0;
        *s = (3000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16;
    }
    f
}

/// The amplitude of `hz` in `frame` (Goertzel): about 3000 for a [`tone`] at that frequency,
/// near 0 when absent.
pub(super) fn amplitude(frame: &[i16; FRAME_SAMPLES], hz: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * hz / 8000.0;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for x in frame {
        let s0 = f64::from(*x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    2.0 * power.max(0.0).sqrt() / FRAME_SAMPLES as f64
}

/// The median amplitude of `hz` over `frames` (a few odd frames at the edges of a bridge do
/// not sway it); 0 with no frames.
pub(super) fn tone_level<'a>(
    frames: impl Iterator<Item = &'a [i16; FRAME_SAMPLES]>,
    hz: f64,
) -> f64 {
    let mut levels: Vec<f64> = frames.map(|f| amplitude(f, hz)).collect();
    if levels.is_empty() {
        return 0.0;
    }
    levels.sort_by(f64::total_cmp);
    levels[levels.len() / 2]
}

impl Sim {
    /// Bridges `legs` now with the agent `agent`, and drains what the core says.
    pub(super) fn bridge(&mut self, legs: &[LegId], agent: AgentMode) -> Result<(), LegError> {
        let now = self.now;
        let done = self.core.bridge(now, legs, agent);
        self.drain();
        done
    }

    /// Leg `leg`'s party answers now, sending `tone` (Hz) from then on.
    pub(super) fn answer_leg(&mut self, leg: LegId, tone: Option<f64>) {
        let from: SocketAddr = format!("127.0.0.1:{}", 41_000 + 2 * u16::from(leg.0))
            .parse()
            .expect("addr");
        let mut answer = audio();
        answer.remote_rtp = from;
        answer.remote_rtcp = SocketAddr::new(from.ip(), from.port() + 1);
        self.parties.push(Party {
            leg,
            from,
            tone,
            mute: false,
            remote: false,
            loss_every: 0,
            seq: 1,
            next_send: self.now,
        });
        self.signal(CallSignal::Leg {
            leg,
            signal: LegSignal::Answered(answer),
        });
    }

    /// Leg `leg`'s party answered on another edge, which sends `tone` (Hz) over the mesh.
    pub(super) fn answer_remote_leg(&mut self, leg: LegId, tone: Option<f64>) {
        self.parties.push(Party {
            leg,
            from: "127.0.0.2:7443".parse().expect("addr"),
            tone,
            mute: false,
            remote: true,
            loss_every: 0,
            seq: 1,
            next_send: self.now,
        });
        self.signal(CallSignal::Leg {
            leg,
            signal: LegSignal::RemoteAnswered,
        });
    }

    /// Leg `leg`'s party hangs up (BYE) now.
    pub(super) fn hang_up_party(&mut self, leg: LegId) {
        self.parties.retain(|p| p.leg != leg);
        self.signal(CallSignal::Leg {
            leg,
            signal: LegSignal::Hangup,
        });
    }

    /// When the next party frame is due.
    pub(super) fn parties_next(&self) -> Option<Instant> {
        self.parties
            .iter()
            .filter(|p| !p.mute)
            .map(|p| p.next_send)
            .min()
    }

    /// Every party sends what is due by `now`.
    pub(super) fn step_parties(&mut self, now: Instant) {
        let mut packets = Vec::new();
        let mut mesh = Vec::new();
        for party in self.parties.iter_mut().filter(|p| !p.mute) {
            while party.next_send <= now {
                let pcm = match party.tone {
                    Some(hz) => tone(hz, usize::from(party.seq)),
                    None => [0; FRAME_SAMPLES],
                };
                let mut payload = [0u8; FRAME_SAMPLES];
                crate::media::g711::encode_ulaw(&pcm, &mut payload);
                if party.remote {
                    let lost = party.loss_every > 0 && party.seq % party.loss_every == 0;
                    if !lost {
                        mesh.push((party.next_send, party.leg, party.seq, payload));
                    }
                    party.seq = party.seq.wrapping_add(1);
                    party.next_send += FRAME;
                    continue;
                }
                packets.push((
                    party.next_send,
                    party.leg,
                    party.from,
                    caller_packet(party.seq, 0, &payload),
                ));
                party.seq = party.seq.wrapping_add(1);
                party.next_send += FRAME;
            }
        }
        for (at, leg, from, packet) in packets {
            self.core.handle_leg_datagram(at, leg, from, &packet);
            self.drain();
        }
        for (at, leg, seq, payload) in mesh {
            let header = crate::mesh::AudioHeader {
                key: crate::mesh::LegKey {
                    call: uuid::Uuid::nil(),
                    leg: u16::from(leg.0),
                },
                kind: crate::mesh::PayloadKind::Pcmu,
                sequence: seq,
                timestamp: u32::from(seq) * FRAME_SAMPLES as u32,
            };
            self.core.handle_remote_audio(at, leg, &header, &payload);
            self.drain();
        }
    }

    /// The median level of `hz` in what leg `leg`'s party received after `from`.
    pub(super) fn party_level(&self, leg: LegId, from: Instant, hz: f64) -> f64 {
        tone_level(
            self.party_heard
                .iter()
                .filter(|(at, l, _)| *l == leg && *at >= from)
                .map(|(_, _, f)| f),
            hz,
        )
    }

    /// The median level of `hz` in what the caller received between `from` and `to`.
    pub(super) fn caller_level(&self, from: Instant, to: Instant, hz: f64) -> f64 {
        tone_level(
            self.caller_frames
                .iter()
                .filter(|(at, _)| *at >= from && *at < to)
                .map(|(_, f)| f),
            hz,
        )
    }
}
