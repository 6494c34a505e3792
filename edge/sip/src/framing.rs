//! Cutting a TCP byte stream into SIP messages (RFC 3261 section 18.3), sans-IO.
//!
//! Over a stream there are no datagram boundaries: a message ends after its headers' blank line
//! plus exactly Content-Length bytes of body, and Content-Length is mandatory. The connection
//! task pushes whatever it read into a [`StreamFramer`] and pops whole messages, which then go
//! through the same parser and checks as a UDP datagram. CRLFs between messages are keep-alives
//! (RFC 5626 section 4.4.1) and skipped; each double-CRLF ping is counted so that the owner can
//! answer it with a single-CRLF pong ([`StreamFramer::take_pings`]). A stream that cannot be framed — headers that never end, a missing
//! or bad Content-Length, a body over the size limit — is a [`FramingError`]: the connection
//! cannot find the next message boundary, so the owner closes it (never panics).

use thiserror::Error;

use super::message::MAX_MESSAGE_SIZE;

/// Why a stream cannot be cut into messages; the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FramingError {
    /// No blank line within the size limit.
    #[error("no end of headers within {MAX_MESSAGE_SIZE} bytes")]
    HeadersTooLong,
    /// A message on a stream has no Content-Length (mandatory over TCP).
    #[error("missing Content-Length header (required over TCP)")]
    MissingContentLength,
    /// The Content-Length value is not a number.
    #[error("invalid Content-Length header {0:?}")]
    BadContentLength(String),
    /// The declared message is larger than we accept.
    #[error("message of {0} bytes exceeds the 64 KiB limit")]
    Oversized(usize),
}

/// Accumulates stream bytes and yields complete SIP messages.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buffer: Vec<u8>,
    /// CR and LF bytes skipped since the last message or ping (a ping may span reads).
    crlf_run: usize,
    /// Double-CRLF pings seen and not yet taken.
    pings: usize,
}

impl StreamFramer {
    /// An empty framer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
    }

    /// The next complete message, `Ok(None)` if more bytes are needed, or the error that makes
    /// the rest of the stream unreadable.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, FramingError> {
        let junk = self
            .buffer
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
        self.buffer.drain(..junk);
        self.crlf_run += junk;
        // `\r\n\r\n` is a ping; what is left over (a lone CRLF) is a pong or padding.
        self.pings += self.crlf_run / 4;
        self.crlf_run %= 4;
        if !self.buffer.is_empty() {
            self.crlf_run = 0;
        }
        let Some(head_end) = find(&self.buffer, b"\r\n\r\n") else {
            if self.buffer.len() > MAX_MESSAGE_SIZE {
                return Err(FramingError::HeadersTooLong);
            }
            return Ok(None);
        };
        let head = self.buffer.get(..head_end).unwrap_or_default();
        let body_len = content_length(head)?;
        let total = head_end + 4 + body_len;
        if total > MAX_MESSAGE_SIZE {
            return Err(FramingError::Oversized(total));
        }
        if self.buffer.len() < total {
            return Ok(None);
        }
        let rest = self.buffer.split_off(total);
        Ok(Some(std::mem::replace(&mut self.buffer, rest)))
    }

    /// The keep-alive pings (double CRLF) received since the last call: each deserves one
    /// CRLF pong (RFC 5626 section 4.4.1).
    pub fn take_pings(&mut self) -> usize {
        std::mem::take(&mut self.pings)
    }

    /// Bytes held that do not yet form a message.
    pub fn buffered(&self) -> usize {
        self.buffer.len()
    }
}

/// The Content-Length (or compact `l`) of a header block.
fn content_length(head: &[u8]) -> Result<usize, FramingError> {
    let text = String::from_utf8_lossy(head);
    for line in text.split("\r\n").skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("l") {
            let value = value.trim();
            return value
                .parse::<usize>()
                .map_err(|_| FramingError::BadContentLength(value.chars().take(32).collect()));
        }
    }
    Err(FramingError::MissingContentLength)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &str = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nContent-Length: 5\r\n\r\nhello";

    #[test]
    fn messages_split_across_reads_and_glued_together_come_out_whole() {
        let mut framer = StreamFramer::new();
        let stream = format!("\r\n\r\n{OPTIONS}{OPTIONS}");
        let (a, b) = stream.as_bytes().split_at(30);
        framer.push(a);
        assert_eq!(framer.next_message(), Ok(None));
        framer.push(b);
        assert_eq!(framer.next_message(), Ok(Some(OPTIONS.as_bytes().to_vec())));
        assert_eq!(framer.next_message(), Ok(Some(OPTIONS.as_bytes().to_vec())));
        assert_eq!(framer.next_message(), Ok(None));
        assert_eq!(framer.buffered(), 0);
    }

    #[test]
    fn a_body_still_in_flight_waits() {
        let mut framer = StreamFramer::new();
        framer.push(&OPTIONS.as_bytes()[..OPTIONS.len() - 2]);
        assert_eq!(framer.next_message(), Ok(None));
        framer.push(b"lo");
        assert!(framer.next_message().unwrap().is_some());
    }

    #[test]
    fn double_crlf_pings_are_counted_even_across_reads_and_lone_crlfs_are_not() {
        let mut framer = StreamFramer::new();
        framer.push(b"\r\n");
        assert_eq!(framer.next_message(), Ok(None));
        framer.push(b"\r\n");
        assert_eq!(framer.next_message(), Ok(None));
        assert_eq!(framer.take_pings(), 1);
        assert_eq!(framer.take_pings(), 0);
        framer.push(b"\r\n");
        framer.push(OPTIONS.as_bytes());
        assert!(framer.next_message().unwrap().is_some());
        assert_eq!(framer.take_pings(), 0, "a lone CRLF is a pong, not a ping");
        framer.push(b"\r\n\r\n\r\n\r\n");
        assert_eq!(framer.next_message(), Ok(None));
        assert_eq!(framer.take_pings(), 2);
    }

    #[test]
    fn compact_content_length_is_understood() {
        let mut framer = StreamFramer::new();
        framer.push(b"BYE sip:a@b SIP/2.0\r\nl: 0\r\n\r\n");
        assert!(framer.next_message().unwrap().is_some());
    }

    #[test]
    fn junk_streams_are_errors_not_panics() {
        let cases: [(&[u8], FramingError); 2] = [
            (
                b"BYE sip:a@b SIP/2.0\r\nCall-ID: x\r\n\r\n",
                FramingError::MissingContentLength,
            ),
            (
                b"BYE sip:a@b SIP/2.0\r\nContent-Length: -4\r\n\r\n",
                FramingError::BadContentLength("-4".into()),
            ),
        ];
        for (bytes, expected) in cases {
            let mut framer = StreamFramer::new();
            framer.push(bytes);
            assert_eq!(framer.next_message(), Err(expected));
        }
        let mut huge = StreamFramer::new();
        huge.push(b"BYE sip:a@b SIP/2.0\r\nContent-Length: 99999999\r\n\r\n");
        assert!(matches!(huge.next_message(), Err(FramingError::Oversized(n)) if n > 99_999_999));
        let mut endless = StreamFramer::new();
        endless.push(&vec![b'x'; MAX_MESSAGE_SIZE + 1]);
        assert_eq!(endless.next_message(), Err(FramingError::HeadersTooLong));
    }
}
