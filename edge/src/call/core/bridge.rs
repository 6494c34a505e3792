//! A call with more than one leg: dialling a party, its answer and media, hanging it up,
//! bridging legs with the agent muted, listening or whispering, and the 20 ms tick that mixes
//! them. Every leg ticks on the first leg's grid (an added leg's pacer starts on its next
//! tick), so in each tick every leg plays out one frame, then each leg is sent the saturating
//! sum of the other bridged legs' frames, plus the agent's frame when the agent speaks to it.
//!
//! When a bridged leg ends: the bridge goes on while two legs remain in it. Otherwise, with the
//! agent still there (listening or whispering), the call returns to the agent
//! (`call.unbridged`); with the agent gone (muted, as after a warm transfer), the remaining
//! party is hung up as a PBX would — the first party's hang-up ends the call
//! (`bridge_ended`).

use std::net::SocketAddr;
use std::time::Instant;

use freya_shared::model::call_leg_payloads::{LegAdded, Unbridged};
use freya_shared::model::{CallEventData, EndReason, LegEndReason};

use super::legs::{AgentMode, Bridge, LegError, LegId, LegRequest, LegSignal, LegState};
use super::output::Output;
use super::CallCore;
use crate::call::media::{CallMedia, MediaEvent, FRAME_SAMPLES};
use crate::call::mix::{add_saturating, VoiceRoute};

/// Most ticks one wake-up catches up on (the pacer's own catch-up is 3).
const MAX_TICKS_PER_WAKE: usize = 8;

impl CallCore {
    /// Dials `to` as a new leg (`by`: `api` or `agent`, for the record); the shell carries out
    /// the [`LegRequest::Dial`] and reports back with [`LegSignal`]s. `wanted` is the id the
    /// control plane chose for it; another is refused.
    pub fn dial(
        &mut self,
        now: Instant,
        to: &str,
        by: &str,
        wanted: Option<LegId>,
    ) -> Result<LegId, LegError> {
        self.dial_on(now, to, by, wanted, None)
    }

    /// [`dial`](Self::dial), on the edge `edge` when it is another edge than this one: that
    /// edge dials the party and carries its audio over the mesh.
    pub fn dial_on(
        &mut self,
        now: Instant,
        to: &str,
        by: &str,
        wanted: Option<LegId>,
        edge: Option<&str>,
    ) -> Result<LegId, LegError> {
        self.out.begin();
        let dialled = self.dial_inner(now, to, by, wanted, edge);
        if let Err(e) = &dialled {
            tracing::info!(to = %freya_shared::redact::MaskedNumber(to), error = %e, "dial refused");
            if let Some(leg) = wanted {
                self.out.push(Output::Event(CallEventData::LegEnded(
                    freya_shared::model::call_leg_payloads::LegEnded {
                        leg: leg.0,
                        reason: LegEndReason::Refused,
                        detail: Some(e.to_string()),
                        extra: Default::default(),
                    },
                )));
            }
        }
        self.after_input(now);
        dialled
    }

    pub(super) fn dial_inner(
        &mut self,
        now: Instant,
        to: &str,
        by: &str,
        wanted: Option<LegId>,
        edge: Option<&str>,
    ) -> Result<LegId, LegError> {
        if self.ended {
            return Err(LegError::CallEnded);
        }
        let next = LegId(u8::try_from(self.legs.parties.len() + 1).unwrap_or(u8::MAX));
        if wanted.is_some_and(|w| w != next) {
            return Err(LegError::UnknownLeg(wanted.unwrap_or(next)));
        }
        let leg = self.legs.add(now)?;
        tracing::info!(%leg, to = %freya_shared::redact::MaskedNumber(to), by, edge, "dialling a leg");
        if let Some(edge) = edge {
            if !self.make_remote(leg, edge) {
                self.legs.end(leg, LegEndReason::Refused, None);
                return Err(LegError::CallEnded);
            }
        }
        self.out
            .push(Output::Event(CallEventData::LegAdded(LegAdded {
                leg: leg.0,
                to: to.to_owned(),
                by: Some(by.to_owned()),
                edge: edge.map(str::to_owned),
                extra: Default::default(),
            })));
        self.out.push(Output::Leg(LegRequest::Dial {
            leg,
            to: to.to_owned(),
            edge: edge.map(str::to_owned),
        }));
        Ok(leg)
    }

