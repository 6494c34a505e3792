//! What signing costs per request: `Freya-Signature` over a webhook-sized body (a `call.ended`
//! delivery, about 1 KiB) and a tool request (about 100 bytes), signing as the sender does and
//! verifying as a receiver does. Run: `cargo bench -p freya-shared --bench signature`.

use std::hint::black_box;
use std::time::{Duration, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, Criterion};
use freya_shared::signature::{sign, verify, TOLERANCE};

fn signature(c: &mut Criterion) {
    let secret = b"whsec-0123456789abcdef0123456789";
    let webhook = vec![b'x'; 1024];
    let tool = br#"{"day":"friday","time":"10:00","name":"Ada Lovelace","phone":"+15550123"}"#;
    let t = 1_700_000_000;
    let now = UNIX_EPOCH + Duration::from_secs(t);
    c.bench_function("sign 1 KiB webhook body", |b| {
        b.iter(|| sign(black_box(secret), t, black_box(&webhook)))
    });
    c.bench_function("sign tool request", |b| {
        b.iter(|| sign(black_box(secret), t, black_box(tool)))
    });
    let header = sign(secret, t, &webhook).unwrap_or_default();
    c.bench_function("verify 1 KiB webhook body", |b| {
        b.iter(|| {
            verify(
                black_box(secret),
                black_box(&header),
                &webhook,
                now,
                TOLERANCE,
            )
        })
    });
}

criterion_group!(benches, signature);
criterion_main!(benches);
