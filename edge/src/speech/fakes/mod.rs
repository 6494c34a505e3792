//! Fake speech providers for tests: in-process servers on 127.0.0.1:0 that speak the real wire
//! protocols (OpenAI transcription and speech, Deepgram live WebSocket, ElevenLabs streaming),
//! so the real clients are exercised end to end without a network. Each fake replies from a
//! script, can be told to be slow or to fail, and records what it received (the fake STT keeps
//! the WAV it was sent and its duration) for the test to assert on. Public, not `cfg(test)`:
//! the edge's integration tests and the benchmarks use them too. Dropping a fake stops it.

pub(crate) mod deepgram;
pub(crate) mod elevenlabs;
pub(crate) mod openai;

pub use deepgram::{DeepgramReceived, DeepgramUtterance, FakeDeepgram};
pub use elevenlabs::{ElevenLabsRequest, FakeElevenLabs};
pub use openai::{FakeOpenAiSpeech, ReceivedSpeechRequest, ReceivedUtterance};

use std::net::SocketAddr;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;

/// How a fake misbehaves: latency before answering, scripted failures, slow streaming.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultPlan {
    /// Delay before the response (HTTP headers, or each WebSocket result).
    pub latency: Duration,
    /// Answer this many next requests with `fail_status` instead of success.
    pub fail_next: u32,
    /// Status used for scripted failures (e.g. 500, 429, 401).
    pub fail_status: u16,
    /// Pause between streamed audio chunks.
    pub chunk_interval: Duration,
    /// Bytes per streamed audio chunk; odd on purpose so clients must re-join split samples.
    pub chunk_bytes: usize,
}

impl Default for FaultPlan {
    fn default() -> Self {
        FaultPlan {
            latency: Duration::ZERO,
            fail_next: 0,
            fail_status: 500,
            chunk_interval: Duration::ZERO,
            chunk_bytes: 333,
        }
    }
}

impl FaultPlan {
    /// The next request alone fails with `status`; the ones after it succeed.
    pub fn fail_once(status: u16) -> Self {
        Self {
            fail_next: 1,
            fail_status: status,
            ..Self::default()
        }
    }

    /// Consumes one scripted failure, returning its status if this request should fail.
    fn take_failure(&mut self) -> Option<u16> {
        (self.fail_next > 0).then(|| {
            self.fail_next -= 1;
            self.fail_status
        })
    }
}

/// Locks a fake's state, ignoring poisoning (a panicking test must not cascade).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A running fake: its address, and the task serving it (aborted on drop).
#[derive(Debug)]
struct ServerTask {
    addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ServerTask {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves an axum router on 127.0.0.1:0.
async fn serve_router(router: axum::Router) -> std::io::Result<ServerTask> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Ok(ServerTask { addr, task })
}

/// A 16-bit mono tone, for scripted audio: `ms` long at `hz`, a 440 Hz sine at half scale.
pub fn tone(hz: u32, ms: u32) -> Vec<i16> {
    let n = (u64::from(hz) * u64::from(ms) / 1000) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(hz);
            (16_000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16
        })
        .collect()
}

/// An HTTP body streaming `samples` as s16le in `plan.chunk_bytes` pieces, `plan.chunk_interval` apart.
fn pcm_body(samples: &[i16], plan: &FaultPlan) -> axum::body::Body {
    let bytes: Bytes = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
    let chunk = plan.chunk_bytes.max(1);
    let interval = plan.chunk_interval;
    let stream = futures::stream::unfold((bytes, true), move |(mut rest, first)| async move {
        if rest.is_empty() {
            return None;
        }
        if !first && !interval.is_zero() {
            tokio::time::sleep(interval).await;
        }
        let piece = rest.split_to(chunk.min(rest.len()));
        Some((Ok::<_, std::convert::Infallible>(piece), (rest, false)))
    });
    axum::body::Body::from_stream(stream)
}

/// A JSON error body in the OpenAI style, which the other fakes borrow too.
fn error_response(status: u16, message: &str) -> axum::response::Response {
    use axum::response::IntoResponse;
    let status = axum::http::StatusCode::from_u16(status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::json!({"error": {"message": message, "type": "fake_failure"}});
    (status, axum::Json(body)).into_response()
}