    /// Hangs up `leg` on request (leg 0 ends the call).
    pub fn hang_up_leg(&mut self, now: Instant, leg: LegId) -> Result<(), LegError> {
        self.out.begin();
        if self.ended {
            return Err(LegError::CallEnded);
        }
        if leg == LegId::FIRST {
            self.end(now, EndReason::HangupRequested, true);
            return Ok(());
        }
        match self.legs.get(leg).map(|p| p.state) {
            None => return Err(LegError::UnknownLeg(leg)),
            Some(LegState::Ended) => return Err(LegError::NotUp(leg)),
            Some(_) => {}
        }
        self.drop_leg(now, leg, LegEndReason::HangupRequested, None, true);
        self.after_input(now);
        Ok(())
    }

    /// Bridges `members` (each up, none twice) with the agent `agent`; replaces any bridge.
    pub fn bridge(
        &mut self,
        now: Instant,
        members: &[LegId],
        agent: AgentMode,
    ) -> Result<(), LegError> {
        self.out.begin();
        if self.ended {
            return Err(LegError::CallEnded);
        }
        self.legs.check_bridge(members, agent)?;
        self.set_bridge(
            now,
            Some(Bridge {
                members: members.to_vec(),
                agent,
            }),
        );
        self.after_input(now);
        Ok(())
    }

    /// Ends the bridge: the call is back with the agent (every added leg stays up, unheard).
    pub fn unbridge(&mut self, now: Instant) -> Result<(), LegError> {
        self.out.begin();
        if self.ended {
            return Err(LegError::CallEnded);
        }
        if self.legs.bridge.is_none() {
            return Err(LegError::NoBridge);
        }
        self.set_bridge(now, None);
        self.out.push(unbridged("requested"));
        self.after_input(now);
        Ok(())
    }

    /// A datagram from an added leg's RTP socket.
    pub fn handle_leg_datagram(
        &mut self,
        now: Instant,
        leg: LegId,
        source: SocketAddr,
        datagram: &[u8],
    ) {
        if let Some(media) = self.leg_media_input(leg) {
            media.handle_datagram(now, source, datagram);
        }
    }

    /// A datagram from an added leg's RTCP socket.
    pub fn handle_leg_rtcp(
        &mut self,
        now: Instant,
        leg: LegId,
        source: SocketAddr,
        datagram: &[u8],
    ) {
        if let Some(media) = self.leg_media_input(leg) {
            media.handle_rtcp(now, source, datagram);
        }
    }

    /// An added leg's media, to hand it what arrived on the leg's sockets (a new input).
    fn leg_media_input(&mut self, leg: LegId) -> Option<&mut CallMedia> {
        self.out.begin();
        self.legs.get_mut(leg).and_then(|p| p.media.as_mut())
    }

