//! How well the demo agent understands callers offline: every utterance of a corpus made by
//! `loadtest/corpus/make_intent_corpus.sh` goes through the real offline recogniser (the demo's
//! `rules` phrases as its grammar, streamed frame by frame as a call streams it, followed by the
//! turn's closing silence), and the demo's rules pick the intent, as on a call.
//!
//! The corpus has no calls, so the tool makes them: **a voice's utterances, in the index's
//! order, are one call** (the same recogniser value for each of its turns, as an edge uses one
//! per call, so later turns start from the cepstral mean its earlier turns learned). The
//! voice's utterances differ in speed, band and noise, so these calls change their line more
//! than a real one does. The tool turns on `LocalSttConfig::carry_line_mean` (off by default):
//! `--fresh-mean` measures the same calls with every turn starting from the model's mean, and
//! `--turns-alone` makes every utterance a call of its own.
//!
//! Prints each utterance with what was heard, the intent accuracy over the demo's intents, how
//! much speech outside them was acted on, and the time from the end of the turn to the
//! transcript (`--pace`: frames are sent in real time, as a caller speaks, so this is what a
//! caller waits for).
//!
//! ```sh
//! loadtest/corpus/make_intent_corpus.sh /tmp/corpus
//! cargo run --release -p freya-loadtest --example intent_accuracy -- /tmp/corpus --pace
//! ```
//!
//! Any corpus the script makes is measured the same way, e.g. the held-out sentences
//! (`make_intent_corpus.sh --sentences loadtest/corpus/intents_heldout.tsv OUT_DIR`).
//!
//! The recogniser is first adapted to the telephone channel as an edge does at its start
//! (`--stock` measures the unadapted model instead).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use freya_edge::media::frame::{PcmFrame, SampleRate};
use freya_edge::speech::stt::local::adapt::adapt;
use freya_edge::speech::stt::{LocalStt, LocalSttConfig};
use freya_edge::speech::wav::decode_wav;
use freya_edge::speech::{StreamingSpeechToText, SttEvent};
use freya_shared::model::RulesSpec;

