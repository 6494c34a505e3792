//! Several control-plane replicas behind one gRPC client. The control plane is stateless over
//! its shared database, so any replica serves any request; the edge keeps using one (its
//! streams stay on it) until a request to it fails at the transport — refused, reset, timed
//! out — and then moves every later request to the next URL in `control.urls`. The link tasks
//! already retry with backoff (`backoff.rs`), so a dead replica costs each task one failed
//! attempt and one pause, and a replica that comes back is used again when its turn comes.
//!
//! A gRPC status from a live replica (`UNAVAILABLE` because its database is, `NOT_FOUND`) is
//! an answer, not a transport failure: it does not move the edge.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tonic::body::Body;
use tonic::codegen::http;
use tonic::transport::Channel;
use tower_service::Service;

/// Which replica the edge uses now: a counter shared by every clone, taken modulo the number of
/// URLs, so moving on is one compare-and-swap that concurrent failures do not repeat.
#[derive(Debug, Default)]
pub(crate) struct Rotation {
    turn: AtomicUsize,
}

impl Rotation {
    /// The turn in use now.
    pub(crate) fn current(&self) -> usize {
        self.turn.load(Ordering::Relaxed)
    }

    /// Moves past `failed` if it is still the turn in use (another request may have moved on
    /// already: then the edge is on a newer replica and stays there).
    pub(crate) fn move_past(&self, failed: usize) -> bool {
        self.turn
            .compare_exchange(
                failed,
                failed.wrapping_add(1),
                Ordering::Relaxed,
                Ordering::Relaxed,
            )
            .is_ok()
    }
}

/// One lazily connected channel per control-plane URL, used in turn.
#[derive(Clone)]
pub struct FailoverChannel {
    channels: Arc<[(String, Channel)]>,
    rotation: Arc<Rotation>,
    /// The channel `poll_ready` made ready, and its turn: `call` must use the same one.
    chosen: Option<(usize, Channel)>,
}

impl FailoverChannel {
    /// Uses `channels` (URL, channel) in the order given, starting with the first.
    pub(crate) fn new(channels: Vec<(String, Channel)>) -> Self {
        Self {
            channels: channels.into(),
            rotation: Arc::new(Rotation::default()),
            chosen: None,
        }
    }

    fn pick(&self, turn: usize) -> Channel {
        // `new` is never given an empty list (the config requires a URL), but a modulo by zero
        // must not be reachable from configuration: `checked_rem` keeps it a plain fallback.
        let index = turn.checked_rem(self.channels.len()).unwrap_or(0);
        self.channels[index].1.clone()
    }
}

/// The URL a failed turn used, for the log.
fn url_of(channels: &[(String, Channel)], turn: usize) -> &str {
    turn.checked_rem(channels.len())
        .and_then(|i| channels.get(i))
        .map_or("", |(url, _)| url.as_str())
}

type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<Body>, tonic::transport::Error>> + Send>>;

impl Service<http::Request<Body>> for FailoverChannel {
    type Response = http::Response<Body>;
    type Error = tonic::transport::Error;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.chosen.is_none() {
            let turn = self.rotation.current();
            self.chosen = Some((turn, self.pick(turn)));
        }
        let Some((turn, channel)) = self.chosen.as_mut() else {
            return Poll::Pending;
        };
        match channel.poll_ready(cx) {
            Poll::Ready(Err(e)) => {
                let turn = *turn;
                self.chosen = None;
                if self.rotation.move_past(turn) && self.channels.len() > 1 {
                    tracing::warn!(url = url_of(&self.channels, turn), error = %e, "control plane unreachable; trying the next control.urls entry");
                }
                Poll::Ready(Err(e))
            }
            other => other,
        }
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let (turn, mut channel) = match self.chosen.take() {
            Some(chosen) => chosen,
            None => {
                let turn = self.rotation.current();
                (turn, self.pick(turn))
            }
        };
        let response = channel.call(request);
        let rotation = self.rotation.clone();
        let channels = self.channels.clone();
        Box::pin(async move {
            let result = response.await;
            if let Err(e) = &result {
                if rotation.move_past(turn) && channels.len() > 1 {
                    tracing::warn!(url = url_of(&channels, turn), error = %e, "control plane unreachable; trying the next control.urls entry");
                }
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_moves_on_once_however_many_requests_saw_it() {
        let rotation = Rotation::default();
        let seen = rotation.current();
        assert!(rotation.move_past(seen));
        // A second request that failed on the same replica does not skip the next one.
        assert!(!rotation.move_past(seen));
        assert_eq!(rotation.current(), seen + 1);
    }

    #[test]
    fn turns_wrap_around_the_urls() {
        let rotation = Rotation {
            turn: AtomicUsize::new(usize::MAX),
        };
        assert!(rotation.move_past(usize::MAX));
        assert_eq!(rotation.current(), 0);
    }
}