    /// What the SIP side says of a dialled leg.
    pub(super) fn on_leg_signal(&mut self, now: Instant, leg: LegId, signal: LegSignal) {
        let state = self.legs.get(leg).map(|p| p.state);
        match (signal, state) {
            (LegSignal::Answered(audio), Some(LegState::Dialling)) => {
                // On the first leg's grid, so frames mix tick by tick.
                let start = self.media.next_tick();
                match CallMedia::new(start, &audio, &self.media_settings) {
                    Ok(media) => {
                        if let Some(party) = self.legs.get_mut(leg) {
                            party.state = LegState::Up;
                            party.dial_deadline = None;
                            party.media = Some(media);
                        }
                        tracing::info!(%leg, codec = ?audio.codec, "leg answered");
                        let codec = format!("{:?}", audio.codec);
                        let record = super::legs::Legs::answered_record(leg, &codec, None);
                        self.out.push(Output::Event(record));
                        self.warm_answered(now, leg);
                    }
                    Err(e) => {
                        let detail = Some(e.to_string());
                        self.drop_leg(now, leg, LegEndReason::UnsupportedMedia, detail, true);
                    }
                }
            }
            // An answer after we gave up on the leg: hang it up again.
            (LegSignal::Answered(_), _) => self.out.push(Output::Leg(LegRequest::Hangup { leg })),
            (LegSignal::Failed { detail }, Some(LegState::Dialling)) => {
                self.drop_leg(now, leg, LegEndReason::DialFailed, Some(detail), false);
            }
            // A remote leg's edge gave up on a leg already up: it is gone all the same.
            (LegSignal::Failed { detail }, Some(LegState::Up)) => {
                self.drop_leg(now, leg, LegEndReason::Hangup, Some(detail), false);
            }
            (LegSignal::Hangup, Some(LegState::Dialling | LegState::Up)) => {
                self.drop_leg(now, leg, LegEndReason::Hangup, None, false);
            }
            (LegSignal::RemoteAnswered, Some(LegState::Dialling)) => {
                self.remote_answered(now, leg);
            }
            (LegSignal::MeshLost { detail }, Some(LegState::Dialling | LegState::Up)) => {
                self.drop_leg(now, leg, LegEndReason::MeshLost, Some(detail), true);
            }
            (signal, state) => tracing::debug!(%leg, ?signal, ?state, "leg signal ignored"),
        }
    }

    /// Ends `leg` (asking the shell to hang it up when `hang_up`), then applies the bridge's
    /// rule for a leg that left it.
    pub(super) fn drop_leg(
        &mut self,
        now: Instant,
        leg: LegId,
        reason: LegEndReason,
        detail: Option<String>,
        hang_up: bool,
    ) {
        let why = detail.clone().unwrap_or_else(|| reason.to_string());
        let Some(record) = self.legs.end(leg, reason, detail) else {
            return;
        };
        if hang_up {
            self.out.push(Output::Leg(LegRequest::Hangup { leg }));
        }
        self.out.push(Output::Event(record));
        self.warm_failed(now, leg, &why);
        self.leave_bridge(now, leg);
    }

    /// `leg` is gone: the bridge's rule (see the module notes).
    fn leave_bridge(&mut self, now: Instant, leg: LegId) {
        let Some(bridge) = self.legs.bridge.as_mut() else {
            return;
        };
        if !bridge.members.contains(&leg) {
            return;
        }
        bridge.members.retain(|l| *l != leg);
        if bridge.agent == AgentMode::Whisper(leg) {
            bridge.agent = AgentMode::Listening;
        }
        if bridge.members.len() >= 2 {
            if let Some(record) = self.legs.bridged_record() {
                self.out.push(Output::Event(record));
            }
            self.apply_routes();
            return;
        }
        let agent_left = bridge.agent == AgentMode::Muted;
        let rest = std::mem::take(&mut bridge.members);
        self.set_bridge(now, None);
        self.out.push(unbridged("leg_ended"));
        if !agent_left {
            return;
        }
        for other in rest {
            if other == LegId::FIRST {
                tracing::info!("the bridged party hung up after the agent left; ending the call");
                return self.end(now, EndReason::BridgeEnded, true);
            }
            self.drop_leg(now, other, LegEndReason::BridgeEnded, None, true);
        }
    }

    /// Puts `bridge` in place (or none), records it, and routes the agent's voice.
    pub(super) fn set_bridge(&mut self, now: Instant, bridge: Option<Bridge>) {
        let was_muted = self
            .legs
            .bridge
            .as_ref()
            .is_some_and(|b| b.agent == AgentMode::Muted);
        self.legs.bridge = bridge;
        if let Some(record) = self.legs.bridged_record() {
            tracing::info!(agent = ?self.legs.bridge.as_ref().map(|b| b.agent), "legs bridged");
            self.out.push(Output::Event(record));
        }
        let muted = self.agent_muted();
        if was_muted && !muted {
            // Back from a pause: the agent's timers start over, as after a hold.
            if let Some(responder) = self.responder.as_mut() {
                responder.resume_after_hold(now);
            }
        }
        self.apply_routes();
    }

    /// Whether the agent is muted in a bridge (its timers pause, like a held call's).
    pub(super) fn agent_muted(&self) -> bool {
        self.legs
            .bridge
            .as_ref()
            .is_some_and(|b| b.agent == AgentMode::Muted)
    }

