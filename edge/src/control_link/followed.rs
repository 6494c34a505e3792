//! A stream the control plane serves this edge for as long as the edge runs (its configuration,
//! its commands), followed through failures: opened, read message by message, and when it fails
//! or ends, opened again after a pause. The backoff starts over with every message received;
//! shutdown ends the following at once, also during a pause.

use std::future::Future;

use tonic::{Status, Streaming};

use super::{log_failure, Backoff, LinkContext};

/// One followed stream; [`Followed::next`] gives its messages in order.
pub(crate) struct Followed<'a, T, Open> {
    link: &'a LinkContext,
    /// What the logs say failed when the open stream fails.
    receiving: &'static str,
    /// What the logs say failed when the stream cannot be opened.
    opening: &'static str,
    open: Open,
    stream: Option<Streaming<T>>,
    backoff: Backoff,
}

impl<'a, T, Open, Opening> Followed<'a, T, Open>
where
    Open: FnMut() -> Opening,
    Opening: Future<Output = Result<tonic::Response<Streaming<T>>, Status>>,
{
    /// Follows the stream `open` opens, not yet opened.
    pub(super) fn new(
        link: &'a LinkContext,
        receiving: &'static str,
        opening: &'static str,
        open: Open,
    ) -> Self {
        Self {
            link,
            receiving,
            opening,
            open,
            stream: None,
            backoff: link.backoff(),
        }
    }

    /// The next message, opening the stream (again) as needed; `None` once the edge shuts down.
    pub(crate) async fn next(&mut self) -> Option<T> {
        loop {
            if self.stream.is_none() {
                match (self.open)().await {
                    Ok(response) => self.stream = Some(response.into_inner()),
                    Err(status) => log_failure(self.opening, &status),
                }
            }
            if let Some(stream) = self.stream.as_mut() {
                let next = tokio::select! {
                    next = stream.message() => next,
                    _ = self.link.shutdown.cancelled() => return None,
                };
                match next {
                    Ok(Some(message)) => {
                        self.backoff.reset();
                        return Some(message);
                    }
                    Ok(None) => {}
                    Err(status) => log_failure(self.receiving, &status),
                }
                self.stream = None;
            }
            if !self.link.pause(self.backoff.next_delay()).await {
                return None;
            }
        }
    }
}
