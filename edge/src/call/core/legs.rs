//! A call's parties beyond its first: each leg's state (dialling, up, ended), its own media
//! core ([`CallMedia`]: codec, jitter buffer, pacing on the call's 20 ms grid), its dial
//! deadline, and the bridge between legs with the agent's part in it ([`AgentMode`]). Leg 0 is
//! the call's first party (SIP or a media stream), whose media the core keeps as before; this
//! file holds legs 1 and up. Plain values: the core asks, this answers.

use std::time::{Duration, Instant};

use freya_shared::model::call_leg_payloads::{Bridged, LegAnswered, LegEnded};
use freya_shared::model::{CallEventData, LegEndReason};

use crate::call::media::{CallMedia, FRAME_SAMPLES};

/// A leg of a call: 0 is the party the call started with, added parties count up from 1
/// (never reused within a call).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LegId(pub u8);

impl LegId {
    /// The call's first party.
    pub const FIRST: LegId = LegId(0);
}

impl std::fmt::Display for LegId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What the agent does while legs are bridged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AgentMode {
    /// Neither hears nor speaks: its voice (and its timers) pause; the agent has left.
    Muted,
    /// Hears the bridged parties mixed, says nothing (what it would say is dropped unheard).
    Listening,
    /// Speaks to this leg only, and hears only it; the bridged parties still hear each other.
    Whisper(LegId),
}

impl AgentMode {
    /// The word in `call.bridged`.
    pub fn as_str(self) -> &'static str {
        match self {
            AgentMode::Muted => "muted",
            AgentMode::Listening => "listening",
            AgentMode::Whisper(_) => "whisper",
        }
    }
}

/// Limits on a call's legs (`[legs]` in the edge's config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LegSettings {
    /// Most legs up or dialling at once, the first party included.
    pub max_legs: u8,
    /// How long a dialled party may take to answer before the dial is cancelled.
    pub dial_timeout: Duration,
    /// How long a leg on another edge may send no audio before it is ended (`mesh_lost`).
    pub remote_silence: Duration,
}

impl Default for LegSettings {
    fn default() -> Self {
        Self {
            max_legs: 4,
            dial_timeout: Duration::from_secs(30),
            remote_silence: Duration::from_secs(3),
        }
    }
}

/// Most parties one call may ever dial (ended ones included): a bound on what a caller of the
/// API or a model can make one call cost, whatever `max_legs` allows at once.
pub const MAX_DIALS_PER_CALL: u8 = 16;

/// Why a leg operation was refused; the API answers each with its own status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LegError {
    #[error("the call already has {max} legs")]
    TooManyLegs { max: u8 },
    #[error("the call has no leg {0}")]
    UnknownLeg(LegId),
    #[error("leg {0} is not up")]
    NotUp(LegId),
    #[error("leg {0} is named twice")]
    SameLeg(LegId),
    #[error("a bridge needs at least two legs")]
    TooFewLegs,
    #[error("the whisper target {0} is not in the bridge")]
    WhisperOutsideBridge(LegId),
    #[error("the call has no bridge")]
    NoBridge,
    #[error("the call has ended")]
    CallEnded,
}

/// Where a leg stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum LegState {
    Dialling,
    Up,
    Ended,
}

/// What the SIP side says of a dialled leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegSignal {
    /// The party answered with this audio.
    Answered(crate::sip::sdp::NegotiatedAudio),
    /// The dial failed (`detail`: busy, a status, no trunk).
    Failed { detail: String },
    /// The party hung up (BYE).
    Hangup,
    /// A leg on another edge: that edge's party answered, and its audio comes over the mesh.
    RemoteAnswered,
    /// A leg on another edge: the mesh stopped carrying it (the connection dropped).
    MeshLost { detail: String },
}