    /// Where the agent's voice goes on the first leg.
    fn apply_routes(&mut self) {
        let route = match self.legs.bridge.as_ref().map(|b| b.agent) {
            None | Some(AgentMode::Whisper(LegId::FIRST)) => VoiceRoute::Here,
            Some(AgentMode::Muted | AgentMode::Listening) => VoiceRoute::Paused,
            Some(AgentMode::Whisper(_)) => VoiceRoute::Away,
        };
        self.media.mix_mut().set_route(route);
    }

    /// Records and requests of the added legs after an input: their media's news, dials that
    /// were never answered. Returns why the call ends, if a leg's end ends it.
    pub(super) fn legs_after_input(&mut self, now: Instant) {
        for leg in self.legs.take_unanswered(now) {
            self.drop_leg(now, leg, LegEndReason::NoAnswer, None, true);
        }
        let mut dead = Vec::new();
        for party in &mut self.legs.parties {
            let Some(media) = party.media.as_mut() else {
                continue;
            };
            while let Some(event) = media.poll_event() {
                if let MediaEvent::Inactive | MediaEvent::HoldTimeout = event {
                    dead.push(party.id);
                }
            }
        }
        for leg in dead {
            self.drop_leg(now, leg, LegEndReason::RtpTimeout, None, true);
        }
        self.remote_legs_after_input(now);
    }

    /// The call ends: every added leg still up or dialling is hung up.
    pub(super) fn end_legs(&mut self) {
        for leg in self.legs.live_parties() {
            if let Some(record) = self.legs.end(leg, LegEndReason::CallEnded, None) {
                self.out.push(Output::Leg(LegRequest::Hangup { leg }));
                self.out.push(Output::Event(record));
            }
        }
        self.legs.bridge = None;
    }

    /// The tick of a call with added legs: each leg's frame, what the agent hears, each leg's
    /// packet with its mix.
    pub(super) fn tick_legs(&mut self, now: Instant, held: bool, records: &mut Vec<CallEventData>) {
        for party in &mut self.legs.parties {
            if let Some(media) = party.media.as_mut() {
                media.handle_timeout(now);
            }
        }
        let bridge = self.legs.bridge.clone();
        let agent = bridge.as_ref().map(|b| b.agent);
        for _ in 0..MAX_TICKS_PER_WAKE {
            let first_due = self.media.tick_due();
            let parties_due = self
                .legs
                .parties
                .iter()
                .any(|p| p.media.as_ref().is_some_and(CallMedia::tick_due));
            if !first_due && !parties_due {
                break;
            }
            let arrived = self.play_out_legs(now, first_due);
            // What the agent hears of this tick.
            let mut ear = [0i16; FRAME_SAMPLES];
            let hears = match agent {
                None => self.mix_of(&[LegId::FIRST], None, &mut ear),
                Some(AgentMode::Muted) => false,
                Some(AgentMode::Listening) => {
                    let members = bridge.as_ref().map(|b| b.members.as_slice());
                    self.mix_of(members.unwrap_or_default(), None, &mut ear)
                }
                Some(AgentMode::Whisper(leg)) => self.mix_of(&[leg], None, &mut ear),
            };
            if let Some(responder) = self.responder.as_mut().filter(|_| !held && hears) {
                responder.push_frame(arrived, &ear);
                responder.drive(now, &mut self.media, records);
            }
            // The first leg's packet.
            if agent == Some(AgentMode::Listening) {
                // It says nothing: what it would say is dropped unheard (and so not kept in
                // its history as said).
                self.media.stop_playback();
            }
            if let Some(bridge) = bridge
                .as_ref()
                .filter(|b| b.members.contains(&LegId::FIRST))
            {
                let mut mix = [0i16; FRAME_SAMPLES];
                if self.mix_of(&bridge.members, Some(LegId::FIRST), &mut mix) {
                    self.media.mix_mut().add(&mix);
                }
            }
            if first_due {
                self.transmit_first_leg(now);
            }
            let away = self.media.mix_mut().take_away().copied();
            self.transmit_parties(now, first_due, bridge.as_ref(), away.as_ref());
        }
        for party in &mut self.legs.parties {
            if let Some((to, report)) = party.media.as_mut().and_then(|m| m.poll_rtcp_transmit(now))
            {
                self.out.push_leg_rtcp(party.id, to, report);
            }
        }
    }

