//! Criterion benches of the per-packet media hot path: what every call does 50 times a second
//! in each direction. G.711 and Opus encode+decode of one 20 ms frame, the jitter buffer's
//! push+pop of one packet, RTP packetize+parse of one packet, and resampling one frame between
//! the telephone and speech-engine rates, and handing one tick of both directions to a call's
//! recording. Figures and the command that produced them are kept
//! in `loadtest/BENCHMARKS.md` ("Media hot path"); nothing here asserts on speed.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use freya_edge::media::frame::{PcmFrame, SampleRate};
use freya_edge::media::g711::G711;
use freya_edge::media::opus::{OpusDecoder, OpusEncoder, OpusSettings};
use freya_edge::media::resample::Resampler;
use freya_edge::recordings::writer::CallRecording;
use freya_edge::rtp::jitter::{JitterBuffer, JitterConfig, Playout};
use freya_edge::rtp::packet::{OutgoingHeader, Packetizer, RtpPacket};

/// One 20 ms frame of a voiced, speech-like signal (a 150 Hz buzz with harmonics).
fn voice(rate: SampleRate) -> PcmFrame {
    let mut frame = PcmFrame::silence(rate);
    let hz = f64::from(rate.hz());
    for (i, s) in frame.samples_mut().iter_mut().enumerate() {
        let t = i as f64 / hz;
        let mut v = 0.0;
        for (k, a) in [(1.0, 1.0), (2.0, 0.5), (3.0, 0.3)] {
            v += a * (2.0 * std::f64::consts::PI * 150.0 * k * t).sin();
        }
        *s = (6_000.0 * v) as i16;
    }
    frame
}

fn g711(c: &mut Criterion) {
    let frame = voice(SampleRate::Hz8000);
    let mut payload = [0u8; 160];
    let mut pcm = [0i16; 160];
    for (name, law) in [("ulaw", G711::Ulaw), ("alaw", G711::Alaw)] {
        c.bench_function(&format!("g711_{name}_encode_decode_20ms"), |b| {
            b.iter(|| {
                let n = law.encode(black_box(frame.samples()), &mut payload);
                law.decode(black_box(&payload[..n]), &mut pcm)
            })
        });
    }
}

fn opus(c: &mut Criterion) {
    for (name, rate) in [("48k", SampleRate::Hz48000), ("8k", SampleRate::Hz8000)] {
        let frame = voice(rate);
        let mut encoder = OpusEncoder::new(rate, OpusSettings::default()).expect("encoder");
        let mut decoder = OpusDecoder::new(rate).expect("decoder");
        let mut pcm = [0i16; 960];
        c.bench_function(&format!("opus_{name}_encode_decode_20ms"), |b| {
            b.iter(|| {
                let packet = encoder.encode(black_box(frame.samples())).expect("encode");
                decoder.decode(packet, &mut pcm).expect("decode")
            })
        });
        c.bench_function(&format!("opus_{name}_conceal_20ms"), |b| {
            b.iter(|| decoder.conceal(&mut pcm).expect("conceal"))
        });
    }
}

fn jitter(c: &mut Criterion) {
    let mut buffer = JitterBuffer::new(JitterConfig::default()).expect("jitter buffer");
    let payload = [0xD5u8; 160];
    let start = Instant::now();
    let mut seq: u16 = 0;
    let mut tick: u32 = 0;
    // Steady state: one packet in, one frame out, per 20 ms of simulated time.
    c.bench_function("jitter_push_pop_per_packet", |b| {
        b.iter(|| {
            let now = start + Duration::from_millis(20 * u64::from(tick));
            buffer.push(
                now,
                seq,
                tick.wrapping_mul(160),
                0x1234,
                black_box(&payload),
            );
            let played = matches!(buffer.pop(now), Some(Playout::Frame { .. }));
            seq = seq.wrapping_add(1);
            tick = tick.wrapping_add(1);
            played
        })
    });
}

fn rtp(c: &mut Criterion) {
    let mut packetizer = Packetizer::new(0xCAFE_F00D);
    let payload = [0xD5u8; 160];
    let mut seq: u16 = 0;
    c.bench_function("rtp_packetize_parse_per_packet", |b| {
        b.iter(|| {
            let header = OutgoingHeader {
                sequence: seq,
                timestamp: u32::from(seq) * 160,
                marker: false,
            };
            seq = seq.wrapping_add(1);
            let bytes = packetizer
                .packetize(0, header, black_box(&payload))
                .expect("packetize");
            RtpPacket::parse(black_box(bytes)).map(|p| p.sequence)
        })
    });
}

fn resample(c: &mut Criterion) {
    for (name, from, to) in [
        ("8k_to_16k", SampleRate::Hz8000, SampleRate::Hz16000),
        ("48k_to_8k", SampleRate::Hz48000, SampleRate::Hz8000),
    ] {
        let frame = voice(from);
        let mut resampler = Resampler::new(from, to);
        c.bench_function(&format!("resample_{name}_20ms"), |b| {
            b.iter(|| {
                resampler
                    .process_frame(black_box(&frame))
                    .expect("resample")
            })
        });
    }
}

fn recording(c: &mut Criterion) {
    let frame = voice(SampleRate::Hz8000);
    let mut sent = [0i16; 160];
    sent.copy_from_slice(frame.samples());
    let received = sent;
    let mut recording = CallRecording::discarding().expect("recording");
    c.bench_function("recording_tick_both_directions_20ms", |b| {
        b.iter(|| recording.on_tick(black_box(&sent), black_box(Some(&received))))
    });
}

criterion_group!(benches, g711, opus, jitter, rtp, resample, recording);
criterion_main!(benches);
