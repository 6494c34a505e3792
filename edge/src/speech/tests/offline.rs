//! The offline engines with the real Debian programs: espeak-ng speaks, the VAD and turn
//! detector hear it, and pocketsphinx (package `pocketsphinx` + `pocketsphinx-en-us`) transcribes
//! it. When pocketsphinx is not installed the local STT must say which package is missing.

use std::time::{Duration, Instant};

use super::{collect, frames, rms};
use crate::media::frame::{PcmFrame, SampleRate};
use crate::media::turn::{TurnConfig, TurnDetector, TurnEvent};
use crate::media::vad::{VadAggressiveness, VoiceActivityDetector};
use crate::speech::stt::{LocalStt, LocalSttConfig};
use crate::speech::tts::{EspeakConfig, EspeakTts};
use crate::speech::{SpeechError, SpeechToText, TextToSpeech};

const SENTENCE: &str = "Hello, thanks for calling Acme. How can I help you today?";

async fn speak(rate: SampleRate, text: &str) -> Vec<i16> {
    let tts = EspeakTts::new(EspeakConfig {
        sample_rate: rate,
        ..EspeakConfig::default()
    });
    let (got, samples, _) = collect(tts.synthesize(text)).await.unwrap();
    assert_eq!(got, rate);
    samples
}

#[tokio::test]
async fn espeak_speaks_a_sentence_of_plausible_length_and_level() {
    for rate in [SampleRate::Hz8000, SampleRate::Hz16000, SampleRate::Hz24000] {
        let samples = speak(rate, SENTENCE).await;
        let secs = samples.len() as f64 / f64::from(rate.hz());
        // Eleven words at 165 wpm: about 4 s with pauses.
        assert!((2.0..8.0).contains(&secs), "{rate:?}: {secs:.2} s");
        assert!(rms(&samples) > 500.0, "{rate:?}: too quiet");
    }
}

