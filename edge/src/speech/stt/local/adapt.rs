//! Adapting the US-English acoustic model to the telephone channel, once per machine. The stock
//! model was trained on wideband recordings of people; what reaches it here is 8 kHz G.711 audio
//! (widened as [`super::audio`] explains), very often from a synthetic voice (`freya call`, load
//! tests). On the demo's corpus the stock model understood about two requests in three; after a
//! MAP adaptation on a hundred sentences espeak-ng reads over the same channel — sentences that
//! ask nothing of an agent (`adaptation.txt`) — it understood nine in ten
//! (`loadtest/BENCHMARKS.md`, which also says which voices it was and was not adapted to).
//!
//! The recipe is CMU Sphinx's own ("Adapting the default acoustic model"): speak and record the
//! sentences through the same path a call's audio takes, compute features with `sphinx_fe`
//! (package `sphinxbase-utils`), collect statistics with `bw` and re-estimate the model with
//! `map_adapt` (package `sphinxtrain`). It takes about half a minute of CPU, runs in the
//! background at the edge's start, and is written once per machine under the recogniser's work
//! directory; until it is there (or where those packages are missing) the stock model is used.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures::StreamExt;

use super::audio::RecogniserInput;
use super::sendump::parse_sendump;
use super::LocalSttConfig;
use crate::media::frame::SampleRate;
use crate::media::g711::{decode_ulaw, encode_ulaw};
use crate::speech::tts::{EspeakConfig, EspeakTts};
use crate::speech::wav::encode_wav;
use crate::speech::{SpeechError, TextToSpeech};

/// Name of the adapted model's directory; a new recipe gets a new name.
pub const ADAPTED_MODEL_DIR: &str = "en-us-telephone-v2";
/// Marks a finished model: written last.
const COMPLETE: &str = "complete";
/// Debian package with `bw` and `map_adapt`.
pub const TRAIN_PACKAGE: &str = "sphinxtrain";
/// Where `sphinxtrain` installs its programs.
pub const TRAIN_DIR: &str = "/usr/lib/sphinxtrain";
/// Debian package with `sphinx_fe`.
pub const FEATURES_PACKAGE: &str = "sphinxbase-utils";
/// The sentences read for adaptation.
const SENTENCES: &str = include_str!("adaptation.txt");
/// Voices and speeds the sentences are read in, in turn.
const VOICES: &[&str] = &[
    "en-us",
    "en-gb",
    "en-us+f3",
    "en-gb-scotland",
    "en-us+m3",
    "en-029",
    "en-gb-x-rp",
    "en-us+f2",
    "en-us+m1",
    "en-gb+f4",
];
const SPEEDS: &[u16] = &[145, 165, 185, 155, 175];
/// Readings of each sentence, in different voices and speeds.
const TAKES: usize = 3;

/// The adapted model under `work_dir`, if it has been made.
pub fn adapted_model(work_dir: &Path) -> Option<PathBuf> {
    let dir = work_dir.join(ADAPTED_MODEL_DIR);
    dir.join(COMPLETE).is_file().then_some(dir)
}

/// The adaptation tools, or the package to install for the first one missing.
pub fn check_tools() -> Result<(), SpeechError> {
    let train = Path::new(TRAIN_DIR);
    for (path, package) in [
        (train.join("bw"), TRAIN_PACKAGE),
        (train.join("map_adapt"), TRAIN_PACKAGE),
        (PathBuf::from("/usr/bin/sphinx_fe"), FEATURES_PACKAGE),
    ] {
        if !path.is_file() {
            return Err(SpeechError::MissingPackage {
                program: path.display().to_string(),
                package,
            });
        }
    }
    Ok(())
}

/// How long another process's adaptation is waited for before its lock is taken as stale.
const LOCK_STALE_AFTER: Duration = Duration::from_secs(600);

