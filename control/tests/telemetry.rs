//! Telemetry of a real call: a control plane and an edge in-process (fake STT, LLM and TTS over
//! HTTP, a customer tool), the project's UAC placing a SIP call, and an in-process OTLP/HTTP
//! receiver that decodes the spans the edge and the control plane export. The test checks the
//! call's one trace (its span names and parentage, the control plane's webhook delivery of the
//! call's end among them), that the call's API record carries the same trace id, and that the
//! JSON log lines of the call name its call id, workspace id and trace id.
//!
//! One test only: the tracing subscriber is global to the process.

use crate::support;

use std::collections::HashMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::local_http::serve;
use crate::support::voice_call::{
    booking_tool, model_books_friday, patient_caller, place_spoken_call,
};
use crate::support::world::World;
use freya_edge::sip::sdp::Codec;
use freya_edge::telemetry::{LogFormat, OtelSettings, SamplerChoice};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

/// One exported span, as the receiver decoded it.
#[derive(Debug, Clone)]
struct ReceivedSpan {
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
}

type Spans = Arc<Mutex<Vec<ReceivedSpan>>>;

/// An OTLP/HTTP trace receiver on 127.0.0.1 (`POST /v1/traces`, protobuf bodies).
async fn otlp_receiver() -> (String, Spans) {
    let spans: Spans = Arc::default();
    let seen = spans.clone();
    let handler = move |body: axum::body::Bytes| {
        let seen = seen.clone();
        async move {
            let Ok(request) = ExportTraceServiceRequest::decode(body) else {
                return axum::http::StatusCode::BAD_REQUEST;
            };
            let mut seen = seen.lock().expect("spans");
            for resource in request.resource_spans {
                for scope in resource.scope_spans {
                    for span in scope.spans {
                        seen.push(ReceivedSpan {
                            name: span.name,
                            trace_id: hex::encode(span.trace_id),
                            span_id: hex::encode(span.span_id),
                            parent_span_id: hex::encode(span.parent_span_id),
                        });
                    }
                }
            }
            axum::http::StatusCode::OK
        }
    };
    let app = axum::Router::new().route("/v1/traces", axum::routing::post(handler));
    let url = format!("http://{}/v1/traces", serve(app).await);
    (url, spans)
}

