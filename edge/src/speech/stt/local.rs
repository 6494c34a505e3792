//! Offline speech-to-text with CMU pocketsphinx, so `freya dev` and the end-to-end tests can
//! hear a caller with no network and no keys. It runs Debian 12's `pocketsphinx_continuous`
//! (package `pocketsphinx`, 0.8+5prealpha) with the US-English acoustic model, language model
//! and dictionary from `pocketsphinx-en-us`, feeding the utterance as raw 16 kHz s16le PCM on
//! stdin (`-infile /dev/stdin`) and reading one line of text per detected utterance from stdout.
//!
//! Expect little of it, honestly: this is a 2015-era HMM recogniser with a generic language
//! model. On clean espeak-ng speech it gets some words right ("Hello world. I would like to book
//! a table." came back as "oh well i would like to look up to you bill"); on 8 kHz telephone
//! audio and real callers,
//! word error rates of 30–60 % are normal. Good enough to notice that the caller said something
//! and to catch keywords for the offline `rules` agent; not for anything a customer would read.
//! Each call spawns the process (about a second of CPU to load the model).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::media::frame::SampleRate;
use crate::media::resample::Resampler;
use crate::speech::{SpeechError, SpeechToText, Transcript};

const PROVIDER: &str = "local";
/// Debian package with the recogniser program.
pub const PROGRAM_PACKAGE: &str = "pocketsphinx";
/// Debian package with the US-English model.
pub const MODEL_PACKAGE: &str = "pocketsphinx-en-us";
/// Where `pocketsphinx-en-us` installs its files.
pub const DEBIAN_MODEL_DIR: &str = "/usr/share/pocketsphinx/model/en-us";

/// Where to find the recogniser and its model.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalSttConfig {
    /// The program, looked up on `PATH` when relative.
    pub program: PathBuf,
    /// Acoustic model directory (`-hmm`).
    pub acoustic_model: PathBuf,
    /// Language model (`-lm`).
    pub language_model: PathBuf,
    /// Pronunciation dictionary (`-dict`).
    pub dictionary: PathBuf,
    /// Limit for one recognition, process start included.
    pub timeout: Duration,
}

impl Default for LocalSttConfig {
    fn default() -> Self {
        let model = PathBuf::from(DEBIAN_MODEL_DIR);
        LocalSttConfig {
            program: "pocketsphinx_continuous".into(),
            acoustic_model: model.join("en-us"),
            language_model: model.join("en-us.lm.bin"),
            dictionary: model.join("cmudict-en-us.dict"),
            timeout: Duration::from_secs(30),
        }
    }
}

/// Offline recogniser running pocketsphinx as a subprocess per utterance.
#[derive(Debug, Clone)]
pub struct LocalStt {
    config: LocalSttConfig,
}

impl LocalStt {
    /// A recogniser with the given paths (nothing is checked until first use).
    pub fn new(config: LocalSttConfig) -> Self {
        LocalStt { config }
    }

    /// Checks that the program and model files are installed, naming the package when not.
    pub fn check_installed(&self) -> Result<(), SpeechError> {
        if !program_on_path(&self.config.program) {
            return Err(SpeechError::MissingPackage {
                program: self.config.program.display().to_string(),
                package: PROGRAM_PACKAGE,
            });
        }
        for path in [
            &self.config.acoustic_model,
            &self.config.language_model,
            &self.config.dictionary,
        ] {
            if !path.exists() {
                return Err(SpeechError::MissingPackage {
                    program: path.display().to_string(),
                    package: MODEL_PACKAGE,
                });
            }
        }
        Ok(())
    }

    async fn recognise(&self, pcm16k: Vec<u8>) -> Result<Transcript, SpeechError> {
        self.check_installed()?;
        let program = self.config.program.display().to_string();
        let mut child = tokio::process::Command::new(&self.config.program)
            .arg("-infile")
            .arg("/dev/stdin")
            .arg("-samprate")
            .arg("16000")
            .arg("-hmm")
            .arg(&self.config.acoustic_model)
            .arg("-lm")
            .arg(&self.config.language_model)
            .arg("-dict")
            .arg(&self.config.dictionary)
            .arg("-logfn")
            .arg("/dev/null")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => SpeechError::MissingPackage {
                    program: program.clone(),
                    package: PROGRAM_PACKAGE,
                },
                _ => SpeechError::Process {
                    program: program.clone(),
                    detail: e.to_string(),
                },
            })?;
        let process_error = |detail: String| SpeechError::Process {
            program: program.clone(),
            detail,
        };
        let (Some(mut stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(process_error("stdin/stdout not captured".into()));
        };
        // Write and read at once: a long utterance must not deadlock on a full pipe.
        let write = async move {
            let result = stdin.write_all(&pcm16k).await;
            drop(stdin); // EOF tells pocketsphinx the utterance is over.
            result
        };
        let mut text = String::new();
        let (written, read) = tokio::join!(write, stdout.read_to_string(&mut text));
        read.map_err(|e| process_error(format!("reading its output: {e}")))?;
        let status = child
            .wait()
            .await
            .map_err(|e| process_error(e.to_string()))?;
        if !status.success() {
            return Err(process_error(format!("exited with {status}")));
        }
        written.map_err(|e| process_error(format!("writing audio: {e}")))?;
        let words: Vec<&str> = text.split_whitespace().collect();
        Ok(Transcript {
            text: words.join(" "),
            confidence: None,
        })
    }
}

/// Whether `program` names an existing file, directly or through `PATH`.
fn program_on_path(program: &Path) -> bool {
    if program.components().count() > 1 {
        return program.is_file();
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

/// Brings an utterance to 16 kHz s16le bytes, the only input the en-us model accepts.
fn to_pcm16k_bytes(rate: SampleRate, samples: &[i16]) -> Vec<u8> {
    let mut resampler = Resampler::new(rate, SampleRate::Hz16000);
    let mut wide = vec![0i16; resampler.output_len(samples.len())];
    let n = resampler.process(samples, &mut wide).unwrap_or(0);
    wide.truncate(n);
    wide.iter().flat_map(|s| s.to_le_bytes()).collect()
}

impl SpeechToText for LocalStt {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn transcribe<'a>(
        &'a self,
        rate: SampleRate,
        samples: &'a [i16],
    ) -> BoxFuture<'a, Result<Transcript, SpeechError>> {
        Box::pin(async move {
            if samples.is_empty() {
                return Err(SpeechError::Audio {
                    provider: PROVIDER,
                    detail: "empty utterance".into(),
                });
            }
            let pcm = to_pcm16k_bytes(rate, samples);
            tokio::time::timeout(self.config.timeout, self.recognise(pcm))
                .await
                .map_err(|_| SpeechError::Timeout {
                    provider: PROVIDER,
                    after: self.config.timeout,
                })?
        })
    }
}
