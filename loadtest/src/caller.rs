//! `freya call`: one real call from a terminal, with the project's own UAC — how a person tries an
//! agent without a softphone. Each `--say` turn is spoken with espeak-ng (or each `--wav` played)
//! once the agent's turn is over: after its greeting or answer, once it has been quiet for
//! `--agent-silence-ms` (a comma's pause is not the end of a turn). With `--barge-in` each turn
//! cuts into the agent's speech instead, to try interruptions. Each line is printed as the call
//! goes on (see `narrator`), the agent's transcribed turn by turn by the local recogniser
//! (pocketsphinx, rough) when it is installed. At the end the setup time, the time to the
//! agent's first audio and the latency of every turn are summed up, and the agent's side can be
//! saved with `--record`.

mod narrator;

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use freya_edge::speech::stt::local::{LocalStt, LocalSttConfig};
use freya_edge::speech::wav::encode_wav;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::audio::Utterance;
use crate::cli::parse_args;
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
    /// The agent's turn is over after this much silence from it (ms); only then do you speak.
    #[arg(long, default_value_t = 900, value_parser = clap::value_parser!(u64).range(100..=30_000))]
    agent_silence_ms: u64,
    /// Speak each turn over the agent on purpose, to try interrupting it.
    #[arg(long)]
    barge_in: bool,
    /// With --barge-in: cut in this long (ms) after the agent starts speaking.
    #[arg(long, default_value_t = 600, requires = "barge_in")]
    barge_in_after_ms: u64,
    /// The address our SIP and RTP sockets use.
    #[arg(long, default_value = "127.0.0.1")]
    local_ip: IpAddr,
}

