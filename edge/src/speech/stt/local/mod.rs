//! Offline speech-to-text with CMU pocketsphinx, so `freya dev` and the end-to-end tests hear a
//! caller with no network and no keys. It runs Debian 12's `pocketsphinx_continuous` (package
//! `pocketsphinx`, 0.8+5prealpha) with the US-English acoustic model and dictionary of
//! `pocketsphinx-en-us`, writing 16 kHz s16le PCM to its stdin (`-infile /dev/stdin`) as the
//! caller speaks and reading the words from its stdout once the turn is over.
//!
//! Two ways to listen:
//! - **constrained** ([`LocalStt::with_expected`]): for an agent whose `rules` table (or
//!   workflow) says what callers will ask. Two decoders hear each turn at once, one held to a
//!   grammar of those phrases and one with an open vocabulary ([`vocabulary`]); [`decision`] picks
//!   the transcript. On the demo's corpus of espeak-ng voices over telephone audio this is what
//!   makes the demo agent understand (`loadtest/BENCHMARKS.md`).
//! - **general** ([`LocalStt::new`]): the model's own 130,000-word language model. Expect little
//!   of it on telephone audio: word error rates of 50 % and more are normal. `freya call` uses it
//!   to give a rough idea of what an agent said.
//!
//! Streaming: the decoders start when the caller starts speaking and decode while the turn goes
//! on (they load in tens of milliseconds with the small dictionary), so the transcript is ready
//! a few tens of milliseconds after the turn ends rather than after a whole-utterance decode.
//! Generated grammar files are written once per distinct vocabulary, named by their hash, under
//! [`LocalSttConfig::work_dir`].

/// Acoustic adaptation: `freya doctor` and `freya dev` adapt the model in the background.
pub mod adapt;
pub(crate) mod audio;
mod decision;
pub(crate) mod hypothesis;
mod open_model;
pub(crate) mod sendump;
pub(crate) mod vocabulary;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin};
use tokio::sync::{mpsc, OnceCell};
use tokio::task::JoinHandle;

use self::audio::RecogniserInput;
use self::decision::{Keywords, Pronunciations};
use self::hypothesis::Hypothesis;
pub use self::vocabulary::ExpectedSpeech;
use self::vocabulary::{Dictionary, Vocabulary};
use crate::media::frame::SampleRate;
use crate::speech::{
    SessionInput, SpeechError, SpeechToText, StreamingSpeechToText, SttEvent, SttSession,
    Transcript,
};

const PROVIDER: &str = "local";
/// Debian package with the recogniser program.
pub const PROGRAM_PACKAGE: &str = "pocketsphinx";
/// Debian package with the US-English model.
pub const MODEL_PACKAGE: &str = "pocketsphinx-en-us";
/// Where `pocketsphinx-en-us` installs its files.
pub const DEBIAN_MODEL_DIR: &str = "/usr/share/pocketsphinx/model/en-us";
/// Results a session may queue; one final result per turn is all it sends.
const EVENT_QUEUE: usize = 4;

/// Where to find the recogniser and its model.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalSttConfig {
    /// The program, looked up on `PATH` when relative.
    pub program: PathBuf,
    /// Acoustic model directory (`-hmm`).
    pub acoustic_model: PathBuf,
    /// The general language model (`-lm`), for unconstrained recognition.
    pub language_model: PathBuf,
    /// The full pronunciation dictionary (`-dict`).
    pub dictionary: PathBuf,
    /// Limit for one recognition once its audio is complete, process start included.
    pub timeout: Duration,
    /// Where generated grammars, dictionaries and the adapted model are written: one per
    /// machine by default (`$XDG_CACHE_HOME/freya/stt`, else `~/.cache/freya/stt`), so the
    /// adaptation runs once however many edges and tests start.
    pub work_dir: PathBuf,
}

/// The machine's cache for the recogniser's generated files.
fn default_work_dir() -> PathBuf {
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(".cache"))
        })
        .unwrap_or_else(std::env::temp_dir);
    cache.join("freya").join("stt")
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
            work_dir: default_work_dir(),
        }
    }
}

/// What a decoder process is told to listen with.
#[derive(Debug, Clone, PartialEq)]
enum Search {
    /// `-jsgf grammar -dict dict`.
    Grammar { grammar: PathBuf, dict: PathBuf },
    /// `-lm model -dict dict`.
    Model { model: PathBuf, dict: PathBuf },
}

/// The searches a session runs: the general model alone, or a grammar and an open model.
#[derive(Debug, Clone, PartialEq)]
enum Plan {
    General(Search),
    Constrained {
        grammar: Search,
        open: Search,
        /// The pronunciations of the words both may hear, for [`decision`].
        sounds: Arc<Pronunciations>,
        /// The agent's keywords, for [`decision`].
        keywords: Arc<Keywords>,
    },
}

