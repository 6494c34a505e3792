//! The line's cepstral mean carried between a call's turns, with the real pocketsphinx and
//! espeak-ng (packages `pocketsphinx`, `pocketsphinx-en-us`, `espeak-ng`).

use std::process::{Command, Stdio};

use futures::StreamExt;

use super::adapt::{adapt, adapted_model};
use super::line_mean::{without_starting_mean, CepstralMean};
use super::{ExpectedSpeech, LocalStt, LocalSttConfig};
use crate::media::frame::{PcmFrame, SampleRate};
use crate::speech::tts::{EspeakConfig, EspeakTts};
use crate::speech::{StreamingSpeechToText, TextToSpeech};

/// `text` spoken by espeak-ng as 8 kHz telephone audio.
async fn speak(text: &str) -> Vec<i16> {
    let tts = EspeakTts::new(EspeakConfig {
        sample_rate: SampleRate::Hz8000,
        ..EspeakConfig::default()
    });
    let mut stream = tts.synthesize(text);
    let mut samples = Vec::new();
    while let Some(chunk) = stream.next().await {
        samples.extend_from_slice(&chunk.expect("espeak-ng speaks").samples);
    }
    samples
}

/// One turn streamed frame by frame through a live session, then its closing silence.
async fn stream_turn(stt: &LocalStt, samples: &[i16]) -> String {
    let rate = SampleRate::Hz8000;
    let mut session = stt.start().await.expect("decoders start");
    let silence = vec![0; rate.samples_per_frame() * 25];
    for chunk in samples
        .chunks(rate.samples_per_frame())
        .chain(silence.chunks(rate.samples_per_frame()))
    {
        let mut frame = PcmFrame::silence(rate);
        frame.samples_mut()[..chunk.len()].copy_from_slice(chunk);
        session.send_frame(&frame, |_| {}).await.expect("queued");
    }
    crate::test_support::final_text(&mut session).await
}

async fn demo_recogniser() -> LocalStt {
    let config = LocalSttConfig {
        carry_line_mean: true,
        ..LocalSttConfig::default()
    };
    adapt(&config)
        .await
        .expect("the test script installs sphinxtrain and sphinxbase-utils");
    let table = freya_shared::model::RulesSpec::demo("record_booking", "operator");
    LocalStt::with_expected(config, ExpectedSpeech::of_rules(&table))
}

fn learned(stt: &LocalStt) -> Option<CepstralMean> {
    stt.line.lock().unwrap_or_else(|e| e.into_inner()).start()
}

#[tokio::test]
async fn a_calls_later_turns_start_from_the_mean_its_first_turn_learned() {
    let stt = demo_recogniser().await;
    let table = freya_shared::model::RulesSpec::demo("record_booking", "operator");
    let model = adapted_model(&LocalSttConfig::default().work_dir).expect("adapted");
    let starting = without_starting_mean(&model, &LocalSttConfig::default().work_dir)
        .expect("copied")
        .starting_mean
        .expect("the model's feat.params has a -cmninit");
    assert_eq!(
        learned(&stt),
        None,
        "nothing is known before the first turn"
    );

    let heard = stream_turn(&stt, &speak("Where are you located?").await).await;
    assert_eq!(
        table.matching(&heard).map(|r| r.intent.as_str()),
        Some("address"),
        "heard {heard:?}"
    );
    let after_first = learned(&stt).expect("the first turn taught the call its line's mean");
    // Zero-inserted telephone audio is far from the wideband speech the model starts from.
    let distance: f32 = after_first
        .0
        .iter()
        .zip(starting.0)
        .map(|(a, b)| (a - b).abs())
        .sum();
    assert!(distance > 10.0, "{after_first:?} against {starting:?}");

    // Another call knows nothing of this one's line.
    assert_eq!(learned(&stt.for_another_call()), None);

    let heard = stream_turn(&stt, &speak("Thank you, goodbye.").await).await;
    assert_eq!(
        table.matching(&heard).map(|r| r.intent.as_str()),
        Some("goodbye"),
        "heard {heard:?}"
    );
    assert_ne!(learned(&stt), Some(after_first), "the second turn moved it");
}

#[tokio::test]
async fn without_carrying_every_turn_starts_from_the_models_mean() {
    let stt = LocalStt::with_expected(
        LocalSttConfig::default(),
        ExpectedSpeech::of_rules(&freya_shared::model::RulesSpec::demo(
            "record_booking",
            "operator",
        )),
    );
    adapt(&LocalSttConfig::default()).await.expect("adapted");
    stream_turn(&stt, &speak("Where are you located?").await).await;
    assert_eq!(learned(&stt), None);
}

#[tokio::test]
async fn pocketsphinx_takes_the_mean_from_the_command_line_on_the_models_copy() {
    let config = LocalSttConfig::default();
    let model = adapt(&config).await.expect("adapted");
    let copy = without_starting_mean(&model, &config.work_dir).expect("copied");
    let mean = CepstralMean([
        55.5, -6.25, 9.75, -4.5, -4.75, -12.25, 1.75, -13.0, -21.5, -3.75, 5.75, 4.75, -10.25,
    ]);
    let audio = speak("Where are you located?").await;
    let mut bytes = Vec::with_capacity(audio.len() * 4);
    for s in audio {
        bytes.extend_from_slice(&s.saturating_mul(2).to_le_bytes());
        bytes.extend_from_slice(&0i16.to_le_bytes());
    }
    let logs: Vec<String> = [&copy.dir, &model]
        .into_iter()
        .map(|dir| {
            let mut child = Command::new("pocketsphinx_continuous")
                .args(["-infile", "/dev/stdin", "-samprate", "16000"])
                .arg("-hmm")
                .arg(dir)
                .arg("-cmninit")
                .arg(mean.argument())
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("the test script installs pocketsphinx");
            let mut stdin = child.stdin.take().expect("stdin");
            std::io::Write::write_all(&mut stdin, &bytes).expect("audio written");
            drop(stdin);
            let out = child.wait_with_output().expect("decoded");
            String::from_utf8_lossy(&out.stderr).into_owned()
        })
        .collect();
    let first_from = |log: &str| {
        log.lines()
            .find(|l| l.contains("Update from"))
            .map(|l| l.replace("Update from", "Update to"))
            .and_then(|l| CepstralMean::from_log_line(&l))
    };
    assert_eq!(
        first_from(&logs[0]),
        Some(mean),
        "the copy starts from -cmninit"
    );
    // The model itself overrides the command line with its feat.params: why the copy exists.
    assert_eq!(first_from(&logs[1]), copy.starting_mean);
}
