//! Each network client against its fake server: what goes over the wire, what comes back,
//! and how failures, slowness and odd chunking surface.

use std::time::Duration;

use super::{collect, frames};
use crate::media::frame::SampleRate;
use crate::speech::fakes::{tone, FakeDeepgram, FakeElevenLabs, FakeOpenAiSpeech, FaultPlan};
use crate::speech::stt::{DeepgramConfig, DeepgramStt, OpenAiStt, OpenAiSttConfig};
use crate::speech::tts::{ElevenLabsConfig, ElevenLabsTts, OpenAiTts, OpenAiTtsConfig};
use crate::speech::{
    SpeechError, SpeechToText, StreamingSpeechToText, SttEvent, SttSession, TextToSpeech,
};

fn openai_stt(fake: &FakeOpenAiSpeech, timeout: Duration) -> OpenAiStt {
    OpenAiStt::new(OpenAiSttConfig {
        base_url: fake.base_url(),
        api_key: Some("sk-test".into()),
        model: "whisper-1".into(),
        language: Some("en".into()),
        timeout,
    })
}

#[tokio::test]
async fn openai_stt_uploads_the_utterance_as_wav_and_returns_the_transcript() {
    let fake = FakeOpenAiSpeech::start().await.unwrap();
    fake.push_transcripts(["I'd like to book a table"]);
    let stt = openai_stt(&fake, Duration::from_secs(5));
    let audio = tone(8_000, 1_200);
    let transcript = stt.transcribe(SampleRate::Hz8000, &audio).await.unwrap();
    assert_eq!(transcript.text, "I'd like to book a table");
    let got = fake.utterances();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].sample_rate, 8_000);
    assert_eq!(got[0].duration, Duration::from_millis(1_200));
    assert_eq!(got[0].model, "whisper-1");
    assert_eq!(got[0].language.as_deref(), Some("en"));
    assert_eq!(got[0].authorization.as_deref(), Some("Bearer sk-test"));
    // The queue is spent: the default answer follows.
    let again = stt.transcribe(SampleRate::Hz8000, &audio).await.unwrap();
    assert_eq!(again.text, "hello");
}

#[tokio::test]
async fn openai_stt_failure_names_the_status_and_the_next_request_succeeds() {
    let fake = FakeOpenAiSpeech::start().await.unwrap();
    fake.set_faults(FaultPlan::fail_once(503));
    let stt = openai_stt(&fake, Duration::from_secs(5));
    let err = stt
        .transcribe(SampleRate::Hz16000, &tone(16_000, 200))
        .await
        .unwrap_err();
    assert!(
        matches!(err, SpeechError::Status { status: 503, .. }),
        "{err}"
    );
    assert!(err.is_retryable());
    assert!(stt
        .transcribe(SampleRate::Hz16000, &tone(16_000, 200))
        .await
        .is_ok());
    let empty = stt.transcribe(SampleRate::Hz16000, &[]).await.unwrap_err();
    assert!(matches!(empty, SpeechError::Audio { .. }));
}

#[tokio::test]
async fn openai_stt_gives_up_after_its_timeout() {
    let fake = FakeOpenAiSpeech::start().await.unwrap();
    fake.set_faults(FaultPlan {
        latency: Duration::from_secs(5),
        ..FaultPlan::default()
    });
    let stt = openai_stt(&fake, Duration::from_millis(200));
    let err = stt
        .transcribe(SampleRate::Hz8000, &tone(8_000, 100))
        .await
        .unwrap_err();
    assert!(matches!(err, SpeechError::Timeout { .. }), "{err}");
}