/// What the shell is asked to do for a leg.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegRequest {
    /// Dial `to` through the workspace's trunks, or ask the edge `edge` to dial it with its
    /// own and carry its audio over the mesh; report back with [`LegSignal`]s.
    Dial {
        leg: LegId,
        to: String,
        edge: Option<String>,
    },
    /// Hang the leg up (CANCEL while it rings, BYE once up) and free its sockets.
    Hangup { leg: LegId },
}

/// What the control plane asks of a call's legs (`POST /v1/calls/{id}/legs`, `.../bridge`,
/// `DELETE .../legs/{leg}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LegCommand {
    /// Dial `to` as leg `leg` (the id the control plane chose: the next one), on the edge
    /// `edge` when it is another edge than this one. With `whisper` it is a warm transfer:
    /// the summary is said to the party alone once it answers, then caller and party are
    /// bridged and the agent leaves.
    Dial {
        leg: LegId,
        to: String,
        edge: Option<String>,
        whisper: Option<String>,
    },
    /// Hang `leg` up (leg 0: the whole call).
    Hangup { leg: LegId },
    /// Bridge `legs` with the agent `agent`.
    Bridge { legs: Vec<LegId>, agent: AgentMode },
    /// End the bridge.
    Unbridge,
}

/// One added party.
pub(super) struct Party {
    pub(super) id: LegId,
    pub(super) state: LegState,
    pub(super) media: Option<CallMedia>,
    pub(super) dial_deadline: Option<Instant>,
    /// Its frame of the tick being mixed (silence when none came).
    pub(super) heard: [i16; FRAME_SAMPLES],
    pub(super) heard_fresh: bool,
    /// A leg on another edge: its audio comes and goes over the mesh instead of `media`.
    pub(super) remote: Option<Box<super::remote::RemoteParty>>,
}

/// The bridge: which legs hear each other, and the agent's part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Bridge {
    pub(super) members: Vec<LegId>,
    pub(super) agent: AgentMode,
}

/// The legs beyond the first and the bridge.
pub(super) struct Legs {
    pub(super) settings: LegSettings,
    pub(super) parties: Vec<Party>,
    pub(super) bridge: Option<Bridge>,
    /// Leg 0's frame of the tick being mixed (allocated with the first added leg: a call
    /// that never adds one keeps no buffer for it).
    pub(super) heard0: Option<Box<[i16; FRAME_SAMPLES]>>,
    pub(super) heard0_fresh: bool,
    /// The agent's warm transfer under way.
    pub(super) warm: Option<super::warm::Warm>,
}

impl Legs {
    pub(super) fn new(settings: LegSettings) -> Self {
        Self {
            settings,
            parties: Vec::new(),
            bridge: None,
            heard0: None,
            heard0_fresh: false,
            warm: None,
        }
    }

    /// Whether the call ever had a second leg (the single-leg tick runs otherwise).
    pub(super) fn is_empty(&self) -> bool {
        self.parties.is_empty()
    }

    pub(super) fn get(&self, leg: LegId) -> Option<&Party> {
        self.parties.iter().find(|p| p.id == leg)
    }

    pub(super) fn get_mut(&mut self, leg: LegId) -> Option<&mut Party> {
        self.parties.iter_mut().find(|p| p.id == leg)
    }

    /// Legs up or dialling, the first party included.
    pub(super) fn live(&self) -> usize {
        1 + self
            .parties
            .iter()
            .filter(|p| p.state != LegState::Ended)
            .count()
    }

    /// A new leg dialling `to` from `now`, or why not.
    pub(super) fn add(&mut self, now: Instant) -> Result<LegId, LegError> {
        let max = self.settings.max_legs;
        if self.live() >= usize::from(max) || self.parties.len() >= usize::from(MAX_DIALS_PER_CALL)
        {
            return Err(LegError::TooManyLegs { max });
        }
        let id = LegId(u8::try_from(self.parties.len() + 1).unwrap_or(u8::MAX));
        self.parties.push(Party {
            id,
            state: LegState::Dialling,
            media: None,
            dial_deadline: Some(now + self.settings.dial_timeout),
            heard: [0; FRAME_SAMPLES],
            heard_fresh: false,
            remote: None,
        });
        Ok(id)
    }

