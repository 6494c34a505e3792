//! `freya call`: one real call from a terminal, with the project's own UAC — how a person tries an
//! agent without a softphone. Each `--say` turn is spoken with espeak-ng (or each `--wav` played)
//! once the agent has finished its turn; at the end the setup time, the time to the agent's first
//! audio and the voice-to-voice latency of every turn are printed, the agent's side can be saved
//! with `--record`, and it is transcribed locally (pocketsphinx, rough) when that is installed.

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use freya_edge::media::frame::SampleRate;
use freya_edge::speech::stt::local::{LocalStt, LocalSttConfig};
use freya_edge::speech::wav::encode_wav;
use freya_edge::speech::SpeechToText;
use tokio_util::sync::CancellationToken;

use crate::audio::Utterance;
use crate::onset::OnsetConfig;
use crate::uac::{
    place_call, CallConfig, CallReport, HangupSide, MediaOptions, SipEndpoint, TalkerConfig,
};

/// Call an agent and talk to it.
#[derive(Debug, Parser)]
#[command(name = "freya call")]
struct Args {
    /// Who to call, e.g. `sip:demo@127.0.0.1:5060`.
    uri: String,
    /// Say this (spoken by espeak-ng) after the agent's turn; repeat for more turns.
    #[arg(long = "say")]
    says: Vec<String>,
    /// Play this WAV file as a turn (after the `--say` turns).
    #[arg(long = "wav")]
    wavs: Vec<PathBuf>,
    /// Press keys as RFC 4733 events, `DIGITS@SECONDS` after the answer (e.g. `12#@3`; plain
    /// `123` presses them one second after the answer).
    #[arg(long)]
    dtmf: Vec<String>,
    /// The codec to offer.
    #[arg(long, value_enum, default_value = "pcmu")]
    codec: crate::scenario::CodecChoice,
    /// Save what the agent said (8 kHz mono WAV).
    #[arg(long)]
    record: Option<PathBuf>,
    /// Stay on the line this long after the last turn, to hear the answer.
    #[arg(long, default_value_t = 6)]
    linger_seconds: u64,
    /// The address our SIP and RTP sockets use.
    #[arg(long, default_value = "127.0.0.1")]
    local_ip: IpAddr,
}

