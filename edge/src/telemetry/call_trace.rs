//! One trace per call: the `call` span (root of the call's trace, carrying `call_id`, `edge`,
//! `workspace_id` and `trace_id` so every log line inside it names them) and its `setup` child,
//! open from the moment the edge takes the call (an accepted INVITE, a call being dialled, a
//! Twilio stream) until its task starts. The turns, recognition, model, synthesis and tool
//! spans are opened under it by the call's provider side (`call/pipeline.rs`).

use opentelemetry::trace::TraceContextExt;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The spans of one call's trace that outlive any one task.
#[derive(Debug)]
pub struct CallTrace {
    /// The call's root span; its task runs inside it.
    pub span: Span,
    /// From taking the call to its task's start; closed by [`CallTrace::setup_done`].
    setup: Option<Span>,
}

impl CallTrace {
    /// Opens the call's trace (a new root, never a child of whatever span is current).
    pub fn begin(call_id: &str, edge: &str, workspace_id: &str) -> Self {
        let span = tracing::info_span!(
            parent: None,
            "call",
            call_id = %call_id,
            edge = %edge,
            workspace_id = %workspace_id,
            trace_id = tracing::field::Empty,
        );
        if let Some(id) = trace_id_of(&span) {
            span.record("trace_id", id.as_str());
        }
        let setup = tracing::info_span!(parent: &span, "setup");
        Self {
            span,
            setup: Some(setup),
        }
    }

    /// The call's trace id (32 hex digits), when tracing is installed.
    pub fn trace_id(&self) -> Option<String> {
        trace_id_of(&self.span)
    }

    /// The id of the call's root span (16 hex digits), when tracing is installed.
    pub fn span_id(&self) -> Option<String> {
        let context = self.span.context();
        let span_ref = context.span();
        let span_context = span_ref.span_context();
        span_context
            .is_valid()
            .then(|| span_context.span_id().to_string())
    }

    /// The call is set up (its task starts): ends the `setup` span.
    pub fn setup_done(&mut self) {
        self.setup = None;
    }
}

/// The OpenTelemetry trace id of `span` as 32 hex digits; `None` without a tracing
/// subscriber (tests that install none) or for a disabled span.
pub fn trace_id_of(span: &Span) -> Option<String> {
    let context = span.context();
    let span_ref = context.span();
    let span_context = span_ref.span_context();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// Makes `span` a child of the span `span_id` of trace `trace_id` (hex, as a call's record
/// keeps them), so work done elsewhere for a call (the control plane's webhook deliveries)
/// joins the call's trace. Ids that do not parse leave `span` a root of its own.
pub fn continue_trace(span: &Span, trace_id: &str, span_id: &str) {
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};
    let (Ok(trace), Ok(parent)) = (TraceId::from_hex(trace_id), SpanId::from_hex(span_id)) else {
        return;
    };
    let remote = SpanContext::new(
        trace,
        parent,
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let context = opentelemetry::Context::new().with_remote_span_context(remote);
    let _ = span.set_parent(context);
}
