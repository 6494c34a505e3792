//! Criterion bench of what one call's trace costs the edge with the tracing subscriber `freya`
//! installs (JSON logs to a sink, the OpenTelemetry layer, nothing exported): the `call` and
//! `setup` spans with the trace id read and recorded, then one turn with its `stt`, `llm`,
//! `tts` and `tool` spans, each entered once. Figures and the command are in
//! `loadtest/BENCHMARKS.md` ("Telemetry"); nothing here asserts on speed.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use freya_edge::telemetry::{self, CallTrace, LogFormat};

fn one_call_trace(c: &mut Criterion) {
    let _telemetry = telemetry::init_with(LogFormat::Json, None, std::io::sink)
        .expect("telemetry")
        .expect("the bench's subscriber");
    c.bench_function(
        "telemetry: one call's trace (call, setup, 1 turn, 4 stage spans)",
        |b| {
            b.iter(|| {
                let mut trace = CallTrace::begin(
                    black_box("019aa0c0-0000-7000-8000-000000000000"),
                    "edge-1",
                    "ws-1",
                );
                trace.setup_done();
                let _call = trace.span.enter();
                let turn = tracing::info_span!("turn", turn = 1u64);
                for stage in ["stt", "llm", "tts", "tool"] {
                    let span = tracing::info_span!(parent: &turn, "stage", name = stage);
                    let _entered = span.enter();
                    black_box(&span);
                }
                black_box(trace.trace_id())
            })
        },
    );
    c.bench_function("telemetry: trace id of a call span", |b| {
        let trace = CallTrace::begin("019aa0c0-0000-7000-8000-000000000001", "edge-1", "ws-1");
        b.iter(|| black_box(trace.trace_id()))
    });
}

criterion_group!(benches, one_call_trace);
criterion_main!(benches);
