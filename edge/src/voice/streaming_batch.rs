//! A streaming recogniser (Deepgram) used as a batch one: the finished utterance is pushed through
//! a fresh session in 20 ms frames and the final results are joined. This gives up streaming's
//! head start (transcribing while the caller still talks) but keeps one STT shape in the call
//! task; feeding the session live during the turn is the next step for `deepgram` agents.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;

use crate::media::frame::{PcmFrame, SampleRate};
use crate::speech::{SpeechError, SpeechToText, StreamingSpeechToText, SttEvent, Transcript};

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
        for chunk in samples.chunks(per_frame) {
            let mut frame = PcmFrame::silence(rate);
            if let Some(dst) = frame.samples_mut().get_mut(..chunk.len()) {
                dst.copy_from_slice(chunk);
            }
            session.push_frame(&frame)?;
        }
        session.finish().await?;
        let mut words: Vec<String> = Vec::new();
        let mut confidence = None;
        while let Some(event) = session.next_event().await {
            if let SttEvent::Final {
                text,
                confidence: c,
                ..
            } = event?
            {
                if !text.trim().is_empty() {
                    words.push(text.trim().to_string());
                    confidence = c.or(confidence);
                }
            }
        }
        Ok(Transcript {
            text: words.join(" "),
            confidence,
        })
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
