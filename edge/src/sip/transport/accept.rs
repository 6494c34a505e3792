//! Deciding an incoming call in the SIP task: admission, the SDP offer, an RTP port in the
//! offer's address family and our answer — or the refusal that says which of them failed.

use std::net::IpAddr;

use super::refusal::{RefusalReason, Refusals};
use crate::call::admission::admit;
use crate::call::leg::MediaLeg;
use crate::call::ports::{MediaAddresses, PortAllocator};
use crate::call::task::{CallDirection, CallServices, CallSetup};
use crate::sip::endpoint::{IncomingCall, SipEndpoint};
use crate::sip::sdp::{self, Direction, LocalMedia, SdpError, SessionDescription};

/// The connection address of the offer's first live audio stream (else the session's): its
/// family is the family of our answer.
pub fn offered_address(offer: &SessionDescription) -> Option<IpAddr> {
    offer
        .media
        .iter()
        .find(|m| m.media.eq_ignore_ascii_case("audio") && m.port != 0)
        .and_then(|m| m.connection)
        .or(offer.connection)
}

/// Decides an incoming call: refuses it with the right response, or returns our SDP answer and
/// what its task needs (the caller answers or rings). `room` is whether the call slots have
/// one for its source.
#[allow(clippy::too_many_arguments)]
pub async fn accept(
    endpoint: &mut SipEndpoint,
    call: IncomingCall,
    media: &MediaAddresses,
    session_id: u64,
    ports: &PortAllocator,
    services: &CallServices,
    room: Result<(), crate::call::slots::NoSlot>,
    refusals: &mut Refusals,
) -> Option<(String, CallSetup)> {
    let snapshot = services.state.snapshot();
    let route = match admit(&snapshot, &call.dialled, services.state.is_draining(), room) {
        Ok(route) => route,
        Err(r) => {
            let reason = RefusalReason::Admission(r.cause);
            let (code, phrase, retry) = (r.code, r.reason, r.retry_after);
            refusals
                .refuse(endpoint, services, &call, reason, code, phrase, retry)
                .await;
            return None;
        }
    };
    if call.offer.is_empty() {
        let phrase = "Not Acceptable Here (SDP offer required)";
        refusals
            .refuse(
                endpoint,
                services,
                &call,
                RefusalReason::NoSdpOffer,
                488,
                phrase,
                None,
            )
            .await;
        return None;
    }
    let offer = match SessionDescription::parse(&call.offer) {
        Ok(offer) => offer,
        Err(e) => {
            tracing::info!(call = %call.call_id, error = %e, "bad SDP offer");
            refusals
                .refuse(
                    endpoint,
                    services,
                    &call,
                    RefusalReason::BadSdp,
                    400,
                    "Bad SDP",
                    None,
                )
                .await;
            return None;
        }
    };
    // RFC 3264 section 6 would let us answer in another family, but a caller that offered
    // IPv6 may have no IPv4 at all (and the reverse): refuse what we cannot receive.
    let offered = offered_address(&offer).unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let Some(address) = media.for_family_of(offered) else {
        tracing::info!(call = %call.call_id, %offered, "no media address in the offer's family");
        let family = if offered.is_ipv6() { "IPv6" } else { "IPv4" };
        let phrase = format!("Not Acceptable Here (no {family} media address)");
        let reason = RefusalReason::NoMediaFamily;
        refusals
            .refuse(endpoint, services, &call, reason, 488, &phrase, None)
            .await;
        return None;
    };
    let Some(sockets) = ports.bind_on(address.bind).await else {
        let phrase = "Service Unavailable (no media ports)";
        let reason = RefusalReason::NoMediaPorts;
        refusals
            .refuse(endpoint, services, &call, reason, 503, phrase, Some(5))
            .await;
        return None;
    };
    let port = sockets
        .rtp
        .local_addr()
        .map(|a| a.port())
        .unwrap_or_default();
    let local = LocalMedia {
        codecs: services.media.codecs.to_vec(),
        address: address.public,
        port,
        direction: Direction::SendRecv,
        session_id,
        opus_payload_type: 111,
        telephone_event_payload_type: 101,
        ptime: 20,
        rtcp_mux: false,
    };
    let answer = match sdp::answer(&offer, &local) {
        Ok(answer) => answer,
        Err(e @ (SdpError::NoCommonCodec | SdpError::NoAudio)) => {
            tracing::info!(call = %call.call_id, error = %e, "no common codec");
            let phrase = "Not Acceptable Here";
            let reason = RefusalReason::NoCommonCodec;
            refusals
                .refuse(endpoint, services, &call, reason, 488, phrase, None)
                .await;
            return None;
        }
        Err(e) => {
            tracing::info!(call = %call.call_id, error = %e, "cannot answer this SDP");
            refusals
                .refuse(
                    endpoint,
                    services,
                    &call,
                    RefusalReason::BadSdp,
                    400,
                    "Bad SDP",
                    None,
                )
                .await;
            return None;
        }
    };
    let (agent, workflow) = crate::call::responder::answerer(&snapshot, route.target);
    let setup = CallSetup {
        // Ours: the caller's Call-ID may repeat across workspaces, be any length, or be aimed at
        // another call's record; it stays only the dialog's key on this edge.
        call_id: freya_shared::ids::new_id(),
        dialog: call.call_id.clone(),
        direction: CallDirection::Inbound,
        workspace_id: route.number.workspace_id.clone(),
        agent,
        workflow,
        caller: call.caller,
        dialled: call.dialled,
        leg: MediaLeg::Rtp {
            audio: answer.audio,
            sockets,
        },
        provider: None,
    };
    Some((answer.sdp, setup))
}
