//! Live transcription against the fake Deepgram server over a real WebSocket: a turn streamed
//! frame by frame comes back as its final words, endpointing reaches the call, and every kind of
//! failure ends in a transcript from the batch path.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::*;
use crate::speech::fakes::{tone, FakeDeepgram, FakeOpenAiSpeech, FaultPlan};
use crate::speech::stt::{DeepgramConfig, DeepgramStt, OpenAiStt, OpenAiSttConfig};
use crate::voice::StreamingAsBatch;

fn deepgram(fake: &FakeDeepgram) -> Arc<DeepgramStt> {
    Arc::new(DeepgramStt::new(DeepgramConfig {
        url: fake.url(),
        sample_rate: SampleRate::Hz8000,
        // The fake listens on 127.0.0.1.
        public_only: false,
        ..DeepgramConfig::default()
    }))
}

fn frames(ms: u32) -> Vec<[i16; FRAME_SAMPLES]> {
    tone(8_000, ms)
        .chunks_exact(FRAME_SAMPLES)
        .filter_map(|c| <[i16; FRAME_SAMPLES]>::try_from(c).ok())
        .collect()
}

/// Live transcription on `fake`, falling back to the same recogniser used a turn at a time;
/// and where it reports to.
fn live_on(fake: &FakeDeepgram) -> (LiveStt, mpsc::Receiver<PipelineInput>) {
    let (tx, rx) = mpsc::channel(64);
    let stt = deepgram(fake);
    let batch = Arc::new(StreamingAsBatch::new(stt.clone(), Duration::from_secs(5)));
    (LiveStt::new(stt, batch, tx, CancellationToken::new()), rx)
}

/// Pushes `ms` of tone into `live`, frame by frame: the utterance as the batch path gets it.
fn say(live: &mut LiveStt, ms: u32) -> Vec<i16> {
    let audio = frames(ms);
    for frame in &audio {
        live.push(frame);
    }
    audio.iter().flatten().copied().collect()
}

async fn next(rx: &mut mpsc::Receiver<PipelineInput>) -> PipelineInput {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("pipeline input within 10 s")
        .expect("channel open")
}

/// The next input, which must be a transcript: its turn and result.
async fn next_transcript(
    rx: &mut mpsc::Receiver<PipelineInput>,
) -> (u64, Result<String, SttFailure>) {
    match next(rx).await {
        PipelineInput::Transcript { turn, result } => (turn, result),
        other => panic!("expected the transcript, got {other:?}"),
    }
}

/// Waits until the fake has received `ms` of 8 kHz audio on its first connection.
async fn until_received(fake: &FakeDeepgram, ms: u64) {
    for _ in 0..500 {
        if fake
            .connections()
            .first()
            .is_some_and(|c| c.audio_ms(8_000) >= ms)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "the fake never got {ms} ms of audio: {:?}",
        fake.connections()
    );
}

#[tokio::test]
async fn a_turn_streamed_as_spoken_is_transcribed_from_its_finals() {
    let fake = FakeDeepgram::start().await.expect("fake");
    fake.push_utterance("book a table for two", 600);
    let (mut live, mut rx) = live_on(&fake);
    let live_turn = 1;
    live.begin(live_turn, tracing::Span::none());
    assert!(live.is_open());
    let utterance = say(&mut live, 1_000);
    // Everything went up while the turn was still open, and the recogniser answered.
    until_received(&fake, 1_000).await;
    match next(&mut rx).await {
        PipelineInput::LiveStt(LiveSttReport::Endpoint { live_turn: t }) => {
            assert_eq!(t, live_turn)
        }
        other => panic!("expected the endpoint hint, got {other:?}"),
    }
    assert!(live.end(7, utterance).is_ok());
    assert!(!live.is_open());
    let summary = match next(&mut rx).await {
        PipelineInput::LiveStt(LiveSttReport::Streamed(s)) => s,
        other => panic!("expected the stream summary, got {other:?}"),
    };
    assert_eq!(summary.provider, "deepgram");
    assert_eq!((summary.frames_before_end, summary.frames), (50, 50));
    assert_eq!(summary.last_interim.as_deref(), Some("book a table"));
    assert_eq!((summary.interims, summary.endpoints), (1, 1));
    assert_eq!(
        next_transcript(&mut rx).await,
        (7, Ok("book a table for two".to_string()))
    );
    let conns = fake.connections();
    assert_eq!(conns.len(), 1, "one session for the turn");
    assert!(
        conns[0].close_stream,
        "the turn was closed with CloseStream"
    );
    assert_eq!(conns[0].audio_ms(8_000), 1_000);
}

