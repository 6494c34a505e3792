//! The payloads of the events of a call's legs — a second party dialled into the call
//! (`call.leg_added`, `call.leg_answered`, `call.leg_ended`) and bridges between parties
//! (`call.bridged`, `call.unbridged`). Leg 0 is the call's first party; each added party gets
//! the next number. Like every payload, each keeps the fields it does not name in `extra`.

use serde::{Deserialize, Serialize};

use super::call_payloads::Extra;
use super::call_reasons::LegEndReason;

/// `call.leg_added`: a party is being dialled into the call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegAdded {
    pub leg: u8,
    /// The number or SIP URI dialled.
    pub to: String,
    /// Who asked: `api` or `agent` (a warm transfer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by: Option<String>,
    /// The edge that dials and carries the leg when it is not the call's own (its audio
    /// crosses the QUIC mesh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `call.leg_answered`: the party answered; its audio as negotiated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegAnswered {
    pub leg: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec: Option<String>,
    /// The edge that carries the leg when it is not the call's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `call.leg_ended`: the party is gone, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegEnded {
    pub leg: u8,
    pub reason: LegEndReason,
    /// What the dial's failure said (`busy`, a SIP status), when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `call.bridged`: these legs hear each other; the agent is `muted`, `listening` or
/// `whisper` (its speech reaching only `whisper_to`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bridged {
    pub legs: Vec<u8>,
    pub agent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub whisper_to: Option<u8>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `call.unbridged`: the bridge is gone and the call is back with the agent; `reason` says
/// why (`requested`, or `leg_ended`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unbridged {
    pub reason: String,
    #[serde(flatten)]
    pub extra: Extra,
}
