//! The payload of each call event kind, as a type: the edge fills these in and the control plane
//! reads them, so neither writes nor reads a field by its JSON name. The JSON each serialises to
//! is exactly what edges have always sent (customers read it in webhooks and the API), which is
//! why some fields are written as `null` and others left out. Every payload keeps the fields it
//! does not name in `extra`, so a newer edge's additions pass through an older control plane.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::call_reasons::{EndReason, FailReason, HangupBy, Placement};

/// Fields of a payload this version does not name, kept as they came.
pub type Extra = Map<String, Value>;

/// A field that an edge sometimes leaves out and sometimes writes as `null`:
/// `None` = absent, `Some(None)` = `null`, `Some(Some(v))` = `v`.
pub type Nullable<T> = Option<Option<T>>;

/// (De)serialises a [`Nullable`] field: present-but-null stays distinct from absent.
pub mod nullable {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    /// Writes the inner option (the outer `None` is skipped by the field's attribute).
    pub fn serialize<T: Serialize, S: Serializer>(
        value: &Option<Option<T>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(inner) => inner.serialize(serializer),
            None => serializer.serialize_none(),
        }
    }

    /// A present field (even `null`) is `Some`.
    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Option<T>>, D::Error> {
        Option::<T>::deserialize(deserializer).map(Some)
    }
}

/// One provider an outbound call tried, and how that try ended: listed in order in
/// `call.answered`'s and `call.failed`'s `attempts` (and `call.started`'s, for providers of
/// another kind ranked before the ones dialled), the same shape for every kind. Records from
/// before `started_at_ms` carry only `kind`, `provider_id`, `provider`, `reason` and a prose
/// `outcome`; they read as [`AttemptOutcome::Other`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderAttempt {
    /// `sip_trunk` or `twilio`.
    pub kind: String,
    pub provider_id: String,
    /// The provider's name.
    pub provider: String,
    /// Why the call moved on (`trunk_failed`, `rejected`, ...), as records always said.
    #[serde(default)]
    pub reason: String,
    /// How the try ended: `{"status": 503, "reason": "Service Unavailable"}`, `"timeout"`,
    /// `"transport_error"` or `"skipped_open_circuit"`.
    pub outcome: AttemptOutcome,
    /// When the try began (epoch milliseconds); absent for a trunk skipped by its breaker.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at_ms: Option<i64>,
    /// How long it lasted, from our INVITE (or request) to the outcome.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// How one try of a provider ended.
#[derive(Debug, Clone, PartialEq)]
pub enum AttemptOutcome {
    /// A final response: the SIP status (or the HTTP status of a provider's API) and its phrase.
    Response { status: u16, reason: String },
    /// No final response, or no answer, in time.
    Timeout,
    /// The network refused (an ICMP error; a connection that failed), or the request could not
    /// be written.
    TransportError,
    /// Not tried: the provider's circuit breaker was open.
    SkippedOpenCircuit,
    /// Prose from an older edge (`"503 Service Unavailable"`, `"HTTP 400"`), kept as it came.
    Other(String),
}

impl AttemptOutcome {
    /// The words written for the outcomes without a status.
    const WORDS: [(&'static str, AttemptOutcome); 3] = [
        ("timeout", AttemptOutcome::Timeout),
        ("transport_error", AttemptOutcome::TransportError),
        ("skipped_open_circuit", AttemptOutcome::SkippedOpenCircuit),
    ];
}

/// The outcome on the wire: an object for a response, a word (or old prose) otherwise.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum OutcomeWire {
    Response { status: u16, reason: String },
    Word(String),
}

impl Serialize for AttemptOutcome {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let wire = match self {
            Self::Response { status, reason } => OutcomeWire::Response {
                status: *status,
                reason: reason.clone(),
            },
            Self::Other(text) => OutcomeWire::Word(text.clone()),
            word => OutcomeWire::Word(
                Self::WORDS
                    .iter()
                    .find(|(_, o)| o == word)
                    .map_or_else(String::new, |(w, _)| (*w).to_owned()),
            ),
        };
        wire.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for AttemptOutcome {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Ok(match OutcomeWire::deserialize(deserializer)? {
            OutcomeWire::Response { status, reason } => Self::Response { status, reason },
            OutcomeWire::Word(word) => Self::WORDS
                .iter()
                .find(|(w, _)| *w == word)
                .map_or(Self::Other(word), |(_, o)| o.clone()),
        })
    }
}