/// Silence after the last word before the turn ends (the agents' default).
const END_OF_TURN_SILENCE: Duration = Duration::from_millis(500);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // RUST_LOG=freya_edge=debug shows both decodings of each turn.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mut args = std::env::args().skip(1);
    let dir = PathBuf::from(
        args.next()
            .context("usage: intent_accuracy CORPUS_DIR [--pace]")?,
    );
    let flags: Vec<String> = args.collect();
    let pace = flags.iter().any(|a| a == "--pace");
    let stock = flags.iter().any(|a| a == "--stock");
    let turns_alone = flags.iter().any(|a| a == "--turns-alone");
    let index = std::fs::read_to_string(dir.join("index.tsv"))
        .with_context(|| format!("while reading {}/index.tsv", dir.display()))?;
    let table = RulesSpec::demo("record_booking", "operator");
    // The machine's recogniser cache, adapted first; `--stock`: a fresh one, never adapted.
    let fresh = tempfile::tempdir()?;
    let mut config = LocalSttConfig {
        carry_line_mean: !turns_alone && !flags.iter().any(|a| a == "--fresh-mean"),
        ..LocalSttConfig::default()
    };
    if stock {
        config.work_dir = fresh.path().to_path_buf();
    } else {
        let started = Instant::now();
        let model = adapt(&config).await?;
        println!(
            "adapted model {} ({} ms)",
            model.display(),
            started.elapsed().as_millis()
        );
    }
    let config_carries = config.carry_line_mean;
    let stt = LocalStt::with_expected(
        config,
        freya_edge::speech::stt::local::ExpectedSpeech::of_rules(&table),
    );
    stt.check_installed()?;
    let (mut right, mut total, mut acted_on, mut outside) = (0, 0, 0, 0);
    // Right answers / intents among the calls' first turns and among later ones.
    let (mut first, mut later) = ((0, 0), (0, 0));
    let mut finalize = Vec::new();
    let mut lines = Vec::new();
    for line in index.lines().skip(1) {
        let fields: Vec<&str> = line.split('\t').collect();
        let [file, intent, voice, speed, noise, band, text] = fields[..] else {
            bail!("bad index line: {line}");
        };
        lines.push([file, intent, voice, speed, noise, band, text]);
    }
    // Calls: a voice's utterances in the index's order (or each alone), voices in the order
    // they first appear.
    let mut calls: Vec<Vec<[&str; 7]>> = Vec::new();
    for fields in lines {
        match calls
            .iter_mut()
            .find(|c| !turns_alone && c[0][2] == fields[2])
        {
            Some(call) => call.push(fields),
            None => calls.push(vec![fields]),
        }
    }
    let turns = calls.into_iter().flat_map(|call| {
        let stt = stt.for_another_call();
        call.into_iter()
            .enumerate()
            .map(move |(n, fields)| (stt.clone(), n, fields))
    });
    for (stt, n, [file, intent, voice, speed, noise, band, text]) in turns {
        let wav = decode_wav(&std::fs::read(dir.join(file))?)
            .with_context(|| format!("while decoding {file}"))?;
        if wav.sample_rate != 8000 {
            bail!("{file}: expected 8 kHz telephone audio");
        }
        let (heard, waited) = stream_turn(&stt, &wav.samples, pace).await?;
        let turn = if n == 0 { &mut first } else { &mut later };
        finalize.push(waited);
        let rule = table.matching(&heard);
        let got = rule.map_or("none", |r| r.intent.as_str());
        let ok = if intent == "none" {
            outside += 1;
            let acts = rule.is_some_and(|r| r.action.is_some());
            acted_on += usize::from(acts);
            !acts
        } else {
            total += 1;
            right += usize::from(got == intent);
            turn.0 += usize::from(got == intent);
            turn.1 += 1;
            got == intent
        };
        println!(
            "{} {file} turn {} {intent:>8} -> {got:<8} {voice:<15} {speed} {noise:<10} {band:<8} {text:?} heard {heard:?} ({} ms)",
            if ok { "ok  " } else { "MISS" },
            n + 1,
            waited.as_millis()
        );
    }
    finalize.sort();
    let at = |q: f64| finalize[((finalize.len() - 1) as f64 * q).round() as usize];
    println!();
    println!(
        "intent accuracy: {right}/{total} = {:.1} %",
        100.0 * right as f64 / total.max(1) as f64
    );
    println!(
        "calls' first turns: {}/{}, later turns: {}/{} ({})",
        first.0,
        first.1,
        later.0,
        later.1,
        if turns_alone {
            "--turns-alone: every utterance a call"
        } else if config_carries {
            "a voice's utterances are one call, the line's mean carried"
        } else {
            "a voice's utterances are one call, every turn from the model's mean"
        }
    );
    println!("speech outside the intents acted on: {acted_on}/{outside}");
    println!(
        "end of turn to transcript ({}): p50 {} ms, p95 {} ms, max {} ms",
        if pace {
            "paced in real time"
        } else {
            "unpaced"
        },
        at(0.5).as_millis(),
        at(0.95).as_millis(),
        at(1.0).as_millis()
    );
    Ok(())
}

/// Streams one turn and its closing silence through a session; returns what was heard and how
/// long the transcript took after the last frame.
async fn stream_turn(
    stt: &LocalStt,
    samples: &[i16],
    pace: bool,
) -> anyhow::Result<(String, Duration)> {
    let rate = SampleRate::Hz8000;
    let per_frame = rate.samples_per_frame();
    let silence = vec![0i16; per_frame * (END_OF_TURN_SILENCE.as_millis() as usize / 20)];
    let mut session = stt.start().await?;
    let started = Instant::now();
    for (i, chunk) in samples
        .chunks(per_frame)
        .chain(silence.chunks(per_frame))
        .enumerate()
    {
        let mut frame = PcmFrame::silence(rate);
        frame.samples_mut()[..chunk.len()].copy_from_slice(chunk);
        session.send_frame(&frame, |_| {}).await?;
        if pace {
            tokio::time::sleep_until((started + Duration::from_millis(20 * (i as u64 + 1))).into())
                .await;
        }
    }
    let ended = Instant::now();
    session.finish().await?;
    let mut heard = String::new();
    while let Some(event) = session.next_event().await {
        if let SttEvent::Final { text, .. } = event? {
            heard = text;
        }
    }
    Ok((heard, ended.elapsed()))
}
