//! Zero-latency fake AI providers for benchmarks: an OpenAI-compatible speech server (STT and TTS)
//! and Chat Completions server on 127.0.0.1, speaking the real wire protocols, so a load test
//! measures the edge rather than a cloud. Prints the agent settings that point at them, then
//! serves until Ctrl-C.
//!
//! `cargo run --release -p freya-loadtest --example fake_providers [-- OPTIONS]`
//!
//! - `--llm-reply TEXT`: what the model answers every turn (default
//!   `Certainly. What time would you like?`);
//! - `--llm-pause-after-first-sentence-ms N`: the model's stream goes quiet for N ms after the
//!   token that ends the reply's first sentence, then goes on (the sentence-flush figure).

use std::time::Duration;

use freya_edge::llm::fakes::{FakeLlmServer, FakeReply};
use freya_edge::speech::fakes::FakeOpenAiSpeech;

/// One second of a vowel-like tone at 24 kHz: what the fake TTS "says" for every sentence.
fn spoken_second() -> Vec<i16> {
    (0..24_000)
        .map(|i| {
            let t = f64::from(i) / 24_000.0;
            let v = (2.0 * std::f64::consts::PI * 180.0 * t).sin() * 0.5
                + (2.0 * std::f64::consts::PI * 360.0 * t).sin() * 0.25;
            (v * 8_000.0) as i16
        })
        .collect()
}

/// The model's script, from the command line.
struct Script {
    reply: String,
    pause: Option<Duration>,
}

fn script() -> Result<Script, String> {
    let mut script = Script {
        reply: "Certainly. What time would you like?".to_owned(),
        pause: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--llm-reply" => script.reply = value,
            "--llm-pause-after-first-sentence-ms" => {
                let ms: u64 = value
                    .parse()
                    .map_err(|_| format!("{flag}: `{value}` is not a number of milliseconds"))?;
                script.pause = Some(Duration::from_millis(ms));
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(script)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let script = script().map_err(std::io::Error::other)?;
    let speech = FakeOpenAiSpeech::start().await?;
    speech.set_default_transcript("I would like to book a table for two.");
    speech.set_speech_audio(spoken_second());
    let llm = FakeLlmServer::openai().await?;
    llm.respond_with(move |_| {
        let reply = FakeReply::text(&script.reply);
        match script.pause {
            Some(pause) => reply.with_pause_after_first_sentence(pause),
            None => reply,
        }
    });
    let provider = |base_url: String| serde_json::json!({"provider": "openai", "base_url": base_url, "api_key": "fake"});
    let agent_patch = serde_json::json!({
        "stt": provider(speech.base_url()),
        "llm": provider(llm.base_url()),
        "tts": provider(speech.base_url()),
    });
    println!("{agent_patch}");
    tokio::signal::ctrl_c().await?;
    Ok(())
}
