//! What the typed event contract costs per event: reading a `call.ended` (the largest payload, with
//! its RTP and RTCP records) and a `call.transcript` (the most frequent) into `CallEventData`, as
//! the control plane does once for each event it stores, and serialising a typed event into the
//! JSON the edge sends. Run: `cargo bench -p freya-shared --bench call_events`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use freya_shared::model::CallEventData;
use serde_json::json;

fn contract(c: &mut Criterion) {
    let ended = json!({"reason": "caller_hangup", "hangup_by": "caller", "bye_outcome": null,
        "transferred_to": null, "duration_ms": 61_250,
        "rtp": {"received": 3_050, "sent": 3_040, "lost": 2, "late": 1, "junk": 0, "foreign": 0,
                "jitter_ms": 3},
        "rtcp": {"reports_sent": 12, "reports_received": 12, "junk": 0,
                 "peer_fraction_lost": 0.0, "peer_cumulative_lost": 2, "peer_jitter_ms": 1.5,
                 "rtt_ms": 21.0, "peer_bye": false}});
    let line = json!({"role": "caller", "text": "I'd like to move my appointment to Monday",
        "start_ms": 10_200, "end_ms": 12_900, "interrupted": false});
    c.bench_function("parse call.ended", |b| {
        b.iter(|| CallEventData::parse(black_box("call.ended"), black_box(&ended)))
    });
    c.bench_function("parse call.transcript", |b| {
        b.iter(|| CallEventData::parse(black_box("call.transcript"), black_box(&line)))
    });
    let typed = CallEventData::parse("call.ended", &ended);
    c.bench_function("serialise call.ended", |b| {
        b.iter(|| black_box(&typed).to_payload().to_string())
    });
    c.bench_function("call.ended Value to text only", |b| {
        b.iter(|| black_box(&ended).to_string())
    });
}

criterion_group!(benches, contract);
criterion_main!(benches);
