//! A warm transfer the agent asks for: dial the destination as a new leg while the caller stays
//! with the agent; once the party answers, the agent whispers its summary to that party alone
//! (the caller hears nothing meanwhile), then bridges caller and party with itself muted — it
//! has left. A party that never answers, refuses or hangs up first returns the call to the
//! agent, and the model is told as for a failed blind transfer.

use std::time::Instant;

use freya_shared::model::call_payloads::{Extra, TransferProgress as TransferRecord};
use freya_shared::model::CallEventData;

use super::legs::{AgentMode, Bridge, LegId};
use super::output::Output;
use super::CallCore;

/// What a warm transfer is asked to do.
pub(super) struct WarmRequest {
    pub(super) destination: String,
    /// The summary for the answering party.
    pub(super) whisper: Option<String>,
    /// `agent` (its tool or a workflow node) or `api`.
    pub(super) by: &'static str,
    /// The leg id the control plane chose.
    pub(super) wanted: Option<LegId>,
    /// The edge that dials the party when it is not this one (a remote leg over the mesh).
    pub(super) edge: Option<String>,
}

/// A warm transfer under way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Warm {
    pub(super) leg: LegId,
    pub(super) destination: String,
    /// The summary for the answering party, until it is said.
    pub(super) whisper: Option<String>,
    /// The summary is being said to the party.
    pub(super) whispering: bool,
}

fn record(status: &str, destination: &str, reason: Option<String>) -> Output<'static> {
    Output::Event(CallEventData::Transfer(TransferRecord {
        status: status.to_owned(),
        destination: Some(destination.to_owned()),
        code: None,
        reason,
        extra: Extra::new(),
    }))
}

impl CallCore {
    /// The agent asks for a warm transfer to `destination` (already checked against its
    /// allowed destinations), with `whisper` for the answering party.
    pub(super) fn start_warm(
        &mut self,
        now: Instant,
        destination: String,
        whisper: Option<String>,
    ) {
        let request = WarmRequest {
            destination,
            whisper,
            by: "agent",
            wanted: None,
            edge: None,
        };
        self.start_warm_with(now, request);
    }

    /// A warm transfer as asked: the party is dialled here or, with `edge`, on another edge
    /// (the summary then goes to that edge as the leg's audio, like any mix for it).
    pub(super) fn start_warm_with(&mut self, now: Instant, request: WarmRequest) {
        let WarmRequest {
            destination,
            whisper,
            by,
            wanted,
            edge,
        } = request;
        self.out.push(record("requested", &destination, None));
        if self.legs.warm.is_some() {
            return self.tell_failed(now, &destination, "a transfer is already under way");
        }
        match self.dial_inner(now, &destination, by, wanted, edge.as_deref()) {
            Ok(leg) => {
                self.legs.warm = Some(Warm {
                    leg,
                    destination,
                    whisper: whisper.filter(|w| !w.trim().is_empty()),
                    whispering: false,
                })
            }
            Err(e) => self.tell_failed(now, &destination, &e.to_string()),
        }
    }

    /// The transfer's party answered: whisper, or bridge at once.
    pub(super) fn warm_answered(&mut self, now: Instant, leg: LegId) {
        let Some(warm) = self.legs.warm.as_mut().filter(|w| w.leg == leg) else {
            return;
        };
        let Some(text) = warm.whisper.take() else {
            return self.complete_warm(now);
        };
        warm.whispering = true;
        // The agent with the party alone: the caller hears nothing while it whispers.
        self.set_bridge(
            now,
            Some(Bridge {
                members: vec![leg],
                agent: AgentMode::Whisper(leg),
            }),
        );
        if let Some(responder) = self.responder.as_mut() {
            responder.announce(now, &text, &mut self.media);
        }
    }

    /// Called on every tick: a whisper said in full completes the transfer.
    pub(super) fn warm_progress(&mut self, now: Instant) {
        let whispered = self
            .legs
            .warm
            .as_ref()
            .is_some_and(|w| w.whispering && !self.media.is_playing())
            && self.responder.as_ref().is_none_or(|r| !r.is_speaking());
        if whispered {
            self.complete_warm(now);
        }
    }

    /// Caller and party bridged, the agent muted: it has left the call.
    fn complete_warm(&mut self, now: Instant) {
        let Some(warm) = self.legs.warm.take() else {
            return;
        };
        tracing::info!(leg = %warm.leg, destination = %freya_shared::redact::MaskedNumber(&warm.destination), "warm transfer complete");
        self.set_bridge(
            now,
            Some(Bridge {
                members: vec![LegId::FIRST, warm.leg],
                agent: AgentMode::Muted,
            }),
        );
        self.out.push(record("succeeded", &warm.destination, None));
    }

    /// The transfer's leg ended before the transfer completed: the call is the agent's again.
    pub(super) fn warm_failed(&mut self, now: Instant, leg: LegId, why: &str) {
        let Some(warm) = self.legs.warm.take_if(|w| w.leg == leg) else {
            return;
        };
        self.tell_failed(now, &warm.destination, why);
    }

    fn tell_failed(&mut self, now: Instant, destination: &str, why: &str) {
        tracing::info!(destination = %freya_shared::redact::MaskedNumber(destination), reason = why, "warm transfer failed");
        self.out
            .push(record("failed", destination, Some(why.to_owned())));
        if let Some(responder) = self.responder.as_mut() {
            responder.transfer_failed(now, &format!("the transfer target {why}"));
        }
    }
}
