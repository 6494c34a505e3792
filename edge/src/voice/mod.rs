//! Building an agent's voice pipeline from its configuration: the language model, speech-to-text
//! and text-to-speech clients a call talks to, all sharing one `reqwest::Client` (so pooled TLS
//! connections survive from call to call), and the tool runner that signs customer tool requests.
//!
//! Defaults are the offline demo: STT `local` (pocketsphinx, held to the agent's `rules` phrases),
//! LLM `rules` (the agent's keyword table, not a language model) and TTS `espeak` (espeak-ng). An
//! agent without an `llm` section instead uses an OpenAI-compatible model when the edge's
//! environment names one — `FREYA_LLM_BASE_URL` (any OpenAI-compatible server, e.g. a local Ollama
//! at `http://localhost:11434/v1`) or `OPENAI_API_KEY` (api.openai.com) — with `FREYA_LLM_MODEL`
//! (default `gpt-4o-mini`) and `FREYA_LLM_API_KEY` / `OPENAI_API_KEY` as the key. Likewise an agent
//! without an `stt` section uses an OpenAI-compatible transcription server when
//! `FREYA_STT_BASE_URL` names one (a whisper.cpp server, faster-whisper-server, speaches), with
//! `FREYA_STT_MODEL` (default `whisper-1`) and `FREYA_STT_API_KEY`. The environment is read once,
//! when the edge starts ([`VoiceDefaults::from_env`]), and passed down as data. Errors name the
//! agent's field (`llm.provider`, `tts.voice`).

mod streaming_batch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use freya_shared::model::agent::ProviderSpec;
use freya_shared::model::rules::RulesSpec;
use freya_shared::model::AgentSpec;

use crate::egress::Egress;
use crate::llm::fallback::{FallbackModel, FallbackPolicy};
use crate::llm::{
    AnthropicConfig, AnthropicModel, LanguageModel, OpenAiConfig, OpenAiModel, RulesModel,
    StreamTimeouts, ToolRunner,
};
use crate::media::frame::SampleRate;
use crate::speech::stt::local::ExpectedSpeech;
use crate::speech::stt::{
    DeepgramConfig, DeepgramStt, LocalStt, LocalSttConfig, OpenAiStt, OpenAiSttConfig,
};
use crate::speech::tts::{
    ElevenLabsConfig, ElevenLabsTts, EspeakConfig, EspeakTts, OpenAiTts, OpenAiTtsConfig,
};
use crate::speech::{SpeechError, SpeechToText, StreamingSpeechToText, TextToSpeech};

/// A recogniser for finished turns, and the one that streams them live if the provider can.
type LiveAndBatchStt = (
    Arc<dyn SpeechToText>,
    Option<Arc<dyn StreamingSpeechToText>>,
);

pub use streaming_batch::StreamingAsBatch;

/// OpenAI's API root, the default `base_url` of `openai` sections.
pub const OPENAI_BASE_URL: &str = "https://api.openai.com/v1";
/// Anthropic's API root.
pub const ANTHROPIC_BASE_URL: &str = "https://api.anthropic.com";
/// Model used for an environment-configured LLM when `FREYA_LLM_MODEL` is not set.
pub const DEFAULT_OPENAI_MODEL: &str = "gpt-4o-mini";
/// Anthropic model used when the `llm` section names none.
pub const DEFAULT_ANTHROPIC_MODEL: &str = crate::llm::anthropic::DEFAULT_MODEL;

/// An agent's configuration that cannot be turned into a working pipeline, by field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("agent field `{field}`: {detail}")]
pub struct VoiceConfigError {
    /// The agent field, e.g. `llm.provider`.
    pub field: String,
    /// What is wrong with it.
    pub detail: String,
}

impl VoiceConfigError {
    fn new(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            detail: detail.into(),
        }
    }
}