#[tokio::test]
async fn openai_tts_streams_pcm_split_at_odd_byte_offsets() {
    let fake = FakeOpenAiSpeech::start().await.unwrap();
    let ramp: Vec<i16> = (0..4_800).map(|i| (i * 7 - 16_000) as i16).collect();
    fake.set_speech_audio(ramp.clone());
    fake.set_faults(FaultPlan {
        chunk_bytes: 333,
        chunk_interval: Duration::from_millis(1),
        ..FaultPlan::default()
    });
    let tts = OpenAiTts::new(OpenAiTtsConfig {
        base_url: fake.base_url(),
        api_key: Some("sk-test".into()),
        ..OpenAiTtsConfig::default()
    });
    let (rate, samples, chunks) = collect(tts.synthesize("Hello there.")).await.unwrap();
    assert_eq!(rate, SampleRate::Hz24000);
    assert_eq!(samples, ramp);
    assert!(
        chunks > 10,
        "audio should arrive as it streams, got {chunks} chunks"
    );
    let req = &fake.speech_requests()[0];
    assert_eq!(
        (
            req.input.as_str(),
            req.voice.as_str(),
            req.response_format.as_str()
        ),
        ("Hello there.", "alloy", "pcm")
    );
    assert_eq!(req.model, "tts-1");
}