/// Makes the adapted model under `config.work_dir` unless it is there already; returns its
/// directory. One process adapts at a time (a lock file beside the model); the others wait for
/// its result.
pub async fn adapt(config: &LocalSttConfig) -> Result<PathBuf, SpeechError> {
    check_tools()?;
    std::fs::create_dir_all(&config.work_dir).map_err(|e| io_error(&config.work_dir, e))?;
    let lock = config.work_dir.join(format!("{ADAPTED_MODEL_DIR}.lock"));
    loop {
        if let Some(done) = adapted_model(&config.work_dir) {
            return Ok(done);
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&lock)
        {
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                let age = std::fs::metadata(&lock)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .unwrap_or_default();
                if age > LOCK_STALE_AFTER {
                    let _ = std::fs::remove_file(&lock);
                } else {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
            Err(e) => return Err(io_error(&lock, e)),
        }
    }
    let made = adapt_locked(config).await;
    let _ = std::fs::remove_file(&lock);
    made
}

/// The adaptation itself, with the lock held.
async fn adapt_locked(config: &LocalSttConfig) -> Result<PathBuf, SpeechError> {
    if let Some(done) = adapted_model(&config.work_dir) {
        return Ok(done);
    }
    let staging = config.work_dir.join(format!(
        "{ADAPTED_MODEL_DIR}.{}.partial",
        std::process::id()
    ));
    let result = adapt_into(config, &staging).await;
    let finished = match result {
        Ok(()) => {
            let dir = config.work_dir.join(ADAPTED_MODEL_DIR);
            let model = staging.join("model");
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::rename(&model, &dir).map_err(|e| io_error(&dir, e))?;
            Ok(dir)
        }
        Err(e) => Err(e),
    };
    let _ = std::fs::remove_dir_all(&staging);
    finished
}

fn io_error(path: &Path, e: std::io::Error) -> SpeechError {
    SpeechError::Config {
        field: "local recogniser work directory",
        detail: format!("{}: {e}", path.display()),
    }
}

/// Records the sentences, collects statistics and writes the adapted model to `staging/model`.
async fn adapt_into(config: &LocalSttConfig, staging: &Path) -> Result<(), SpeechError> {
    let model = staging.join("model");
    std::fs::create_dir_all(&model).map_err(|e| io_error(&model, e))?;
    let stock = &config.acoustic_model;
    let (fileids, transcription) = record_sentences(staging).await?;
    write(staging, "fileids", fileids.as_bytes())?;
    write(staging, "transcription", transcription.as_bytes())?;
    let sendump = std::fs::read(stock.join("sendump")).map_err(|e| io_error(stock, e))?;
    let weights = parse_sendump(&sendump).map_err(|e| SpeechError::Process {
        program: "sendump".into(),
        detail: e.to_string(),
    })?;
    write(staging, "mixture_weights", &weights.to_s3())?;
    let s = |p: &Path| p.display().to_string();
    run(
        "pocketsphinx_mdef_convert",
        &[
            "-text",
            &s(&stock.join("mdef")),
            &s(&staging.join("mdef.txt")),
        ],
    )
    .await?;
    run(
        "sphinx_fe",
        &[
            "-argfile",
            &s(&stock.join("feat.params")),
            "-samprate",
            "16000",
            "-c",
            &s(&staging.join("fileids")),
            "-di",
            &s(staging),
            "-do",
            &s(staging),
            "-ei",
            "wav",
            "-eo",
            "mfc",
            "-mswav",
            "yes",
        ],
    )
    .await?;
    let train = Path::new(TRAIN_DIR);
    let (means, variances) = (s(&stock.join("means")), s(&stock.join("variances")));
    let transitions = s(&stock.join("transition_matrices"));
    let (mixw, mdef) = (
        s(&staging.join("mixture_weights")),
        s(&staging.join("mdef.txt")),
    );
    // The model both steps start from, and where the counts go between them.
    let stock_model: [&str; 14] = [
        "-moddeffn",
        &mdef,
        "-ts2cbfn",
        ".ptm.",
        "-meanfn",
        &means,
        "-varfn",
        &variances,
        "-mixwfn",
        &mixw,
        "-tmatfn",
        &transitions,
        "-accumdir",
        &s(staging),
    ];
    let bw: [&str; 18] = [
        "-feat",
        "1s_c_d_dd",
        "-svspec",
        "0-12/13-25/26-38",
        "-cmn",
        "current",
        "-agc",
        "none",
        "-dictfn",
        &s(&config.dictionary),
        "-fdictfn",
        &s(&stock.join("noisedict")),
        "-ctlfn",
        &s(&staging.join("fileids")),
        "-lsnfn",
        &s(&staging.join("transcription")),
        "-cepdir",
        &s(staging),
    ];
    run(&s(&train.join("bw")), &[&stock_model[..], &bw].concat()).await?;
    let map_adapt: [&str; 8] = [
        "-mapmeanfn",
        &s(&model.join("means")),
        "-mapvarfn",
        &s(&model.join("variances")),
        "-mapmixwfn",
        &s(&model.join("mixture_weights")),
        "-maptmatfn",
        &s(&model.join("transition_matrices")),
    ];
    run(
        &s(&train.join("map_adapt")),
        &[&stock_model[..], &map_adapt].concat(),
    )
    .await?;
    for file in ["mdef", "feat.params", "noisedict"] {
        std::fs::copy(stock.join(file), model.join(file)).map_err(|e| io_error(&model, e))?;
    }
    write(
        &model,
        COMPLETE,
        b"adapted to the telephone channel by freya\n",
    )
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), SpeechError> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).map_err(|e| io_error(&path, e))
}