/// Offline recogniser running pocketsphinx processes per turn.
#[derive(Clone)]
pub struct LocalStt {
    config: LocalSttConfig,
    /// What to constrain recognition to, when anything.
    expected: Option<Arc<ExpectedSpeech>>,
    /// The plan, prepared on first use (generated files are written then).
    plan: Arc<OnceCell<Plan>>,
}

impl std::fmt::Debug for LocalStt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalStt")
            .field("config", &self.config)
            .field("expected", &self.expected)
            .finish()
    }
}

impl LocalStt {
    /// A general-vocabulary recogniser (nothing is checked until first use).
    pub fn new(config: LocalSttConfig) -> Self {
        LocalStt {
            config,
            expected: None,
            plan: Arc::new(OnceCell::new()),
        }
    }

    /// A recogniser listening for what is `expected` (and, less exactly, anything else).
    pub fn with_expected(config: LocalSttConfig, expected: ExpectedSpeech) -> Self {
        let mut stt = Self::new(config);
        if !expected.is_empty() {
            stt.expected = Some(Arc::new(expected));
        }
        stt
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

    /// The plan, writing generated files the first time (off the async threads).
    async fn plan(&self) -> Result<&Plan, SpeechError> {
        self.check_installed()?;
        self.plan
            .get_or_try_init(|| {
                let config = self.config.clone();
                let expected = self.expected.clone();
                async move {
                    tokio::task::spawn_blocking(move || prepare(&config, expected.as_deref()))
                        .await
                        .map_err(|e| process_error(&config_program(), e.to_string()))?
                }
            })
            .await
    }

    /// Starts the decoders of one turn.
    async fn decoders(&self) -> Result<Decoders, SpeechError> {
        let plan = self.plan().await?.clone();
        let (searches, judged) = match plan {
            Plan::General(search) => (vec![search], None),
            Plan::Constrained {
                grammar,
                open,
                sounds,
                keywords,
            } => (vec![grammar, open], Some((sounds, keywords))),
        };
        let acoustic_model = adapt::adapted_model(&self.config.work_dir)
            .unwrap_or_else(|| self.config.acoustic_model.clone());
        let mut running = Vec::with_capacity(searches.len());
        for search in &searches {
            running.push(Decoder::spawn(&self.config, &acoustic_model, search)?);
        }
        Ok(Decoders {
            running,
            judged,
            input: RecogniserInput::default(),
            bytes: Vec::with_capacity(1280),
            timeout: self.config.timeout,
        })
    }
}

fn config_program() -> String {
    "pocketsphinx_continuous".into()
}

fn process_error(program: &str, detail: String) -> SpeechError {
    SpeechError::Process {
        program: program.to_string(),
        detail,
    }
}

/// Parsed full dictionaries, by path: read once per process (3.5 MB, about 135,000 words).
static DICTIONARIES: LazyLock<Mutex<DictionaryCache>> = LazyLock::new(|| Mutex::new(Vec::new()));

/// Parsed dictionaries with the file each came from.
type DictionaryCache = Vec<(PathBuf, Arc<Dictionary>)>;

fn full_dictionary(path: &Path) -> Result<Arc<Dictionary>, SpeechError> {
    let mut cache = DICTIONARIES.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, dictionary)) = cache.iter().find(|(p, _)| p == path) {
        return Ok(dictionary.clone());
    }
    let text = std::fs::read_to_string(path).map_err(|e| SpeechError::MissingPackage {
        program: format!("{} ({e})", path.display()),
        package: MODEL_PACKAGE,
    })?;
    let dictionary = Arc::new(Dictionary::parse(&text));
    cache.push((path.to_path_buf(), dictionary.clone()));
    Ok(dictionary)
}