/// Runs `freya call` with `args` (the first is the program name).
pub fn main_from(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args = match Args::try_parse_from(args) {
        Ok(args) => args,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let outcome = tokio::runtime::Runtime::new()
        .context("while starting the runtime")
        .and_then(|rt| rt.block_on(call(args)));
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The number and address in `sip:NUMBER@HOST[:PORT]`.
fn parse_uri(uri: &str) -> anyhow::Result<(String, SocketAddr)> {
    let rest = uri
        .strip_prefix("sip:")
        .with_context(|| format!("`{uri}` is not a sip: URI (sip:NUMBER@HOST:PORT)"))?;
    let (number, host) = rest
        .split_once('@')
        .with_context(|| format!("`{uri}` names no number (sip:NUMBER@HOST:PORT)"))?;
    let host = host.split(';').next().unwrap_or(host);
    let with_port = if host
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        host.to_owned()
    } else {
        format!("{host}:5060")
    };
    let addr = with_port
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve `{host}`"))?
        .next()
        .with_context(|| format!("`{host}` has no address"))?;
    if number.is_empty() {
        bail!("`{uri}` names no number");
    }
    Ok((number.to_owned(), addr))
}

async fn call(args: Args) -> anyhow::Result<bool> {
    let dtmf =
        crate::dtmf_spec::parse_all(&args.dtmf).map_err(|e| anyhow::anyhow!("--dtmf: {e}"))?;
    let (number, target) = parse_uri(&args.uri)?;
    let mut turns = Vec::new();
    for text in &args.says {
        turns.push(Utterance::from_spec(&format!("say:{text}")).context("--say (espeak-ng)")?);
    }
    for wav in &args.wavs {
        turns.push(Utterance::from_spec(&format!("wav:{}", wav.display())).context("--wav")?);
    }
    let reply_timeout = Duration::from_secs(8);
    let talking: Duration = turns.iter().map(|t| t.duration() + reply_timeout).sum();
    let heard = Arc::new(Mutex::new(Vec::new()));
    let config = CallConfig {
        target,
        number: number.clone(),
        caller: "freya-call".into(),
        codec: args.codec.codec(),
        media_ip: args.local_ip,
        hold: Duration::from_secs(3) + talking + Duration::from_secs(args.linger_seconds),
        hangup: HangupSide::Caller,
        callee_grace: Duration::from_secs(2),
        setup_timeout: Duration::from_secs(10),
        bye_timeout: Duration::from_secs(3),
        turns: Arc::from(turns),
        talker: TalkerConfig {
            first_turn_after: Duration::from_millis(500),
            reply_timeout,
            pause_after_reply: Duration::from_millis(300),
            barge_in_after: None,
        },
        onset: OnsetConfig::default(),
        late_after: Duration::from_millis(60),
        received_audio: Some(heard.clone()),
        media: MediaOptions {
            dtmf,
            ..MediaOptions::default()
        },
    };
    let cancel = CancellationToken::new();
    let endpoint = SipEndpoint::bind(SocketAddr::new(args.local_ip, 0), cancel.clone())
        .await
        .context("while binding the SIP socket")?;
    println!("calling {number} at {target} ...");
    let report = place_call(&endpoint, &config, &cancel).await;
    cancel.cancel();
    print_report(&report, &args.says);
    let audio = heard.lock().map(|h| h.clone()).unwrap_or_default();
    if let Some(path) = &args.record {
        std::fs::write(path, encode_wav(8_000, &audio))
            .with_context(|| format!("while writing --record {}", path.display()))?;
        println!("agent audio saved to {}", path.display());
    }
    transcribe(&audio).await;
    Ok(report.failure.is_none())
}

fn print_report(report: &CallReport, says: &[String]) {
    if let Some(failure) = &report.failure {
        println!("call failed: {failure}");
    }
    let ms = |v: Option<f64>| v.map_or("-".to_owned(), |v| format!("{v:.0} ms"));
    println!("answered after {}", ms(report.setup_ms));
    println!(
        "agent first spoke {} after the answer",
        ms(report.first_audio_ms)
    );
    for (n, v2v) in report.v2v_ms.iter().enumerate() {
        let said = says.get(n).map(String::as_str).unwrap_or("(audio)");
        println!(
            "turn {}: you said \"{said}\"; the agent answered {v2v:.0} ms after you stopped",
            n + 1
        );
    }
    if report.v2v_ms.len() < report.turns_spoken as usize {
        println!(
            "{} of {} turns got no answer within the wait",
            report.turns_spoken as usize - report.v2v_ms.len(),
            report.turns_spoken
        );
    }
    println!(
        "RTP: sent {}, received {}, lost {}, jitter {:.1} ms",
        report.rtp_sent, report.rtp.received, report.rtp.lost, report.rtp.jitter_ms
    );
}

/// Prints a local transcription of the agent's side, when pocketsphinx is installed.
async fn transcribe(audio: &[i16]) {
    let stt = LocalStt::new(LocalSttConfig::default());
    if let Err(e) = stt.check_installed() {
        println!("(no local transcription of the agent: {e})");
        return;
    }
    let loud = audio.iter().any(|s| s.unsigned_abs() > 500);
    if !loud {
        println!("the agent said nothing audible");
        return;
    }
    match stt.transcribe(SampleRate::Hz8000, audio).await {
        Ok(t) => println!("agent (transcribed locally, rough): {}", t.text),
        Err(e) => println!("(local transcription failed: {e})"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn sip_uris_give_the_number_and_address() {
        let (number, addr) = parse_uri("sip:demo@127.0.0.1:5070").expect("uri");
        assert_eq!((number.as_str(), addr.port()), ("demo", 5070));
        let (_, addr) = parse_uri("sip:+4712345678@127.0.0.1").expect("uri");
        assert_eq!(addr, SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 5060));
        assert!(parse_uri("tel:+47").is_err());
        assert!(parse_uri("sip:@127.0.0.1").is_err());
        assert!(parse_uri("sip:127.0.0.1").is_err());
    }
}
