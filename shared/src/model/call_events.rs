//! Every call event an edge emits, as one enum with a typed payload per kind: the edge builds
//! events only from it and the control plane parses each event into it once, where it arrives.
//! The JSON is what is stored and sent on; it is exactly what edges wrote before the types
//! existed. A kind this version does not know, or a payload it cannot read, is kept as it came
//! in [`CallEventData::Other`] (an edge newer than the control plane is never refused).

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::call_leg_payloads::*;
use super::call_payloads::*;
use super::call_placement::CallRetried;
use crate::workflow::StepRecord;

/// The version of the event contract this build writes. Version 0 is an edge from before the
/// field existed; its events have the same JSON and are read the same way. Raise it when a
/// payload changes meaning (not when a field is added: extra fields pass through).
///
/// Version 2: `call.ended`'s `hangup_by` names the side (`remote`, `agent`, `api`, `system`)
/// instead of `caller`/`agent`, and the far end of a placed call ending it is `remote_hangup`
/// (version 1 wrote `caller_hangup` for both directions).
pub const CALL_EVENT_SCHEMA: u32 = 2;

macro_rules! call_events {
    ($($(#[$vmeta:meta])* $variant:ident($payload:ty) => $kind:literal,)*) => {
        /// One call event's kind and payload.
        #[derive(Debug, Clone, PartialEq)]
        pub enum CallEventData {
            $($(#[$vmeta])* $variant($payload),)*
            /// A kind this version does not know, or a payload it cannot read: kept as it came.
            Other { kind: String, payload: Value },
        }

        impl CallEventData {
            /// The wire name of the kind (`call.started`, ...).
            pub fn kind(&self) -> &str {
                match self {
                    $(Self::$variant(_) => $kind,)*
                    Self::Other { kind, .. } => kind,
                }
            }

            /// The payload as the JSON object that is stored and sent on.
            pub fn to_payload(&self) -> Value {
                match self {
                    $(Self::$variant(p) => to_value(p),)*
                    Self::Other { payload, .. } => payload.clone(),
                }
            }

            /// The event of kind `kind` with `payload`, read once. Never fails: what cannot be
            /// read is `Other`, to be stored as it came.
            pub fn parse(kind: &str, payload: &Value) -> Self {
                let parsed = match kind {
                    $($kind => from_value(payload).map(Self::$variant),)*
                    _ => None,
                };
                parsed.unwrap_or_else(|| Self::Other {
                    kind: kind.to_owned(),
                    payload: payload.clone(),
                })
            }

            /// Every kind this version names.
            pub const KINDS: &'static [&'static str] = &[$($kind,)*];
        }
    };
}

call_events! {
    /// A call began (rang in, or was dialled).
    Started(CallStarted) => "call.started",
    /// A call rang: we sent 180 Ringing to its caller, or the called party's 180 reached us.
    /// Stamped when that happened (ring time = `call.answered` − `call.ringing`).
    Ringing(NoDetails) => "call.ringing",
    /// A call was answered.
    Answered(CallAnswered) => "call.answered",
    /// A line of the conversation.
    Transcript(Transcript) => "call.transcript",
    /// A call ended.
    Ended(CallEnded) => "call.ended",
    /// A call failed before it was answered.
    Failed(CallFailed) => "call.failed",
    /// The caller pressed a key.
    Dtmf(DtmfHeard) => "call.dtmf",
    /// The far end put us on hold.
    Held(HoldChanged) => "call.held",
    /// The far end took us off hold.
    Resumed(HoldChanged) => "call.resumed",
    /// A transfer's progress.
    Transfer(TransferProgress) => "call.transfer",
    /// The agent sent digits.
    DtmfSent(DtmfSent) => "call.dtmf_sent",
    /// The agent's digits could not be sent.
    DtmfFailed(DtmfSent) => "call.dtmf_failed",
    /// Where one reply's time went.
    TurnLatency(TurnLatency) => "call.turn_latency",
    /// The caller talked over a reply.
    BargeIn(BargeIn) => "call.barge_in",
    /// The agent ran a tool.
    Tool(ToolRun) => "call.tool",
    /// A tool the agent ran failed.
    ToolFailed(ToolRun) => "call.tool_failed",
    /// A provider failed during the call.
    ProviderFailed(ProviderFailed) => "call.provider_failed",
    /// The agent asked whether the caller is still there.
    Reprompt(NoDetails) => "call.reprompt",
    /// How one streamed recognition went.
    SttStream(SttStream) => "call.stt_stream",
    /// One step of the call's workflow.
    WorkflowStep(StepRecord) => "call.workflow_step",
    /// A workflow could not go on.
    WorkflowError(WorkflowError) => "call.workflow_error",
    /// A party is being dialled into the call (a second leg).
    LegAdded(LegAdded) => "call.leg_added",
    /// A dialled party answered.
    LegAnswered(LegAnswered) => "call.leg_answered",
    /// A leg ended (the party hung up, never answered, or was hung up).
    LegEnded(LegEnded) => "call.leg_ended",
    /// The control plane placed an outbound call again on another edge.
    Retried(CallRetried) => "call.retried",
    /// Legs of the call were bridged (they hear each other).
    Bridged(Bridged) => "call.bridged",
    /// The bridge ended; the call is back with its agent.
    Unbridged(Unbridged) => "call.unbridged",
}

fn to_value<T: Serialize>(payload: &T) -> Value {
    // Payload types are plain structs with string keys: serialising them cannot fail.
    serde_json::to_value(payload).unwrap_or_else(|_| Value::Object(Default::default()))
}

fn from_value<T: DeserializeOwned>(payload: &Value) -> Option<T> {
    T::deserialize(payload).ok()
}

#[cfg(test)]
#[path = "call_events_tests.rs"]
mod tests;
