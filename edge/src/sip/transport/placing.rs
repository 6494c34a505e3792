//! Outbound calls in the SIP task: what the control link asks for ([`SipCommand`]), the media
//! port and offer reserved while a call is being placed ([`PendingOutbound`]), and what becomes
//! of it — a call task once answered, a `call.failed` record otherwise, or, when providers of
//! another kind are ranked after these trunks, the failure handed back to try them.

use std::time::Instant;

use super::MediaSetup;
use crate::call::leg::MediaLeg;
use crate::call::ports::{MediaAddress, MediaSockets};
use crate::call::task::{CallDirection, CallServices, CallSetup};
use crate::rtp::srtp::SrtpSession;
use crate::sip::endpoint::SipEndpoint;
use crate::sip::outbound::{OutboundFailure, TrunkAttempt, TrunkEnding};
use crate::sip::sdp::{self, LocalMedia, NegotiatedAudio, SessionDescription, SrtpKeys};
use crate::sip::uac::{CallRequest, SrtpOffered, Trunk};
use freya_shared::model::call_payloads::{
    AttemptOutcome, CallAnswered, CallFailed, CallStarted, FailureDetail, FailureRecord,
    ProviderAttempt,
};
use freya_shared::model::call_placement::{attempts_are_edge_faults, NO_ANSWER_AFTER_RINGING};
use freya_shared::model::{CallEvent, CallEventData, FailReason, Placement};
use freya_shared::snapshot::AgentConfig;
use tokio::sync::oneshot;

/// What the control link asks the SIP task to do.
#[derive(Debug)]
pub(crate) enum SipCommand {
    /// Place an outbound call.
    PlaceCall(Box<PlaceCall>),
    /// End a call: BYE when answered, CANCEL while an outbound call is being placed.
    Hangup { call_id: String },
    /// A command for a call's legs (dial, hang up, bridge), by the call's record id.
    Legs {
        call_id: String,
        command: crate::call::core::LegCommand,
    },
    /// End every call as a stop does (`edge_shutdown`), but keep serving: a drain's deadline,
    /// while the event publisher still runs to report the ends.
    EndAll,
    /// Keep exactly these registrations (from the configuration, registrars resolved).
    Registrations(Vec<crate::sip::register::RegistrationSettings>),
    /// Dial or end a leg this edge carries for a call on another edge.
    Hosted(super::legs::HostedLegCommand),
}

/// An outbound call to place, with the trunks to try in order (addresses resolved).
#[derive(Debug)]
pub(crate) struct PlaceCall {
    pub call_id: String,
    pub workspace_id: String,
    pub agent: AgentConfig,
    /// The caller id asked for (a trunk's own caller id wins).
    pub from: String,
    /// The number to call.
    pub to: String,
    pub trunks: Vec<Trunk>,
    /// Attempts on providers ranked before these trunks (call-record entries, see
    /// [`trunk_attempts`]): listed with `call.started` and `call.failed`.
    pub earlier_attempts: Vec<ProviderAttempt>,
    /// Where to hand a failure that may fail over when providers ranked after these trunks
    /// remain; `None` records it as the call's end. Dropped unsent when the call is answered or
    /// ends for good.
    pub fall_back: Option<oneshot::Sender<FallBack>>,
}

/// Every trunk failed in a way worth failing over: the attempts, for the next provider to carry.
#[derive(Debug)]
pub(crate) struct FallBack {
    pub attempts: Vec<ProviderAttempt>,
}

/// The call-record entries of the trunks an outbound call tried or skipped (`attempts`, from
/// the sans-IO call), in the shape every provider kind shares ([`ProviderAttempt`]): kind,
/// id, name, when the try began (epoch ms) and how long it took, and its outcome. `now` and
/// `now_ms` are the same moment on the monotonic and the wall clock.
pub(super) fn trunk_attempts(
    attempts: &[TrunkAttempt],
    now: Instant,
    now_ms: i64,
) -> Vec<ProviderAttempt> {
    let wall = |at: Instant| {
        let ago = i64::try_from(now.saturating_duration_since(at).as_millis()).unwrap_or(0);
        now_ms.saturating_sub(ago)
    };
    attempts
        .iter()
        .map(|a| {
            let (reason, outcome) = match &a.ending {
                TrunkEnding::Response { code, reason } => (
                    "trunk_failed",
                    AttemptOutcome::Response {
                        status: *code,
                        reason: reason.clone(),
                    },
                ),
                TrunkEnding::Timeout => ("trunk_failed", AttemptOutcome::Timeout),
                TrunkEnding::Unanswered => (NO_ANSWER_AFTER_RINGING, AttemptOutcome::Timeout),
                TrunkEnding::TransportError => ("trunk_failed", AttemptOutcome::TransportError),
                TrunkEnding::SkippedOpenCircuit => {
                    ("circuit_open", AttemptOutcome::SkippedOpenCircuit)
                }
            };
            let duration = a.started.map(|s| a.ended.saturating_duration_since(s));
            ProviderAttempt {
                kind: "sip_trunk".to_owned(),
                provider_id: a.trunk_id.clone(),
                provider: a.trunk.clone(),
                reason: reason.to_owned(),
                outcome,
                started_at_ms: a.started.map(wall),
                duration_ms: duration.map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                extra: Default::default(),
            }
        })
        .collect()
}