/// The edge-wide LLM default taken from the environment at start.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VoiceDefaults {
    /// OpenAI-compatible API root used by agents without an `llm` section, if any.
    pub llm_base_url: Option<String>,
    /// Its key.
    pub llm_api_key: Option<String>,
    /// Its model.
    pub llm_model: String,
    /// OpenAI-compatible transcription API root used by agents without an `stt` section, if any.
    pub stt_base_url: Option<String>,
    /// Its key.
    pub stt_api_key: Option<String>,
    /// Its model; `whisper-1` when unset.
    pub stt_model: Option<String>,
}

impl VoiceDefaults {
    /// Reads `FREYA_LLM_BASE_URL`, `FREYA_LLM_API_KEY`, `FREYA_LLM_MODEL`, `OPENAI_API_KEY`,
    /// `FREYA_STT_BASE_URL`, `FREYA_STT_API_KEY` and `FREYA_STT_MODEL` from `vars` (pass
    /// `std::env::vars()`).
    pub fn from_env(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut base = None;
        let mut key = None;
        let mut openai_key = None;
        let mut model = None;
        let (mut stt_base_url, mut stt_api_key, mut stt_model) = (None, None, None);
        for (name, value) in vars {
            let value = value.trim().to_string();
            if value.is_empty() {
                continue;
            }
            match name.as_str() {
                "FREYA_LLM_BASE_URL" => base = Some(value),
                "FREYA_LLM_API_KEY" => key = Some(value),
                "FREYA_LLM_MODEL" => model = Some(value),
                "OPENAI_API_KEY" => openai_key = Some(value),
                "FREYA_STT_BASE_URL" => stt_base_url = Some(value),
                "FREYA_STT_API_KEY" => stt_api_key = Some(value),
                "FREYA_STT_MODEL" => stt_model = Some(value),
                _ => {}
            }
        }
        let key = key.or(openai_key);
        let base = match (base, &key) {
            (Some(base), _) => Some(base),
            (None, Some(_)) => Some(OPENAI_BASE_URL.to_string()),
            (None, None) => None,
        };
        VoiceDefaults {
            llm_base_url: base,
            llm_api_key: key,
            llm_model: model.unwrap_or_else(|| DEFAULT_OPENAI_MODEL.to_string()),
            stt_base_url,
            stt_api_key,
            stt_model,
        }
    }
}

/// One agent's providers, ready for a call.
#[derive(Clone)]
pub struct AgentVoice {
    /// Speech-to-text for finished caller turns (for a streaming recogniser, its batch form:
    /// the fallback when a live session fails, and a workflow's own turns).
    pub stt: Arc<dyn SpeechToText>,
    /// The recogniser that hears caller turns live while they are spoken, when the provider
    /// streams (`deepgram`).
    pub live_stt: Option<Arc<dyn StreamingSpeechToText>>,
    /// The language model.
    pub llm: Arc<dyn LanguageModel>,
    /// Model name sent with each request.
    pub llm_model: String,
    /// Sampling temperature, if set.
    pub temperature: Option<f32>,
    /// Reply length bound, if set.
    pub max_tokens: Option<u32>,
    /// Text-to-speech.
    pub tts: Arc<dyn TextToSpeech>,
    /// Offline voice used when `tts` fails, so a failure is still heard (not for `espeak` itself).
    pub tts_fallback: Option<Arc<dyn TextToSpeech>>,
    /// Runs customer tools, signing with the agent's `tool_secret`.
    pub tools: ToolRunner,
}

/// Builds [`AgentVoice`]s for calls; one per edge.
#[derive(Clone)]
pub struct VoiceFactory {
    /// For the operator's own endpoints (the environment's defaults).
    http: reqwest::Client,
    /// For every URL an agent's spec names, and tools and workflow functions.
    egress: Egress,
    defaults: VoiceDefaults,
    /// Where the offline recogniser writes the grammars it generates.
    local_stt_dir: PathBuf,
}

impl VoiceFactory {
    /// A factory over a shared HTTP client for the operator's defaults and the egress guard for
    /// customer URLs.
    pub fn new(http: reqwest::Client, egress: Egress, defaults: VoiceDefaults) -> Self {
        Self {
            http,
            egress,
            defaults,
            local_stt_dir: LocalSttConfig::default().work_dir,
        }
    }

    /// The edge's egress guard (workflow `function` nodes use it too).
    pub fn egress(&self) -> &Egress {
        &self.egress
    }

