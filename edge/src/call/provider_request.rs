//! What a call's voice asks of its providers, and what comes back, as plain values. The agent's
//! conversation ([`Talk`](super::talk::Talk)) and a workflow ([`Flow`](super::flow::Flow)) never
//! start provider work themselves: they queue [`ProviderRequest`]s, which the call task hands to
//! its async provider shell ([`Providers`](super::providers::Providers)), and they take each
//! [`ProviderResult`] as an input. So the call's decisions can be driven in simulated time with
//! a fake provider side answering these requests.
//!
//! Every request names its *pipeline*: one set of providers (an agent's voice, a workflow's own
//! voice, the voice of an agent a workflow handed the call to). Results come back tagged with it,
//! so the late results of a pipeline that was closed (an agent that handed the call back) are
//! told apart and dropped; within a pipeline, the reply, stream, sentence and turn ids of the
//! conversation tell a cancelled reply's late results apart.

use std::collections::VecDeque;
use std::fmt;

use super::flow_function::{FunctionOutcome, FunctionRequest};
use super::media::FRAME_SAMPLES;
use super::pipeline::{PipelineInput, ToolTarget};
use crate::llm::{ChatRequest, ToolCall};
use crate::voice::AgentVoice;

/// Names one set of providers within a call; numbered by the call's voice, never reused.
pub(crate) type PipelineId = u64;

/// One piece of provider work for the call task to start (or stop).
#[derive(Debug)]
pub enum ProviderRequest {
    /// Make the providers of `voice` ready as `pipeline` (the first request of each pipeline).
    Open {
        pipeline: PipelineId,
        /// Boxed, as the request is sent once per pipeline: inline it doubled every request.
        voice: Box<Voice>,
        /// The customer tools the pipeline's model may call.
        tools: Vec<ToolTarget>,
    },
    /// Stop everything of `pipeline`: its results are no longer wanted.
    Close { pipeline: PipelineId },
    /// Transcribe caller turn `turn`: closes the live session when one is open (its transcript
    /// then comes from the stream), else sends `utterance` to the batch recogniser.
    Transcribe {
        pipeline: PipelineId,
        turn: u64,
        utterance: Vec<i16>,
    },
    /// Start a streamed completion; its events come back tagged with `stream`.
    Complete {
        pipeline: PipelineId,
        reply: u64,
        stream: u64,
        request: ChatRequest,
    },
    /// Synthesize `text` after the reply's earlier sentences.
    Speak {
        pipeline: PipelineId,
        reply: u64,
        sentence: u64,
        text: String,
    },
    /// Run a customer tool for `reply`.
    RunTool {
        pipeline: PipelineId,
        reply: u64,
        call: ToolCall,
    },
    /// Drop the model stream, synthesis and tools of `reply`.
    CancelReply { pipeline: PipelineId, reply: u64 },
    /// The caller started a turn: open a live recognition session numbered `live_turn` (the
    /// number its endpointing hints carry back).
    LiveBegin {
        pipeline: PipelineId,
        live_turn: u64,
    },
    /// The next 20 ms of the open live turn. Boxed: inline, this one variant made every request
    /// (and every queue of them) three times its size, for a request only a live turn sends.
    LiveAudio {
        pipeline: PipelineId,
        frame: Box<[i16; FRAME_SAMPLES]>,
    },
    /// A workflow `function` node's HTTP request; its outcome comes back tagged with `seq`.
    /// (Boxed: the largest request, and one only a workflow's `function` node sends.)
    CallFunction {
        seq: u64,
        request: Box<FunctionRequest>,
    },
}

impl ProviderRequest {
    /// The pipeline the request belongs to (`None` for a workflow function).
    pub fn pipeline(&self) -> Option<PipelineId> {
        match self {
            ProviderRequest::Open { pipeline, .. }
            | ProviderRequest::Close { pipeline }
            | ProviderRequest::Transcribe { pipeline, .. }
            | ProviderRequest::Complete { pipeline, .. }
            | ProviderRequest::Speak { pipeline, .. }
            | ProviderRequest::RunTool { pipeline, .. }
            | ProviderRequest::CancelReply { pipeline, .. }
            | ProviderRequest::LiveBegin { pipeline, .. }
            | ProviderRequest::LiveAudio { pipeline, .. } => Some(*pipeline),
            ProviderRequest::CallFunction { .. } => None,
        }
    }
}

/// Requests a voice keeps between drains (the opening, a reply's sentences): a larger burst's
/// capacity is given back once the queue is drained, not kept for the rest of the call.
const KEEP_AFTER_BURST: usize = 4;

/// The next request of a voice's queue; an emptied queue that grew past a few entries shrinks.
pub(crate) fn pop_request(queue: &mut VecDeque<ProviderRequest>) -> Option<ProviderRequest> {
    let request = queue.pop_front();
    if request.is_none() && queue.capacity() > KEEP_AFTER_BURST {
        queue.shrink_to(KEEP_AFTER_BURST);
    }
    request
}

/// A pipeline's providers, carried in [`ProviderRequest::Open`]: the clients are built (plain
/// values, no connection made) where the agent's configuration is read, and used by the shell.
#[derive(Clone)]
pub struct Voice(pub AgentVoice);

impl fmt::Debug for Voice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Voice")
            .field("stt", &self.0.stt.name())
            .field("llm", &self.0.llm_model)
            .field("tts", &self.0.tts.name())
            .field("live_stt", &self.0.live_stt.as_ref().map(|s| s.name()))
            .finish()
    }
}

/// A provider result for the call's voice.
#[derive(Debug)]
pub enum ProviderResult {
    /// From one pipeline's providers.
    Voice {
        pipeline: PipelineId,
        input: PipelineInput,
    },
    /// A workflow function request ended.
    Function { seq: u64, outcome: FunctionOutcome },
}
