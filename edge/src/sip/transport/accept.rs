//! Deciding an incoming call in the SIP task: admission, the SDP offer, an RTP port in the
//! offer's address family and our answer — or the refusal that says which of them failed.

use std::net::IpAddr;

use super::refusal::{RefusalReason, Refusals};
use super::MediaSetup;
use crate::call::admission::{admit, Intake};
use crate::call::leg::MediaLeg;
use crate::call::slots::NoSlot;
use crate::call::task::{CallDirection, CallSetup};
use crate::config::SrtpMode;
use crate::rtp::srtp::SrtpSession;
use crate::sip::endpoint::{IncomingCall, SipEndpoint};
use crate::sip::peer::Transport;
use crate::sip::sdp::{self, SdpError, SessionDescription};

/// The connection address of the offer's first live audio stream (else the session's): its
/// family is the family of our answer.
pub(super) fn offered_address(offer: &SessionDescription) -> Option<IpAddr> {
    offer
        .media
        .iter()
        .find(|m| m.media.eq_ignore_ascii_case("audio") && m.port != 0)
        .and_then(|m| m.connection)
        .or(offer.connection)
}

/// Decides an incoming call: refuses it with the right response, or returns our SDP answer and
/// what its task needs (the caller answers or rings). `room` is whether the call slots have
/// one for its source, `intake` whether the edge takes new calls at all.
pub(super) async fn accept(
    endpoint: &mut SipEndpoint,
    call: IncomingCall,
    media: &MediaSetup<'_>,
    (intake, room): (Intake, Result<(), NoSlot>),
    refusals: &mut Refusals,
) -> Option<(String, CallSetup)> {
    match decide(&call, media, intake, room).await {
        Ok(accepted) => Some(accepted),
        Err(no) => {
            let (reason, code, retry) = (no.reason, no.code, no.retry_after);
            refusals
                .refuse(
                    endpoint,
                    media.services,
                    &call,
                    reason,
                    code,
                    &no.phrase,
                    retry,
                )
                .await;
            None
        }
    }
}

/// How a call is refused: the reason counted and recorded, and the response.
struct Refused {
    reason: RefusalReason,
    code: u16,
    phrase: String,
    retry_after: Option<u32>,
}

impl Refused {
    fn new(reason: RefusalReason, code: u16, phrase: impl Into<String>) -> Self {
        Self {
            reason,
            code,
            phrase: phrase.into(),
            retry_after: None,
        }
    }
}

