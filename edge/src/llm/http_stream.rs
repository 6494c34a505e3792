//! The async shell shared by the HTTP providers: send the request, check the status, move body
//! bytes through the [`SseDecoder`] into a provider's sans-IO wire decoder, and hand out the
//! resulting events — with a first-token budget and an idle budget mid-reply. The whole request
//! lives inside the returned stream, so dropping the stream drops the connection.

use std::collections::VecDeque;
use std::time::Duration;

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use tokio::time::Instant;

use super::sse::{SseDecoder, SseEvent};
use super::types::{excerpt, LlmError, LlmEvent};
use super::LlmStream;
use freya_shared::error_chain::error_chain;

/// Longest response-body excerpt kept in an [`LlmError::Status`].
const STATUS_BODY_EXCERPT_CHARS: usize = 500;

/// Time budgets of one streamed reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamTimeouts {
    /// From sending the request to the first token or tool-call fragment.
    pub first_token: Duration,
    /// Longest silence between two body chunks once the reply has started.
    pub idle: Duration,
}

impl Default for StreamTimeouts {
    fn default() -> Self {
        Self {
            first_token: Duration::from_secs(10),
            idle: Duration::from_secs(30),
        }
    }
}

/// A provider's sans-IO translation from SSE events to [`LlmEvent`]s.
pub(crate) trait WireDecoder: Send + 'static {
    /// Handles one SSE event, appending what it completes to `out`.
    fn on_event(&mut self, event: SseEvent, out: &mut VecDeque<LlmEvent>) -> Result<(), LlmError>;
    /// The body ended: emit what remains, or fail if the reply is incomplete.
    fn on_end(&mut self, out: &mut VecDeque<LlmEvent>) -> Result<(), LlmError>;
    /// True once any content (text or a tool-call fragment) has arrived.
    fn started(&self) -> bool;
}

/// Turns a prepared HTTP request and a decoder into an [`LlmStream`].
pub(crate) fn stream_reply<D: WireDecoder>(
    provider: &'static str,
    request: reqwest::RequestBuilder,
    url: String,
    decoder: D,
    timeouts: StreamTimeouts,
) -> LlmStream {
    let reply = Reply {
        provider,
        url,
        request: Some(request),
        body: None,
        sse: SseDecoder::new(),
        decoder,
        ready: VecDeque::new(),
        timeouts,
        first_token_deadline: None,
        failure: None,
        finished: false,
    };
    Box::pin(futures::stream::unfold(reply, |mut reply| async move {
        reply.next_item().await.map(|item| (item, reply))
    }))
}

struct Reply<D> {
    provider: &'static str,
    url: String,
    request: Option<reqwest::RequestBuilder>,
    body: Option<BoxStream<'static, reqwest::Result<Bytes>>>,
    sse: SseDecoder,
    decoder: D,
    ready: VecDeque<LlmEvent>,
    timeouts: StreamTimeouts,
    /// Set when the request is sent; cleared once the reply has started.
    first_token_deadline: Option<Instant>,
    failure: Option<LlmError>,
    finished: bool,
}

impl<D: WireDecoder> Reply<D> {
    async fn next_item(&mut self) -> Option<Result<LlmEvent, LlmError>> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                if matches!(event, LlmEvent::Done { .. }) {
                    self.finished = true;
                    self.ready.clear();
                    self.body = None;
                }
                return Some(Ok(event));
            }
            if let Some(error) = self.failure.take() {
                self.finished = true;
                return Some(Err(error));
            }
            if self.finished {
                return None;
            }
            let result = match self.request.take() {
                Some(request) => self.send(request).await,
                None => self.read_body().await,
            };
            if let Err(error) = result {
                // Events decoded before the failure are still delivered first.
                self.body = None;
                self.failure = Some(error);
            }
        }
    }

    fn deadline(&self) -> (Instant, bool) {
        match self.first_token_deadline {
            Some(deadline) => (deadline, true),
            None => (Instant::now() + self.timeouts.idle, false),
        }
    }

    fn timeout_error(&self, before_first_token: bool) -> LlmError {
        if before_first_token {
            LlmError::FirstTokenTimeout {
                provider: self.provider,
                after: self.timeouts.first_token,
            }
        } else {
            LlmError::Stalled {
                provider: self.provider,
                after: self.timeouts.idle,
            }
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Result<(), LlmError> {
        let deadline = Instant::now() + self.timeouts.first_token;
        self.first_token_deadline = Some(deadline);
        let response = match tokio::time::timeout_at(deadline, request.send()).await {
            Err(_) => return Err(self.timeout_error(true)),
            Ok(Err(error)) => {
                return Err(LlmError::Connect {
                    provider: self.provider,
                    url: self.url.clone(),
                    reason: error_chain(&error),
                })
            }
            Ok(Ok(response)) => response,
        };
        let status = response.status();
        if !status.is_success() {
            // The body explains the failure; read it within what is left of the budget.
            let body = tokio::time::timeout_at(deadline, response.text())
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            return Err(LlmError::Status {
                provider: self.provider,
                status: status.as_u16(),
                body: excerpt(body.trim(), STATUS_BODY_EXCERPT_CHARS),
            });
        }
        tracing::debug!(provider = self.provider, %status, "model reply stream opened");
        self.body = Some(response.bytes_stream().boxed());
        Ok(())
    }

    async fn read_body(&mut self) -> Result<(), LlmError> {
        let (deadline, before_first_token) = self.deadline();
        let Some(body) = self.body.as_mut() else {
            return Err(LlmError::Interrupted {
                provider: self.provider,
                reason: "no response body".into(),
            });
        };
        match tokio::time::timeout_at(deadline, body.next()).await {
            Err(_) => Err(self.timeout_error(before_first_token)),
            Ok(Some(Err(error))) => Err(LlmError::Interrupted {
                provider: self.provider,
                reason: error_chain(&error),
            }),
            Ok(Some(Ok(bytes))) => {
                let pushed = self.sse.push(&bytes);
                while let Some(event) = self.sse.poll_event() {
                    self.decoder.on_event(event, &mut self.ready)?;
                }
                pushed.map_err(|error| LlmError::Protocol {
                    provider: self.provider,
                    what: "event stream",
                    detail: error.to_string(),
                })?;
                if self.decoder.started() {
                    self.first_token_deadline = None;
                }
                Ok(())
            }
            Ok(None) => {
                self.body = None;
                while let Some(event) = self.sse.finish() {
                    self.decoder.on_event(event, &mut self.ready)?;
                }
                self.decoder.on_end(&mut self.ready)?;
                if !self
                    .ready
                    .iter()
                    .any(|e| matches!(e, LlmEvent::Done { .. }))
                {
                    return Err(LlmError::Interrupted {
                        provider: self.provider,
                        reason: "the body ended before the reply was complete".into(),
                    });
                }
                Ok(())
            }
        }
    }
}