#[tokio::test]
async fn openai_tts_failure_arrives_on_the_stream() {
    let fake = FakeOpenAiSpeech::start().await.unwrap();
    fake.set_faults(FaultPlan::fail_once(429));
    let tts = OpenAiTts::new(OpenAiTtsConfig {
        base_url: fake.base_url(),
        ..OpenAiTtsConfig::default()
    });
    let err = collect(tts.synthesize("Hi.")).await.unwrap_err();
    assert!(
        matches!(err, SpeechError::Status { status: 429, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn elevenlabs_tts_asks_for_pcm_at_the_configured_rate_with_its_key() {
    let fake = FakeElevenLabs::start().await.unwrap();
    fake.require_api_key("xi-test");
    fake.set_audio_ms(400);
    let config = ElevenLabsConfig {
        base_url: fake.base_url(),
        api_key: Some("xi-test".into()),
        voice_id: "voice123".into(),
        sample_rate: SampleRate::Hz16000,
        ..ElevenLabsConfig::default()
    };
    let tts = ElevenLabsTts::new(config.clone()).unwrap();
    let (rate, samples, _) = collect(tts.synthesize("One moment please.")).await.unwrap();
    assert_eq!(rate, SampleRate::Hz16000);
    assert_eq!(samples.len(), 6_400);
    let req = &fake.requests()[0];
    assert_eq!(req.voice_id, "voice123");
    assert_eq!(req.output_format, "pcm_16000");
    assert_eq!(req.text, "One moment please.");
    assert_eq!(req.model_id.as_deref(), Some("eleven_flash_v2_5"));

    let wrong = ElevenLabsTts::new(ElevenLabsConfig {
        api_key: Some("nope".into()),
        ..config
    })
    .unwrap();
    let err = collect(wrong.synthesize("Hi.")).await.unwrap_err();
    assert!(
        matches!(err, SpeechError::Status { status: 401, .. }),
        "{err}"
    );
    let bad_voice = ElevenLabsTts::new(ElevenLabsConfig {
        voice_id: "../admin".into(),
        ..ElevenLabsConfig::default()
    });
    assert!(matches!(
        bad_voice,
        Err(SpeechError::Config {
            field: "tts.voice",
            ..
        })
    ));
}

fn deepgram(fake: &FakeDeepgram, key: &str) -> DeepgramStt {
    DeepgramStt::new(DeepgramConfig {
        url: fake.url(),
        api_key: Some(key.into()),
        sample_rate: SampleRate::Hz16000,
        keep_alive_after: Duration::from_millis(50),
        // The fake listens on 127.0.0.1.
        public_only: false,
        ..DeepgramConfig::default()
    })
}

/// How many connections the fake saw, once it has seen one (or after two seconds).
async fn support_eventually_one(fake: &FakeDeepgram) -> usize {
    for _ in 0..100 {
        if !fake.connections().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    fake.connections().len()
}

/// A name that resolves only to private addresses is never dialled when only public targets
/// are allowed: the client resolves the name itself and checks every address before it
/// connects (the WebSocket library would otherwise resolve it again, unchecked).
#[tokio::test]
async fn deepgram_never_dials_a_name_with_only_private_addresses_when_they_are_forbidden() {
    let fake = FakeDeepgram::start().await.unwrap();
    fake.push_utterance("hello", 100);
    let by_name = format!("ws://localhost:{}/v1/listen", fake.addr().port());
    let client = |public_only| {
        DeepgramStt::new(DeepgramConfig {
            url: by_name.clone(),
            public_only,
            ..DeepgramConfig::default()
        })
    };
    match client(true).start().await {
        Err(SpeechError::Config { field, detail }) => {
            assert_eq!(field, "stt.base_url");
            assert!(detail.contains("localhost"), "{detail}");
        }
        other => panic!(
            "a refusal naming stt.base_url, not {:?}",
            other.map(|_| "a session")
        ),
    }
    assert!(
        fake.connections().is_empty(),
        "nothing reached the private address"
    );
    // The same name is dialled when private targets are allowed: the refusal was the check.
    let session = client(false).start().await.expect("connects by name");
    session.finish().await.expect("closes");
    let connections = support_eventually_one(&fake).await;
    assert_eq!(connections, 1);
}

async fn next(session: &mut SttSession) -> Option<Result<SttEvent, SpeechError>> {
    tokio::time::timeout(Duration::from_secs(5), session.next_event())
        .await
        .expect("an event within 5 s")
}

#[tokio::test]
async fn deepgram_streams_frames_and_returns_interim_final_and_endpoint() {
    let fake = FakeDeepgram::start().await.unwrap();
    fake.require_api_key("dg-key");
    fake.push_utterance("book a table for two", 400);
    let stt = deepgram(&fake, "dg-key");
    let mut session = stt.start().await.unwrap();
    // 8 kHz telephone frames; the client resamples them to the 16 kHz it announced.
    for frame in frames(SampleRate::Hz8000, &tone(8_000, 600)) {
        session.push_frame(&frame).unwrap();
    }
    let mut events = Vec::new();
    while let Some(event) = next(&mut session).await {
        let event = event.unwrap();
        let endpoint = event.is_endpoint();
        events.push(event);
        if endpoint {
            break;
        }
    }
    assert_eq!(
        events,
        vec![
            SttEvent::SpeechStarted,
            SttEvent::Interim {
                text: "book a table".into()
            },
            SttEvent::Final {
                text: "book a table for two".into(),
                speech_final: true,
                confidence: Some(0.97)
            },
        ]
    );
    session.finish().await.unwrap();
    while let Some(event) = next(&mut session).await {
        event.unwrap();
    }
    let conn = &fake.connections()[0];
    assert!(conn
        .uri
        .starts_with("/v1/listen?encoding=linear16&sample_rate=16000&channels=1"));
    assert!(conn.uri.contains("interim_results=true") && conn.uri.contains("endpointing=300"));
    assert_eq!(conn.authorization.as_deref(), Some("Token dg-key"));
    assert_eq!(conn.audio_bytes, 30 * 320 * 2);
    assert!(conn.close_stream);
    assert_eq!(session.dropped_frames(), 0);
}

#[tokio::test]
async fn deepgram_session_sends_keep_alives_through_silence() {
    let fake = FakeDeepgram::start().await.unwrap();
    let mut session = deepgram(&fake, "k").start().await.unwrap();
    tokio::time::sleep(Duration::from_millis(220)).await;
    session.finish().await.unwrap();
    while next(&mut session).await.is_some() {}
    assert!(
        fake.connections()[0].keep_alives >= 2,
        "{:?}",
        fake.connections()
    );
}

#[tokio::test]
async fn deepgram_refused_handshake_is_a_status_error() {
    let fake = FakeDeepgram::start().await.unwrap();
    fake.require_api_key("right");
    let err = deepgram(&fake, "wrong").start().await.unwrap_err();
    assert!(
        matches!(err, SpeechError::Status { status: 401, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn deepgram_error_close_reaches_the_call_as_an_error() {
    let fake = FakeDeepgram::start().await.unwrap();
    fake.fail_after_audio_ms(100);
    let mut session = deepgram(&fake, "k").start().await.unwrap();
    for frame in frames(SampleRate::Hz16000, &tone(16_000, 200)) {
        let _ = session.push_frame(&frame);
    }
    let err = next(&mut session).await.unwrap().unwrap_err();
    assert!(
        matches!(err, SpeechError::ClosedByServer { code: 1011, .. }),
        "{err}"
    );
    assert!(next(&mut session).await.is_none());
}