    /// Plays out every leg's frame of the tick now due; returns when the first leg's audio
    /// arrived (`now` when it sent none).
    fn play_out_legs(&mut self, now: Instant, first_due: bool) -> Instant {
        let mut arrived = now;
        self.legs.heard0_fresh = false;
        if self.media.tick_due() {
            if let Some((at, frame)) = self.media.poll_received(now) {
                **self
                    .legs
                    .heard0
                    .get_or_insert_with(|| Box::new([0; FRAME_SAMPLES])) = *frame;
                self.legs.heard0_fresh = true;
                arrived = at;
            }
        }
        for party in &mut self.legs.parties {
            party.heard_fresh = false;
            if let Some(remote) = party.remote.as_mut().filter(|_| first_due) {
                if party.state == LegState::Up {
                    party.heard_fresh = remote.pop(now, &mut party.heard);
                }
                continue;
            }
            let Some(media) = party.media.as_mut().filter(|m| m.tick_due()) else {
                continue;
            };
            if let Some((_, frame)) = media.poll_received(now) {
                party.heard = *frame;
                party.heard_fresh = true;
            }
        }
        arrived
    }

    /// Each added leg's packet of the tick: the other bridged legs' frames, and the agent's
    /// when it whispers to that leg.
    fn transmit_parties(
        &mut self,
        now: Instant,
        first_due: bool,
        bridge: Option<&Bridge>,
        away: Option<&[i16; FRAME_SAMPLES]>,
    ) {
        for i in 0..self.legs.parties.len() {
            let Some(id) = self
                .legs
                .parties
                .get(i)
                .filter(|p| {
                    p.media.as_ref().is_some_and(CallMedia::tick_due)
                        || (first_due && p.state == LegState::Up && p.remote.is_some())
                })
                .map(|p| p.id)
            else {
                continue;
            };
            let mut mix = [0i16; FRAME_SAMPLES];
            let mut any = false;
            if let Some(bridge) = bridge.filter(|b| b.members.contains(&id)) {
                any = self.mix_of(&bridge.members, Some(id), &mut mix);
            }
            if let (Some(agent), Some(AgentMode::Whisper(to))) = (away, bridge.map(|b| b.agent)) {
                if to == id {
                    add_saturating(&mut mix, agent);
                    any = true;
                }
            }
            if self.legs.parties.get(i).is_some_and(|p| p.remote.is_some()) {
                self.transmit_remote(i, &mix);
                continue;
            }
            let Some(media) = self.legs.parties.get_mut(i).and_then(|p| p.media.as_mut()) else {
                continue;
            };
            if any {
                media.mix_mut().add(&mix);
            }
            if let Some((to, packet)) = media.poll_transmit(now) {
                self.out.push_leg_packet(id, to, packet);
            }
        }
    }

    /// Sums the frames of this tick of `legs` but `except` into `into`; whether any was heard.
    fn mix_of(
        &self,
        legs: &[LegId],
        except: Option<LegId>,
        into: &mut [i16; FRAME_SAMPLES],
    ) -> bool {
        let mut any = false;
        for leg in legs.iter().filter(|l| Some(**l) != except) {
            let frame = if *leg == LegId::FIRST {
                self.legs
                    .heard0
                    .as_deref()
                    .filter(|_| self.legs.heard0_fresh)
            } else {
                self.legs
                    .get(*leg)
                    .filter(|p| p.heard_fresh)
                    .map(|p| &p.heard)
            };
            if let Some(frame) = frame {
                add_saturating(into, frame);
                any = true;
            }
        }
        any
    }
}

fn unbridged(reason: &str) -> Output<'static> {
    tracing::info!(reason, "bridge ended");
    Output::Event(CallEventData::Unbridged(Unbridged {
        reason: reason.to_owned(),
        extra: Default::default(),
    }))
}