/// Admission, the offer, a media address in its family and a port, then our answer.
async fn decide(
    call: &IncomingCall,
    media: &MediaSetup<'_>,
    intake: Intake,
    room: Result<(), NoSlot>,
) -> Result<(String, CallSetup), Refused> {
    let services = media.services;
    let snapshot = services.state.snapshot();
    let route = admit(&snapshot, &call.dialled, intake, room).map_err(|r| Refused {
        retry_after: r.retry_after,
        ..Refused::new(RefusalReason::Admission(r.cause), r.code, r.reason)
    })?;
    let offer = read_offer(call)?;
    // SDES keys travel in the SDP: over signalling without TLS only where configured.
    let secure = call.transport == Transport::Tls;
    let Some(srtp) = services.srtp.inbound_policy(secure) else {
        tracing::info!(call = %call.call_id, "SRTP required and the INVITE came without TLS");
        let phrase = "Not Acceptable Here (SRTP required: SIP over TLS needed for its keys)";
        return Err(Refused::new(RefusalReason::SrtpMismatch, 488, phrase));
    };
    // RFC 3264 section 6 would let us answer in another family, but a caller that offered
    // IPv6 may have no IPv4 at all (and the reverse): refuse what we cannot receive.
    let offered = offered_address(&offer).unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let Some(address) = media.addresses.for_family_of(offered) else {
        tracing::info!(call = %call.call_id, %offered, "no media address in the offer's family");
        let family = if offered.is_ipv6() { "IPv6" } else { "IPv4" };
        let phrase = format!("Not Acceptable Here (no {family} media address)");
        return Err(Refused::new(RefusalReason::NoMediaFamily, 488, phrase));
    };
    let Some(sockets) = media.ports.bind_on(address.bind).await else {
        let phrase = "Service Unavailable (no media ports)";
        return Err(Refused {
            retry_after: Some(5),
            ..Refused::new(RefusalReason::NoMediaPorts, 503, phrase)
        });
    };
    let local = media.local_media(&address, &sockets, srtp);
    // SRTP would be accepted here but for the keys' way in (SIP without TLS).
    let for_want_of_tls =
        !secure && !services.srtp.allow_without_tls && services.srtp.inbound != SrtpMode::Disabled;
    let answer = sdp::answer(&offer, &local).map_err(|e| refusal(call, for_want_of_tls, e))?;
    let srtp = answer
        .srtp
        .as_ref()
        .map(|keys| Box::new(SrtpSession::new(keys, services.srtp.replay_window)));
    let (agent, workflow) = crate::call::responder::answerer(&snapshot, route.target);
    let call_id = freya_shared::ids::new_id();
    let trace =
        crate::telemetry::CallTrace::begin(&call_id, &services.edge_id, &route.number.workspace_id);
    let setup = CallSetup {
        trace,
        // Ours: the caller's Call-ID may repeat across workspaces, be any length, or be aimed at
        // another call's record; it stays only the dialog's key on this edge.
        call_id,
        dialog: call.call_id.clone(),
        direction: CallDirection::Inbound,
        workspace_id: route.number.workspace_id.clone(),
        agent,
        workflow,
        caller: call.caller.clone(),
        dialled: call.dialled.clone(),
        leg: MediaLeg::Rtp {
            audio: answer.audio,
            sockets,
            srtp,
        },
        provider: None,
    };
    Ok((answer.sdp, setup))
}

/// How an offer we cannot answer is refused: 488 with the reason in its phrase for codecs and
/// SRTP, 400 for SDP we cannot read.
fn refusal(call: &IncomingCall, for_want_of_tls: bool, e: SdpError) -> Refused {
    tracing::info!(call = %call.call_id, error = %e, "cannot answer the offer");
    let srtp = |phrase: &str| Refused::new(RefusalReason::SrtpMismatch, 488, phrase);
    match e {
        SdpError::NoCommonCodec | SdpError::NoAudio => {
            Refused::new(RefusalReason::NoCommonCodec, 488, "Not Acceptable Here")
        }
        SdpError::SrtpRequired => srtp("Not Acceptable Here (SRTP required: offer RTP/SAVP)"),
        SdpError::SrtpDisabled if for_want_of_tls => {
            srtp("Not Acceptable Here (SRTP not accepted without SIP over TLS)")
        }
        SdpError::SrtpDisabled => srtp("Not Acceptable Here (SRTP not accepted)"),
        SdpError::NoCommonCrypto => srtp(
            "Not Acceptable Here (no usable crypto: AES_CM_128_HMAC_SHA1_80 or AEAD_AES_128_GCM)",
        ),
        SdpError::Malformed { .. } | SdpError::NotUtf8 | SdpError::MissingConnection => {
            Refused::new(RefusalReason::BadSdp, 400, "Bad SDP")
        }
    }
}

/// The INVITE's SDP offer, parsed; a missing one is 488, an unreadable one 400.
fn read_offer(call: &IncomingCall) -> Result<SessionDescription, Refused> {
    if call.offer.is_empty() {
        let phrase = "Not Acceptable Here (SDP offer required)";
        return Err(Refused::new(RefusalReason::NoSdpOffer, 488, phrase));
    }
    SessionDescription::parse(&call.offer).map_err(|e| {
        tracing::info!(call = %call.call_id, error = %e, "bad SDP offer");
        Refused::new(RefusalReason::BadSdp, 400, "Bad SDP")
    })
}
