//! A streaming recogniser (Deepgram) used as a batch one: the finished utterance is pushed through
//! a fresh session in 20 ms frames and the final results are joined. It gives up streaming's head
//! start, so a call uses it only where live streaming is not possible: a workflow's own turns,
//! and a turn whose live session failed (see `call::live_stt`).

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::media::frame::{PcmFrame, SampleRate};
use crate::speech::{SpeechError, SpeechToText, StreamingSpeechToText, Transcript, TurnTranscript};

/// Adapts a [`StreamingSpeechToText`] to [`SpeechToText`].
pub struct StreamingAsBatch {
    inner: Arc<dyn StreamingSpeechToText>,
    timeout: Duration,
}

impl StreamingAsBatch {
    /// Wraps `inner`; one utterance may take at most `timeout`, connection included.
    pub fn new(inner: Arc<dyn StreamingSpeechToText>, timeout: Duration) -> Self {
        Self { inner, timeout }
    }

    async fn run(&self, rate: SampleRate, samples: &[i16]) -> Result<Transcript, SpeechError> {
        let mut session = self.inner.start().await?;
        let per_frame = rate.samples_per_frame();
        let mut transcript = TurnTranscript::new();
        let mut failure = None;
        for chunk in samples.chunks(per_frame) {
            let mut frame = PcmFrame::silence(rate);
            if let Some(dst) = frame.samples_mut().get_mut(..chunk.len()) {
                dst.copy_from_slice(chunk);
            }
            let sent = session
                .send_frame(&frame, |event| match event {
                    Ok(event) => {
                        transcript.on_event(&event);
                    }
                    Err(e) => failure = failure.take().or(Some(e)),
                })
                .await;
            // A closed session's own error says more than "closed".
            if let Err(e) = sent {
                return Err(failure.unwrap_or(e));
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
        session.finish().await?;
        while let Some(event) = session.next_event().await {
            transcript.on_event(&event?);
        }
        Ok(transcript.into_transcript())
    }
}

impl SpeechToText for StreamingAsBatch {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn transcribe<'a>(
        &'a self,
        rate: SampleRate,
        samples: &'a [i16],
    ) -> BoxFuture<'a, Result<Transcript, SpeechError>> {
        Box::pin(async move {
            tokio::time::timeout(self.timeout, self.run(rate, samples))
                .await
                .map_err(|_| SpeechError::Timeout {
                    provider: self.inner.name(),
                    after: self.timeout,
                })?
        })
    }
}
