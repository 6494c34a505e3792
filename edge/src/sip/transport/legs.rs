//! A call's added legs in the SIP task: a leg's dial ([`LegDial`], from the call task) is an
//! outbound call of its own — an RTP port pair reserved in the first trunk's IP family and
//! handed to the call task at once, an offer, the INVITE through the workspace's trunks — whose
//! dialog is remembered with the call and leg it belongs to. Every endpoint event of such a
//! dialog becomes a [`CallSignal::Leg`] for that call (answered with its audio, failed, hung
//! up); none of them is a call of its own (no slot, no record, no task).

use std::collections::HashMap;
use std::time::Instant;

use tokio::sync::oneshot;

use super::{MediaSetup, SipTask};
use crate::call::core::{LegId, LegSignal};
use crate::call::ports::MediaSockets;
use crate::call::task::CallSignal;
use crate::sip::endpoint::EndpointEvent;
use crate::sip::sdp::{self, LocalMedia, SessionDescription};
use crate::sip::uac::{CallRequest, Trunk};

/// A leg to dial for a call.
pub struct LegDial {
    /// The call's dialog (its SIP Call-ID on this edge).
    pub dialog: String,
    pub leg: LegId,
    pub to: String,
    /// Our caller id toward the party.
    pub from: String,
    /// The workspace's SIP trunks, in order, addresses resolved.
    pub trunks: Vec<Trunk>,
    /// Where the leg's RTP sockets go once reserved (before the INVITE leaves).
    pub sockets: oneshot::Sender<MediaSockets>,
}

impl std::fmt::Debug for LegDial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LegDial")
            .field("dialog", &self.dialog)
            .field("leg", &self.leg)
            .field("to", &self.to)
            .finish_non_exhaustive()
    }
}

/// A leg this edge dials for a call that lives on another edge (`mesh/hosting.rs`): it has no
/// call here, so its news goes to the task carrying it, under a dialog name of its own.
#[derive(Debug)]
pub(crate) enum HostedLegCommand {
    /// Dial it; its [`CallSignal::Leg`]s go to `signals`.
    Dial {
        signals: tokio::sync::mpsc::Sender<CallSignal>,
        dial: Box<LegDial>,
    },
    /// Hang it up (CANCEL or BYE) and forget its dialog name.
    End { dialog: String, leg: LegId },
}

/// A leg's dialog: whose it is, and our offer until it is answered.
pub(super) struct LegDialog {
    parent: String,
    leg: LegId,
    local: Option<LocalMedia>,
}

/// The legs' dialogs by their own Call-ID.
pub(super) type LegDialogs = HashMap<String, LegDialog>;

impl SipTask {
    /// Reserves the leg's media, hands its sockets to the call task and sends the INVITE; a
    /// leg that cannot be dialled is reported failed to its call.
    pub(super) async fn dial_leg(&mut self, dial: Box<LegDial>) {
        let LegDial {
            dialog,
            leg,
            to,
            from,
            trunks,
            sockets,
        } = *dial;
        let failed = |detail: &str| CallSignal::Leg {
            leg,
            signal: LegSignal::Failed {
                detail: detail.to_owned(),
            },
        };
        let address = match trunks.first() {
            None => return self.signal(&dialog, failed("no SIP trunk to dial through")),
            Some(trunk) => self.media.for_family_of(trunk.peer.addr.ip()),
        };
        let Some(address) = address else {
            return self.signal(&dialog, failed("no media address in the trunk's IP family"));
        };
        let Some(reserved) = self.ports.bind_on(address.bind).await else {
            return self.signal(&dialog, failed("no free RTP port"));
        };
        // A further leg's SDP stays plain RTP: see SECURITY.md (SRTP).
        let local = MediaSetup::new(
            &self.media,
            &self.ports,
            &self.services,
            self.session_id + 1,
        )
        .local_media(&address, &reserved, sdp::SrtpPolicy::Disabled);
        if sockets.send(reserved).is_err() {
            return; // The call is gone.
        }
        self.session_id += 1;
        let call_id = freya_shared::ids::new_id();
        tracing::info!(call = %dialog, %leg, to = %freya_shared::redact::MaskedNumber(&to), leg_dialog = %call_id, "dialling a leg");
        let request = CallRequest {
            call_id: call_id.clone(),
            to,
            from,
            offer: sdp::offer(&local),
            // A leg's media runs plain RTP: a trunk that requires SRTP is not used for it.
            srtp_media: false,
            local: std::net::SocketAddr::from(([0, 0, 0, 0], 0)), // the endpoint puts its own
            tls_local: None,
        };
        self.endpoint.place_call(Instant::now(), request, trunks);
        let entry = LegDialog {
            parent: dialog,
            leg,
            local: Some(local),
        };
        self.legs.insert(call_id, entry);
    }

