//! Call events: what an edge reports about a call as it happens. They are the source of the call
//! record, so each carries an id chosen by the edge and is stored exactly once.

use serde::{Deserialize, Serialize};

/// Kinds of call event that the control plane understands; others are stored as they come.
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

/// One event about one call, as the edge spools and publishes it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallEvent {
    pub id: String,
    pub call_id: String,
    pub workspace_id: String,
    pub kind: String,
    pub at_ms: i64,
    /// Kind-specific details (a JSON object).
    pub payload: serde_json::Value,
}

impl CallEvent {
    /// A new event with a fresh id, stamped now.
    pub fn new(
        call_id: impl Into<String>,
        workspace_id: impl Into<String>,
        kind: CallEventKind,
        payload: serde_json::Value,
    ) -> Self {
        Self {
            id: crate::ids::new_id(),
            call_id: call_id.into(),
            workspace_id: workspace_id.into(),
            kind: kind.as_str().into(),
            at_ms: crate::ids::now_ms(),
            payload,
        }
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
