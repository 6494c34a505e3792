//! Criterion benches of the per-packet media hot path: what every call does 50 times a second
//! in each direction. G.711 and Opus encode+decode of one 20 ms frame, the jitter buffer's
//! push+pop of one packet, RTP packetize+parse of one packet, and resampling one frame between
//! the telephone and speech-engine rates, handing one tick of both directions to a call's
//! recording, one tick of a call's media core, sending or held, the same tick through the
//! call's core (`CallCore`, its outputs drained), and the in-band DTMF detector
//! hearing one frame. Figures and the command that produced them are kept
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
        ("8k_to_48k", SampleRate::Hz8000, SampleRate::Hz48000),
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
        b.iter(|| recording.on_tick(0, black_box(&sent), black_box(Some(&received))))
    });
}

/// The same conversions through rubato's FFT resampler (fixed 20 ms chunks in and out), with
/// the i16 ↔ f32 conversion a call needs, for the comparison in `loadtest/BENCHMARKS.md`.
fn resample_rubato(c: &mut Criterion) {
    use rubato::audioadapter_buffers::direct::SequentialSlice;
    use rubato::{Fft, FixedSync, Resampler as _};
    for (name, from, to) in [
        ("8k_to_16k", SampleRate::Hz8000, SampleRate::Hz16000),
        ("48k_to_8k", SampleRate::Hz48000, SampleRate::Hz8000),
        ("8k_to_48k", SampleRate::Hz8000, SampleRate::Hz48000),
    ] {
        let (n_in, n_out) = (from.samples_per_frame(), to.samples_per_frame());
        let mut fft = Fft::<f32>::new(
            from.hz() as usize,
            to.hz() as usize,
            n_in,
            1,
            FixedSync::Both,
        )
        .expect("rubato");
        eprintln!(
            "rubato {name}: {} in, {} out per call, delay {} output samples ({:.1} ms)",
            fft.input_frames_next(),
            fft.output_frames_next(),
            fft.output_delay(),
            fft.output_delay() as f64 * 1000.0 / f64::from(to.hz())
        );
        let frame = voice(from);
        let mut wide_in = vec![0f32; n_in];
        let mut wide_out = vec![0f32; n_out];
        let mut out = PcmFrame::silence(to);
        c.bench_function(&format!("rubato_{name}_20ms"), |b| {
            b.iter(|| {
                for (f, &s) in wide_in.iter_mut().zip(black_box(&frame).samples()) {
                    *f = f32::from(s) / 32768.0;
                }
                let input = SequentialSlice::new(&wide_in, 1, n_in).expect("in");
                let mut output = SequentialSlice::new_mut(&mut wide_out, 1, n_out).expect("out");
                fft.process_into_buffer(&input, &mut output, None)
                    .expect("rubato");
                for (s, &f) in out.samples_mut().iter_mut().zip(&wide_out) {
                    *s = (f * 32768.0).round().clamp(-32768.0, 32767.0) as i16;
                }
                black_box(&out);
            })
        });
    }
}

/// An Opus call's codec work per 20 ms, as `CallMedia` does it: the agent's 8 kHz frame up to
/// 48 kHz and encoded, and a packet decoded and brought down to 8 kHz.
fn call_codec(c: &mut Criterion) {
    use freya_edge::call::codec::{CallCodec, MAX_PAYLOAD};
    use freya_edge::sip::sdp::Codec;
    let frame = voice(SampleRate::Hz8000);
    let pcm: [i16; 160] = frame.samples().try_into().expect("160 samples");
    for (name, codec) in [("pcmu", Codec::Pcmu), ("opus", Codec::Opus)] {
        let mut sender = CallCodec::new(codec).expect("codec");
        let mut receiver = CallCodec::new(codec).expect("codec");
        let mut payload = [0u8; MAX_PAYLOAD];
        let mut out = [0i16; 160];
        c.bench_function(&format!("call_codec_{name}_encode_decode_20ms"), |b| {
            b.iter(|| {
                let n = sender.encode(black_box(&pcm), &mut payload);
                receiver.decode(black_box(&payload[..n]), &mut out);
                black_box(&out);
            })
        });
    }
}

