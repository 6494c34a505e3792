//! Call events: what an edge reports about a call as it happens. They are the source of the call
//! record, so each carries an id chosen by the edge and is stored exactly once.

use serde::{Deserialize, Serialize};

use super::call_events::{CallEventData, CALL_EVENT_SCHEMA};

/// The names of the kinds that change a call's record (kept for code that names a kind without a
/// payload, such as tests and queries); the typed kinds are [`CallEventData`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallEventKind {
    #[serde(rename = "call.started")]
    Started,
    #[serde(rename = "call.answered")]
    Answered,
    #[serde(rename = "call.transcript")]
    Transcript,
    #[serde(rename = "call.ended")]
    Ended,
    #[serde(rename = "call.failed")]
    Failed,
    #[serde(rename = "call.dtmf")]
    Dtmf,
}

impl CallEventKind {
    /// The wire name (`call.started`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            CallEventKind::Started => "call.started",
            CallEventKind::Answered => "call.answered",
            CallEventKind::Transcript => "call.transcript",
            CallEventKind::Ended => "call.ended",
            CallEventKind::Failed => "call.failed",
            CallEventKind::Dtmf => "call.dtmf",
        }
    }

    /// The kind named `name`, if it is one of ours.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Started,
            Self::Answered,
            Self::Transcript,
            Self::Ended,
            Self::Failed,
            Self::Dtmf,
        ]
        .into_iter()
        .find(|k| k.as_str() == name)
    }
}

impl AsRef<str> for CallEventKind {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

/// One event about one call, as the edge spools and publishes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallEvent {
    pub id: String,
    pub call_id: String,
    pub workspace_id: String,
    pub kind: String,
    pub at_ms: i64,
    /// Kind-specific details (a JSON object), exactly as stored and sent on.
    pub payload: serde_json::Value,
    /// The event contract version the edge wrote ([`CALL_EVENT_SCHEMA`]); 0 from an edge (or a
    /// spool file) from before the field, whose events read the same.
    #[serde(default)]
    pub schema: u32,
}

impl CallEvent {
    /// A new event with a fresh id, stamped now, its payload serialised from its type (the only
    /// way an edge builds one).
    pub fn new(
        call_id: impl Into<String>,
        workspace_id: impl Into<String>,
        data: CallEventData,
    ) -> Self {
        Self {
            id: crate::ids::new_id(),
            call_id: call_id.into(),
            workspace_id: workspace_id.into(),
            kind: data.kind().to_owned(),
            at_ms: crate::ids::now_ms(),
            payload: data.to_payload(),
            schema: CALL_EVENT_SCHEMA,
        }
    }

    /// An event as some edge sent it (of any version): its kind and JSON as they are. For
    /// fixtures and events relayed rather than built.
    pub fn raw(
        call_id: impl Into<String>,
        workspace_id: impl Into<String>,
        kind: impl AsRef<str>,
        payload: serde_json::Value,
    ) -> Self {
        Self {
            id: crate::ids::new_id(),
            call_id: call_id.into(),
            workspace_id: workspace_id.into(),
            kind: kind.as_ref().to_owned(),
            at_ms: crate::ids::now_ms(),
            payload,
            schema: 0,
        }
    }

    /// The event read into its type: done once, where the event enters the control plane.
    pub fn data(&self) -> CallEventData {
        CallEventData::parse(&self.kind, &self.payload)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_wire_names() {
        for kind in [
            CallEventKind::Started,
            CallEventKind::Answered,
            CallEventKind::Transcript,
            CallEventKind::Ended,
            CallEventKind::Failed,
            CallEventKind::Dtmf,
        ] {
            assert_eq!(CallEventKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(CallEventKind::parse("call.unknown"), None);
    }
}
