//! Criterion bench of the SIP endpoint's timer bookkeeping: what `poll_timeout` and a
//! `handle_timeout` with nothing due cost when 1,000 or 10,000 answered and acknowledged calls
//! are alive (each with its INVITE transaction waiting out RFC 6026's Accepted state). These
//! are the two calls the edge's socket loop makes after every datagram and every wake-up.
//! Figures and the command that produced them are in `loadtest/BENCHMARKS.md` ("SIP endpoint
//! timers"); nothing here asserts on speed.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use freya_sip::endpoint::SipEndpoint;
use freya_sip::Timers;

const SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40002 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";

fn invite(n: usize) -> Vec<u8> {
    format!(
        "INVITE sip:demo@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKb{n};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+15550001@127.0.0.1>;tag=caller{n}\r\n\
         To: <sip:demo@127.0.0.1:5060>\r\n\
         Call-ID: bench-{n}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:caller@127.0.0.1:40000>\r\n\
         Content-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{SDP}",
        SDP.len()
    )
    .into_bytes()
}

fn ack(n: usize, to_tag: &str) -> Vec<u8> {
    format!(
        "ACK sip:demo@127.0.0.1:5060 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKa{n}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:+15550001@127.0.0.1>;tag=caller{n}\r\n\
         To: <sip:demo@127.0.0.1:5060>;tag={to_tag}\r\n\
         Call-ID: bench-{n}\r\n\
         CSeq: 1 ACK\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// An endpoint with `calls` answered and acknowledged calls, spread over one second.
fn endpoint_with(calls: usize, start: Instant) -> SipEndpoint {
    let local: SocketAddr = "127.0.0.1:5060".parse().expect("address");
    let caller: SocketAddr = "127.0.0.1:40000".parse().expect("address");
    let mut ep = SipEndpoint::new(local, Timers::default());
    for n in 0..calls {
        let now = start + Duration::from_micros((n * 1_000_000 / calls) as u64);
        ep.handle_datagram(now, caller, &invite(n));
        while ep.poll_event().is_some() {}
        ep.answer(now, &format!("bench-{n}"), SDP.to_owned());
        let mut tag = None;
        while let Some(out) = ep.poll_transmit() {
            let text = String::from_utf8_lossy(&out.bytes).into_owned();
            if text.starts_with("SIP/2.0 200") {
                tag = text
                    .lines()
                    .find(|l| l.starts_with("To:"))
                    .and_then(|l| l.split("tag=").nth(1))
                    .map(|t| t.trim().to_owned());
            }
        }
        let tag = tag.expect("a 200 with a To tag");
        ep.handle_datagram(now, caller, &ack(n, &tag));
        while ep.poll_event().is_some() {}
        while ep.poll_transmit().is_some() {}
    }
    assert_eq!(ep.dialog_count(), calls);
    ep
}

fn timers(c: &mut Criterion) {
    let mut group = c.benchmark_group("sip timers");
    for calls in [1_000, 10_000] {
        let start = Instant::now();
        let mut ep = endpoint_with(calls, start);
        // Nothing is due two seconds in: the transactions wait out their 32 s.
        let now = start + Duration::from_secs(2);
        group.bench_with_input(
            BenchmarkId::new("poll_timeout + idle handle_timeout", calls),
            &calls,
            |b, _| {
                b.iter(|| {
                    ep.handle_timeout(black_box(now));
                    black_box(ep.poll_timeout())
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, timers);
criterion_main!(benches);