/// Speaks every sentence in two voices through the call path (8 kHz, G.711 µ-law, widened to
/// 16 kHz); returns the `fileids` and `transcription` listings.
async fn record_sentences(staging: &Path) -> Result<(String, String), SpeechError> {
    let (mut fileids, mut transcription) = (String::new(), String::new());
    let sentences = SENTENCES
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty());
    for (i, sentence) in sentences.enumerate() {
        for take in 0..TAKES {
            let n = i * TAKES + take;
            let tts = EspeakTts::new(EspeakConfig {
                voice: VOICES[n % VOICES.len()].into(),
                words_per_minute: SPEEDS[(i + take) % SPEEDS.len()],
                sample_rate: SampleRate::Hz8000,
                ..EspeakConfig::default()
            });
            let mut speech = Vec::new();
            let mut stream = tts.synthesize(sentence);
            while let Some(chunk) = stream.next().await {
                speech.extend_from_slice(&chunk?.samples);
            }
            let mut coded = vec![0u8; speech.len()];
            encode_ulaw(&speech, &mut coded);
            decode_ulaw(&coded, &mut speech);
            let mut bytes = Vec::with_capacity(speech.len() * 4);
            RecogniserInput::default().push(SampleRate::Hz8000, &speech, &mut bytes);
            let wide: Vec<i16> = bytes
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect();
            let name = format!("a{n:03}");
            write(staging, &format!("{name}.wav"), &encode_wav(16_000, &wide))?;
            fileids.push_str(&name);
            fileids.push('\n');
            transcription.push_str(&format!("<s> {sentence} </s> ({name})\n"));
        }
    }
    Ok((fileids, transcription))
}

/// Runs one tool to completion, naming it and the end of its output when it fails.
async fn run(program: &str, args: &[&str]) -> Result<(), SpeechError> {
    let output = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| SpeechError::Process {
            program: program.into(),
            detail: e.to_string(),
        })?;
    if output.status.success() {
        return Ok(());
    }
    let log = String::from_utf8_lossy(&output.stderr);
    let tail: String = log
        .lines()
        .rev()
        .take(3)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect::<Vec<_>>()
        .join(" / ");
    Err(SpeechError::Process {
        program: program.into(),
        detail: format!("exited with {}: {tail}", output.status),
    })
}

/// Adapts the machine's model if the recogniser and the tools are installed, logging the outcome;
/// for the edge's start (calls use the stock model meanwhile).
pub async fn adapt_in_background() {
    let config = LocalSttConfig::default();
    if adapted_model(&config.work_dir).is_some() {
        return;
    }
    if let Err(missing) = super::LocalStt::new(config.clone())
        .check_installed()
        .and_then(|()| check_tools())
    {
        tracing::info!(%missing, "the offline recogniser keeps its stock model (not adapted to telephone audio)");
        return;
    }
    tracing::info!("adapting the offline recogniser to telephone audio (once per machine, about half a minute)");
    match adapt(&config).await {
        Ok(dir) => tracing::info!(model = %dir.display(), "offline recogniser adapted"),
        Err(error) => {
            tracing::warn!(%error, "could not adapt the offline recogniser; it keeps its stock model")
        }
    }
}
