//! A leg that another edge dials and carries: its party's audio comes over the QUIC mesh as
//! frames into a [`RemoteLegAudio`] (jitter buffer, loss concealed by a fading repeat) and the
//! mix meant for it goes back as one G.711 frame per tick ([`Output::MeshTransmit`]), on the
//! first leg's 20 ms grid like every other leg. Apart from where its audio comes from it is a
//! leg like the others: dialled, answered, bridged, whispered to, hung up. A leg whose edge
//! sends nothing for `remote_silence` (a dropped connection, a dead peer) is ended as
//! `mesh_lost`, so the call never hangs on it.

use std::time::{Duration, Instant};

use freya_shared::model::LegEndReason;

use super::legs::{LegId, LegState};
use super::output::Output;
use super::CallCore;
use crate::call::media::FRAME_SAMPLES;
use crate::media::g711;
use crate::mesh::remote_leg::RemotePlayout;
use crate::mesh::{AudioHeader, PayloadKind, RemoteLegAudio};
use crate::rtp::jitter::JitterConfig;

/// How a remote leg's outgoing frames are encoded.
pub const MESH_PAYLOAD: PayloadKind = PayloadKind::Pcmu;

/// The mesh side of a remote leg.
pub(crate) struct RemoteParty {
    /// The edge that carries it (for records and logs).
    pub(super) edge: String,
    audio: RemoteLegAudio,
    sequence: u16,
    timestamp: u32,
    /// When its audio last came (from its answer on).
    last_heard: Option<Instant>,
    silence: Duration,
    encoded: [u8; FRAME_SAMPLES],
}

impl RemoteParty {
    fn new(edge: &str, silence: Duration) -> Option<Self> {
        let audio = RemoteLegAudio::new(JitterConfig::default()).ok()?;
        Some(Self {
            edge: edge.to_owned(),
            audio,
            sequence: 0,
            timestamp: 0,
            last_heard: None,
            silence,
            encoded: [0; FRAME_SAMPLES],
        })
    }

    /// When the leg is ended for its silence, once it is up.
    pub(super) fn silence_deadline(&self) -> Option<Instant> {
        self.last_heard.map(|at| at + self.silence)
    }

    /// Plays out this tick's frame into `out`; whether anything was heard (a concealed loss
    /// counts: it is the party's voice, fading).
    pub(super) fn pop(&mut self, now: Instant, out: &mut [i16; FRAME_SAMPLES]) -> bool {
        self.audio.pop(now, out) != RemotePlayout::Silent
    }

    /// Frames played and concealed so far.
    #[cfg(test)]
    pub(super) fn stats(&self) -> crate::mesh::remote_leg::RemoteLegStats {
        self.audio.stats()
    }
}

impl CallCore {
    /// Adds the mesh side to a leg just dialled on `edge`.
    pub(super) fn make_remote(&mut self, leg: LegId, edge: &str) -> bool {
        let silence = self.legs.settings.remote_silence;
        let Some(remote) = RemoteParty::new(edge, silence) else {
            return false;
        };
        if let Some(party) = self.legs.get_mut(leg) {
            party.remote = Some(Box::new(remote));
        }
        true
    }

    /// One audio frame of a remote leg, as the mesh delivered it.
    pub fn handle_remote_audio(
        &mut self,
        now: Instant,
        leg: LegId,
        header: &AudioHeader,
        payload: &[u8],
    ) {
        self.out.begin();
        let Some(party) = self.legs.get_mut(leg) else {
            return;
        };
        let up = party.state == LegState::Up;
        if let Some(remote) = party.remote.as_mut() {
            remote.audio.push(now, header, payload);
            if up {
                remote.last_heard = Some(now);
            }
        }
    }

    /// The remote leg's party answered on its edge.
    pub(super) fn remote_answered(&mut self, now: Instant, leg: LegId) {
        let Some(party) = self.legs.get_mut(leg) else {
            return;
        };
        let Some(remote) = party.remote.as_mut() else {
            return;
        };
        if party.state != LegState::Dialling {
            return;
        }
        party.state = LegState::Up;
        party.dial_deadline = None;
        remote.last_heard = Some(now);
        let edge = remote.edge.clone();
        tracing::info!(%leg, %edge, "remote leg answered");
        let record = super::legs::Legs::answered_record(leg, "PCMU", Some(edge));
        self.out.push(Output::Event(record));
        self.warm_answered(now, leg);
    }

    /// Remote legs whose edge has sent nothing for too long: ended as `mesh_lost`.
    pub(super) fn remote_legs_after_input(&mut self, now: Instant) {
        let silent: Vec<(LegId, String)> = self
            .legs
            .parties
            .iter()
            .filter(|p| p.state == LegState::Up)
            .filter_map(|p| {
                let remote = p.remote.as_ref()?;
                let due = remote.silence_deadline().is_some_and(|at| at <= now);
                due.then(|| (p.id, remote.edge.clone()))
            })
            .collect();
        for (leg, edge) in silent {
            let detail = format!("no audio from edge {edge} over the mesh");
            self.drop_leg(now, leg, LegEndReason::MeshLost, Some(detail), true);
        }
    }

    /// The mix for a remote leg this tick, encoded and handed to the shell for the mesh.
    pub(super) fn transmit_remote(&mut self, index: usize, mix: &[i16; FRAME_SAMPLES]) {
        let Some(party) = self.legs.parties.get_mut(index) else {
            return;
        };
        let id = party.id;
        let Some(remote) = party
            .remote
            .as_mut()
            .filter(|_| party.state == LegState::Up)
        else {
            return;
        };
        let n = g711::encode_ulaw(mix, &mut remote.encoded);
        let (sequence, timestamp) = (remote.sequence, remote.timestamp);
        remote.sequence = remote.sequence.wrapping_add(1);
        remote.timestamp = remote.timestamp.wrapping_add(FRAME_SAMPLES as u32);
        let payload = &remote.encoded[..n];
        self.out.push_mesh_frame(id, sequence, timestamp, payload);
    }
}
