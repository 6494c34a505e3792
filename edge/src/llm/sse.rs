//! A Server-Sent-Events decoder without I/O. Both language-model providers stream their replies
//! as SSE over HTTP; the HTTP client hands this decoder whatever byte chunks the network produced
//! (split anywhere, even inside a UTF-8 sequence or between `\r` and `\n`) and drains whole events.
//! It follows the WHATWG event-stream grammar: `data:` lines joined with `\n`, `event:` and `id:`
//! fields, `:` comment lines, and LF, CRLF or lone CR line ends. Junk never panics it; a line
//! longer than the configured limit is an error, so a broken server cannot grow memory forever.

use std::collections::VecDeque;

/// Longest event (all its lines together) accepted by default: far above any real token chunk.
pub(crate) const DEFAULT_MAX_EVENT_BYTES: usize = 1024 * 1024;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct SseEvent {
    /// The `event:` field, if the server named the event (absent means "message").
    pub event: Option<String>,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
    /// The last `id:` field of the event, if any.
    pub id: Option<String>,
}

impl SseEvent {
    /// True for the OpenAI end-of-stream sentinel `data: [DONE]`.
    pub(crate) fn is_done_sentinel(&self) -> bool {
        self.data.trim() == "[DONE]"
    }
}

/// Why the decoder gave up on a stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SseError {
    /// One event grew beyond the limit without ending.
    #[error("server-sent event larger than {limit} bytes")]
    EventTooLarge {
        /// The configured limit in bytes.
        limit: usize,
    },
}

/// Turns bytes into [`SseEvent`]s; feed with [`SseDecoder::push`], drain with
/// [`SseDecoder::poll_event`], and call [`SseDecoder::finish`] when the body ends.
#[derive(Debug)]
pub(crate) struct SseDecoder {
    line: Vec<u8>,
    data: String,
    has_data: bool,
    event: Option<String>,
    id: Option<String>,
    pending_bytes: usize,
    max_event_bytes: usize,
    after_cr: bool,
    at_stream_start: bool,
    ready: VecDeque<SseEvent>,
}

impl Default for SseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl SseDecoder {
    /// A decoder with the default event size limit.
    pub(crate) fn new() -> Self {
        Self::with_max_event_bytes(DEFAULT_MAX_EVENT_BYTES)
    }

    /// A decoder that refuses events larger than `max_event_bytes`.
    pub(crate) fn with_max_event_bytes(max_event_bytes: usize) -> Self {
        Self {
            line: Vec::new(),
            data: String::new(),
            has_data: false,
            event: None,
            id: None,
            pending_bytes: 0,
            max_event_bytes,
            after_cr: false,
            at_stream_start: true,
            ready: VecDeque::new(),
        }
    }

