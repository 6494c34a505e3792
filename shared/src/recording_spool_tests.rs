use super::*;

const ID: &str = "0190a0a0-0000-7000-8000-000000000001";

fn control_key(seed: u8) -> RecordingSecretKey {
    RecordingSecretKey::from_bytes([seed; 32])
}

/// A spool of `plain` sealed to `key`'s public half; `finished`: with its last chunk.
fn spool(key: &RecordingSecretKey, plain: &[u8], finished: bool) -> Vec<u8> {
    let (mut sealer, mut out) = SpoolSealer::new(&key.public(), ID, [7; 32], [9; 32]).unwrap();
    // Pushed in odd pieces, as a recorder's flushes come.
    for piece in plain.chunks(5_001) {
        sealer.push(piece, &mut out).unwrap();
    }
    if finished {
        sealer.finish(&mut out).unwrap();
    }
    out
}

/// Reads `bytes` back in uploads of `piece` bytes.
fn read(
    keys: &[RecordingSecretKey],
    bytes: &[u8],
    interrupted: bool,
    piece: usize,
) -> Result<Vec<u8>, SpoolError> {
    let mut reader = SpoolReader::new(keys.to_vec(), ID, bytes.len() as u64, interrupted)?;
    let mut plain = Vec::new();
    for part in bytes.chunks(piece) {
        reader.push(part, &mut plain)?;
    }
    assert_eq!(reader.plain_len(), plain.len() as u64);
    reader.finish()?;
    Ok(plain)
}