    /// Marks `leg` ended (its media dropped); the record to write, or `None` if it already was.
    pub(super) fn end(
        &mut self,
        leg: LegId,
        reason: LegEndReason,
        detail: Option<String>,
    ) -> Option<CallEventData> {
        let party = self.get_mut(leg)?;
        if party.state == LegState::Ended {
            return None;
        }
        party.state = LegState::Ended;
        party.media = None;
        party.remote = None;
        party.dial_deadline = None;
        tracing::info!(%leg, %reason, "leg ended");
        Some(CallEventData::LegEnded(LegEnded {
            leg: leg.0,
            reason,
            detail,
            extra: Default::default(),
        }))
    }

    /// Whether `leg` (the first party included) is up.
    pub(super) fn is_up(&self, leg: LegId) -> bool {
        leg == LegId::FIRST || self.get(leg).is_some_and(|p| p.state == LegState::Up)
    }

    /// Checks a bridge of `members` with the agent `agent`: at least two distinct legs, each up,
    /// and a whisper target among them.
    pub(super) fn check_bridge(&self, members: &[LegId], agent: AgentMode) -> Result<(), LegError> {
        if members.len() < 2 {
            return Err(LegError::TooFewLegs);
        }
        for (i, leg) in members.iter().enumerate() {
            if members[..i].contains(leg) {
                return Err(LegError::SameLeg(*leg));
            }
            if *leg != LegId::FIRST && self.get(*leg).is_none() {
                return Err(LegError::UnknownLeg(*leg));
            }
            if !self.is_up(*leg) {
                return Err(LegError::NotUp(*leg));
            }
        }
        if let AgentMode::Whisper(target) = agent {
            if !members.contains(&target) {
                return Err(LegError::WhisperOutsideBridge(target));
            }
        }
        Ok(())
    }

    /// The `call.bridged` record of the bridge now in place.
    pub(super) fn bridged_record(&self) -> Option<CallEventData> {
        let bridge = self.bridge.as_ref()?;
        Some(CallEventData::Bridged(Bridged {
            legs: bridge.members.iter().map(|l| l.0).collect(),
            agent: bridge.agent.as_str().to_owned(),
            whisper_to: match bridge.agent {
                AgentMode::Whisper(leg) => Some(leg.0),
                _ => None,
            },
            extra: Default::default(),
        }))
    }

    /// The `call.leg_answered` record.
    pub(super) fn answered_record(leg: LegId, codec: &str, edge: Option<String>) -> CallEventData {
        CallEventData::LegAnswered(LegAnswered {
            leg: leg.0,
            codec: Some(codec.to_owned()),
            edge,
            extra: Default::default(),
        })
    }

    /// The earliest of the legs' media deadlines and dial deadlines.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.parties
            .iter()
            .flat_map(|p| {
                [
                    p.media.as_ref().map(CallMedia::poll_timeout),
                    p.dial_deadline,
                    p.remote.as_ref().and_then(|r| r.silence_deadline()),
                ]
            })
            .flatten()
            .min()
    }

    /// Legs whose dial deadline has passed at `now` (each reported once).
    pub(super) fn take_unanswered(&mut self, now: Instant) -> Vec<LegId> {
        let mut due = Vec::new();
        for party in &mut self.parties {
            if party.state == LegState::Dialling && party.dial_deadline.is_some_and(|d| d <= now) {
                party.dial_deadline = None;
                due.push(party.id);
            }
        }
        due
    }

    /// Live legs other than the first (to hang up when the call ends).
    pub(super) fn live_parties(&self) -> Vec<LegId> {
        self.parties
            .iter()
            .filter(|p| p.state != LegState::Ended)
            .map(|p| p.id)
            .collect()
    }
}
