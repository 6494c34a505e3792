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
mod decoders;
pub(crate) mod hypothesis;
mod line_mean;
mod open_model;
pub(crate) mod sendump;
pub(crate) mod vocabulary;

use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, OnceCell};

use self::decision::{Keywords, Pronunciations};
use self::decoders::{Decoder, Decoders};
use self::line_mean::{LineMean, MeanFreeModel};
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
    /// Start a call's later turns from the cepstral mean its earlier turns ended with
    /// ([`line_mean`]) instead of the model's. Off by default: on the demo's corpora it gained
    /// one request and lost one, and acted on an unrelated sentence (`loadtest/BENCHMARKS.md`,
    /// "the line's mean carried within a call").
    pub carry_line_mean: bool,
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
            carry_line_mean: false,
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

/// Offline recogniser running pocketsphinx processes per turn. One value serves one call (the
/// edge builds an agent's providers per call): its turns share what was learned about the
/// caller's line ([`line_mean`]); clones share it too.
#[derive(Clone)]
pub struct LocalStt {
    config: LocalSttConfig,
    /// What to constrain recognition to, when anything.
    expected: Option<Arc<ExpectedSpeech>>,
    /// The plan, prepared on first use (generated files are written then).
    plan: Arc<OnceCell<Plan>>,
    /// The cepstral mean of this call's line, learned by its turns so far.
    line: Arc<Mutex<LineMean>>,
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
            line: Arc::new(Mutex::new(LineMean::default())),
        }
    }

    /// The same recogniser for another call: the plan is shared, what was learned about the
    /// line is not (each call's line is its own).
    pub fn for_another_call(&self) -> Self {
        LocalStt {
            config: self.config.clone(),
            expected: self.expected.clone(),
            plan: self.plan.clone(),
            line: Arc::new(Mutex::new(LineMean::default())),
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
        // The model's copy that takes the mean from the command line: the line's mean when a
        // turn of this call has ended, else the model's own (so a first turn is decoded as
        // it always was). Without the copy, every turn starts from the model's mean.
        let carried = if self.config.carry_line_mean {
            mean_free_model(&acoustic_model, &self.config.work_dir)
        } else {
            None
        };
        let (model_dir, start) = match carried {
            Some(model) => {
                let learned = self.line.lock().unwrap_or_else(|e| e.into_inner()).start();
                (model.dir, learned.or(model.starting_mean))
            }
            None => (acoustic_model, None),
        };
        let mut running = Vec::with_capacity(searches.len());
        for (i, search) in searches.iter().enumerate() {
            // One decoder's log is enough: both see the same audio through the same front end.
            let learns = i == 0 && start.is_some();
            running.push(Decoder::spawn(
                &self.config,
                &model_dir,
                search,
                start.as_ref(),
                learns,
            )?);
        }
        Ok(Decoders::new(
            running,
            judged,
            self.config.timeout,
            self.line.clone(),
        ))
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

/// Model copies without a starting mean, by model directory: made once per process.
static MEAN_FREE_MODELS: LazyLock<Mutex<Vec<(PathBuf, MeanFreeModel)>>> =
    LazyLock::new(|| Mutex::new(Vec::new()));

/// `model`'s copy that takes `-cmninit` from the command line, or `None` (logged) when it
/// cannot be made: turns are then decoded from the model's mean, as before.
fn mean_free_model(model: &Path, work_dir: &Path) -> Option<MeanFreeModel> {
    let mut cache = MEAN_FREE_MODELS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, copy)) = cache.iter().find(|(p, _)| p == model) {
        return Some(copy.clone());
    }
    // A few small files, once per model and process.
    match line_mean::without_starting_mean(model, work_dir) {
        Ok(copy) => {
            cache.push((model.to_path_buf(), copy.clone()));
            Some(copy)
        }
        Err(e) => {
            tracing::warn!(error = %e, "the local recogniser cannot carry a call's cepstral mean between turns");
            None
        }
    }
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
        keywords: Arc::new(Keywords::new(vocabulary.keywords(), vocabulary.leaving())),
    })
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
            SpeechError::refuse_empty(PROVIDER, samples)?;
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

#[cfg(test)]
mod line_mean_tests;