fn audio(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn a_spool_reads_back_at_every_chunk_boundary() {
    let key = control_key(1);
    for len in [
        0,
        1,
        SPOOL_CHUNK - 1,
        SPOOL_CHUNK,
        SPOOL_CHUNK + 1,
        3 * SPOOL_CHUNK,
        3 * SPOOL_CHUNK + 77,
    ] {
        let plain = audio(len);
        let sealed = spool(&key, &plain, true);
        for piece in [1_000, 65_536] {
            assert_eq!(
                read(std::slice::from_ref(&key), &sealed, false, piece).unwrap(),
                plain
            );
        }
    }
}

#[test]
fn the_spool_holds_none_of_the_audio() {
    let key = control_key(1);
    let plain = audio(5 * SPOOL_CHUNK);
    let sealed = spool(&key, &plain, true);
    let run = &plain[40_000..40_032];
    assert!(!sealed.windows(run.len()).any(|w| w == run));
}

#[test]
fn an_interrupted_spool_opens_up_to_its_last_whole_chunk() {
    let key = control_key(1);
    let plain = audio(2 * SPOOL_CHUNK + 500);
    let mut sealed = spool(&key, &plain, false);
    // The writer died while a chunk was half on disk: the edge cuts the torn tail off.
    sealed.extend_from_slice(&[0xAB; 100]);
    let kept = SpoolLayout::whole_chunks_len(sealed.len() as u64).unwrap();
    sealed.truncate(kept as usize);
    let opened = read(std::slice::from_ref(&key), &sealed, true, 4_096).unwrap();
    assert_eq!(opened, plain[..2 * SPOOL_CHUNK]);
    // Said to be finished, the same spool is cut short.
    assert!(matches!(
        read(&[key], &sealed, false, 4_096),
        Err(SpoolError::BadLength { interrupted: false })
    ));
}

#[test]
fn altered_reordered_and_cut_spools_are_refused() {
    let key = control_key(1);
    let keys = [key.clone()];
    let plain = audio(3 * SPOOL_CHUNK + 10);
    let sealed = spool(&key, &plain, true);

    // One bit flipped in the audio, in the sealed content key, in the ephemeral key.
    for (at, expected) in [
        (SPOOL_HEADER_LEN + SEALED_CHUNK + 5, SpoolError::Tampered(1)),
        (SPOOL_HEADER_LEN - 3, SpoolError::KeyDoesNotOpen),
        (8 + 32 + 4, SpoolError::KeyDoesNotOpen),
    ] {
        let mut flipped = sealed.clone();
        flipped[at] ^= 0x01;
        assert_eq!(
            read(&keys, &flipped, false, 8_192),
            Err(expected),
            "byte {at}"
        );
    }
    // Chunks 0 and 1 swapped.
    let mut swapped = sealed.clone();
    let (a, b) = (SPOOL_HEADER_LEN, SPOOL_HEADER_LEN + SEALED_CHUNK);
    let first = sealed[a..b].to_vec();
    swapped[a..b].copy_from_slice(&sealed[b..b + SEALED_CHUNK]);
    swapped[b..b + SEALED_CHUNK].copy_from_slice(&first);
    assert_eq!(
        read(&keys, &swapped, false, 8_192),
        Err(SpoolError::Tampered(0))
    );
    // Cut at a chunk boundary (the last chunk dropped): the new last chunk is not flagged.
    let cut = &sealed[..SPOOL_HEADER_LEN + 3 * SEALED_CHUNK];
    assert!(matches!(
        read(&keys, cut, false, 8_192),
        Err(SpoolError::BadLength { .. })
    ));
    let cut = &sealed[..SPOOL_HEADER_LEN + 2 * SEALED_CHUNK + TAG + 1];
    assert_eq!(read(&keys, cut, false, 8_192), Err(SpoolError::Tampered(2)));
    // Cut inside the header, or not a spool at all.
    assert_eq!(
        read(&keys, &sealed[..50], false, 8_192),
        Err(SpoolError::NotASpool)
    );
    let mut wav = sealed.clone();
    wav[..4].copy_from_slice(b"RIFF");
    assert_eq!(read(&keys, &wav, false, 8_192), Err(SpoolError::NotASpool));
}

#[test]
fn a_spool_sealed_to_another_key_or_recording_does_not_open() {
    let ours = control_key(1);
    let theirs = control_key(2);
    let plain = audio(1_000);
    let sealed = spool(&theirs, &plain, true);
    assert_eq!(
        read(std::slice::from_ref(&ours), &sealed, false, 512),
        Err(SpoolError::UnknownKey(theirs.public().to_hex()))
    );
    // A header naming our key but whose content key was sealed to another: it does not open.
    let mut forged = sealed.clone();
    forged[8..40].copy_from_slice(&ours.public().0);
    assert_eq!(
        read(std::slice::from_ref(&ours), &forged, false, 512),
        Err(SpoolError::KeyDoesNotOpen)
    );
    // A spool moved onto another recording's id does not open.
    let mine = spool(&ours, &plain, true);
    let mut reader = SpoolReader::new(
        vec![ours.clone()],
        "another-recording",
        mine.len() as u64,
        false,
    )
    .unwrap();
    assert_eq!(
        reader.push(&mine, &mut Vec::new()),
        Err(SpoolError::KeyDoesNotOpen)
    );
    // The previous key still opens what was sealed to it.
    assert_eq!(read(&[ours, theirs], &sealed, false, 512).unwrap(), plain);
}

#[test]
fn a_zero_public_key_is_refused() {
    let zero = RecordingPublicKey([0; 32]);
    assert!(matches!(
        SpoolSealer::new(&zero, ID, [1; 32], [2; 32]),
        Err(SpoolError::WeakKey)
    ));
}

#[test]
fn more_bytes_than_announced_are_refused() {
    let key = control_key(1);
    let sealed = spool(&key, &audio(100), true);
    let mut reader = SpoolReader::new(vec![key], ID, sealed.len() as u64, false).unwrap();
    let mut out = Vec::new();
    reader.push(&sealed, &mut out).unwrap();
    assert_eq!(reader.push(&[0], &mut out), Err(SpoolError::TooLong));
}

#[test]
fn public_keys_read_back_from_hex() {
    let key = control_key(3).public();
    assert_eq!(RecordingPublicKey::from_hex(&key.to_hex()), Some(key));
    assert_eq!(RecordingPublicKey::from_hex("abc"), None);
    assert_eq!(RecordingPublicKey::from_hex(&"zz".repeat(32)), None);
}