/// The PCMU call both tick benches run: telephone-event at 101, RTCP on its own port, and
/// timeouts far beyond any run, so that no iteration ends the call.
fn pcmu_call() -> (
    freya_edge::sip::sdp::NegotiatedAudio,
    freya_edge::call::media::MediaSettings,
) {
    use std::sync::Arc;

    use freya_edge::call::media::MediaSettings;
    use freya_edge::sip::sdp::{Codec, Direction, NegotiatedAudio};
    let audio = NegotiatedAudio {
        codec: Codec::Pcmu,
        payload_type: 0,
        telephone_event: Some(101),
        telephone_event_rate: 8000,
        remote_rtp: "127.0.0.1:40002".parse().expect("addr"),
        ptime: 20,
        direction: Direction::SendRecv,
        rtcp_mux: false,
        remote_rtcp: "127.0.0.1:40003".parse().expect("addr"),
    };
    let settings = MediaSettings {
        codecs: Arc::from([Codec::Pcmu]),
        inactivity_timeout: Duration::from_secs(3_650 * 86_400),
        hold_timeout: Duration::from_secs(3_650 * 86_400),
        rtcp_interval: Duration::from_secs(5),
    };
    (audio, settings)
}

/// One 20 ms tick of a PCMU call's media core with no caller audio: the clock advanced, the
/// tick's packet chosen, encoded and written (or, held, the tick passed unsent), any RTCP
/// report due. Send-receive against held shows what hold costs and saves per tick.
fn call_media_tick(c: &mut Criterion) {
    use freya_edge::call::media::CallMedia;
    use freya_edge::sip::sdp::Direction;
    let (audio, settings) = pcmu_call();
    for (name, direction) in [
        ("sendrecv", Direction::SendRecv),
        ("held", Direction::RecvOnly),
    ] {
        let mut now = Instant::now();
        let mut media = CallMedia::new(now, &audio, &settings).expect("PCMU");
        media.set_direction(now, direction);
        c.bench_function(&format!("call_media_tick_{name}_20ms"), |b| {
            b.iter(|| {
                now += Duration::from_millis(20);
                media.handle_timeout(now);
                while let Some((to, packet)) = media.poll_transmit(now) {
                    black_box((to, packet));
                }
                if let Some(report) = media.poll_rtcp_transmit(now) {
                    black_box(report);
                }
            })
        });
    }
}

/// One 20 ms tick of a whole call's core (`CallCore`, no voice) for the same PCMU call: the
/// media tick above, the packet copied into the core's reused output buffer and drained as
/// `Output::Transmit`, and the core's after-input checks. Against `call_media_tick_sendrecv_20ms`
/// it is what the call being a core costs per tick.
fn call_core_tick(c: &mut Criterion) {
    use freya_edge::call::core::{CallCore, CallStart, Output};
    use freya_edge::call::task::CallDirection;
    use freya_shared::snapshot::AgentConfig;
    let (audio, settings) = pcmu_call();
    let mut agent: AgentConfig = serde_json::from_value(serde_json::json!({
        "id": "a", "workspace_id": "w", "spec": {"name": "Bench"}
    }))
    .expect("agent");
    agent.spec.max_call_seconds = u32::MAX;
    let mut now = Instant::now();
    let start = CallStart {
        call_id: "c",
        dialog: "d",
        direction: CallDirection::Inbound,
        edge_id: "e",
        agent: &agent,
        workflow: None,
        caller: "+1",
        dialled: "+2",
        provider: None,
        audio,
        media_stream: false,
        media: &settings,
        voice: None,
        can_record: false,
        legs: Default::default(),
        trace_id: None,
        trace_span_id: None,
    };
    let mut core = CallCore::start(now, start).expect("PCMU");
    while core.poll_output().is_some() {}
    c.bench_function("call_core_tick_sendrecv_20ms", |b| {
        b.iter(|| {
            now += Duration::from_millis(20);
            core.handle_timeout(now);
            while let Some(output) = core.poll_output() {
                if let Output::Transmit { to, packet } = output {
                    black_box((to, packet));
                }
            }
        })
    });
}

