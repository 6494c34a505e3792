//! What the SIP task does with each [`EndpointEvent`]: new calls go through the INVITE rate,
//! the call slots and `accept.rs`; news of live calls goes to their tasks as [`CallSignal`]s
//! (by `try_send`, `signals.rs`); outbound calls go on in `placing.rs`.

use std::time::Instant;

use super::records::{record_invited, record_ringing, record_unanswered};
use super::{accept, placing, MediaSetup, Ringing, SipTask};
use crate::call::admission::rate_limited;
use crate::call::task::CallSignal;
use crate::sip::endpoint::{EndpointEvent, IncomingCall};
use freya_shared::model::EndReason;

impl SipTask {
    /// Acts on one event of the endpoint.
    pub(super) async fn on_event(&mut self, event: EndpointEvent) {
        let Some(event) = self.on_leg_event(event) else {
            return;
        };
        match event {
            EndpointEvent::IncomingCall(call) => self.on_incoming_call(call).await,
            EndpointEvent::Confirmed { call_id } => {
                self.slots.confirm(&call_id);
                self.signal(&call_id, CallSignal::Confirmed);
            }
            EndpointEvent::Dtmf { call_id, digit } => {
                self.signal(&call_id, CallSignal::Dtmf(digit));
            }
            EndpointEvent::RemoteHangup { call_id, cancelled } => {
                let reason = if cancelled {
                    EndReason::CallerCancelled
                } else {
                    EndReason::CallerHangup
                };
                self.slots.release(&call_id);
                if let Some(unanswered) = self.ringing.remove(&call_id) {
                    record_unanswered(&self.services, &unanswered.setup, reason.clone()).await;
                }
                // The endpoint has answered the BYE (or CANCEL); the hang-up waits for room.
                self.calls.hang_up(Instant::now(), &call_id, reason, false);
            }
            EndpointEvent::OutboundRinging { call_id } => {
                tracing::info!(call = %call_id, "outbound call ringing");
                if let Some(pending) = self.pending.get(&call_id) {
                    let workspace = pending.workspace_id().to_owned();
                    record_ringing(&self.services, &call_id, &workspace).await;
                }
            }
            EndpointEvent::OutboundAnswered {
                call_id,
                trunk_id,
                answer,
                attempts,
                srtp,
            } => {
                let Some(placed) = self.pending.remove(&call_id) else {
                    return;
                };
                tracing::info!(call = %call_id, trunk = %trunk_id, "outbound call answered");
                let through = placing::Answer {
                    trunk_id: &trunk_id,
                    sdp: &answer,
                    failed_first: &attempts,
                    srtp: srtp.as_ref(),
                };
                match placing::answered(&call_id, placed, through, &self.services).await {
                    Some(setup) => self.start_call(setup),
                    None => {
                        self.slots.release(&call_id);
                        self.endpoint.hangup(Instant::now(), &call_id);
                    }
                }
            }
            EndpointEvent::OutboundFailed {
                call_id,
                failure,
                attempts,
            } => {
                if let Some(placed) = self.pending.remove(&call_id) {
                    self.slots.release(&call_id);
                    let services = &self.services;
                    placing::failed(&call_id, placed, &failure, &attempts, services).await;
                }
            }
            EndpointEvent::MediaDirection { call_id, direction } => {
                self.signal(&call_id, CallSignal::Direction(direction));
            }
            EndpointEvent::ByeOutcome { call_id, outcome } => {
                if let Some(bye) = self.byes.remove(&call_id) {
                    let _ = bye.send(outcome);
                }
            }
            EndpointEvent::Transfer { call_id, progress } => {
                self.signal(&call_id, CallSignal::Transfer(progress));
            }
            EndpointEvent::SessionExpired { call_id } => {
                self.slots.release(&call_id);
                self.end_session(&call_id, EndReason::SessionExpired);
            }
            EndpointEvent::ReinviteUnacknowledged { call_id } => {
                self.slots.release(&call_id);
                self.end_session(&call_id, EndReason::ReinviteUnacknowledged);
            }
            EndpointEvent::Registration {
                provider_id,
                status,
            } => self.on_registration(&provider_id, &status),
            EndpointEvent::Failed { call_id, reason } => {
                tracing::info!(call = %call_id, reason, "call lost in signalling");
                self.slots.release(&call_id);
                let reason = EndReason::SignallingFailed;
                self.calls.hang_up(Instant::now(), &call_id, reason, false);
            }
        }
    }

    /// A new INVITE: its source's rate, a slot, then `accept.rs`; answered at once or after
    /// ringing.
    async fn on_incoming_call(&mut self, call: IncomingCall) {
        self.session_id += 1;
        // The endpoint's transaction absorbs retransmissions, so only new INVITEs reach the
        // limiter; a refused one keeps no call state, only its transaction to repeat the 503.
        if let Err(wait) = self.rate.handle_invite(Instant::now(), call.source.ip()) {
            let refusal = rate_limited(wait);
            self.refusals
                .refuse_admission(&mut self.endpoint, &call, refusal);
            return;
        }
        let source = call.source.ip();
        let room = self.slots.check_inbound(source);
        let services = &self.services;
        if self
            .redirects
            .try_redirect(&mut self.endpoint, services, &call, room)
        {
            return;
        }
        let intake = self.redirects.intake(&self.services.state, &call);
        let media = MediaSetup::new(&self.media, &self.ports, &self.services, self.session_id);
        let refusals = &mut self.refusals;
        let accepted =
            accept::accept(&mut self.endpoint, call, &media, (intake, room), refusals).await;
        let Some((sdp, setup)) = accepted else {
            return;
        };
        self.slots.take_inbound(&setup.dialog, source);
        if self.records.len() > 2 * (self.calls.len() + self.ringing.len()) + 64 {
            self.records
                .retain(|_, d| self.calls.is_live(d) || self.ringing.contains_key(d));
        }
        self.records
            .insert(setup.call_id.clone(), setup.dialog.clone());
        // The record's clock starts here, at the INVITE, whether the call rings first or not.
        record_invited(&self.services, &setup).await;
        if self.ring.is_zero() {
            self.endpoint.answer(Instant::now(), &setup.dialog, sdp);
            self.start_call(setup);
        } else {
            self.endpoint.ring(Instant::now(), &setup.dialog);
            record_ringing(&self.services, &setup.call_id, &setup.workspace_id).await;
            let answer_at = tokio::time::Instant::now() + self.ring;
            let dialog = setup.dialog.clone();
            let ringing = Ringing {
                answer_at,
                sdp,
                setup,
            };
            self.ringing.insert(dialog, ringing);
        }
    }
}
