//! Text-to-speech providers, one file each: [`openai`] (`/audio/speech`, raw 24 kHz PCM),
//! [`elevenlabs`] (HTTP streaming endpoint, raw PCM) and [`espeak`] (offline espeak-ng). Each
//! implements [`TextToSpeech`](super::TextToSpeech) and streams audio as it arrives.

pub(crate) mod elevenlabs;
/// eSpeak: `doctor` names its package, the load tester speaks with it.
pub mod espeak;
pub(crate) mod openai;

pub use elevenlabs::{ElevenLabsConfig, ElevenLabsTts};
pub use espeak::{EspeakConfig, EspeakTts};
pub use openai::{OpenAiTts, OpenAiTtsConfig};
