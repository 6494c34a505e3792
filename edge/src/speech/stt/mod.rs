//! Speech-to-text providers, one file each: [`openai`] (batch, any OpenAI-compatible Whisper
//! server), [`deepgram`] (live streaming over WebSocket with endpointing) and [`local`]
//! (offline pocketsphinx). Each implements [`SpeechToText`](super::SpeechToText) or
//! [`StreamingSpeechToText`](super::StreamingSpeechToText).

pub(crate) mod deepgram;
/// The local recogniser: `freya dev`, `doctor` and the load tester's listener.
pub mod local;
pub(crate) mod openai;

pub use deepgram::{DeepgramConfig, DeepgramStt};
pub use local::{LocalStt, LocalSttConfig};
pub use openai::{OpenAiStt, OpenAiSttConfig};
