//! Serving a recording sealed at rest (`recording_seal.rs`): the data key is unwrapped, the
//! one byte range asked for (or the whole file) is located in its chunks, and the audio is
//! decrypted chunk by chunk as the response streams, so memory stays at one chunk whatever the
//! recording's length. The first chunk is opened before the answer starts: a file altered on
//! disk is a clear 500 problem, never audio. A chunk failing later aborts the response (the
//! client sees a cut transfer, not wrong bytes), and is logged.

use axum::body::Body;
use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::problem::Problem;
use crate::recording_seal::{self, SealError, SealedFile, HEADER_START};
use crate::store::Sealer;

/// Whether the file at `path` is sealed (starts with the marker); a plaintext WAV of an earlier
/// version is not.
pub(super) async fn is_sealed(path: &std::path::Path) -> std::io::Result<bool> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut start = [0u8; 8];
    match file.read_exact(&mut start).await {
        Ok(_) => Ok(&start == recording_seal::MAGIC),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// A byte range of a `len`-byte body as a `Range` header asks (`bytes=a-b`, `bytes=a-`,
/// `bytes=-n`): `Ok(None)` for the whole body (no header, or one we do not serve in part, such
/// as several ranges), `Err(())` when it cannot be satisfied.
fn range_of(headers: &HeaderMap, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(spec) = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes="))
    else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((start, end)) = spec.split_once('-') else {
        return Ok(None);
    };
    let (start, end) = (start.trim(), end.trim());
    let (first, last) = if start.is_empty() {
        let Ok(suffix) = end.parse::<u64>() else {
            return Ok(None);
        };
        if suffix == 0 {
            return Err(());
        }
        (len.saturating_sub(suffix), len.saturating_sub(1))
    } else {
        let Ok(first) = start.parse::<u64>() else {
            return Ok(None);
        };
        let last = match end {
            "" => len.saturating_sub(1),
            e => match e.parse::<u64>() {
                Ok(last) if last >= first => last.min(len.saturating_sub(1)),
                _ => return Ok(None),
            },
        };
        (first, last)
    };
    if len == 0 || first >= len {
        return Err(());
    }
    Ok(Some((first, last)))
}

fn damaged(error: &SealError, path: &std::path::Path) -> Problem {
    tracing::error!(%error, path = %path.display(), "a sealed recording cannot be read");
    Problem::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Recording unreadable",
        error.to_string(),
    )
}

fn unavailable(error: &std::io::Error, path: &std::path::Path) -> Problem {
    tracing::error!(%error, path = %path.display(), "cannot read a recording");
    Problem::unavailable("the recording cannot be read right now")
}

/// What is left to send: the file, the opened format, the next chunk and how much of it to
/// skip and to send in all.
struct Reading {
    file: tokio::fs::File,
    sealed: SealedFile,
    index: u64,
    skip: usize,
    remaining: u64,
}

impl Reading {
    /// The next piece of plaintext, `None` when the range is sent.
    async fn next_piece(&mut self) -> Result<Option<Bytes>, SealError> {
        if self.remaining == 0 {
            return Ok(None);
        }
        let mut sealed = vec![0u8; self.sealed.sealed_len(self.index)];
        self.file
            .read_exact(&mut sealed)
            .await
            .map_err(|_| SealError::Tampered(self.index))?;
        let plain = self.sealed.open_chunk(self.index, &sealed)?;
        let from = self.skip.min(plain.len());
        let take = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(plain.len() - from);
        self.index += 1;
        self.skip = 0;
        self.remaining -= take as u64;
        Ok(Some(Bytes::copy_from_slice(&plain[from..from + take])))
    }
}

/// The response for the sealed recording `recording_id` at `path`.
pub(super) async fn serve(
    sealer: &Sealer,
    recording_id: &str,
    path: &std::path::Path,
    headers: &HeaderMap,
) -> Result<Response, Problem> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| unavailable(&e, path))?;
    let file_len = file
        .metadata()
        .await
        .map_err(|e| unavailable(&e, path))?
        .len();
    let mut start = [0u8; HEADER_START];
    file.read_exact(&mut start)
        .await
        .map_err(|_| damaged(&SealError::BadHeader, path))?;
    let rest_len = recording_seal::wrapped_len(&start).map_err(|e| damaged(&e, path))?;
    let mut rest = vec![0u8; rest_len];
    file.read_exact(&mut rest)
        .await
        .map_err(|_| damaged(&SealError::BadHeader, path))?;
    let sealed =
        SealedFile::open(sealer, recording_id, &rest, file_len).map_err(|e| damaged(&e, path))?;
    let len = sealed.plain_len();
    let range = match range_of(headers, len) {
        Ok(range) => range,
        Err(()) => {
            let mut response = StatusCode::RANGE_NOT_SATISFIABLE.into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                response.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(response);
        }
    };
    let (first, last) = range.unwrap_or((0, len.saturating_sub(1)));
    let (index, file_at, plain_at) = sealed.chunk_at(first);
    file.seek(std::io::SeekFrom::Start(file_at))
        .await
        .map_err(|e| unavailable(&e, path))?;
    let mut reading = Reading {
        file,
        sealed,
        index,
        skip: usize::try_from(first - plain_at).unwrap_or(0),
        remaining: last + 1 - first,
    };
    // Opened before answering, so a damaged file is an error, not a 200 that breaks off.
    let head = reading.next_piece().await.map_err(|e| damaged(&e, path))?;
    let where_ = path.to_path_buf();
    let rest = futures::stream::unfold(reading, move |mut reading| {
        let where_ = where_.clone();
        async move {
            match reading.next_piece().await {
                Ok(Some(piece)) => Some((Ok::<_, std::io::Error>(piece), reading)),
                Ok(None) => None,
                Err(error) => {
                    tracing::error!(%error, path = %where_.display(), "a sealed recording broke off while streaming");
                    Some((Err(std::io::Error::other(error)), reading))
                }
            }
        }
    });
    let head = futures::stream::iter(head.map(Ok::<_, std::io::Error>));
    let body = Body::from_stream(futures::StreamExt::chain(head, rest));
    let mut response = Response::new(body);
    *response.status_mut() = if range.is_some() {
        StatusCode::PARTIAL_CONTENT
    } else {
        StatusCode::OK
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(last + 1 - first));
    if range.is_some() {
        if let Ok(v) = HeaderValue::from_str(&format!("bytes {first}-{last}/{len}")) {
            h.insert(header::CONTENT_RANGE, v);
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asking(range: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::RANGE, HeaderValue::from_str(range).expect("value"));
        h
    }

    #[test]
    fn ranges_are_read_as_players_send_them() {
        assert_eq!(range_of(&HeaderMap::new(), 100), Ok(None));
        assert_eq!(range_of(&asking("bytes=10-19"), 100), Ok(Some((10, 19))));
        assert_eq!(range_of(&asking("bytes=90-"), 100), Ok(Some((90, 99))));
        assert_eq!(range_of(&asking("bytes=-10"), 100), Ok(Some((90, 99))));
        assert_eq!(range_of(&asking("bytes=50-500"), 100), Ok(Some((50, 99))));
        assert_eq!(range_of(&asking("bytes=100-"), 100), Err(()));
        assert_eq!(range_of(&asking("bytes=-0"), 100), Err(()));
        assert_eq!(range_of(&asking("bytes=0-1,5-6"), 100), Ok(None));
        assert_eq!(range_of(&asking("bytes=x-1"), 100), Ok(None));
        assert_eq!(range_of(&asking("bytes=9-1"), 100), Ok(None));
    }
}
