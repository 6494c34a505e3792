//! The media-stream leg: what the call task's media core paces out reaches the stream as bare
//! μ-law frames, with marks and clears; frames from the stream play out through the same core.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::*;
use crate::call::media::{MediaSettings, FRAME_SAMPLES};

fn stream_leg() -> (
    MediaLeg,
    mpsc::Sender<StreamFrame>,
    mpsc::Receiver<StreamOut>,
) {
    let (frames_tx, frames) = mpsc::channel(8);
    let (out, out_rx) = mpsc::channel(64);
    (
        MediaLeg::Stream(StreamLeg { frames, out }),
        frames_tx,
        out_rx,
    )
}

fn media(leg: &MediaLeg, now: Instant) -> CallMedia {
    let settings = MediaSettings {
        codecs: Arc::from([Codec::Pcmu]),
        inactivity_timeout: Duration::from_secs(5),
        hold_timeout: Duration::from_secs(60),
        rtcp_interval: Duration::from_secs(5),
    };
    CallMedia::new(now, &leg.audio(), &settings).expect("PCMU")
}

#[tokio::test]
async fn paced_audio_leaves_as_bare_mulaw_with_marks_and_clears() {
    let (leg, _frames, mut out) = stream_leg();
    assert_eq!(leg.kind(), "media_stream");
    let t0 = Instant::now();
    let mut m = media(&leg, t0);
    let mut io = leg.into_io(&Default::default()).expect("a stream leg");
    m.play(&[8000; FRAME_SAMPLES]);
    m.handle_timeout(t0);
    let (to, packet) = m.poll_transmit(t0).expect("a frame is due");
    io.send(to, packet);
    match out.try_recv() {
        Ok(StreamOut::Media(mulaw)) => {
            assert_eq!(mulaw.len(), FRAME_SAMPLES, "no RTP header");
            assert!(mulaw.iter().all(|&b| b != 0xff), "voiced, not silence");
        }
        other => panic!("expected media, got {other:?}"),
    }
    io.playback_finished();
    io.playback_cut();
    assert_eq!(out.try_recv().ok(), Some(StreamOut::Mark("agent-1".into())));
    assert_eq!(out.try_recv().ok(), Some(StreamOut::Clear));
    // RTCP has nowhere to go on a stream.
    io.send_rtcp(to, &[0x80, 200, 0, 1]).await;
    assert!(out.try_recv().is_err());
}

#[tokio::test]
async fn stream_frames_reach_the_media_core_and_a_closed_stream_goes_quiet() {
    let (leg, frames, _out) = stream_leg();
    let t0 = Instant::now();
    let mut m = media(&leg, t0);
    let mut io = leg.into_io(&Default::default()).expect("a stream leg");
    frames
        .send(StreamFrame {
            sequence: 1,
            timestamp: 160,
            payload: vec![0x10; FRAME_SAMPLES],
        })
        .await
        .expect("send");
    let input = io.recv().await;
    io.deliver(t0, input, &mut m);
    assert_eq!(m.stats().packets_received, 1);
    drop(frames);
    assert!(matches!(io.recv().await, LegInput::Nothing));
    // Then it waits forever rather than spinning.
    let waited = tokio::time::timeout(Duration::from_millis(50), io.recv()).await;
    assert!(waited.is_err());
}
