//! The decoder processes of one turn: each a `pocketsphinx_continuous` fed the turn's audio on
//! its stdin as the caller speaks, its words read from its stdout when the audio ends (and,
//! for one of them, the cepstral mean it ends with read from its log, for the call's
//! [`LineMean`]). Every process is killed when its value is dropped.

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin};
use tokio::task::JoinHandle;

use super::audio::RecogniserInput;
use super::decision::{self, Keywords, Pronunciations};
use super::hypothesis::Hypothesis;
use super::line_mean::{CepstralMean, LineMean};
use super::{config_program, process_error, LocalSttConfig, Search, PROGRAM_PACKAGE, PROVIDER};
use crate::media::frame::SampleRate;
use crate::speech::SpeechError;

/// One running decoder: its stdin, and tasks collecting its stdout and, when it `learns`, the
/// cepstral mean its log reports.
pub(super) struct Decoder {
    child: Child,
    stdin: Option<ChildStdin>,
    output: JoinHandle<std::io::Result<String>>,
    learned: Option<JoinHandle<Option<CepstralMean>>>,
}

impl Decoder {
    /// Starts a decoder on `acoustic_model` from the cepstral mean `start` (else the model's);
    /// when it `learns`, its log is read for the mean it ends the turn with.
    pub(super) fn spawn(
        config: &LocalSttConfig,
        acoustic_model: &Path,
        search: &Search,
        start: Option<&CepstralMean>,
        learns: bool,
    ) -> Result<Self, SpeechError> {
        let program = config.program.display().to_string();
        let mut command = tokio::process::Command::new(&config.program);
        command
            .args([
                "-infile",
                "/dev/stdin",
                "-samprate",
                "16000",
                // Each word with its times and posterior: decision compares the decoders'
                // words where they overlap.
                "-time",
                "yes",
            ])
            .arg("-hmm")
            .arg(acoustic_model);
        if let Some(mean) = start {
            command.arg("-cmninit").arg(mean.argument());
        }
        if !learns {
            command.args(["-logfn", "/dev/null"]);
        }
        match search {
            Search::Grammar { grammar, dict } => {
                command.arg("-jsgf").arg(grammar).arg("-dict").arg(dict);
                // Wide beams: a grammar is small, and narrow ones lose the right path on
                // synthetic and telephone speech.
                command.args(["-beam", "1e-80", "-wbeam", "1e-60", "-pbeam", "1e-80"]);
            }
            Search::Model { model, dict } => {
                command.arg("-lm").arg(model).arg("-dict").arg(dict);
            }
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            // Without `-logfn`, the log comes here.
            .stderr(if learns {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => SpeechError::MissingPackage {
                    program: program.clone(),
                    package: PROGRAM_PACKAGE,
                },
                _ => process_error(&program, e.to_string()),
            })?;
        let (Some(stdin), Some(mut stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(process_error(&program, "stdin/stdout not captured".into()));
        };
        // Read while writing: a long turn must not deadlock on a full pipe.
        let output = tokio::spawn(async move {
            let mut text = String::new();
            stdout.read_to_string(&mut text).await?;
            Ok(text)
        });
        let learned = child.stderr.take().map(|stderr| {
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stderr).lines();
                let mut last = None;
                // The last update is the mean of the whole turn (pocketsphinx accumulates
                // over the utterances of one process).
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(mean) = CepstralMean::from_log_line(&line) {
                        last = Some(mean);
                    }
                }
                last
            })
        });
        Ok(Decoder {
            child,
            stdin: Some(stdin),
            output,
            learned,
        })
    }
}

/// The decoders of one turn, fed the same audio.
pub(super) struct Decoders {
    running: Vec<Decoder>,
    /// Pronunciations and keywords for the decision between a grammar and an open decoder.
    judged: Option<(Arc<Pronunciations>, Arc<Keywords>)>,
    input: RecogniserInput,
    /// Reused conversion buffer.
    bytes: Vec<u8>,
    timeout: Duration,
    /// The call's line, told the mean this turn ends with.
    line: Arc<Mutex<LineMean>>,
    /// How much audio this turn was.
    fed: Duration,
}

impl Decoders {
    /// The `running` decoders of a turn of the call whose line is `line`; `judged` when a
    /// grammar and an open decoder are to be decided between.
    pub(super) fn new(
        running: Vec<Decoder>,
        judged: Option<(Arc<Pronunciations>, Arc<Keywords>)>,
        timeout: Duration,
        line: Arc<Mutex<LineMean>>,
    ) -> Self {
        Decoders {
            running,
            judged,
            input: RecogniserInput::default(),
            bytes: Vec::with_capacity(1280),
            timeout,
            line,
            fed: Duration::ZERO,
        }
    }

    /// Feeds caller audio at `rate`.
    pub(super) async fn feed(
        &mut self,
        rate: SampleRate,
        samples: &[i16],
    ) -> Result<(), SpeechError> {
        self.bytes.clear();
        self.input.push(rate, samples, &mut self.bytes);
        self.fed += Duration::from_micros(samples.len() as u64 * 1_000_000 / u64::from(rate.hz()));
        for decoder in &mut self.running {
            if let Some(stdin) = decoder.stdin.as_mut() {
                stdin
                    .write_all(&self.bytes)
                    .await
                    .map_err(|e| process_error(&config_program(), format!("writing audio: {e}")))?;
            }
        }
        Ok(())
    }

    /// Ends the audio and returns the transcript.
    pub(super) async fn finish(mut self) -> Result<String, SpeechError> {
        let timeout = self.timeout;
        tokio::time::timeout(timeout, async move {
            let mut texts = Vec::with_capacity(self.running.len());
            for decoder in &mut self.running {
                // EOF tells pocketsphinx the utterance is over.
                drop(decoder.stdin.take());
            }
            for decoder in &mut self.running {
                let text = (&mut decoder.output)
                    .await
                    .map_err(|e| process_error(&config_program(), e.to_string()))?
                    .map_err(|e| {
                        process_error(&config_program(), format!("reading its output: {e}"))
                    })?;
                let status = decoder
                    .child
                    .wait()
                    .await
                    .map_err(|e| process_error(&config_program(), e.to_string()))?;
                if !status.success() {
                    return Err(process_error(
                        &config_program(),
                        format!("exited with {status}"),
                    ));
                }
                texts.push(Hypothesis::parse(&text));
                if let Some(learned) = decoder.learned.take() {
                    if let Ok(Some(mean)) = learned.await {
                        self.line
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .handle_turn(mean, self.fed);
                    }
                }
            }
            Ok(match (texts.as_slice(), &self.judged) {
                ([grammar, open], Some((sounds, keywords))) => {
                    let chosen = decision::transcript(grammar, open, sounds, keywords);
                    // Which reading won, not the words: log lines never carry what was said.
                    let grammar_won = chosen == grammar.text();
                    tracing::debug!(
                        grammar_won,
                        chars = chosen.chars().count(),
                        "local recogniser"
                    );
                    chosen
                }
                ([only, ..], _) => only.text(),
                _ => String::new(),
            })
        })
        .await
        .map_err(|_| SpeechError::Timeout {
            provider: PROVIDER,
            after: timeout,
        })?
    }
}
