//! The language-model half of the voice pipeline. A finished caller turn becomes a
//! [`ChatRequest`]; a [`LanguageModel`] answers with a stream of [`LlmEvent`]s (tokens, tool
//! calls, done) that the call task cuts into speakable chunks with [`SentenceSplitter`] and feeds to
//! TTS while the model still writes. Providers: any OpenAI-compatible Chat Completions endpoint
//! ([`OpenAiModel`]), the Anthropic Messages API ([`AnthropicModel`]), the offline keyword table
//! ([`RulesModel`], not a language model), and [`FallbackModel`] that switches to a second model
//! when the first fails or is slow to its first token. Dropping a reply stream cancels it: the HTTP
//! request is aborted with it. Tool calls run through [`ToolRunner`]; [`fakes`] holds fake
//! provider servers for tests.

pub(crate) mod anthropic;
/// The fake LLM server: `freya dev` and `freya-control`'s tests talk to it.
pub mod fakes;
pub(crate) mod fallback;
mod http_stream;
pub(crate) mod openai;
pub(crate) mod rules;
pub(crate) mod sentences;
pub(crate) mod sse;
/// Tool-call signing: `freya-control`'s dev desk and tests verify the edge's signature.
pub mod tools;
pub(crate) mod types;

#[cfg(test)]
mod client_tests;

use std::pin::Pin;

use futures::Stream;
use tokio_util::sync::CancellationToken;

pub use anthropic::{AnthropicConfig, AnthropicModel};
pub use fallback::{FallbackModel, FallbackPolicy};
pub use http_stream::StreamTimeouts;
pub use openai::{OpenAiConfig, OpenAiModel};
pub use rules::RulesModel;
pub use sentences::SentenceSplitter;
pub use tools::{ToolEndpoint, ToolError, ToolOutput, ToolRunner};
pub use types::{
    ChatMessage, ChatRequest, FallbackNotice, FallbackReason, FinishReason, LlmError, LlmEvent,
    ToolCall, ToolDefinition, Usage, FALLBACK_ERROR_CHARS,
};

/// A streamed reply: events until `Done`, or an error, then the end. Drop it to cancel.
pub type LlmStream = Pin<Box<dyn Stream<Item = Result<LlmEvent, LlmError>> + Send>>;

/// Something that answers a conversation turn with a streamed reply. Object-safe, so a call
/// task holds an `Arc<dyn LanguageModel>` chosen from the agent's configuration.
pub trait LanguageModel: Send + Sync {
    /// Short name for logs and call events (`openai`, `anthropic`, `rules`, `fallback`).
    fn provider(&self) -> &'static str;

    /// Starts a reply. Nothing is sent until the stream is first polled; dropping the stream
    /// aborts the request wherever it is.
    fn stream_chat(&self, request: ChatRequest) -> LlmStream;
}

/// Ends `stream` with [`LlmError::Cancelled`] as soon as `token` is cancelled (barge-in,
/// hang-up), dropping — and so aborting — the underlying request at that moment.
pub fn cancel_on(stream: LlmStream, token: CancellationToken) -> LlmStream {
    let state = (Some(stream), token);
    Box::pin(futures::stream::unfold(
        state,
        |(stream, token)| async move {
            let mut stream = stream?;
            tokio::select! {
                biased;
                _ = token.cancelled() => Some((Err(LlmError::Cancelled), (None, token))),
                item = futures::StreamExt::next(&mut stream) => {
                    item.map(|item| (item, (Some(stream), token)))
                }
            }
        },
    ))
}
