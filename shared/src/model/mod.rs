//! Resources a customer configures and the control plane hands to edges. Each type validates
//! itself and reports problems as [`FieldError`]s that name the JSON field, so the API and the
//! edge refuse the same things for the same reasons.

pub mod agent;
pub mod call;
pub mod call_events;
pub mod call_leg_payloads;
pub mod call_payloads;
pub mod call_placement;
pub mod call_reasons;
pub mod dialable;
pub mod edge;
pub mod number;
pub mod outbound_proxy;
pub mod privacy;
pub mod provider;
pub mod rules;
pub mod sip_user;
pub mod twilio;

use serde::{Deserialize, Serialize};

pub use agent::AgentSpec;
pub use call::{CallEvent, CallEventKind};
pub use call_events::{CallEventData, CALL_EVENT_SCHEMA};
pub use call_reasons::{EndReason, FailReason, HangupBy, LegEndReason, Placement};
pub use dialable::{normalize_dialable, DialableError};
pub use edge::{EdgeHealth, EdgeStatus};
pub use number::{NumberTarget, PhoneNumberSpec};
pub use privacy::PrivacySpec;
pub use provider::{ProviderSpec, SipTransport, SipTrunkSpec, TrunkSrtp};
pub use rules::{RuleAction, RuleSpec, RulesSpec};
pub use twilio::TwilioAccountSpec;

/// One problem with one field of a submitted document (`field` is a dotted JSON path).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}