    /// A hosted leg's dial or end.
    pub(super) async fn on_hosted_leg(&mut self, command: HostedLegCommand) {
        match command {
            HostedLegCommand::Dial { signals, dial } => {
                self.calls.insert(dial.dialog.clone(), signals);
                self.dial_leg(dial).await;
            }
            HostedLegCommand::End { dialog, leg } => {
                self.hang_up_leg(&dialog, leg);
                self.calls.forget(&dialog);
            }
        }
    }

    /// Hangs up a call's leg: CANCEL while it rings, BYE once answered.
    pub(super) fn hang_up_leg(&mut self, parent: &str, leg: LegId) {
        let found = self
            .legs
            .iter()
            .find(|(_, d)| d.parent == parent && d.leg == leg)
            .map(|(id, _)| id.clone());
        if let Some(call_id) = found {
            self.legs.remove(&call_id);
            self.endpoint.hangup(Instant::now(), &call_id);
        }
    }

    /// A leg's dialog's event goes to its call as a [`CallSignal::Leg`]; any other event is
    /// handed back.
    pub(super) fn on_leg_event(&mut self, event: EndpointEvent) -> Option<EndpointEvent> {
        let call_id = match &event {
            EndpointEvent::IncomingCall(_) | EndpointEvent::Registration { .. } => {
                return Some(event)
            }
            EndpointEvent::Confirmed { call_id }
            | EndpointEvent::Dtmf { call_id, .. }
            | EndpointEvent::RemoteHangup { call_id, .. }
            | EndpointEvent::OutboundRinging { call_id }
            | EndpointEvent::OutboundAnswered { call_id, .. }
            | EndpointEvent::OutboundFailed { call_id, .. }
            | EndpointEvent::MediaDirection { call_id, .. }
            | EndpointEvent::ByeOutcome { call_id, .. }
            | EndpointEvent::Transfer { call_id, .. }
            | EndpointEvent::SessionExpired { call_id }
            | EndpointEvent::ReinviteUnacknowledged { call_id }
            | EndpointEvent::Failed { call_id, .. } => call_id.clone(),
        };
        let Some(dialog) = self.legs.get_mut(&call_id) else {
            return Some(event);
        };
        let (parent, leg) = (dialog.parent.clone(), dialog.leg);
        let signal = match event {
            EndpointEvent::OutboundAnswered { answer, .. } => {
                let local = dialog.local.take();
                let audio = SessionDescription::parse(&answer).and_then(|sdp| match &local {
                    Some(local) => sdp::read_answer(&sdp, local),
                    None => Err(sdp::SdpError::NoAudio),
                });
                match audio {
                    Ok(audio) => LegSignal::Answered(audio),
                    Err(e) => {
                        self.legs.remove(&call_id);
                        self.endpoint.hangup(Instant::now(), &call_id);
                        LegSignal::Failed {
                            detail: format!("unusable SDP answer: {e}"),
                        }
                    }
                }
            }
            EndpointEvent::OutboundFailed { failure, .. } => {
                self.legs.remove(&call_id);
                LegSignal::Failed {
                    detail: failure.describe(),
                }
            }
            EndpointEvent::RemoteHangup { .. } | EndpointEvent::Failed { .. } => {
                self.legs.remove(&call_id);
                LegSignal::Hangup
            }
            EndpointEvent::SessionExpired { .. } | EndpointEvent::ReinviteUnacknowledged { .. } => {
                self.legs.remove(&call_id);
                self.endpoint.hangup(Instant::now(), &call_id);
                LegSignal::Hangup
            }
            _ => return None,
        };
        self.signal(&parent, CallSignal::Leg { leg, signal });
        None
    }

    /// The edge stops: every leg's dialog is hung up.
    pub(super) fn hang_up_legs(&mut self) {
        let now = Instant::now();
        for call_id in std::mem::take(&mut self.legs).into_keys() {
            self.endpoint.hangup(now, &call_id);
        }
    }
}