/// Log lines written by the subscriber, kept for the test to read.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log buffer").extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A customer's server on 127.0.0.1: a tool endpoint that books anything (signature checks
/// are `voice_e2e.rs`'s) at `/book`, and a webhook receiver at `/hook` that counts deliveries.
async fn customer_endpoint(hooks: Arc<std::sync::atomic::AtomicUsize>) -> String {
    let app = axum::Router::new()
        .route(
            "/book",
            axum::routing::post(|| async { r#"{"booked": "Friday 10:00"}"# }),
        )
        .route(
            "/hook",
            axum::routing::post(move || {
                let hooks = hooks.clone();
                async move {
                    hooks.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    "ok"
                }
            }),
        );
    format!("http://{}", serve(app).await)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calls_spans_reach_the_collector_as_one_trace_named_on_its_record_and_logs() {
    let (endpoint, spans) = otlp_receiver().await;
    let logs = Captured::default();
    let writer = logs.clone();
    let settings = OtelSettings {
        traces_endpoint: endpoint,
        service_name: "freya-test".to_owned(),
        sampler: SamplerChoice::AlwaysOn,
    };
    let telemetry =
        freya_edge::telemetry::init_with(LogFormat::Json, Some(settings), move || writer.clone())
            .expect("telemetry")
            .expect("the first subscriber of this process");
    let telemetry = Arc::new(telemetry);

    let hooks = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let customer = customer_endpoint(hooks.clone()).await;
    let url = format!("{customer}/book");
    let w = World::builder()
        .workspace("Traced")
        .voice()
        .agent(serde_json::json!({
            "name": "Front desk",
            "system_prompt": "You book visits.",
            "first_message": "Hello.",
            "tool_secret": "tool-secret-for-the-test",
            "tools": [booking_tool(&url)]
        }))
        .start()
        .await;
    let key = w.key(freya_control::store::Role::Admin).await;
    let api = support::http::Api::of(&w.control);
    api.create(
        "/v1/webhooks",
        &key,
        serde_json::json!({
            "url": format!("{customer}/hook"),
            "events": ["call.ended"],
            "secret": "webhook-secret-for-the-test"
        }),
    )
    .await;
    model_books_friday(w.llm());
    w.speech().set_default_transcript("Book me in on Friday.");
    let talker = patient_caller(Duration::from_millis(1200));
    let report = place_spoken_call(
        w.edge.sip_addr,
        Codec::Pcmu,
        &["Book me in on Friday."],
        talker,
        Duration::from_secs(5),
    )
    .await;
    assert!(report.succeeded(), "{:?}", report.failure);
    assert_eq!(report.v2v_ms.len(), 1, "the caller heard the answer");

    let (record, _) = w.ended_call().await;
    let trace_id = record.trace_id.clone().expect("the record names its trace");
    assert_eq!(trace_id.len(), 32, "{trace_id}");

    // The API shows it too.
    let view = api
        .expect(200, "GET", &format!("/v1/calls/{}", record.id), &key, None)
        .await;
    assert_eq!(view["trace_id"], trace_id.as_str(), "{view}");

    // The control plane delivers the call's end to the customer.
    for _ in 0..200 {
        if hooks.load(std::sync::atomic::Ordering::SeqCst) > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        hooks.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "one delivery"
    );

    // Everything the call did is exported once the provider flushes.
    let flusher = telemetry.clone();
    tokio::task::spawn_blocking(move || flusher.flush())
        .await
        .expect("flush");
    let names = [
        "call", "setup", "turn", "stt", "llm", "tts", "tool", "webhook",
    ];
    let mut of_call: Vec<ReceivedSpan> = Vec::new();
    for _ in 0..100 {
        of_call = spans
            .lock()
            .expect("spans")
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect();
        if names.iter().all(|n| of_call.iter().any(|s| s.name == *n)) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let by_name =
        |name: &str| -> Vec<&ReceivedSpan> { of_call.iter().filter(|s| s.name == name).collect() };
    let calls = by_name("call");
    assert_eq!(calls.len(), 1, "one root span: {of_call:#?}");
    let root = calls[0];
    assert!(
        root.parent_span_id.is_empty(),
        "the call span is the trace's root: {root:?}"
    );
    for child in ["setup", "turn", "webhook"] {
        let found = by_name(child);
        assert!(!found.is_empty(), "a {child} span: {of_call:#?}");
        for span in found {
            assert_eq!(span.parent_span_id, root.span_id, "{child} under call");
        }
    }
    let turns: HashMap<&str, &ReceivedSpan> = by_name("turn")
        .into_iter()
        .map(|s| (s.span_id.as_str(), s))
        .collect();
    for stage in ["stt", "llm", "tts", "tool"] {
        let found = by_name(stage);
        assert!(!found.is_empty(), "a {stage} span: {of_call:#?}");
        for span in found {
            assert!(
                turns.contains_key(span.parent_span_id.as_str()),
                "{stage} under a turn: {span:?}"
            );
        }
    }
    // The model was asked twice in one turn (the tool's result went back to it).
    assert!(by_name("llm").len() >= 2, "{of_call:#?}");

    // Every JSON log line inside the call names the call, its workspace and its trace.
    let text = String::from_utf8(logs.0.lock().expect("logs").clone()).expect("utf-8 logs");
    let mut in_call = 0;
    for line in text.lines() {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("a log line is not JSON ({e}): {line}"));
        let Some(spans) = value["spans"].as_array() else {
            continue;
        };
        let Some(call) = spans.iter().find(|s| s["name"] == "call") else {
            continue;
        };
        if call["call_id"] != record.id.as_str() {
            continue;
        }
        in_call += 1;
        assert_eq!(call["trace_id"], trace_id.as_str(), "{line}");
        assert_eq!(
            call["workspace_id"],
            w.scope.workspace_id.as_str(),
            "{line}"
        );
    }
    assert!(in_call >= 1, "the call logged at least its answer:\n{text}");
    w.stop().await;
}
