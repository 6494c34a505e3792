//! Fake language-model providers for tests: in-process HTTP servers on `127.0.0.1:0` that speak
//! the real wire protocols — OpenAI Chat Completions SSE and Anthropic Messages SSE — so the real
//! clients run against them unchanged. Replies are scripted ([`FakeReply`]: text, tool calls,
//! first-token latency, inter-token delay, HTTP failures, a connection cut mid-stream, an
//! in-stream error), taken from a queue or computed from the request, and every request is
//! recorded with how its stream ended, so a test can assert that the system prompt and transcript
//! reached the model, or that a dropped reply really stopped the server's stream. The Anthropic
//! fake refuses, with the API's 400, a request the real Messages API would refuse. Cloud providers
//! are unreachable from tests; these are what the pipeline's integration tests talk to instead.

mod anthropic;
mod openai;
mod script;

pub use script::{FakeFailure, FakeReply, FakeToolCall};

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::Value;
use tokio::sync::Notify;

/// Which provider protocol a fake server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FakeWire {
    /// OpenAI Chat Completions at `/v1/chat/completions` (also `/chat/completions`).
    OpenAi,
    /// Anthropic Messages at `/v1/messages`.
    Anthropic,
}

/// How the server's side of a recorded request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamOutcome {
    /// Still sending.
    Streaming,
    /// The whole scripted reply was sent.
    Completed,
    /// The client went away before the reply was complete (a cancelled request).
    ClientGone,
    /// The fake cut the connection as scripted.
    Cut,
    /// A failure status (or 404 for an unknown path) was answered.
    Refused(u16),
}

/// A request as the fake received it.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// Request path (`/v1/chat/completions`).
    pub path: String,
    /// Headers, names in lower case.
    pub headers: BTreeMap<String, String>,
    /// The JSON body (`Null` if it was not JSON).
    pub body: Value,
    /// How the response ended so far.
    pub outcome: StreamOutcome,
    /// Tokens and tool-call fragments sent.
    pub tokens_sent: usize,
}

impl RecordedRequest {
    /// A header's value by (case-insensitive) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The system prompt, from either protocol's place for it.
    pub fn system_prompt(&self) -> Option<String> {
        if let Some(system) = self.body.get("system").and_then(Value::as_str) {
            return Some(system.to_string());
        }
        self.messages_of("system").into_iter().next()
    }

    /// Text of every caller (`user`) turn, oldest first; tool results are left out.
    pub fn user_texts(&self) -> Vec<String> {
        self.messages_of("user")
    }

    fn messages_of(&self, role: &str) -> Vec<String> {
        let messages = self.body.get("messages").and_then(Value::as_array);
        let Some(messages) = messages else {
            return Vec::new();
        };
        messages
            .iter()
            .filter(|m| m.get("role").and_then(Value::as_str) == Some(role))
            .filter_map(|m| match m.get("content") {
                Some(Value::String(text)) => Some(text.clone()),
                Some(Value::Array(blocks)) => {
                    let texts: Vec<&str> = blocks
                        .iter()
                        .filter(|b| b.get("type").and_then(Value::as_str) == Some("text"))
                        .filter_map(|b| b.get("text").and_then(Value::as_str))
                        .collect();
                    (!texts.is_empty()).then(|| texts.join("\n"))
                }
                _ => None,
            })
            .collect()
    }
}

type Responder = Box<dyn Fn(&RecordedRequest) -> FakeReply + Send + Sync>;

struct Shared {
    wire: FakeWire,
    queue: Mutex<VecDeque<FakeReply>>,
    responder: Mutex<Option<Responder>>,
    log: Mutex<Vec<RecordedRequest>>,
    changed: Notify,
}

impl Shared {
    fn log(&self) -> MutexGuard<'_, Vec<RecordedRequest>> {
        // A test that panicked while holding the lock must not hide the log from the others.
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn update(&self, index: usize, change: impl FnOnce(&mut RecordedRequest)) {
        if let Some(request) = self.log().get_mut(index) {
            change(request);
        }
        self.changed.notify_waiters();
    }
}

/// A running fake provider; stops when dropped.
pub struct FakeLlmServer {
    address: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeLlmServer {
    /// Starts a fake speaking `wire` on an ephemeral local port.
    pub async fn start(wire: FakeWire) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            wire,
            queue: Mutex::new(VecDeque::new()),
            responder: Mutex::new(None),
            log: Mutex::new(Vec::new()),
            changed: Notify::new(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let state = Arc::clone(&shared);
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let state = Arc::clone(&state);
                async move { handle(state, method, uri, headers, body).await }
            },
        );
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "fake model server stopped");
            }
        });
        Ok(Self {
            address,
            shared,
            task,
        })
    }

    /// A fake OpenAI-compatible endpoint.
    pub async fn openai() -> std::io::Result<Self> {
        Self::start(FakeWire::OpenAi).await
    }

    /// A fake Anthropic endpoint.
    pub async fn anthropic() -> std::io::Result<Self> {
        Self::start(FakeWire::Anthropic).await
    }

    /// The `base_url` to configure the matching client with.
    pub fn base_url(&self) -> String {
        match self.shared.wire {
            FakeWire::OpenAi => format!("http://{}/v1", self.address),
            FakeWire::Anthropic => format!("http://{}", self.address),
        }
    }

    /// Queues a reply for the next request (queued replies are used first, in order).
    pub fn push_reply(&self, reply: FakeReply) {
        lock(&self.shared.queue).push_back(reply);
    }

    /// Computes replies from the request once the queue is empty.
    pub fn respond_with(
        &self,
        responder: impl Fn(&RecordedRequest) -> FakeReply + Send + Sync + 'static,
    ) {
        *lock(&self.shared.responder) = Some(Box::new(responder));
    }

    /// Every request received so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.log().clone()
    }

    /// Waits until request `index` has arrived and its stream has ended, at most `timeout`.
    pub async fn wait_until_ended(
        &self,
        index: usize,
        timeout: Duration,
    ) -> Option<RecordedRequest> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.shared.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(request) = self.shared.log().get(index) {
                if request.outcome != StreamOutcome::Streaming {
                    return Some(request.clone());
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return None;
            }
        }
    }
}

