//! Tests of the speech providers: every network client against its fake on 127.0.0.1
//! ([`clients`]), and the offline engines with the real espeak-ng and pocketsphinx programs,
//! feeding the VAD and turn detector real speech ([`offline`]).

mod clients;
mod offline;

use futures::StreamExt;

use crate::media::frame::{PcmFrame, SampleRate};
use crate::speech::{AudioStream, SpeechError};

/// Drains a TTS stream into one buffer, checking every chunk has the same rate.
async fn collect(mut stream: AudioStream) -> Result<(SampleRate, Vec<i16>, usize), SpeechError> {
    let mut rate = None;
    let mut samples = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        assert!(
            rate.is_none_or(|r| r == chunk.rate),
            "rate changed mid-stream"
        );
        rate = Some(chunk.rate);
        samples.extend_from_slice(&chunk.samples);
        chunks += 1;
    }
    Ok((rate.unwrap_or(SampleRate::Hz8000), samples, chunks))
}

/// Cuts audio into whole 20 ms frames (the tail is dropped).
fn frames(rate: SampleRate, samples: &[i16]) -> Vec<PcmFrame> {
    samples
        .chunks_exact(rate.samples_per_frame())
        .map(|c| PcmFrame::from_samples(rate, c).unwrap())
        .collect()
}

fn rms(samples: &[i16]) -> f64 {
    let sum: f64 = samples.iter().map(|&s| f64::from(s).powi(2)).sum();
    (sum / samples.len().max(1) as f64).sqrt()
}

/// The call task holds providers as trait objects and moves sessions and detectors across
/// threads; this fails to compile if any of that stops being possible.
#[test]
fn providers_are_object_safe_and_call_state_is_send() {
    use std::sync::Arc;

    use crate::media::vad::VoiceActivityDetector;
    use crate::speech::stt::{DeepgramConfig, DeepgramStt, LocalStt, LocalSttConfig};
    use crate::speech::tts::{EspeakConfig, EspeakTts};
    use crate::speech::{SpeechToText, StreamingSpeechToText, SttSession, TextToSpeech};

    fn send<T: Send>() {}
    send::<VoiceActivityDetector>();
    send::<SttSession>();
    send::<AudioStream>();
    let stt: Arc<dyn SpeechToText> = Arc::new(LocalStt::new(LocalSttConfig::default()));
    let live: Arc<dyn StreamingSpeechToText> =
        Arc::new(DeepgramStt::new(DeepgramConfig::default()));
    let tts: Arc<dyn TextToSpeech> = Arc::new(EspeakTts::new(EspeakConfig::default()));
    assert_eq!(
        (stt.name(), live.name(), tts.name()),
        ("local", "deepgram", "espeak")
    );
}
