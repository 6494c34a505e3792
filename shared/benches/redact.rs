//! What redaction costs: a typical caller line (about 100 bytes, a spoken card number and
//! address), a line with nothing to redact, and hostile input capped at 64 KiB (a megabyte of
//! digits; a megabyte of spoken digits). Run: `cargo bench -p freya-shared --bench redact`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use freya_shared::redact::{PiiKind, Redactor};

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
}

criterion_group!(benches, redact);
criterion_main!(benches);