/// Whether a failure leaves the callee worth trying through another provider: not when the
/// callee refused or is busy, nor when we gave up.
fn may_fall_back(failure: &OutboundFailure) -> bool {
    !matches!(
        failure,
        OutboundFailure::Busy { .. }
            | OutboundFailure::Rejected { .. }
            | OutboundFailure::Cancelled
    )
}

/// An outbound call between its INVITE and its answer.
pub(super) struct PendingOutbound {
    workspace_id: String,
    agent: AgentConfig,
    from: String,
    to: String,
    local: LocalMedia,
    sockets: MediaSockets,
    /// The trunks tried, `(provider id, name)`.
    trunks: Vec<(String, String)>,
    earlier_attempts: Vec<ProviderAttempt>,
    fall_back: Option<oneshot::Sender<FallBack>>,
}

impl PendingOutbound {
    /// The workspace the call's records belong to.
    pub(super) fn workspace_id(&self) -> &str {
        &self.workspace_id
    }
}

/// A `call.failed` detail that lists only the providers tried before.
fn attempts_only(attempts: &[ProviderAttempt]) -> FailureDetail {
    FailureDetail::Record(FailureRecord {
        attempts: Some(attempts.to_vec()),
        ..FailureRecord::default()
    })
}

/// Whose "no" an outbound failure is: the edge's own (the control plane may place the call on
/// another edge) only when no trunk was usable or every attempt failed through its trunk; the
/// callee's when any attempt heard the callee.
fn placement_of(failure: &OutboundFailure, attempts: &[ProviderAttempt]) -> Placement {
    match failure {
        OutboundFailure::TrunksUnavailable => Placement::Edge,
        OutboundFailure::AllTrunksFailed { .. } if attempts_are_edge_faults(attempts) => {
            Placement::Edge
        }
        OutboundFailure::NoTrunks | OutboundFailure::Cancelled => Placement::Request,
        OutboundFailure::AllTrunksFailed { .. }
        | OutboundFailure::Busy { .. }
        | OutboundFailure::Rejected { .. }
        | OutboundFailure::NoAnswer => Placement::Callee,
    }
}

/// Records `call.failed` for a call that never got answered, saying whose "no" it is.
pub(super) async fn record_failure(
    services: &CallServices,
    call_id: &str,
    workspace_id: &str,
    to: &str,
    reason: FailReason,
    detail: FailureDetail,
    placement: Placement,
) {
    let failed = CallFailed {
        direction: Some("outbound".to_owned()),
        to: Some(to.to_owned()),
        detail: Some(detail),
        placement: Some(placement),
        ..CallFailed::because(reason)
    };
    let event = CallEvent::new(
        call_id.to_owned(),
        workspace_id.to_owned(),
        CallEventData::Failed(failed),
    );
    let _ = services.events.send(event).await;
}