    /// Feeds the next bytes of the body, however they were split.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Result<(), SseError> {
        for &byte in bytes {
            if self.after_cr {
                self.after_cr = false;
                if byte == b'\n' {
                    // The LF of a CRLF pair: the line already ended at the CR.
                    continue;
                }
            }
            match byte {
                b'\n' => self.end_line(),
                b'\r' => {
                    self.after_cr = true;
                    self.end_line();
                }
                _ => {
                    self.line.push(byte);
                    self.pending_bytes += 1;
                    if self.pending_bytes > self.max_event_bytes {
                        self.line.clear();
                        self.reset_event();
                        return Err(SseError::EventTooLarge {
                            limit: self.max_event_bytes,
                        });
                    }
                }
            }
        }
        Ok(())
    }

    /// The next complete event, if one is ready.
    pub(crate) fn poll_event(&mut self) -> Option<SseEvent> {
        self.ready.pop_front()
    }

    /// Ends the stream: a last line or event that the server did not terminate with a blank line
    /// is still dispatched (the standard drops it; real servers that close early deserve better).
    pub(crate) fn finish(&mut self) -> Option<SseEvent> {
        if !self.line.is_empty() {
            self.end_line();
        }
        self.dispatch();
        self.ready.pop_front()
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        let mut text = String::from_utf8_lossy(&line).into_owned();
        if self.at_stream_start {
            self.at_stream_start = false;
            if let Some(rest) = text.strip_prefix('\u{feff}') {
                text = rest.to_string();
            }
        }
        if text.is_empty() {
            self.dispatch();
            return;
        }
        if text.starts_with(':') {
            return; // a comment, often a keep-alive
        }
        let (field, value) = match text.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (text.as_str(), ""),
        };
        match field {
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "event" => self.event = Some(value.to_string()),
            "id" if !value.contains('\0') => self.id = Some(value.to_string()),
            _ => {} // `retry` and unknown fields are ignored, as the standard says
        }
    }

    fn dispatch(&mut self) {
        if self.has_data {
            self.ready.push_back(SseEvent {
                event: self.event.take(),
                data: std::mem::take(&mut self.data),
                id: self.id.take(),
            });
        }
        self.reset_event();
    }

    fn reset_event(&mut self) {
        self.data.clear();
        self.has_data = false;
        self.event = None;
        self.id = None;
        self.pending_bytes = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_in_chunks(input: &[u8], chunk_sizes: &[usize]) -> Vec<SseEvent> {
        let mut decoder = SseDecoder::new();
        let mut out = Vec::new();
        let mut at = 0;
        let mut sizes = chunk_sizes.iter().cycle();
        while at < input.len() {
            let size = (*sizes.next().unwrap_or(&1)).max(1);
            let end = (at + size).min(input.len());
            decoder.push(&input[at..end]).expect("within limits");
            while let Some(event) = decoder.poll_event() {
                out.push(event);
            }
            at = end;
        }
        while let Some(event) = decoder.finish() {
            out.push(event);
        }
        out
    }

    fn decode_split_at(input: &[u8], split: usize) -> Vec<SseEvent> {
        let mut decoder = SseDecoder::new();
        let mut out = Vec::new();
        for part in [&input[..split], &input[split..]] {
            decoder.push(part).expect("within limits");
            while let Some(event) = decoder.poll_event() {
                out.push(event);
            }
        }
        while let Some(event) = decoder.finish() {
            out.push(event);
        }
        out
    }

    fn data(text: &str) -> SseEvent {
        SseEvent {
            data: text.into(),
            ..Default::default()
        }
    }

    const MIXED: &str = ": keep-alive\r\nevent: message_start\r\ndata: {\"a\":1}\r\n\r\n\
data: line one\ndata: line two\nid: 7\n\n\
data:no-space\r\r\
data: héllo ✓\n\n\
data: [DONE]\n\n";

    fn expected_mixed() -> Vec<SseEvent> {
        vec![
            SseEvent {
                event: Some("message_start".into()),
                data: "{\"a\":1}".into(),
                id: None,
            },
            SseEvent {
                event: None,
                data: "line one\nline two".into(),
                id: Some("7".into()),
            },
            data("no-space"),
            data("héllo ✓"),
            data("[DONE]"),
        ]
    }

    #[test]
    fn every_split_point_yields_the_same_events() {
        let input = MIXED.as_bytes();
        for split in 0..=input.len() {
            assert_eq!(
                decode_split_at(input, split),
                expected_mixed(),
                "split at {split}"
            );
        }
    }

    #[test]
    fn byte_by_byte_and_odd_chunks_yield_the_same_events() {
        for sizes in [&[1usize][..], &[2], &[3, 1, 7], &[64]] {
            assert_eq!(decode_in_chunks(MIXED.as_bytes(), sizes), expected_mixed());
        }
    }

    #[test]
    fn done_sentinel_is_recognised() {
        assert!(data("[DONE]").is_done_sentinel());
        assert!(!data("{\"done\":true}").is_done_sentinel());
    }

    #[test]
    fn comments_and_fieldless_blocks_dispatch_nothing() {
        let events = decode_in_chunks(b": ping\n\nevent: ping\n\nretry: 100\n\n", &[5]);
        assert!(events.is_empty());
    }

    #[test]
    fn empty_data_line_is_an_event_with_empty_data() {
        assert_eq!(decode_in_chunks(b"data\n\n", &[1]), vec![data("")]);
    }

    #[test]
    fn unterminated_last_event_is_delivered_on_finish() {
        assert_eq!(decode_in_chunks(b"data: last", &[3]), vec![data("last")]);
    }

    #[test]
    fn byte_order_mark_at_the_start_is_ignored() {
        assert_eq!(
            decode_in_chunks("\u{feff}data: x\n\n".as_bytes(), &[1]),
            vec![data("x")]
        );
    }

    #[test]
    fn junk_bytes_never_panic() {
        let mut seed = 0x2545_f491_u32;
        let mut decoder = SseDecoder::with_max_event_bytes(4096);
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let bytes = seed.to_le_bytes();
            let _ = decoder.push(&bytes[..(seed % 4) as usize]);
            while decoder.poll_event().is_some() {}
        }
        let _ = decoder.finish();
    }

    #[test]
    fn oversized_event_is_refused() {
        let mut decoder = SseDecoder::with_max_event_bytes(16);
        let result = decoder.push(b"data: this line is far too long for the limit");
        assert_eq!(result, Err(SseError::EventTooLarge { limit: 16 }));
        decoder.push(b"\n\ndata: ok\n\n").expect("recovers");
        assert_eq!(decoder.poll_event(), Some(data("ok")));
    }
}
