//! The sealed recording format: round trips at chunk boundaries, ranges read from their chunk,
//! and every kind of tampering (a flipped byte, a swapped or dropped chunk, a cut, another key,
//! another recording's header) refused.

use super::*;

fn sealer() -> Sealer {
    Sealer::new(&[3; 32])
}

fn seal(plain: &[u8], pieces: usize) -> Vec<u8> {
    let mut w = SealingWriter::new(&sealer(), "rec-1").expect("writer");
    let mut file = w.header().to_vec();
    for piece in plain.chunks(pieces.max(1)) {
        w.push(piece, &mut file).expect("push");
    }
    w.finish(&mut file).expect("finish");
    file
}

fn open_all(s: &Sealer, id: &str, file: &[u8]) -> Result<Vec<u8>, SealError> {
    let rest_len = wrapped_len(&file[..HEADER_START.min(file.len())])?;
    let rest = file
        .get(HEADER_START..HEADER_START + rest_len)
        .ok_or(SealError::BadHeader)?;
    let sealed = SealedFile::open(s, id, rest, file.len() as u64)?;
    let mut out = Vec::new();
    for i in 0..sealed.chunks() {
        let (_, at, _) = sealed.chunk_at(i * CHUNK as u64);
        let at = usize::try_from(at).expect("offset");
        let chunk = &file[at..at + sealed.sealed_len(i)];
        out.extend(sealed.open_chunk(i, chunk)?);
    }
    assert_eq!(out.len() as u64, sealed.plain_len());
    Ok(out)
}

fn audio(len: usize) -> Vec<u8> {
    let mut a = b"RIFF".to_vec();
    a.extend((0..len.saturating_sub(4)).map(|i| (i * 7 % 251) as u8));
    a
}

#[test]
fn sealed_files_open_to_their_audio_at_every_chunk_boundary() {
    for len in [44, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 17] {
        let plain = audio(len);
        for pieces in [1000, CHUNK, 7 * CHUNK] {
            let file = seal(&plain, pieces);
            assert_ne!(&file[..4], b"RIFF");
            let sample = &plain[plain.len() / 2 - 16..plain.len() / 2 + 16];
            assert!(
                !file.windows(32).any(|w| w == sample),
                "no plaintext in the file"
            );
            assert_eq!(
                open_all(&sealer(), "rec-1", &file).expect("opens"),
                plain,
                "len {len}"
            );
        }
    }
}

#[test]
fn a_tampered_file_is_refused_never_read_as_audio() {
    let plain = audio(2 * CHUNK + 100);
    let file = seal(&plain, 4096);
    let s = sealer();
    let header = HEADER_START + wrapped_len(&file[..HEADER_START]).expect("header");

    let mut flipped = file.clone();
    flipped[header + CHUNK + 40] ^= 1;
    assert_eq!(open_all(&s, "rec-1", &flipped), Err(SealError::Tampered(1)));

    let mut swapped = file.clone();
    let (a, b) = (header, header + CHUNK + TAG);
    let first = file[a..b].to_vec();
    swapped[a..b].copy_from_slice(&file[b..b + CHUNK + TAG]);
    swapped[b..b + CHUNK + TAG].copy_from_slice(&first);
    assert_eq!(open_all(&s, "rec-1", &swapped), Err(SealError::Tampered(0)));

    // Cut after a whole chunk: the new last chunk was not sealed as last.
    let cut = &file[..header + 2 * (CHUNK + TAG)];
    assert!(matches!(
        open_all(&s, "rec-1", cut),
        Err(SealError::Tampered(_))
    ));

    assert_eq!(
        open_all(&Sealer::new(&[4; 32]), "rec-1", &file),
        Err(SealError::KeyDoesNotOpen)
    );
    assert_eq!(open_all(&s, "rec-2", &file), Err(SealError::KeyDoesNotOpen));
    assert_eq!(open_all(&s, "rec-1", &plain), Err(SealError::BadHeader));
}

#[test]
fn the_data_key_is_wrapped_for_its_recording_only() {
    let s = sealer();
    let key = [9u8; 32];
    let wrapped = wrap_data_key(&s, "rec-1", &key).expect("wrap");
    assert!(!wrapped.contains(&hex::encode(key)));
    assert_eq!(
        *unwrap_data_key(&s, "rec-1", &wrapped).expect("unwrap"),
        key
    );
    assert!(unwrap_data_key(&s, "rec-2", &wrapped).is_err());
}

#[test]
fn a_rewrapped_header_opens_the_same_audio_under_the_new_key_only() {
    let plain = audio(CHUNK * 2 + 77);
    let file = seal(&plain, 1000);
    let old = [3u8; 32];
    let new = [4u8; 32];
    let both = Sealer::with_previous(&new, &[old]);
    let header_len = HEADER_START + wrapped_len(&file[..HEADER_START]).expect("header");
    let header = rewrapped_header(&both, "rec-1", &file[..header_len])
        .expect("opens under the previous key")
        .expect("not yet under the new key");
    let mut rewritten = header.clone();
    rewritten.extend_from_slice(&file[header_len..]);
    assert_eq!(open_all(&Sealer::new(&new), "rec-1", &rewritten), Ok(plain));
    assert_eq!(
        open_all(&Sealer::new(&old), "rec-1", &rewritten),
        Err(SealError::KeyDoesNotOpen)
    );
    // Already under the current key: nothing to do.
    let again_len = HEADER_START + wrapped_len(&header[..HEADER_START]).expect("header");
    assert_eq!(
        rewrapped_header(&both, "rec-1", &header[..again_len]),
        Ok(None)
    );
    // Under neither key, or moved onto another recording: refused, never re-wrapped.
    let stranger = Sealer::new(&[5; 32]);
    assert_eq!(
        rewrapped_header(&stranger, "rec-1", &file[..header_len]),
        Err(SealError::KeyDoesNotOpen)
    );
    assert_eq!(
        rewrapped_header(&both, "rec-2", &file[..header_len]),
        Err(SealError::KeyDoesNotOpen)
    );
    assert_eq!(
        rewrapped_header(&both, "rec-1", &file[..header_len - 1]),
        Err(SealError::BadHeader)
    );
}