/// Reserves media (in the family of the first trunk's address), writes the offer and sends
/// the INVITE; `None` (with `call.failed` recorded)
/// when the edge cannot take the call.
pub(super) async fn place(
    endpoint: &mut SipEndpoint,
    call: Box<PlaceCall>,
    media: &MediaSetup<'_>,
    active: u32,
) -> Option<PendingOutbound> {
    let services = media.services;
    let (address, sockets) = match reserve(&call, media, active).await {
        Ok(reserved) => reserved,
        Err(reason) => {
            let attempts = attempts_only(&call.earlier_attempts);
            let (id, workspace) = (&call.call_id, &call.workspace_id);
            // Full, draining, no media port: this edge's own fault.
            let edge = Placement::Edge;
            record_failure(services, id, workspace, &call.to, reason, attempts, edge).await;
            return None;
        }
    };
    // The plain offer; the SIP core adds SRTP keys for a trunk that takes them
    // (`freya_sip::uac`, SECURITY.md "Outbound SRTP").
    let local = media.local_media(&address, &sockets, crate::sip::sdp::SrtpPolicy::Disabled);
    let call = *call;
    record_dialled(services, &call).await;
    let request = CallRequest {
        call_id: call.call_id.clone(),
        to: call.to.clone(),
        from: call.from.clone(),
        offer: sdp::offer(&local),
        local: std::net::SocketAddr::from(([0, 0, 0, 0], 0)), // the endpoint puts its own
        tls_local: None,
        srtp_media: true,
    };
    let tried = call
        .trunks
        .iter()
        .map(|t| (t.id.clone(), t.name.clone()))
        .collect();
    endpoint.place_call(Instant::now(), request, call.trunks);
    Some(PendingOutbound {
        workspace_id: call.workspace_id,
        agent: call.agent,
        from: call.from,
        to: call.to,
        local,
        sockets,
        trunks: tried,
        earlier_attempts: call.earlier_attempts,
        fall_back: call.fall_back,
    })
}

/// What the edge needs before it dials: room for the call, a media address in the family of
/// the first trunk's address, and an RTP port pair on it; else why not.
async fn reserve(
    call: &PlaceCall,
    media: &MediaSetup<'_>,
    active: u32,
) -> Result<(MediaAddress, MediaSockets), FailReason> {
    let services = media.services;
    let refusal = if services.state.is_draining() {
        Some(FailReason::EdgeDraining)
    } else if active >= services.state.capacity() {
        Some(FailReason::EdgeAtCapacity)
    } else {
        None
    };
    if let Some(reason) = refusal {
        tracing::info!(call = %call.call_id, %reason, "outbound call refused");
        return Err(reason);
    }
    // Our offer is in the family of the first trunk's address (the one we call first); a later
    // trunk of the other family gets the same offer, which a dual-stack peer still reaches.
    let family = call.trunks.first().map(|t| t.peer.addr.ip());
    let address = match family {
        Some(ip) => media.addresses.for_family_of(ip),
        None => media.addresses.primary(),
    };
    let Some(address) = address else {
        tracing::warn!(call = %call.call_id, ?family, "no media address in the trunk's IP family");
        return Err(FailReason::NoMediaAddressFamily);
    };
    let Some(sockets) = media.ports.bind_on(address.bind).await else {
        tracing::warn!(call = %call.call_id, "no free RTP port for an outbound call");
        return Err(FailReason::NoMediaPorts);
    };
    Ok((address, sockets))
}

/// Records `call.started` as we dial: the call's record starts then (the control plane keeps
/// the first `call.started`).
async fn record_dialled(services: &CallServices, call: &PlaceCall) {
    let trunks: Vec<String> = call.trunks.iter().map(|t| t.name.clone()).collect();
    let started = CallStarted {
        direction: Some("outbound".to_owned()),
        from: Some(call.from.clone()),
        to: Some(call.to.clone()),
        agent_id: Some(Some(call.agent.id.clone())),
        edge_id: Some(services.edge_id.to_string()),
        trunks: Some(trunks),
        attempts: Some(call.earlier_attempts.clone()),
        ..CallStarted::default()
    };
    let started = CallEvent::new(
        call.call_id.clone(),
        call.workspace_id.clone(),
        CallEventData::Started(started),
    );
    let _ = services.events.send(started).await;
}

/// How an outbound call was answered.
pub(super) struct Answer<'a> {
    /// The provider id of the trunk that answered.
    pub trunk_id: &'a str,
    /// The callee's SDP answer.
    pub sdp: &'a [u8],
    /// Trunks tried before it, and how each failed.
    pub failed_first: &'a [TrunkAttempt],
    /// What we offered that trunk for SRTP, if anything.
    pub srtp: Option<&'a SrtpOffered>,
}

