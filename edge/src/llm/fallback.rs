//! A primary language model with a fallback behind it, so a provider outage or a slow start does
//! not become dead air on a call. The primary gets a first-token budget; if it fails, ends empty,
//! or stays silent past the budget *before anything was emitted*, it is dropped (which aborts its
//! request) and the fallback answers the same request instead. Once the primary has emitted an
//! event the caller may already be hearing it, so switching would repeat or contradict speech:
//! from then on its errors pass through unchanged. That is the only retry this layer makes.
//! A switch is announced in the stream itself ([`LlmEvent::FellBack`], before the fallback's
//! first event) so the call can record which model answered and why.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::types::{ChatRequest, FallbackNotice, FallbackReason, LlmError, LlmEvent};
use super::{LanguageModel, LlmStream};

/// When to give up on the primary.
#[derive(Debug, Clone, PartialEq)]
pub struct FallbackPolicy {
    /// How long the primary may take to its first event before the fallback answers.
    pub first_token_timeout: Duration,
    /// Model name for the fallback's requests (providers name models differently); the
    /// request's own `model` when absent.
    pub fallback_model: Option<String>,
}

impl Default for FallbackPolicy {
    fn default() -> Self {
        Self {
            first_token_timeout: Duration::from_millis(1500),
            fallback_model: None,
        }
    }
}

/// Answers with the primary, or with the fallback when the primary fails or is slow to start.
#[derive(Clone)]
pub struct FallbackModel {
    primary: Arc<dyn LanguageModel>,
    fallback: Arc<dyn LanguageModel>,
    policy: FallbackPolicy,
}

impl FallbackModel {
    /// Wraps `primary` with `fallback` under `policy`.
    pub fn new(
        primary: Arc<dyn LanguageModel>,
        fallback: Arc<dyn LanguageModel>,
        policy: FallbackPolicy,
    ) -> Self {
        Self {
            primary,
            fallback,
            policy,
        }
    }
}

enum Phase {
    /// The primary has not emitted anything yet.
    Primary(LlmStream),
    /// Passing through whichever model answered.
    Answering(LlmStream),
    Finished,
}

struct Attempt {
    phase: Phase,
    request: Option<ChatRequest>,
    fallback: Arc<dyn LanguageModel>,
    policy: FallbackPolicy,
    primary_name: &'static str,
}

impl Attempt {
    async fn next_item(&mut self) -> Option<Result<LlmEvent, LlmError>> {
        match std::mem::replace(&mut self.phase, Phase::Finished) {
            Phase::Finished => None,
            Phase::Answering(mut stream) => {
                let item = stream.next().await;
                if item.is_some() {
                    self.phase = Phase::Answering(stream);
                }
                item
            }
            Phase::Primary(mut stream) => {
                let budget = self.policy.first_token_timeout;
                let reason = match tokio::time::timeout(budget, stream.next()).await {
                    Ok(Some(Ok(event))) => {
                        self.phase = Phase::Answering(stream);
                        return Some(Ok(event));
                    }
                    Ok(Some(Err(LlmError::Cancelled))) => return Some(Err(LlmError::Cancelled)),
                    // The client's own first-token budget (the same setting) may run out
                    // first: a timeout either way.
                    Ok(Some(Err(LlmError::FirstTokenTimeout { after, .. }))) => {
                        FallbackReason::FirstTokenTimeout { after }
                    }
                    Ok(Some(Err(error))) => FallbackReason::failed(&error),
                    Ok(None) => FallbackReason::Empty,
                    Err(_) => FallbackReason::FirstTokenTimeout { after: budget },
                };
                drop(stream); // aborts the primary's request
                self.switch(reason)
            }
        }
    }

    /// Starts the fallback on the request and announces the switch, which comes out of the
    /// stream before the fallback's first event.
    fn switch(&mut self, reason: FallbackReason) -> Option<Result<LlmEvent, LlmError>> {
        let mut request = self.request.take()?;
        let primary = format!("{}/{}", self.primary_name, request.model);
        if let Some(model) = &self.policy.fallback_model {
            request.model = model.clone();
        }
        let fallback = format!("{}/{}", self.fallback.provider(), request.model);
        tracing::warn!(
            %primary,
            %fallback,
            reason = %reason.describe(),
            "language model falling back"
        );
        self.phase = Phase::Answering(self.fallback.stream_chat(request));
        Some(Ok(LlmEvent::FellBack(FallbackNotice {
            primary,
            fallback,
            reason,
        })))
    }
}

impl LanguageModel for FallbackModel {
    fn provider(&self) -> &'static str {
        "fallback"
    }

    fn stream_chat(&self, request: ChatRequest) -> LlmStream {
        let attempt = Attempt {
            phase: Phase::Primary(self.primary.stream_chat(request.clone())),
            request: Some(request),
            fallback: Arc::clone(&self.fallback),
            policy: self.policy.clone(),
            primary_name: self.primary.provider(),
        };
        Box::pin(futures::stream::unfold(attempt, |mut attempt| async move {
            attempt.next_item().await.map(|item| (item, attempt))
        }))
    }
}