#[tokio::test]
async fn espeak_missing_program_names_the_package() {
    let tts = EspeakTts::new(EspeakConfig {
        program: "/nonexistent/espeak-ng".into(),
        ..EspeakConfig::default()
    });
    let err = collect(tts.synthesize("hi")).await.unwrap_err();
    assert!(
        matches!(
            err,
            SpeechError::MissingPackage {
                package: "espeak-ng",
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn vad_hears_espeak_speech_and_not_zeros() {
    for rate in [SampleRate::Hz8000, SampleRate::Hz16000] {
        let speech = frames(rate, &speak(rate, SENTENCE).await);
        let mut vad = VoiceActivityDetector::new(VadAggressiveness::Aggressive);
        let voiced = speech.iter().filter(|f| vad.is_speech(f).unwrap()).count();
        assert!(
            voiced * 2 > speech.len(),
            "{rate:?}: {voiced}/{}",
            speech.len()
        );
        let silence = PcmFrame::silence(rate);
        assert!((0..50).all(|_| !vad.is_speech(&silence).unwrap()));
    }
}

#[tokio::test]
async fn turn_detector_on_real_speech_opens_once_and_closes_after_the_silence() {
    let rate = SampleRate::Hz8000;
    let speech = frames(
        rate,
        &speak(rate, "I would like to book a table for two.").await,
    );
    let mut vad = VoiceActivityDetector::new(VadAggressiveness::Aggressive);
    let mut turn = TurnDetector::new(TurnConfig {
        end_of_turn_silence: Duration::from_millis(700),
        ..TurnConfig::default()
    });
    let start = Instant::now();
    let mut events = Vec::new();
    let silence = vec![PcmFrame::silence(rate); 60];
    for (i, frame) in speech.iter().chain(&silence).enumerate() {
        let now = start + Duration::from_millis(20 * (i as u64 + 1));
        turn.push_frame(now, vad.is_speech(frame).unwrap());
        events.extend(std::iter::from_fn(|| turn.poll_event()));
    }
    let audio_ms = speech.len() as u32 * 20;
    match events.as_slice() {
        [TurnEvent::SpeechStarted, TurnEvent::EndOfTurn { speech_ms, .. }] => {
            assert!(
                *speech_ms > audio_ms / 2 && *speech_ms <= audio_ms,
                "speech {speech_ms} ms of {audio_ms} ms audio"
            );
        }
        other => panic!("expected one turn, got {other:?}"),
    }
}

#[tokio::test]
async fn local_stt_transcribes_espeak_or_names_the_missing_package() {
    let stt = LocalStt::new(LocalSttConfig::default());
    let audio = speak(
        SampleRate::Hz16000,
        "Hello world. I would like to book a table.",
    )
    .await;
    match stt.check_installed() {
        Ok(()) => {
            let transcript = stt.transcribe(SampleRate::Hz16000, &audio).await.unwrap();
            eprintln!("pocketsphinx heard: {:?}", transcript.text);
            // pocketsphinx is rough on synthetic speech; ask only that it heard words.
            assert!(!transcript.text.is_empty(), "pocketsphinx heard nothing");
        }
        Err(missing) => {
            eprintln!("pocketsphinx not installed; checking the error instead: {missing}");
            let err = stt
                .transcribe(SampleRate::Hz16000, &audio)
                .await
                .unwrap_err();
            assert!(matches!(err, SpeechError::MissingPackage { .. }), "{err}");
        }
    }
}

#[tokio::test]
async fn local_stt_without_the_program_names_the_debian_package() {
    let stt = LocalStt::new(LocalSttConfig {
        program: "/nonexistent/pocketsphinx_continuous".into(),
        ..LocalSttConfig::default()
    });
    let err = stt
        .transcribe(SampleRate::Hz8000, &[100; 8_000])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            SpeechError::MissingPackage {
                package: "pocketsphinx",
                ..
            }
        ),
        "{err}"
    );
    assert!(err
        .to_string()
        .contains("install the Debian package `pocketsphinx`"));
}

/// The demo agent's recogniser, adapted to the telephone channel as an edge adapts it (once per
/// machine, shared with every other test): its rules' phrases as a grammar, with an open
/// vocabulary.
async fn demo_recogniser() -> LocalStt {
    let config = LocalSttConfig::default();
    crate::speech::stt::local::adapt::adapt(&config)
        .await
        .expect("the test script installs sphinxtrain and sphinxbase-utils");
    let table = freya_shared::model::RulesSpec::demo("record_booking", "operator");
    LocalStt::with_expected(
        config,
        crate::speech::stt::local::ExpectedSpeech::of_rules(&table),
    )
}

/// Streams `samples` through a live session frame by frame, as a call does, and returns the text.
async fn stream_turn(stt: &LocalStt, rate: SampleRate, samples: &[i16]) -> String {
    use crate::speech::StreamingSpeechToText;
    let mut session = stt.start().await.expect("decoders start");
    for chunk in samples.chunks(rate.samples_per_frame()) {
        let mut frame = PcmFrame::silence(rate);
        frame.samples_mut()[..chunk.len()].copy_from_slice(chunk);
        session
            .send_frame(&frame, |e| panic!("no result before the end: {e:?}"))
            .await
            .expect("frame queued");
    }
    crate::test_support::final_text(&mut session).await
}

#[tokio::test]
async fn the_demo_recogniser_understands_its_questions_over_telephone_audio() {
    let stt = demo_recogniser().await;
    stt.check_installed()
        .expect("the test script installs pocketsphinx and pocketsphinx-en-us");
    let table = freya_shared::model::RulesSpec::demo("record_booking", "operator");
    for (said, intent) in [
        ("Hello, what are your opening hours?", "hours"),
        ("Where are you located?", "address"),
        ("I'd like to book an appointment.", "booking"),
        ("Thank you, goodbye.", "goodbye"),
    ] {
        let audio = speak(SampleRate::Hz8000, said).await;
        let heard = stream_turn(&stt, SampleRate::Hz8000, &audio).await;
        let matched = table.matching(&heard).map(|r| r.intent.as_str());
        assert_eq!(matched, Some(intent), "{said:?} was heard as {heard:?}");
    }
}

#[tokio::test]
async fn speech_outside_the_rules_is_not_forced_onto_an_action() {
    let stt = demo_recogniser().await;
    let table = freya_shared::model::RulesSpec::demo("record_booking", "operator");
    for said in [
        "Do you sell bicycles and spare parts?",
        "My cat likes the warm weather in July.",
    ] {
        let audio = speak(SampleRate::Hz8000, said).await;
        let heard = stt
            .transcribe(SampleRate::Hz8000, &audio)
            .await
            .expect("transcribed");
        let action = table.matching(&heard.text).and_then(|r| r.action.as_ref());
        assert!(
            action.is_none(),
            "{said:?} was heard as {heard:?}, which acts"
        );
    }
}