/// One 20 ms tick of a call's core with a second leg bridged to the first (the agent muted):
/// one PCMU packet in on each leg, both legs' frames played out and mixed, one packet out on
/// each leg. Against `call_core_tick_sendrecv_20ms` (which receives nothing) it is what a
/// bridged party costs per tick.
fn call_core_tick_bridged(c: &mut Criterion) {
    use std::sync::Arc;

    use freya_edge::call::core::{AgentMode, CallCore, CallStart, LegId, LegSignal, Output};
    use freya_edge::call::media::MediaSettings;
    use freya_edge::call::task::{CallDirection, CallSignal};
    use freya_edge::rtp::packet::{OutgoingHeader, Packetizer};
    use freya_edge::sip::sdp::{Codec, Direction, NegotiatedAudio};
    use freya_shared::snapshot::AgentConfig;
    let audio = |port: u16| NegotiatedAudio {
        codec: Codec::Pcmu,
        payload_type: 0,
        telephone_event: Some(101),
        telephone_event_rate: 8000,
        remote_rtp: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        ptime: 20,
        direction: Direction::SendRecv,
        rtcp_mux: false,
        remote_rtcp: std::net::SocketAddr::from(([127, 0, 0, 1], port + 1)),
    };
    let settings = MediaSettings {
        codecs: Arc::from([Codec::Pcmu]),
        inactivity_timeout: Duration::from_secs(3_650 * 86_400),
        hold_timeout: Duration::from_secs(3_650 * 86_400),
        rtcp_interval: Duration::from_secs(5),
    };
    let mut agent: AgentConfig = serde_json::from_value(serde_json::json!({
        "id": "a", "workspace_id": "w", "spec": {"name": "Bench"}
    }))
    .expect("agent");
    agent.spec.max_call_seconds = u32::MAX;
    let mut now = Instant::now();
    let start = CallStart {
        call_id: "c",
        dialog: "d",
        direction: CallDirection::Inbound,
        edge_id: "e",
        agent: &agent,
        workflow: None,
        caller: "+1",
        dialled: "+2",
        provider: None,
        audio: audio(40_002),
        media_stream: false,
        media: &settings,
        voice: None,
        can_record: false,
        legs: Default::default(),
        trace_id: None,
        trace_span_id: None,
    };
    let mut core = CallCore::start(now, start).expect("PCMU");
    let leg = core.dial(now, "+3", "api", None).expect("dial");
    let answered = CallSignal::Leg {
        leg,
        signal: LegSignal::Answered(audio(41_002)),
    };
    core.handle_signal(now, answered);
    core.bridge(now, &[LegId(0), leg], AgentMode::Muted)
        .expect("bridge");
    while core.poll_output().is_some() {}
    let speech = voice(SampleRate::Hz8000);
    let mut payload = [0u8; 160];
    freya_edge::media::g711::encode_ulaw(&speech.samples()[..160], &mut payload);
    let (mut caller, mut party) = (Packetizer::new(1), Packetizer::new(2));
    let (from_caller, from_party) = (audio(40_002).remote_rtp, audio(41_002).remote_rtp);
    let mut seq = 0u16;
    c.bench_function("call_core_tick_bridged_two_legs_20ms", |b| {
        b.iter(|| {
            now += Duration::from_millis(20);
            seq = seq.wrapping_add(1);
            let header = OutgoingHeader {
                sequence: seq,
                timestamp: u32::from(seq) * 160,
                marker: false,
            };
            if let Ok(packet) = caller.packetize(0, header, &payload) {
                core.handle_datagram(now, from_caller, packet);
            }
            if let Ok(packet) = party.packetize(0, header, &payload) {
                core.handle_leg_datagram(now, leg, from_party, packet);
            }
            core.handle_timeout(now);
            while let Some(output) = core.poll_output() {
                match output {
                    Output::Transmit { to, packet } | Output::LegTransmit { to, packet, .. } => {
                        black_box((to, packet));
                    }
                    _ => {}
                }
            }
        })
    });
}

/// The in-band DTMF detector hearing one 20 ms frame of the caller's 8 kHz audio (what a call
/// without telephone-event pays per frame): speech-like audio, and a key's two tones.
fn dtmf_tones(c: &mut Criterion) {
    use freya_edge::media::dtmf_tones::{key_frequencies, ToneDetector};
    use freya_edge::rtp::dtmf::DtmfDigit;
    let (low, high) = key_frequencies(DtmfDigit::from_char('5').expect("key"));
    let mut key = [0i16; 160];
    for (i, s) in key.iter_mut().enumerate() {
        let t = i as f64 / 8000.0;
        let two_pi = 2.0 * std::f64::consts::PI;
        *s = (7000.0 * ((two_pi * f64::from(low) * t).sin() + (two_pi * f64::from(high) * t).sin()))
            as i16;
    }
    let speech = voice(SampleRate::Hz8000);
    for (name, frame) in [("voice", speech.samples()), ("key", &key[..])] {
        let mut detector = ToneDetector::new();
        c.bench_function(&format!("dtmf_tones_{name}_20ms"), |b| {
            b.iter(|| {
                detector.push(black_box(frame));
                detector.poll_digit()
            })
        });
    }
}

criterion_group!(
    benches,
    call_media_tick,
    call_core_tick,
    call_core_tick_bridged,
    dtmf_tones,
    g711,
    opus,
    jitter,
    rtp,
    resample,
    resample_rubato,
    call_codec,
    recording
);
criterion_main!(benches);