    /// The guarded client for a customer `base_url` in `field`, or why it may not be used.
    /// Where a provider is reached: the spec's `base_url`, else `default` (its public API), with
    /// the HTTP client the egress rules allow for it, a refusal named by `field`.
    fn provider_base(
        &self,
        spec: &ProviderSpec,
        default: &str,
        field: &str,
    ) -> Result<(String, reqwest::Client), VoiceConfigError> {
        let base_url = spec.base_url.clone().unwrap_or_else(|| default.into());
        let http = self.customer_client(field, &base_url)?;
        Ok((base_url, http))
    }

    fn customer_client(&self, field: &str, url: &str) -> Result<reqwest::Client, VoiceConfigError> {
        self.egress
            .check_url(url)
            .map_err(|e| VoiceConfigError::new(field, e.to_string()))?;
        Ok(self.egress.client().clone())
    }

    /// The edge-wide defaults in force.
    pub fn defaults(&self) -> &VoiceDefaults {
        &self.defaults
    }

    /// The providers `spec` configures; an offline recogniser listens for its `rules` phrases.
    pub fn build(&self, spec: &AgentSpec) -> Result<AgentVoice, VoiceConfigError> {
        let expected = match &spec.rules {
            Some(table) => ExpectedSpeech::of_rules(table),
            None => ExpectedSpeech::of_rules(&RulesModel::demo().table),
        };
        self.build_listening_for(spec, expected)
    }

    /// The providers `spec` configures, an offline recogniser listening for what is `expected`
    /// (what a workflow's menus expect callers to say).
    pub fn build_listening_for(
        &self,
        spec: &AgentSpec,
        expected: ExpectedSpeech,
    ) -> Result<AgentVoice, VoiceConfigError> {
        let rules = spec.rules.as_ref();
        let (mut llm, llm_model) = self.language_model(spec.llm.as_ref(), "llm", rules)?;
        if let Some(second) = &spec.llm_fallback {
            let (fallback, fallback_model) =
                self.language_model(Some(second), "llm_fallback", rules)?;
            let mut policy = FallbackPolicy {
                fallback_model: Some(fallback_model),
                ..FallbackPolicy::default()
            };
            if let Some(ms) = spec.llm.as_ref().and_then(|l| l.timeout_ms) {
                policy.first_token_timeout = Duration::from_millis(u64::from(ms));
            }
            llm = Arc::new(FallbackModel::new(llm, fallback, policy));
        }
        let tts = self.text_to_speech(spec.tts.as_ref(), &spec.language)?;
        let tts_fallback = (tts.name() != "espeak").then(|| {
            Arc::new(EspeakTts::new(espeak_config(None, &spec.language))) as Arc<dyn TextToSpeech>
        });
        let (stt, live_stt) = self.speech_to_text(spec.stt.as_ref(), &spec.language, expected)?;
        Ok(AgentVoice {
            stt,
            live_stt,
            llm,
            llm_model,
            temperature: spec.llm.as_ref().and_then(|l| l.temperature),
            max_tokens: spec.llm.as_ref().and_then(|l| l.max_tokens),
            tts,
            tts_fallback,
            tools: ToolRunner::new(
                self.egress.clone(),
                spec.tool_secret.clone().unwrap_or_default().into_bytes(),
            ),
        })
    }