#[tokio::test]
async fn frames_queued_while_connecting_and_at_the_end_all_go_up() {
    let fake = FakeDeepgram::start().await.expect("fake");
    fake.push_utterance("yes please", 300);
    let (mut live, mut rx) = live_on(&fake);
    live.begin(1, tracing::Span::none());
    // The whole turn, ended at once: nothing had gone up yet.
    say(&mut live, 400);
    assert!(live.end(1, Vec::new()).is_ok());
    let mut transcript = None;
    while transcript.is_none() {
        if let PipelineInput::Transcript { turn, result } = next(&mut rx).await {
            transcript = Some((turn, result));
        }
    }
    assert_eq!(transcript, Some((1, Ok("yes please".to_string()))));
    assert_eq!(fake.connections()[0].audio_ms(8_000), 400, "no frame lost");
}

#[tokio::test]
async fn a_refused_connection_falls_back_to_the_batch_path_and_says_why() {
    let fake = FakeDeepgram::start().await.expect("fake");
    fake.set_faults(FaultPlan::fail_once(503));
    fake.push_utterance("hello there", 200);
    let (mut live, mut rx) = live_on(&fake);
    live.begin(1, tracing::Span::none());
    let utterance = say(&mut live, 500);
    assert!(live.end(3, utterance).is_ok());
    match next(&mut rx).await {
        PipelineInput::LiveStt(LiveSttReport::Failed { provider, error }) => {
            assert_eq!(provider, "deepgram");
            assert!(error.contains("503"), "{error}");
        }
        other => panic!("expected the failure, got {other:?}"),
    }
    assert_eq!(
        next_transcript(&mut rx).await,
        (3, Ok("hello there".to_string()))
    );
    let conns = fake.connections();
    assert_eq!(conns.len(), 2, "refused live, then the batch session");
    assert_eq!(
        conns[1].audio_ms(8_000),
        500,
        "the batch got the whole turn"
    );
}

#[tokio::test]
async fn a_session_dropped_mid_turn_falls_back_with_the_whole_utterance() {
    let fake = FakeDeepgram::start().await.expect("fake");
    fake.fail_after_audio_ms(200);
    let whisper = FakeOpenAiSpeech::start().await.expect("fake whisper");
    whisper.push_transcripts(["I need a taxi"]);
    let batch = Arc::new(OpenAiStt::new(OpenAiSttConfig {
        base_url: whisper.base_url(),
        timeout: Duration::from_secs(5),
        ..OpenAiSttConfig::default()
    }));
    let (tx, mut rx) = mpsc::channel(64);
    let mut live = LiveStt::new(deepgram(&fake), batch, tx, CancellationToken::new());
    live.begin(1, tracing::Span::none());
    let utterance = say(&mut live, 800);
    assert!(live.end(9, utterance).is_ok());
    match next(&mut rx).await {
        PipelineInput::LiveStt(LiveSttReport::Failed { error, .. }) => {
            assert!(error.contains("1011"), "{error}")
        }
        other => panic!("expected the failure, got {other:?}"),
    }
    assert_eq!(
        next_transcript(&mut rx).await,
        (9, Ok("I need a taxi".to_string()))
    );
    let sent = whisper.utterances();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].duration, Duration::from_millis(800));
}

#[tokio::test]
async fn without_an_open_turn_the_utterance_comes_back_for_the_batch_path() {
    let fake = FakeDeepgram::start().await.expect("fake");
    let (mut live, mut rx) = live_on(&fake);
    assert_eq!(live.end(1, vec![1, 2, 3]), Err(vec![1, 2, 3]));
    // A turn let go of without an end (the call is gone) is dropped without a transcript.
    live.begin(1, tracing::Span::none());
    live.push(&[0; FRAME_SAMPLES]);
    drop(live);
    assert!(
        tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("the turn's task lets go of the channel")
            .is_none(),
        "nothing arrives for an abandoned turn"
    );
}