/// Runs `freya call` with `args` (the first is the program name).
pub fn main_from(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args = match parse_args::<Args>(args) {
        Ok(parsed) => parsed,
        Err(code) => return code,
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

/// How long a greeting may take to begin before the caller speaks first.
const GREETING_WAIT: Duration = Duration::from_secs(3);

/// How long to wait for the agent to answer a turn before going on without an answer, and the
/// longest an answer may go on before the caller speaks over it: long enough for a real agent's
/// longest sentences (a 20-word answer takes 8 s in espeak-ng), short of waiting forever on one
/// that never stops.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// When the caller speaks: after the agent's greeting and each answer, once the agent has been
/// quiet for `--agent-silence-ms`, or `--barge-in-after-ms` into its speech with `--barge-in`.
fn talker_config(args: &Args) -> TalkerConfig {
    TalkerConfig {
        first_turn_after: GREETING_WAIT,
        reply_timeout: REPLY_TIMEOUT,
        // The agent's silence is the pause: the caller speaks as soon as it has run.
        pause_after_reply: Duration::ZERO,
        barge_in_after: args
            .barge_in
            .then(|| Duration::from_millis(args.barge_in_after_ms)),
        far_end_silence: Duration::from_millis(args.agent_silence_ms),
        await_greeting: true,
    }
}

/// What each turn prints as: the `--say` text quoted, then the `--wav` files.
fn turn_labels(args: &Args) -> Vec<String> {
    let says = args.says.iter().map(|text| format!("\"{text}\""));
    let wavs = args.wavs.iter().map(|wav| format!("({})", wav.display()));
    says.chain(wavs).collect()
}

/// The local recogniser for the agent's lines, or `None` (with a note on installing it).
fn local_recogniser() -> Option<Arc<LocalStt>> {
    let stt = LocalStt::new(LocalSttConfig::default());
    match stt.check_installed() {
        Ok(()) => Some(Arc::new(stt)),
        Err(e) => {
            println!(
                "note: no local recogniser ({e}), so the agent's lines are printed without their \
                 text; to install it: sudo apt-get install pocketsphinx pocketsphinx-en-us"
            );
            None
        }
    }
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
    let talker = talker_config(&args);
    let talking: Duration = turns
        .iter()
        .map(|t| t.duration() + talker.reply_timeout + talker.far_end_silence)
        .sum();
    let heard = Arc::new(Mutex::new(Vec::new()));
    // Room for many turns' events; the call drops events rather than wait for this terminal.
    let (events, turn_events) = mpsc::channel(256);
    let config = CallConfig {
        target,
        number: number.clone(),
        caller: "freya-call".into(),
        codec: args.codec.codec(),
        media_ip: args.local_ip,
        hold: GREETING_WAIT
            + talker.far_end_silence
            + talking
            + Duration::from_secs(args.linger_seconds),
        hangup: HangupSide::Caller,
        callee_grace: Duration::from_secs(2),
        setup_timeout: Duration::from_secs(10),
        bye_timeout: Duration::from_secs(3),
        turns: Arc::from(turns),
        talker,
        onset: OnsetConfig::default(),
        late_after: Duration::from_millis(60),
        received_audio: Some(heard.clone()),
        conversation_events: Some(events),
        media: MediaOptions {
            dtmf,
            ..MediaOptions::default()
        },
    };
    let cancel = CancellationToken::new();
    let endpoint = SipEndpoint::bind(SocketAddr::new(args.local_ip, 0), cancel.clone())
        .await
        .context("while binding the SIP socket")?;
    let recogniser = local_recogniser();
    println!("calling {number} at {target} ...");
    let narration = tokio::spawn(narrator::narrate(
        turn_events,
        heard.clone(),
        turn_labels(&args),
        recogniser,
    ));
    let report = place_call(&endpoint, &config, &cancel).await;
    cancel.cancel();
    // The narration ends when the last sender is gone: the call's went with it, this is the last.
    drop(config);
    narration.await.context("while printing the conversation")?;
    print_report(&report, &args.says);
    if let Some(path) = &args.record {
        let audio = heard.lock().map(|h| h.clone()).unwrap_or_default();
        std::fs::write(path, encode_wav(8_000, &audio))
            .with_context(|| format!("while writing --record {}", path.display()))?;
        println!("agent audio saved to {}", path.display());
    }
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
    for (n, reaction) in report.barge_in_ms.iter().enumerate() {
        println!(
            "interruption {}: the agent went quiet {reaction:.0} ms after you cut in",
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
    if report.hung_up_by == Some(HangupSide::Callee) {
        println!("the agent hung up");
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

    fn args(extra: &[&str]) -> Result<Args, clap::Error> {
        let fixed = [
            "freya call",
            "sip:demo@127.0.0.1:5060",
            "--say",
            "Hello, hi",
        ];
        Args::try_parse_from(fixed.iter().chain(extra))
    }

    #[test]
    fn the_caller_waits_for_the_greeting_and_900_ms_of_agent_silence_by_default() {
        let config = talker_config(&args(&[]).expect("args"));
        assert!(config.await_greeting);
        assert_eq!(config.far_end_silence, Duration::from_millis(900));
        assert_eq!(config.pause_after_reply, Duration::ZERO);
        assert_eq!(config.barge_in_after, None);
        let config = talker_config(&args(&["--agent-silence-ms", "1500"]).expect("args"));
        assert_eq!(config.far_end_silence, Duration::from_millis(1500));
        assert!(
            args(&["--agent-silence-ms", "0"]).is_err(),
            "no silence is no turn"
        );
    }

    #[test]
    fn barge_in_cuts_in_600_ms_into_the_agents_speech_unless_told_otherwise() {
        let config = talker_config(&args(&["--barge-in"]).expect("args"));
        assert_eq!(config.barge_in_after, Some(Duration::from_millis(600)));
        let config =
            talker_config(&args(&["--barge-in", "--barge-in-after-ms", "250"]).expect("args"));
        assert_eq!(config.barge_in_after, Some(Duration::from_millis(250)));
        let error = args(&["--barge-in-after-ms", "250"]).expect_err("needs --barge-in");
        assert!(error.to_string().contains("--barge-in"), "{error}");
    }

    #[test]
    fn help_lists_the_turn_taking_flags() {
        use clap::CommandFactory;
        let help = Args::command().render_long_help().to_string();
        for flag in ["--agent-silence-ms", "--barge-in", "--barge-in-after-ms"] {
            let listed = help
                .lines()
                .any(|line| line.split_whitespace().next() == Some(flag));
            assert!(listed, "{flag} missing from:\n{help}");
        }
    }

    #[test]
    fn turns_print_as_the_said_text_then_the_wav_files() {
        let args = args(&["--wav", "bye.wav"]).expect("args");
        assert_eq!(turn_labels(&args), ["\"Hello, hi\"", "(bye.wav)"]);
    }
}
