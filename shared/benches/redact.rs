//! What redaction costs: a typical caller line (about 100 bytes, a spoken card number and
//! address), a line with nothing to redact, and hostile input capped at 64 KiB (a megabyte of
//! digits; a megabyte of spoken digits), and a workflow step record holding a function's
//! large answer (166 KiB of JSON; an edge reads at most 256 KiB), as the executor redacts it
//! before recording.
//! Run: `cargo bench -p freya-shared --bench redact`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use freya_shared::redact::{PiiKind, Redactor};
use freya_shared::workflow::StepDetail;

fn redact(c: &mut Criterion) {
    let r = Redactor::new(PiiKind::ALL);
    let line = "my card is four one one one one one one one one one one one one one one one and \
                my email is bob dot smith at example dot com";
    let plain = "I'd like to move my appointment from Tuesday at five thirty to Thursday morning";
    let digits = "4111111111111111 ".repeat(1 << 16);
    let spoken = "one ".repeat(1 << 18);
    c.bench_function("redact spoken card + email line", |b| {
        b.iter(|| r.redact(black_box(line)))
    });
    c.bench_function("redact line without PII", |b| {
        b.iter(|| r.redact(black_box(plain)))
    });
    c.bench_function("redact 1 MiB of card numbers (capped)", |b| {
        b.iter(|| r.redact(black_box(&digits)))
    });
    c.bench_function("redact 1 MiB of spoken digits (capped)", |b| {
        b.iter(|| r.redact(black_box(&spoken)))
    });
    // A function's large answer: 2048 records of about 83 bytes (166 KiB of JSON), each with
    // an address and a card number.
    let records: Vec<serde_json::Value> = (0..2048)
        .map(|i| {
            serde_json::json!({"id": i, "note": format!("paid by bob{i}@example.com with 4111 1111 1111 1111"), "ok": true})
        })
        .collect();
    let answer = StepDetail::VariablesChanged {
        changes: [("receipt".to_owned(), serde_json::Value::Array(records))]
            .into_iter()
            .collect(),
    };
    c.bench_function("redact a step record of a 166 KiB function answer", |b| {
        b.iter(|| {
            let mut detail = answer.clone();
            detail.redact(black_box(&r));
            detail
        })
    });
}

criterion_group!(benches, redact);
criterion_main!(benches);