impl Drop for FakeLlmServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One piece of a scripted response body.
pub(crate) enum Step {
    /// Bytes sent at once (preamble, closing events).
    Frame(String),
    /// A token or tool-call fragment, sent after the scripted delay.
    Token(String),
    /// Abort the connection here.
    Cut,
}

async fn handle(
    shared: Arc<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let record = RecordedRequest {
        path: uri.path().to_string(),
        headers: headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_string(), value)
            })
            .collect(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        outcome: StreamOutcome::Streaming,
        tokens_sent: 0,
    };
    let known_path = match shared.wire {
        FakeWire::OpenAi => matches!(
            record.path.as_str(),
            "/v1/chat/completions" | "/chat/completions"
        ),
        FakeWire::Anthropic => record.path == "/v1/messages",
    };
    // A request the real Messages API would refuse gets its 400, not a scripted reply.
    let refused = match shared.wire {
        FakeWire::Anthropic if method == Method::POST && known_path => {
            anthropic::refusal(&record.body)
        }
        _ => None,
    };
    let reply = if let Some(message) = refused {
        FakeReply::status(400, &anthropic::refusal_body(&message))
    } else if method == Method::POST && known_path {
        let queued = lock(&shared.queue).pop_front();
        queued.unwrap_or_else(|| match lock(&shared.responder).as_ref() {
            Some(responder) => responder(&record),
            None => FakeReply::text("This is the fake model's reply."),
        })
    } else {
        FakeReply::status(404, "no such endpoint on this fake")
    };
    let index = {
        let mut log = shared.log();
        log.push(record.clone());
        log.len() - 1
    };
    shared.changed.notify_waiters();

    if let Some(FakeFailure::Status { status, body }) = &reply.failure {
        tokio::time::sleep(reply.first_token_delay).await;
        let status = StatusCode::from_u16(*status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        shared.update(index, |r| {
            r.outcome = StreamOutcome::Refused(status.as_u16())
        });
        return (status, body.clone()).into_response();
    }
    let steps = match shared.wire {
        FakeWire::OpenAi => openai::steps(&reply, &record.body),
        FakeWire::Anthropic => anthropic::steps(&reply, &record.body),
    };
    let guard = OutcomeGuard {
        shared,
        index,
        ended: false,
    };
    let playback = Playback {
        steps: steps.into_iter(),
        guard,
        first: true,
        first_token_delay: reply.first_token_delay,
        token_delay: reply.token_delay,
        pause: reply.pause,
        tokens: 0,
    };
    let stream = futures::stream::unfold(playback, |mut playback| async move {
        playback.next().await.map(|item| (item, playback))
    });
    Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(Body::from_stream(stream))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Marks the request `ClientGone` if the body is dropped before it ended on its own.
struct OutcomeGuard {
    shared: Arc<Shared>,
    index: usize,
    ended: bool,
}

impl OutcomeGuard {
    fn end(&mut self, outcome: StreamOutcome) {
        self.ended = true;
        self.shared.update(self.index, |r| r.outcome = outcome);
    }
}

impl Drop for OutcomeGuard {
    fn drop(&mut self) {
        if !self.ended {
            self.shared
                .update(self.index, |r| r.outcome = StreamOutcome::ClientGone);
        }
    }
}

struct Playback {
    steps: std::vec::IntoIter<Step>,
    guard: OutcomeGuard,
    first: bool,
    first_token_delay: Duration,
    token_delay: Duration,
    /// The scripted pause: before which token, and how long.
    pause: Option<(usize, Duration)>,
    /// Tokens played so far.
    tokens: usize,
}

impl Playback {
    async fn next(&mut self) -> Option<Result<Bytes, std::io::Error>> {
        if self.guard.ended {
            return None;
        }
        match self.steps.next() {
            None => {
                self.guard.end(StreamOutcome::Completed);
                None
            }
            Some(Step::Frame(frame)) => Some(Ok(Bytes::from(frame))),
            Some(Step::Token(frame)) => {
                let delay = if self.first {
                    self.first_token_delay
                } else {
                    self.token_delay
                };
                self.first = false;
                let delay = match self.pause {
                    Some((index, pause)) if index == self.tokens => delay + pause,
                    _ => delay,
                };
                self.tokens += 1;
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                self.guard
                    .shared
                    .update(self.guard.index, |r| r.tokens_sent += 1);
                Some(Ok(Bytes::from(frame)))
            }
            Some(Step::Cut) => {
                // Pause first: while the body is pending the server flushes what was already
                // written, so the client really receives the tokens before the cut.
                tokio::time::sleep(Duration::from_millis(20)).await;
                self.guard.end(StreamOutcome::Cut);
                Some(Err(std::io::Error::other("scripted cut")))
            }
        }
    }
}