    /// The model a `section` (`llm` or `llm_fallback`) configures, and the model name to ask for.
    fn language_model(
        &self,
        spec: Option<&ProviderSpec>,
        section: &str,
        rules: Option<&RulesSpec>,
    ) -> Result<(Arc<dyn LanguageModel>, String), VoiceConfigError> {
        let Some(spec) = spec else {
            return Ok(match &self.defaults.llm_base_url {
                Some(base) => {
                    let config = OpenAiConfig::new(base.clone(), self.defaults.llm_api_key.clone());
                    (
                        Arc::new(OpenAiModel::new(self.http.clone(), config)),
                        self.defaults.llm_model.clone(),
                    )
                }
                None => (rules_model(rules), "rules".to_string()),
            });
        };
        let mut timeouts = StreamTimeouts::default();
        set_given(&mut timeouts.first_token, spec_timeout(spec).as_ref());
        match spec.provider.as_str() {
            "openai" => {
                let (base_url, http) =
                    self.provider_base(spec, OPENAI_BASE_URL, &format!("{section}.base_url"))?;
                let mut config = OpenAiConfig::new(base_url, spec.api_key.clone());
                config.timeouts = timeouts;
                let model = spec
                    .model
                    .clone()
                    .unwrap_or_else(|| DEFAULT_OPENAI_MODEL.into());
                Ok((Arc::new(OpenAiModel::new(http, config)), model))
            }
            "anthropic" => {
                let key = spec.api_key.clone().ok_or_else(|| {
                    VoiceConfigError::new(format!("{section}.api_key"), "anthropic needs a key")
                })?;
                let (base_url, http) =
                    self.provider_base(spec, ANTHROPIC_BASE_URL, &format!("{section}.base_url"))?;
                let mut config = AnthropicConfig::new(base_url, key);
                config.timeouts = timeouts;
                let model = spec
                    .model
                    .clone()
                    .unwrap_or_else(|| DEFAULT_ANTHROPIC_MODEL.into());
                Ok((Arc::new(AnthropicModel::new(http, config)), model))
            }
            "rules" => Ok((rules_model(rules), "rules".into())),
            other => Err(VoiceConfigError::new(
                format!("{section}.provider"),
                format!("unknown provider `{other}` (openai, anthropic, rules)"),
            )),
        }
    }

    /// The batch recogniser, and the live one when the provider streams.
    fn speech_to_text(
        &self,
        spec: Option<&ProviderSpec>,
        language: &str,
        expected: ExpectedSpeech,
    ) -> Result<LiveAndBatchStt, VoiceConfigError> {
        let local = |timeout_ms: Option<u32>| -> LiveAndBatchStt {
            let mut config = LocalSttConfig {
                work_dir: self.local_stt_dir.clone(),
                ..LocalSttConfig::default()
            };
            if let Some(ms) = timeout_ms {
                config.timeout = Duration::from_millis(u64::from(ms));
            }
            let stt = Arc::new(LocalStt::with_expected(config, expected.clone()));
            (stt.clone(), Some(stt))
        };
        let Some(spec) = spec else {
            return Ok(match &self.defaults.stt_base_url {
                Some(base_url) => {
                    let mut config = OpenAiSttConfig {
                        base_url: base_url.clone(),
                        api_key: self.defaults.stt_api_key.clone(),
                        language: language.split('-').next().map(str::to_string),
                        ..OpenAiSttConfig::default()
                    };
                    if let Some(model) = &self.defaults.stt_model {
                        config.model = model.clone();
                    }
                    (
                        Arc::new(OpenAiStt::with_client(config, self.http.clone())),
                        None,
                    )
                }
                None => local(None),
            });
        };
        let language_hint = language.split('-').next().map(str::to_string);
        match spec.provider.as_str() {
            "openai" => {
                let (base_url, http) = self.provider_base(spec, OPENAI_BASE_URL, "stt.base_url")?;
                let mut config = OpenAiSttConfig {
                    base_url,
                    api_key: spec.api_key.clone(),
                    language: language_hint,
                    ..OpenAiSttConfig::default()
                };
                set_given(&mut config.model, spec.model.as_ref());
                set_given(&mut config.timeout, spec_timeout(spec).as_ref());
                Ok((Arc::new(OpenAiStt::with_client(config, http)), None))
            }
            "deepgram" => {
                let mut config = DeepgramConfig {
                    api_key: spec.api_key.clone(),
                    language: language_hint,
                    public_only: !self.egress.allows_private(),
                    ..DeepgramConfig::default()
                };
                if let Some(url) = &spec.base_url {
                    // Literals are refused here; names are resolved and pinned at connect time
                    // (`DeepgramConfig::public_only`).
                    let http_form = url
                        .replacen("wss://", "https://", 1)
                        .replacen("ws://", "http://", 1);
                    self.customer_client("stt.base_url", &http_form)?;
                    config.url = url.clone();
                }
                set_given(&mut config.model, spec.model.as_ref());
                let timeout = Duration::from_millis(u64::from(spec.timeout_ms.unwrap_or(15_000)));
                let live: Arc<dyn StreamingSpeechToText> = Arc::new(DeepgramStt::new(config));
                Ok((
                    Arc::new(StreamingAsBatch::new(live.clone(), timeout)),
                    Some(live),
                ))
            }
            "local" => Ok(local(spec.timeout_ms)),
            other => Err(VoiceConfigError::new(
                "stt.provider",
                format!("unknown provider `{other}` (openai, deepgram, local)"),
            )),
        }
    }