/// `call.started`: who called whom, through what, handled by which agent or workflow.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallStarted {
    /// `inbound` or `outbound`; an edge that leaves it out means inbound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    pub agent_id: Nullable<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    pub workflow_id: Nullable<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    pub workflow_version: Nullable<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec: Option<String>,
    /// `rtp` or `media_stream`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media: Option<String>,
    /// The SIP Call-ID of an inbound SIP call's dialog.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    pub sip_call_id: Nullable<String>,
    /// Who carries the call: a provider kind (`twilio`) or the answer's provider record.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_call_id: Option<String>,
    /// The SIP trunks an outbound call is dialled through, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trunks: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<ProviderAttempt>>,
    /// The call's OpenTelemetry trace id (32 hex digits), so its record leads to its trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The id of the call's root span (16 hex digits): the control plane's webhook spans are
    /// its children, so they join the call's trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_span_id: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `call.answered`: for a call we placed, the provider that carried it — its kind, id and
/// name — and every provider tried before it (empty inbound).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallAnswered {
    /// The carrier's kind: `sip_trunk` or `twilio`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    /// The carrier's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<ProviderAttempt>>,
    /// The call's OpenTelemetry trace id (32 hex digits): a call that did not pass through
    /// `call.started` with one (placed by us, dialled before its trace began) gets it here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<String>,
    /// The call's root span id, as in `call.started`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_span_id: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `call.transcript`: one line said by the caller or the agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transcript {
    /// `caller` or `agent`.
    pub role: String,
    pub text: String,
    #[serde(default)]
    pub start_ms: u64,
    #[serde(default)]
    pub end_ms: u64,
    #[serde(default)]
    pub interrupted: bool,
    #[serde(flatten)]
    pub extra: Extra,
}

/// RTP counters of a call's stream, in `call.ended`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RtpRecord {
    pub received: u64,
    pub sent: u64,
    pub lost: u64,
    pub late: u64,
    pub junk: u64,
    pub foreign: u64,
    pub jitter_ms: u64,
    /// The playout delay the jitter buffer had settled on at the end (its depth); absent
    /// from edges before it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_buffer_ms: Option<u64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// RTCP both ways and the far end's view of our stream (null where no report said), in
/// `call.ended`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RtcpRecord {
    pub reports_sent: u64,
    pub reports_received: u64,
    pub junk: u64,
    pub peer_fraction_lost: Option<f64>,
    pub peer_cumulative_lost: Option<i64>,
    pub peer_jitter_ms: Option<f64>,
    pub rtt_ms: Option<f64>,
    pub peer_bye: bool,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `call.ended`: why, who hung up and what the stream carried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallEnded {
    /// Always written by edges; an event without one still ends the call (reason unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<EndReason>,
    /// `false` for a call that ended before it was answered (the caller gave up).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered: Option<bool>,
    /// Who ended the call, by side: `remote`, `agent`, `api` or `system` (contract 2; contract
    /// 1 wrote `caller` or `agent`, see [`HangupBy::side`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hangup_by: Option<HangupBy>,
    /// Our BYE's final response (`"200"`, `"timeout"`), null when we sent none.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    pub bye_outcome: Nullable<String>,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "nullable")]
    pub transferred_to: Nullable<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtp: Option<RtpRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtcp: Option<RtcpRecord>,
    /// The edge that was lost, when the control plane ended the call for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge_id: Option<String>,
    /// Every character the call's voice sent to speech synthesis (what a TTS provider bills),
    /// heard or not: a reply cut off by a barge-in or a hang-up counts in full once it went to
    /// synthesis. Absent from edges that did not count it (the control plane then does not
    /// know); what was heard is in the transcript.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_characters_synthesized: Option<u64>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl CallEnded {
    /// An end with nothing more to say than why.
    pub fn because(reason: EndReason) -> Self {
        Self {
            reason: Some(reason),
            answered: None,
            hangup_by: None,
            bye_outcome: None,
            transferred_to: None,
            duration_ms: None,
            rtp: None,
            rtcp: None,
            edge_id: None,
            agent_characters_synthesized: None,
            extra: Extra::new(),
        }
    }
}

