//! The endpoint's user agent client side: placing outbound calls, routing their responses and
//! timers to each [`OutboundCall`], and turning what the calls report into [`EndpointEvent`]s.
//! An answered call's dialog joins the inbound ones in `dialogs`, so a BYE from the trunk and
//! our own [`SipEndpoint::hangup`] work the same way for both.

use std::time::Instant;

use rsip::Response;

use super::{EndpointEvent, SipEndpoint};
use crate::message::call_id;
use crate::outbound::{OutboundCall, OutboundEvent, OutboundFailure};
use crate::uac::{CallRequest, Trunk};

impl SipEndpoint {
    /// Places an outbound call through `trunks`, tried in that order. The outcome arrives as
    /// [`EndpointEvent::OutboundRinging`], then [`EndpointEvent::OutboundAnswered`] or
    /// [`EndpointEvent::OutboundFailed`]. `request.local` is filled with our address.
    pub fn place_call(&mut self, now: Instant, request: CallRequest, trunks: Vec<Trunk>) {
        self.start_outbound(now, request, trunks);
        self.settle_timers();
    }

    fn start_outbound(&mut self, now: Instant, mut request: CallRequest, trunks: Vec<Trunk>) {
        let call_id = request.call_id.clone();
        if self.outbound.contains_key(&call_id) || self.dialogs.contains_key(&call_id) {
            tracing::warn!(call = %call_id, "a call with this id is already up; not placing it again");
            return;
        }
        request.local = self.local;
        request.tls_local = self.tls_local;
        let call = OutboundCall::start(now, request, trunks, self.timers, &mut self.breakers);
        self.outbound.insert(call_id.clone(), call);
        self.drain_outbound(now, &call_id);
    }

    /// Outbound calls still being placed (not answered, not failed).
    pub fn outbound_count(&self) -> usize {
        self.outbound.len()
    }

    /// Gives up an outbound call before its answer; false if there is none by that id.
    pub(super) fn abandon_outbound(&mut self, now: Instant, call_id: &str) -> bool {
        if self.dialogs.contains_key(call_id) {
            return false; // answered: the caller sends a BYE
        }
        let Some(call) = self.outbound.get_mut(call_id) else {
            return false;
        };
        call.abandon(now);
        self.drain_outbound(now, call_id);
        true
    }

    /// A response that matched no BYE of ours: one of an outbound call's, if any.
    pub(super) fn on_outbound_response(&mut self, now: Instant, response: Response) {
        let Ok(call) = call_id(&response.headers).map(str::to_owned) else {
            return;
        };
        let Some(outbound) = self.outbound.get_mut(&call) else {
            tracing::debug!(call = %call, "response for no transaction of ours; dropped");
            return;
        };
        if !outbound.handle_response(now, response, &mut self.breakers) {
            tracing::debug!(call = %call, "response for no attempt of this call; dropped");
        }
        self.drain_outbound(now, &call);
    }

    /// Advances the timers of the outbound calls in `due` (their deadline passed).
    pub(super) fn outbound_timeouts(&mut self, now: Instant, due: &[String]) {
        for call_id in due {
            let call_id = call_id.as_str();
            if let Some(call) = self.outbound.get_mut(call_id) {
                call.handle_timeout(now, &mut self.breakers);
            }
            self.drain_outbound(now, call_id);
        }
    }

    pub(super) fn drain_outbound(&mut self, now: Instant, call_id: &str) {
        let Some(call) = self.outbound.get_mut(call_id) else {
            return;
        };
        while let Some(t) = call.poll_transmit() {
            self.transmits.push_back(t);
        }
        let mut events = Vec::new();
        while let Some(event) = call.poll_event() {
            events.push(event);
        }
        let tried = call.attempts().to_vec();
        if call.is_finished() {
            self.outbound.remove(call_id);
        }
        for event in events {
            match event {
                OutboundEvent::Ringing => self.events.push_back(EndpointEvent::OutboundRinging {
                    call_id: call_id.to_owned(),
                }),
                OutboundEvent::Answered {
                    trunk_id,
                    answer,
                    dialog,
                    attempts,
                    srtp,
                } => {
                    self.dialogs.insert(call_id.to_owned(), dialog);
                    self.events.push_back(EndpointEvent::OutboundAnswered {
                        call_id: call_id.to_owned(),
                        trunk_id,
                        answer,
                        attempts,
                        srtp,
                    });
                }
                OutboundEvent::Failed(failure) => {
                    self.events.push_back(EndpointEvent::OutboundFailed {
                        call_id: call_id.to_owned(),
                        failure,
                        attempts: tried.clone(),
                    })
                }
                OutboundEvent::LateAnswer { dialog } => {
                    tracing::info!(call = %call_id, "a trunk answered after we gave up; hanging up");
                    self.send_bye(now, dialog);
                }
            }
        }
    }
}

impl OutboundFailure {
    /// Text for logs and `call.failed` records.
    pub fn describe(&self) -> String {
        match self {
            Self::AllTrunksFailed { attempts } => {
                let attempts: Vec<String> = attempts.iter().map(ToString::to_string).collect();
                format!("all trunks failed ({})", attempts.join("; "))
            }
            Self::Rejected { code, reason } => format!("rejected: {code} {reason}"),
            Self::Busy { code } => format!("busy ({code})"),
            other => other.reason().replace('_', " "),
        }
    }
}