/// Why a callee's answer cannot carry the call.
#[derive(Debug, thiserror::Error)]
enum UnusableAnswer {
    #[error(transparent)]
    Sdp(#[from] sdp::SdpError),
    #[error(transparent)]
    Srtp(#[from] sdp::SrtpAnswerError),
}

/// The answer's audio and SRTP keys, checked against our offer: a trunk that requires SRTP
/// and a peer that answered a key both get SRTP or no call, never plain RTP.
fn read_answer(
    answer: &[u8],
    local: &LocalMedia,
    offered: Option<&SrtpOffered>,
) -> Result<(NegotiatedAudio, Option<SrtpKeys>), UnusableAnswer> {
    let sdp = SessionDescription::parse(answer)?;
    let keys = match offered {
        Some(offered) => sdp::answer_keys(&sdp, offered.policy, &offered.keys)?,
        None => None,
    };
    Ok((sdp::read_answer(&sdp, local)?, keys))
}

/// The callee answered: the call's setup, or `None` (the caller hangs up and records
/// `call.failed`) when the answer's SDP is unusable. The setup's `provider` names the trunk and
/// every attempt before it (written with `call.answered`), so a record says which trunks
/// failed first and how.
pub(super) async fn answered(
    call_id: &str,
    pending: PendingOutbound,
    answer: Answer<'_>,
    services: &CallServices,
) -> Option<CallSetup> {
    let audio = read_answer(answer.sdp, &pending.local, answer.srtp);
    let mut attempts = pending.earlier_attempts;
    let now_ms = freya_shared::ids::now_ms();
    attempts.extend(trunk_attempts(answer.failed_first, Instant::now(), now_ms));
    let carrier = pending.trunks.iter().find(|(id, _)| id == answer.trunk_id);
    let provider = CallAnswered {
        provider: Some("sip_trunk".to_owned()),
        provider_id: Some(answer.trunk_id.to_string()),
        provider_name: carrier.map(|(_, name)| name.clone()),
        attempts: Some(attempts),
        ..CallAnswered::default()
    };
    match audio {
        Ok((audio, keys)) => Some(CallSetup {
            trace: crate::telemetry::CallTrace::begin(
                call_id,
                &services.edge_id,
                &pending.workspace_id,
            ),
            call_id: call_id.to_owned(),
            dialog: call_id.to_owned(),
            direction: CallDirection::Outbound,
            workspace_id: pending.workspace_id,
            agent: pending.agent,
            workflow: None,
            caller: pending.from,
            dialled: pending.to,
            leg: MediaLeg::Rtp {
                audio,
                sockets: pending.sockets,
                srtp: keys.map(|keys| {
                    tracing::info!(call = %call_id, suite = keys.suite().name(), "outbound media is SRTP");
                    Box::new(SrtpSession::new(&keys, services.srtp.replay_window))
                }),
            },
            provider: Some(provider),
        }),
        Err(e) => {
            tracing::warn!(call = %call_id, error = %e, "the callee's SDP answer is unusable; hanging up");
            let reason = match e {
                UnusableAnswer::Sdp(_) => FailReason::BadAnswerSdp,
                UnusableAnswer::Srtp(_) => FailReason::SrtpMismatch,
            };
            record_failure(
                services,
                call_id,
                &pending.workspace_id,
                &pending.to,
                reason,
                FailureDetail::Text(e.to_string()),
                Placement::Callee,
            )
            .await;
            None
        }
    }
}

/// The call will not be answered through these trunks: hand the failure back when providers
/// ranked after them remain and it may fail over, else record why.
pub(super) async fn failed(
    call_id: &str,
    pending: PendingOutbound,
    failure: &OutboundFailure,
    tried: &[TrunkAttempt],
    services: &CallServices,
) {
    let mut attempts = pending.earlier_attempts;
    let now_ms = freya_shared::ids::now_ms();
    attempts.extend(trunk_attempts(tried, Instant::now(), now_ms));
    if let Some(fall_back) = pending.fall_back.filter(|_| may_fall_back(failure)) {
        tracing::info!(call = %call_id, reason = %failure.describe(), "no trunk took the call; trying the next provider");
        match fall_back.send(FallBack { attempts }) {
            Ok(()) => return,
            Err(back) => attempts = back.attempts,
        }
    }
    let placement = placement_of(failure, &attempts);
    tracing::info!(call = %call_id, reason = %failure.describe(), %placement, "outbound call failed");
    let detail = FailureDetail::Record(FailureRecord {
        description: Some(failure.describe()),
        attempts: Some(attempts),
        code: failure.code(),
        ..FailureRecord::default()
    });
    record_failure(
        services,
        call_id,
        &pending.workspace_id,
        &pending.to,
        FailReason::parse(failure.reason()),
        detail,
        placement,
    )
    .await;
}