/// `call.failed`: a call that never got going, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallFailed {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Always written by edges; an event without one still fails the call (reason unknown).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<FailReason>,
    /// The SIP response code we refused an INVITE with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_call_id: Option<String>,
    /// The configuration field at fault, for a misconfigured agent or workflow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// More about the failure: text, or an object with a description and attempts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<FailureDetail>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_call_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<ProviderAttempt>>,
    /// For an outbound call, whose "no" this is: `edge` (this edge could not place it, another
    /// may), `callee` or `request`. Absent from inbound calls and from older edges (never
    /// placed again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    #[serde(flatten)]
    pub extra: Extra,
}

impl CallFailed {
    /// A failure with nothing more to say than why.
    pub fn because(reason: FailReason) -> Self {
        Self {
            direction: None,
            from: None,
            to: None,
            reason: Some(reason),
            code: None,
            sip_call_id: None,
            field: None,
            detail: None,
            provider: None,
            provider_call_id: None,
            attempts: None,
            placement: None,
            extra: Extra::new(),
        }
    }

    /// The same failure, saying whose "no" it is.
    pub fn placed_by(mut self, placement: Placement) -> Self {
        self.placement = Some(placement);
        self
    }
}

/// The `detail` of `call.failed`: a sentence, or the providers tried.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FailureDetail {
    Text(String),
    Record(FailureRecord),
}

impl From<String> for FailureDetail {
    fn from(text: String) -> Self {
        Self::Text(text)
    }
}

/// The providers an outbound call was tried on, and how the last one failed.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FailureRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<Vec<ProviderAttempt>>,
    /// The SIP final response that ended the last attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `call.dtmf`: a key the caller pressed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DtmfHeard {
    pub digit: String,
    /// `rfc4733`, `inband` or `sip_info`.
    pub via: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `call.held` / `call.resumed`: our media direction after the change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldChanged {
    pub direction: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `call.transfer`: a transfer's progress (`requested`, `accepted`, `trying`, `succeeded`,
/// `failed`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferProgress {
    pub status: String,
    pub destination: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `call.dtmf_sent` / `call.dtmf_failed`: digits the agent sent (or could not), and how.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DtmfSent {
    pub digits: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `call.turn_latency`: where one reply's time went, from the end of the caller's speech.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TurnLatency {
    #[serde(default)]
    pub endpointing_ms: u64,
    #[serde(default)]
    pub stt_ms: Option<u64>,
    #[serde(default)]
    pub llm_first_token_ms: Option<u64>,
    #[serde(default)]
    pub tts_first_byte_ms: Option<u64>,
    /// Voice to voice: null when the caller cut the reply off before its first packet.
    #[serde(default)]
    pub first_rtp_ms: Option<u64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `call.barge_in`: how much of a reply the caller heard before talking over it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BargeIn {
    pub heard_chars: u64,
    pub planned_chars: u64,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `call.tool` / `call.tool_failed`: one tool the agent ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolRun {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub duration_ms: u64,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `call.provider_failed`: a speech or model provider that failed during the call.
///
/// The same kind records a turn the agent's `llm_fallback` answered (`stage: "llm"`,
/// `fallback: "llm_fallback"`), so a customer reading the record sees which model spoke and
/// why; the two fields that only that case fills are optional, so older edges and control
/// planes keep reading and writing the shapes they know.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderFailed {
    pub stage: String,
    /// The provider that failed (`deepgram`; `openai/gpt-4o-mini` for a model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    pub error: String,
    /// What the call fell back to (`batch`, `llm_fallback`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// Who answered instead (`anthropic/claude-haiku-4-5`), when that is another provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_provider: Option<String>,
    /// Set when the provider was dropped for being slower than this budget to its first
    /// token (rather than for an error).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `call.stt_stream`: how one streamed recognition went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SttStream {
    pub provider: String,
    pub frames_before_end: u64,
    pub frames: u64,
    pub connect_ms: u64,
    pub finalize_ms: u64,
    pub interims: u64,
    pub last_interim: Option<String>,
    pub endpoints: u64,
    #[serde(flatten)]
    pub extra: Extra,
}

/// `call.workflow_error`: a workflow that could not go on, and the field at fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkflowError {
    pub agent_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub error: String,
    #[serde(flatten)]
    pub extra: Extra,
}

/// A payload with no fields of its own (`call.reprompt`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NoDetails {
    #[serde(flatten)]
    pub extra: Extra,
}
