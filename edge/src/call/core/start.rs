//! How a call begins: what the core is told of it ([`CallStart`]), the records that open it
//! (`call.started` for a call that rang in, `call.answered`), and a call that ends before it can
//! run ([`EndedEarly`]: no media it can carry, or no socket to carry it on).

use std::sync::Arc;

use freya_shared::model::call_payloads::{CallAnswered, CallEnded, CallStarted};
use freya_shared::model::{CallEventData, EndReason};
use freya_shared::snapshot::AgentConfig;

use crate::call::media::MediaSettings;
use crate::call::responder::PinnedWorkflow;
use crate::call::task::CallDirection;
use crate::sip::sdp::NegotiatedAudio;
use crate::voice::VoiceFactory;

/// Everything a [`CallCore`](super::CallCore) is told of its call when it starts.
pub struct CallStart<'a> {
    /// The call's id (ours) and what the SIP side knows it by (its Call-ID).
    pub call_id: &'a str,
    pub dialog: &'a str,
    pub direction: CallDirection,
    pub edge_id: &'a str,
    pub agent: &'a AgentConfig,
    pub workflow: Option<&'a PinnedWorkflow>,
    pub caller: &'a str,
    pub dialled: &'a str,
    /// The provider that carried the call, for the opening records.
    pub provider: Option<&'a CallAnswered>,
    /// The leg's audio as negotiated.
    pub audio: NegotiatedAudio,
    /// Whether the leg is a provider's media stream (digits come in its own messages; no
    /// digits can be sent) rather than RTP.
    pub media_stream: bool,
    pub media: &'a MediaSettings,
    /// Builds the call's voice; `None` answers with silence (tests of signalling).
    pub voice: Option<&'a Arc<VoiceFactory>>,
    /// Whether this edge can record calls (it has a recordings outbox); the call is recorded
    /// when its agent also asks for it, and then each tick's frames come out as
    /// [`Output::Record`](super::Output::Record).
    pub can_record: bool,
    /// Limits on the parties added to the call.
    pub legs: super::legs::LegSettings,
    /// The call's trace id, written in its opening records for the control plane.
    pub trace_id: Option<&'a str>,
    /// The call's root span id, beside it.
    pub trace_span_id: Option<&'a str>,
}

impl CallStart<'_> {
    /// The records that open the call: `call.started` for a call that came over a provider's
    /// media stream (a SIP call's was recorded by the SIP task when its INVITE arrived, an
    /// outbound call's when it was dialled, so the record's clock starts there) and
    /// `call.answered`.
    pub fn opening_records(&self) -> Vec<CallEventData> {
        let mut records = Vec::with_capacity(2);
        let media = if self.media_stream {
            "media_stream"
        } else {
            "rtp"
        };
        if self.direction == CallDirection::Inbound && self.media_stream {
            records.push(CallEventData::Started(CallStarted {
                direction: Some(self.direction.as_str().to_owned()),
                from: Some(self.caller.to_owned()),
                to: Some(self.dialled.to_owned()),
                agent_id: Some(self.workflow.is_none().then(|| self.agent.id.clone())),
                workflow_id: Some(self.workflow.map(|w| w.config.id.clone())),
                workflow_version: Some(self.workflow.map(|w| u64::from(w.config.version))),
                edge_id: Some(self.edge_id.to_owned()),
                codec: Some(format!("{:?}", self.audio.codec)),
                media: Some(media.to_owned()),
                sip_call_id: Some(None),
                provider: Some(serde_json::to_value(self.provider).unwrap_or_default()),
                trace_id: self.trace_id.map(str::to_owned),
                trace_span_id: self.trace_span_id.map(str::to_owned),
                ..CallStarted::default()
            }));
        }
        // A call we placed: the trunk or account that carried it, and the attempts that failed
        // first.
        let mut answered = match self.direction {
            CallDirection::Outbound => self.provider.cloned().unwrap_or_default(),
            CallDirection::Inbound => CallAnswered::default(),
        };
        answered.trace_id = self.trace_id.map(str::to_owned);
        answered.trace_span_id = self.trace_span_id.map(str::to_owned);
        records.push(CallEventData::Answered(answered));
        records
    }

    /// The call cannot carry media (`reason`): its opening records, then a hang-up.
    pub fn ended_early(&self, reason: EndReason) -> Box<EndedEarly> {
        Box::new(EndedEarly {
            records: self.opening_records(),
            ended: CallEnded::because(reason),
        })
    }
}

/// A call that ended before it could run: record `records`, ask for our BYE (its outcome is not
/// awaited) and record `ended`.
#[derive(Debug)]
pub struct EndedEarly {
    pub records: Vec<CallEventData>,
    pub ended: CallEnded,
}
