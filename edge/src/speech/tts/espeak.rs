//! Offline text-to-speech with espeak-ng, the voice of `freya dev` and of the `freya call`
//! test caller when there are no keys and no network. espeak-ng is a formant synthesizer: robotic
//! but intelligible, instant, and in Debian (`espeak-ng`). We run it as a subprocess per
//! sentence with the text on stdin and `--stdout`, which streams a WAV at 22 050 Hz whose header
//! carries placeholder lengths; [`WavStreamReader`] reads it as it comes and [`RateConverter`]
//! brings it to the rate the call wants (fractional step to 24 kHz, then the shared resampler).
//! Dropping the stream kills the process.

use std::path::PathBuf;
use std::process::Stdio;

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdout};

use crate::media::frame::SampleRate;
use crate::speech::convert::RateConverter;
use crate::speech::wav::WavStreamReader;
use crate::speech::{AudioChunk, AudioStream, SpeechError, TextToSpeech};

const PROVIDER: &str = "espeak";
/// Debian package with the program.
pub const PACKAGE: &str = "espeak-ng";
const READ_CHUNK: usize = 8192;

/// Voice and output settings for espeak-ng.
#[derive(Debug, Clone, PartialEq)]
pub struct EspeakConfig {
    /// The program, looked up on `PATH` when relative.
    pub program: PathBuf,
    /// Voice name (`-v`), e.g. `en-us`, `en-gb`, `de`.
    pub voice: String,
    /// Speaking rate in words per minute (`-s`, 80–450).
    pub words_per_minute: u16,
    /// Pitch (`-p`, 0–99).
    pub pitch: u8,
    /// Rate of the audio chunks this provider yields.
    pub sample_rate: SampleRate,
}

impl Default for EspeakConfig {
    fn default() -> Self {
        EspeakConfig {
            program: "espeak-ng".into(),
            voice: "en-us".into(),
            words_per_minute: 165,
            pitch: 50,
            sample_rate: SampleRate::Hz16000,
        }
    }
}

/// espeak-ng as a streaming [`TextToSpeech`].
#[derive(Debug, Clone)]
pub struct EspeakTts {
    config: EspeakConfig,
}

impl EspeakTts {
    /// A synthesizer with the given voice settings.
    pub fn new(config: EspeakConfig) -> Self {
        EspeakTts { config }
    }
}

impl TextToSpeech for EspeakTts {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn synthesize(&self, text: &str) -> AudioStream {
        let state = Synthesis::Start {
            config: self.config.clone(),
            text: text.to_owned(),
        };
        futures::stream::unfold(state, |state| async move {
            match state {
                Synthesis::Start { config, text } => match Running::spawn(&config, text) {
                    Ok(running) => Box::new(running).next().await,
                    Err(e) => Some((Err(e), Synthesis::Done)),
                },
                Synthesis::Running(running) => running.next().await,
                Synthesis::Done => None,
            }
        })
        .boxed()
    }
}

enum Synthesis {
    Start { config: EspeakConfig, text: String },
    Running(Box<Running>),
    Done,
}

struct Running {
    program: String,
    child: Child,
    stdout: ChildStdout,
    wav: WavStreamReader,
    converter: Option<RateConverter>,
    target: SampleRate,
    bytes: Vec<u8>,
    samples: Vec<i16>,
}

type Step = Option<(Result<AudioChunk, SpeechError>, Synthesis)>;

impl Running {
    fn spawn(config: &EspeakConfig, text: String) -> Result<Running, SpeechError> {
        let program = config.program.display().to_string();
        let mut child = tokio::process::Command::new(&config.program)
            .arg("--stdout")
            .arg("-v")
            .arg(&config.voice)
            .arg("-s")
            .arg(config.words_per_minute.to_string())
            .arg("-p")
            .arg(config.pitch.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => SpeechError::MissingPackage {
                    program: program.clone(),
                    package: PACKAGE,
                },
                _ => SpeechError::Process {
                    program: program.clone(),
                    detail: e.to_string(),
                },
            })?;
        let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(SpeechError::Process {
                program,
                detail: "stdin/stdout not captured".into(),
            });
        };
        // Feed the text from its own task so a long text cannot block on a full stdout pipe.
        tokio::spawn(async move {
            let _ = stdin.write_all(text.as_bytes()).await;
            let _ = stdin.write_all(b"\n").await;
        });
        Ok(Running {
            program,
            child,
            stdout,
            wav: WavStreamReader::default(),
            converter: None,
            target: config.sample_rate,
            bytes: vec![0; READ_CHUNK],
            samples: Vec::new(),
        })
    }

    fn fail(&self, detail: String) -> Step {
        let error = SpeechError::Process {
            program: self.program.clone(),
            detail,
        };
        Some((Err(error), Synthesis::Done))
    }

    /// Reads until a chunk of converted audio is ready, or the process ends.
    async fn next(mut self: Box<Self>) -> Step {
        loop {
            let n = match self.stdout.read(&mut self.bytes).await {
                Ok(n) => n,
                Err(e) => return self.fail(format!("reading its output: {e}")),
            };
            let mut out = Vec::new();
            if n == 0 {
                return self.finish(out).await;
            }
            self.samples.clear();
            let Running {
                wav,
                bytes,
                samples,
                ..
            } = &mut *self;
            if let Err(e) = wav.push(bytes.get(..n).unwrap_or_default(), samples) {
                return self.fail(format!("its WAV output: {e}"));
            }
            let Some((rate, channels)) = self.wav.format() else {
                continue;
            };
            if channels != 1 {
                return self.fail(format!("expected mono output, got {channels} channels"));
            }
            let target = self.target;
            let converter = self
                .converter
                .get_or_insert_with(|| RateConverter::new(rate, target));
            converter.process(&self.samples, &mut out);
            if !out.is_empty() {
                let chunk = AudioChunk {
                    rate: self.target,
                    samples: out,
                };
                return Some((Ok(chunk), Synthesis::Running(self)));
            }
        }
    }

    async fn finish(mut self: Box<Self>, mut out: Vec<i16>) -> Step {
        let status = match self.child.wait().await {
            Ok(status) => status,
            Err(e) => return self.fail(e.to_string()),
        };
        if !status.success() {
            return self.fail(format!("exited with {status}"));
        }
        if self.wav.format().is_none() {
            return self.fail("produced no WAV header".into());
        }
        if let Some(converter) = &mut self.converter {
            converter.finish(&mut out);
        }
        if out.is_empty() {
            return None;
        }
        let chunk = AudioChunk {
            rate: self.target,
            samples: out,
        };
        Some((Ok(chunk), Synthesis::Done))
    }
}
