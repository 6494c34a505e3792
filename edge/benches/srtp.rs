//! Criterion benches of SRTP's per-packet cost (RFC 3711, RFC 7714): protecting one 20 ms
//! packet and checking + decrypting one — G.711 (172 octets of RTP) and Opus at 32 kbit/s
//! (92 octets) — for each suite we negotiate, and one RTCP receiver report each way. Figures and the command that produced
//! them are kept in `loadtest/BENCHMARKS.md` ("SRTP"); nothing here asserts on speed.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use freya_edge::rtp::srtp::{SrtpSession, DEFAULT_REPLAY_WINDOW};
use freya_edge::sip::sdp::{KeyMaterial, SrtpSuite};

/// The payload sizes measured: 20 ms of PCMU, and 20 ms of Opus at 32 kbit/s.
const PAYLOADS: [(&str, usize); 2] = [("pcmu_172B", 160), ("opus_92B", 80)];

/// An RTP packet: 12-octet header, `payload` octets.
fn rtp(seq: u16, payload: usize) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend((0..payload as u32).map(|i| (i * 7) as u8));
    p
}

/// A receiver report with one report block (32 octets).
fn rtcp() -> Vec<u8> {
    let mut p = vec![0x81, 201, 0, 7];
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend_from_slice(&[0x11; 24]);
    p
}

fn name(suite: SrtpSuite) -> &'static str {
    match suite {
        SrtpSuite::AesCm128HmacSha1_80 => "aes_cm_hmac_sha1_80",
        SrtpSuite::AeadAes128Gcm => "aead_aes_128_gcm",
    }
}

fn srtp(c: &mut Criterion) {
    for suite in SrtpSuite::ALL {
        let (a, b) = (KeyMaterial::generate(suite), KeyMaterial::generate(suite));
        let mut sender = SrtpSession::from_material(&a, &b, DEFAULT_REPLAY_WINDOW);
        let mut receiver = SrtpSession::from_material(&b, &a, DEFAULT_REPLAY_WINDOW);
        let mut buf = Vec::with_capacity(1500);
        for (label, payload) in PAYLOADS {
            let mut seq = 0u16;
            let template = rtp(0, payload);
            c.bench_function(
                &format!("srtp_{}_protect_rtp_{label}", name(suite)),
                |bench| {
                    bench.iter(|| {
                        seq = seq.wrapping_add(1);
                        buf.clear();
                        buf.extend_from_slice(&template);
                        buf[2..4].copy_from_slice(&seq.to_be_bytes());
                        sender.protect_rtp(&mut buf).unwrap();
                        black_box(&buf);
                    })
                },
            );
            // Each packet is new to the receiver (a replay would be refused): made in setup.
            let mut seq = 0u16;
            let mut maker = SrtpSession::from_material(&a, &b, DEFAULT_REPLAY_WINDOW);
            let mut receiver = SrtpSession::from_material(&b, &a, DEFAULT_REPLAY_WINDOW);
            c.bench_function(
                &format!("srtp_{}_unprotect_rtp_{label}", name(suite)),
                |bench| {
                    bench.iter_batched(
                        || {
                            seq = seq.wrapping_add(1);
                            let mut p = rtp(seq, payload);
                            maker.protect_rtp(&mut p).unwrap();
                            p
                        },
                        |mut p| black_box(receiver.unprotect_rtp(&mut p)),
                        BatchSize::SmallInput,
                    )
                },
            );
        }
        let report = rtcp();
        let mut rtcp_sender = SrtpSession::from_material(&a, &b, DEFAULT_REPLAY_WINDOW);
        let mut rtcp_receiver = SrtpSession::from_material(&b, &a, DEFAULT_REPLAY_WINDOW);
        c.bench_function(
            &format!("srtcp_{}_protect_unprotect_rr", name(suite)),
            |bench| {
                bench.iter(|| {
                    buf.clear();
                    buf.extend_from_slice(&report);
                    rtcp_sender.protect_rtcp(&mut buf).unwrap();
                    black_box(rtcp_receiver.unprotect_rtcp(&mut buf).unwrap());
                })
            },
        );
        // Junk with a valid header: what a flood costs before it is refused.
        let mut junk = rtp(7, 160);
        junk.extend_from_slice(&[0u8; 16]);
        c.bench_function(
            &format!("srtp_{}_refuse_forged_rtp", name(suite)),
            |bench| {
                bench.iter(|| {
                    buf.clear();
                    buf.extend_from_slice(&junk);
                    black_box(receiver.unprotect_rtp(&mut buf).is_err());
                })
            },
        );
    }
}

criterion_group!(benches, srtp);
criterion_main!(benches);