/// Decides the plan for `phrases` and writes the files it needs (blocking).
fn prepare(
    config: &LocalSttConfig,
    expected: Option<&ExpectedSpeech>,
) -> Result<Plan, SpeechError> {
    let general = Plan::General(Search::Model {
        model: config.language_model.clone(),
        dict: config.dictionary.clone(),
    });
    let Some(expected) = expected else {
        return Ok(general);
    };
    let full = full_dictionary(&config.dictionary)?;
    let Some(vocabulary) = Vocabulary::new(expected, &full) else {
        tracing::warn!("no phrase of the agent has a word the recogniser knows; listening with the general model");
        return Ok(general);
    };
    let grammar = vocabulary.jsgf();
    let model = vocabulary.arpa();
    let dict_text = vocabulary.dictionary(&full);
    let mut hash = Sha256::new();
    for part in [&grammar, &model, &dict_text] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    let dir = config.work_dir.join(&hex::encode(hash.finalize())[..16]);
    let write_error = |path: &Path, e: std::io::Error| SpeechError::Config {
        field: "local recogniser work directory",
        detail: format!("cannot write {}: {e}", path.display()),
    };
    std::fs::create_dir_all(&dir).map_err(|e| write_error(&dir, e))?;
    let mut paths = Vec::new();
    for (name, text) in [
        ("grammar.jsgf", &grammar),
        ("open.lm", &model),
        ("words.dict", &dict_text),
    ] {
        let path = dir.join(name);
        if !path.exists() {
            // Written aside and renamed, so a concurrent call never reads half a file.
            let partial = dir.join(format!("{name}.{}.partial", std::process::id()));
            std::fs::write(&partial, text).map_err(|e| write_error(&partial, e))?;
            std::fs::rename(&partial, &path).map_err(|e| write_error(&path, e))?;
        }
        paths.push(path);
    }
    let [grammar, model, dict] = <[PathBuf; 3]>::try_from(paths).map_err(|_| {
        process_error(
            &config_program(),
            "grammar files were not all written".into(),
        )
    })?;
    Ok(Plan::Constrained {
        grammar: Search::Grammar {
            grammar,
            dict: dict.clone(),
        },
        open: Search::Model { model, dict },
        sounds: Arc::new(Pronunciations::parse(&dict_text)),
        keywords: Arc::new(Keywords::new(vocabulary.keywords(), vocabulary.hang_up())),
    })
}

/// One running decoder: its stdin, and a task collecting its stdout.
struct Decoder {
    child: Child,
    stdin: Option<ChildStdin>,
    output: JoinHandle<std::io::Result<String>>,
}

impl Decoder {
    fn spawn(
        config: &LocalSttConfig,
        acoustic_model: &Path,
        search: &Search,
    ) -> Result<Self, SpeechError> {
        let program = config.program.display().to_string();
        let mut command = tokio::process::Command::new(&config.program);
        command
            .args([
                "-infile",
                "/dev/stdin",
                "-samprate",
                "16000",
                "-logfn",
                "/dev/null",
                // Each word with its times and posterior: decision compares the decoders'
                // words where they overlap.
                "-time",
                "yes",
            ])
            .arg("-hmm")
            .arg(acoustic_model);
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
            .stderr(Stdio::null())
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
        Ok(Decoder {
            child,
            stdin: Some(stdin),
            output,
        })
    }
}

/// The decoders of one turn, fed the same audio.
struct Decoders {
    running: Vec<Decoder>,
    /// Pronunciations and keywords for the decision between a grammar and an open decoder.
    judged: Option<(Arc<Pronunciations>, Arc<Keywords>)>,
    input: RecogniserInput,
    /// Reused conversion buffer.
    bytes: Vec<u8>,
    timeout: Duration,
}

impl Decoders {
    /// Feeds caller audio at `rate`.
    async fn feed(&mut self, rate: SampleRate, samples: &[i16]) -> Result<(), SpeechError> {
        self.bytes.clear();
        self.input.push(rate, samples, &mut self.bytes);
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
    async fn finish(mut self) -> Result<String, SpeechError> {
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

/// Whether `program` names an existing file, directly or through `PATH`.
fn program_on_path(program: &Path) -> bool {
    if program.components().count() > 1 {
        return program.is_file();
    }
    std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
        .unwrap_or(false)
}

impl StreamingSpeechToText for LocalStt {
    fn name(&self) -> &'static str {
        PROVIDER
    }

    fn start(&self) -> BoxFuture<'_, Result<SttSession, SpeechError>> {
        Box::pin(async move {
            let mut decoders = self.decoders().await?;
            let (input, mut input_rx) = mpsc::channel(SttSession::INPUT_QUEUE_FRAMES);
            let (events, events_rx) = mpsc::channel(EVENT_QUEUE);
            let task = tokio::spawn(async move {
                let result = async {
                    while let Some(input) = input_rx.recv().await {
                        match input {
                            SessionInput::Frame(frame) => {
                                decoders.feed(frame.sample_rate(), frame.samples()).await?;
                            }
                            SessionInput::Finish => return decoders.finish().await.map(Some),
                        }
                    }
                    // The caller dropped the session: the decoders die with it.
                    Ok(None)
                }
                .await;
                let event = match result {
                    Ok(None) => return,
                    Ok(Some(text)) => Ok(SttEvent::Final {
                        text,
                        speech_final: false,
                        confidence: None,
                    }),
                    Err(e) => Err(e),
                };
                let _ = events.send(event).await;
            });
            Ok(SttSession::new(PROVIDER, input, events_rx, task))
        })
    }
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
            let mut decoders = self.decoders().await?;
            for chunk in samples.chunks(rate.samples_per_frame() * 50) {
                decoders.feed(rate, chunk).await?;
            }
            Ok(Transcript {
                text: decoders.finish().await?,
                confidence: None,
            })
        })
    }
}
