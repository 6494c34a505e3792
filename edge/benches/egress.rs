//! Criterion benches of the egress guard's per-request checks: classifying one address (what
//! the resolver does for each address a name resolves to) and checking one URL before a tool,
//! `function` or webhook request is sent. Figures and the command that produced them are kept in
//! `loadtest/BENCHMARKS.md` ("Egress guard"); nothing here asserts on speed.

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{criterion_group, criterion_main, Criterion};
use freya_edge::egress::{address, Egress, EgressConfig};

fn classify(c: &mut Criterion) {
    let addresses: Vec<IpAddr> = [
        "8.8.8.8",
        "127.0.0.1",
        "203.0.113.9",
        "2606:4700:4700::1111",
        "64:ff9b::7f00:1",
        "2002:7f00:1::",
    ]
    .iter()
    .map(|a| a.parse().expect("address"))
    .collect();
    c.bench_function("egress: classify 6 addresses (v4 and v6)", |b| {
        b.iter(|| {
            for ip in &addresses {
                black_box(address::check(black_box(*ip)).is_ok());
            }
        })
    });
}

fn check_url(c: &mut Criterion) {
    let egress = Egress::new(&EgressConfig::default()).expect("client");
    c.bench_function("egress: check_url, a public name", |b| {
        b.iter(|| black_box(egress.check_url(black_box("https://api.example.com/v1/lookup?x=1"))))
    });
    c.bench_function("egress: check_url, a refused IPv6 literal", |b| {
        b.iter(|| black_box(egress.check_url(black_box("http://[::ffff:127.0.0.1]:8080/"))))
    });
}

criterion_group!(benches, classify, check_url);
criterion_main!(benches);
