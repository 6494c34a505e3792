//! The async provider side of one call: it carries out the
//! [`ProviderRequest`]s the call's voice queues — each pipeline's speech-to-text, model streams,
//! synthesis and tools ([`Pipeline`]), live transcription, workflow `function` requests
//! ([`flow_function`]) — and hands every result back as one [`ProviderResult`] stream. The call
//! task owns it beside its media leg; it decides nothing (which result still matters is the
//! voice's call, by pipeline and reply ids). Dropping it cancels all of the call's provider work.

use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{StreamExt, StreamMap};
use tokio_util::sync::CancellationToken;

use super::flow_function::{self, FunctionOutcome};
use super::pipeline::{Pipeline, PipelineInput};
use super::provider_request::{PipelineId, ProviderRequest, ProviderResult};
use crate::egress::Egress;
use crate::metrics::ProviderMetrics;

/// Function answers in flight back to the call task; their tasks wait when it is full.
const FUNCTION_QUEUE: usize = 4;

/// Runs one call's provider work.
pub(crate) struct Providers {
    call_id: String,
    /// For workflow `function` requests.
    egress: Egress,
    /// The open pipelines, by id.
    pipelines: Vec<(PipelineId, Pipeline)>,
    /// Their results, tagged with the pipeline's id.
    results: StreamMap<PipelineId, ReceiverStream<PipelineInput>>,
    functions_tx: mpsc::Sender<(u64, FunctionOutcome)>,
    functions_rx: mpsc::Receiver<(u64, FunctionOutcome)>,
    /// Cancels the function requests when the call is over.
    call: CancellationToken,
    /// Where each pipeline counts its providers' latency and errors.
    metrics: ProviderMetrics,
}

impl Providers {
    /// The provider side of call `call_id`; function requests go through `egress`; provider
    /// latency and errors are counted in `metrics`.
    pub(crate) fn new(call_id: String, egress: Egress, metrics: ProviderMetrics) -> Self {
        let (functions_tx, functions_rx) = mpsc::channel(FUNCTION_QUEUE);
        Self {
            call_id,
            egress,
            pipelines: Vec::new(),
            results: StreamMap::new(),
            functions_tx,
            functions_rx,
            call: CancellationToken::new(),
            metrics,
        }
    }

    /// Starts (or stops) what `request` asks for. Requests of a pipeline that is not open are
    /// dropped: it was closed, and its work is no longer wanted.
    pub(crate) fn execute(&mut self, request: ProviderRequest) {
        let pipeline = match request {
            ProviderRequest::Open {
                pipeline,
                voice,
                tools,
            } => {
                self.close(pipeline);
                let (open, results) =
                    Pipeline::new(voice.0, self.call_id.clone(), tools, self.metrics.clone());
                self.pipelines.push((pipeline, open));
                self.results.insert(pipeline, ReceiverStream::new(results));
                return;
            }
            ProviderRequest::Close { pipeline } => return self.close(pipeline),
            ProviderRequest::CallFunction { seq, request } => {
                return flow_function::spawn(
                    self.egress.clone(),
                    seq,
                    *request,
                    self.functions_tx.clone(),
                    self.call.child_token(),
                )
            }
            other => other,
        };
        let Some(id) = pipeline.pipeline() else {
            return;
        };
        let Some((_, open)) = self.pipelines.iter_mut().find(|(p, _)| *p == id) else {
            tracing::debug!(pipeline = id, "request for a closed pipeline dropped");
            return;
        };
        match pipeline {
            ProviderRequest::Transcribe {
                turn, utterance, ..
            } => open.transcribe(turn, utterance),
            ProviderRequest::Complete {
                reply,
                stream,
                request,
                ..
            } => open.complete(reply, stream, request),
            ProviderRequest::Speak {
                reply,
                sentence,
                text,
                ..
            } => open.speak(reply, sentence, text),
            ProviderRequest::RunTool { reply, call, .. } => open.tool(reply, call),
            ProviderRequest::CancelReply { reply, .. } => open.cancel_reply(reply),
            ProviderRequest::LiveBegin { live_turn, .. } => open.begin_live_turn(live_turn),
            ProviderRequest::LiveAudio { frame, .. } => open.stream_caller_audio(&frame),
            ProviderRequest::Open { .. }
            | ProviderRequest::Close { .. }
            | ProviderRequest::CallFunction { .. } => {}
        }
    }

    /// The next result (cancel-safe: use it in `select!`). Waits forever when nothing is open.
    pub(crate) async fn recv(&mut self) -> ProviderResult {
        // The function channel never closes (this holds a sender), so one branch always waits.
        tokio::select! {
            Some((pipeline, input)) = self.results.next(), if !self.results.is_empty() => {
                ProviderResult::Voice { pipeline, input }
            }
            Some((seq, outcome)) = self.functions_rx.recv() => {
                ProviderResult::Function { seq, outcome }
            }
        }
    }

    fn close(&mut self, pipeline: PipelineId) {
        self.results.remove(&pipeline);
        self.pipelines.retain_mut(|(id, open)| {
            let keep = *id != pipeline;
            if !keep {
                open.shutdown();
            }
            keep
        });
    }
}

impl Drop for Providers {
    fn drop(&mut self) {
        self.call.cancel();
        for (_, pipeline) in &mut self.pipelines {
            pipeline.shutdown();
        }
    }
}
