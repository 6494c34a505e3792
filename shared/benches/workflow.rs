//! Per-node overhead of the workflow executor, excluding providers and waits: one call through
//! say → gather → condition → set → end, from `Executor::new` to the final hang-up, with every
//! action and step record drained as the call task would. Throughput is in nodes, so criterion
//! reports the time per node. Also timed: validating and compiling the flow, which the edge does
//! once when a workflow call starts. Run: `cargo bench -p freya-shared --bench workflow`.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use freya_shared::workflow::{
    validate, Executor, Globals, ValidationContext, Workflow, WorkflowEvent,
};

fn five_node_flow() -> Workflow {
    let flow = serde_json::json!({"name": "bench", "start": "greet", "variables": {"business": "Acme", "attempts": 0},
    "nodes": [
        {"id": "greet", "type": "say", "text": "Welcome to {{business}}. Press one or two.", "next": "menu"},
        {"id": "menu", "type": "gather", "input": ["dtmf"], "max_digits": 1, "timeout_ms": 5000, "save_as": "choice", "next": "route"},
        {"id": "route", "type": "condition", "branches": [{"when": "choice == '1' && attempts < 3", "next": "count"}], "else": "count"},
        {"id": "count", "type": "set", "assign": {"attempts": "attempts + 1"}, "next": "bye"},
        {"id": "bye", "type": "end", "text": "Goodbye from {{business}}."}
    ]});
    match serde_json::from_value(flow) {
        Ok(workflow) => workflow,
        Err(e) => panic!("bench flow parses: {e}"),
    }
}

fn per_node(c: &mut Criterion) {
    let compiled = match validate(&five_node_flow(), &ValidationContext::default()) {
        Ok(compiled) => Arc::new(compiled),
        Err(errors) => panic!("bench flow is valid: {errors:?}"),
    };
    let globals = Globals {
        caller_number: "+15550100".into(),
        called_number: "+15550199".into(),
        call_id: "call-1".into(),
        started_at_ms: 1_700_000_000_000,
    };
    let mut group = c.benchmark_group("workflow");
    group.throughput(Throughput::Elements(5));
    group.bench_function("say_gather_condition_set_end", |b| {
        b.iter(|| {
            let t0 = Instant::now();
            let mut executor = Executor::new(Arc::clone(&compiled), globals.clone());
            let mut drained = 0usize;
            let mut drain = |e: &mut Executor| {
                while let Some(action) = e.poll_action() {
                    black_box(action);
                    drained += 1;
                }
                while let Some(step) = e.poll_step() {
                    black_box(step);
                    drained += 1;
                }
            };
            executor.start(t0);
            drain(&mut executor);
            executor.handle_event(t0 + Duration::from_millis(3000), WorkflowEvent::Spoken);
            drain(&mut executor);
            executor.handle_event(
                t0 + Duration::from_millis(4000),
                WorkflowEvent::Digits("1".into()),
            );
            drain(&mut executor);
            assert!(executor.is_finished());
            drained
        })
    });
    group.finish();
}

/// What an edge does once per workflow call before the first node: validate and compile the
/// pinned version (templates parsed, CEL expressions compiled, the graph checked).
fn compile_at_call_start(c: &mut Criterion) {
    let flow = five_node_flow();
    let context = ValidationContext::default();
    c.bench_function("workflow/validate_five_node_flow", |b| {
        b.iter(|| black_box(validate(black_box(&flow), &context).is_ok()))
    });
}

criterion_group!(benches, per_node, compile_at_call_start);
criterion_main!(benches);