    fn text_to_speech(
        &self,
        spec: Option<&ProviderSpec>,
        language: &str,
    ) -> Result<Arc<dyn TextToSpeech>, VoiceConfigError> {
        let Some(spec) = spec else {
            return Ok(Arc::new(EspeakTts::new(espeak_config(None, language))));
        };
        match spec.provider.as_str() {
            "openai" => {
                let (base_url, http) = self.provider_base(spec, OPENAI_BASE_URL, "tts.base_url")?;
                let mut config = OpenAiTtsConfig {
                    base_url,
                    api_key: spec.api_key.clone(),
                    ..OpenAiTtsConfig::default()
                };
                set_given(&mut config.model, spec.model.as_ref());
                set_given(&mut config.voice, spec.voice.as_ref());
                set_given(&mut config.first_byte_timeout, spec_timeout(spec).as_ref());
                Ok(Arc::new(OpenAiTts::with_client(config, http)))
            }
            "elevenlabs" => {
                let mut config = ElevenLabsConfig {
                    api_key: spec.api_key.clone(),
                    sample_rate: SampleRate::Hz16000,
                    ..ElevenLabsConfig::default()
                };
                set_given(&mut config.base_url, spec.base_url.as_ref());
                let http = self.customer_client("tts.base_url", &config.base_url)?;
                set_given(&mut config.model_id, spec.model.as_ref());
                set_given(&mut config.voice_id, spec.voice.as_ref());
                set_given(&mut config.first_byte_timeout, spec_timeout(spec).as_ref());
                let tts = ElevenLabsTts::with_client(config, http).map_err(|e| match e {
                    SpeechError::Config { field, detail } => VoiceConfigError::new(field, detail),
                    other => VoiceConfigError::new("tts", other.to_string()),
                })?;
                Ok(Arc::new(tts))
            }
            "espeak" => Ok(Arc::new(EspeakTts::new(espeak_config(
                spec.voice.as_deref(),
                language,
            )))),
            other => Err(VoiceConfigError::new(
                "tts.provider",
                format!("unknown provider `{other}` (openai, elevenlabs, espeak)"),
            )),
        }
    }
}

/// Overrides the default in `slot` with what the spec gives, when it gives something.
fn set_given<T: Clone>(slot: &mut T, given: Option<&T>) {
    if let Some(value) = given {
        *slot = value.clone();
    }
}

/// The provider's own timeout (`timeout_ms`), when the spec sets one.
fn spec_timeout(spec: &ProviderSpec) -> Option<Duration> {
    spec.timeout_ms
        .map(|ms| Duration::from_millis(u64::from(ms)))
}

/// The rules model of an agent: its own table, or the demo's answers when it has none.
fn rules_model(table: Option<&RulesSpec>) -> Arc<dyn LanguageModel> {
    Arc::new(match table {
        Some(table) => RulesModel::new(table.clone()),
        None => RulesModel::demo(),
    })
}

/// espeak-ng settings: the configured voice, or one derived from the agent's language.
fn espeak_config(voice: Option<&str>, language: &str) -> EspeakConfig {
    let voice = match voice {
        Some(v) => v.to_string(),
        None if language.eq_ignore_ascii_case("en") => "en-us".to_string(),
        None => language.to_ascii_lowercase(),
    };
    EspeakConfig {
        voice,
        ..EspeakConfig::default()
    }
}

#[cfg(test)]
mod tests;
