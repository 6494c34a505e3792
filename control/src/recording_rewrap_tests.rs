//! Re-wrapping on real files: sealed recordings move to the new key and still open to their
//! audio, plaintext WAVs are left alone, a second run does nothing, and one recording under
//! neither key stops the run before any file changes.

use super::*;
use crate::recording_seal::{SealedFile, SealingWriter, CHUNK};

const OLD: [u8; 32] = [3; 32];
const NEW: [u8; 32] = [4; 32];

fn audio(len: usize) -> Vec<u8> {
    let mut a = b"RIFF".to_vec();
    a.extend((0..len.saturating_sub(4)).map(|i| (i * 13 % 251) as u8));
    a
}

fn write_sealed(dir: &Path, workspace: &str, id: &str, key: &[u8; 32], plain: &[u8]) -> PathBuf {
    let folder = dir.join(workspace);
    std::fs::create_dir_all(&folder).expect("folder");
    let mut w = SealingWriter::new(&Sealer::new(key), id).expect("writer");
    let mut file = w.header().to_vec();
    w.push(plain, &mut file).expect("push");
    w.finish(&mut file).expect("finish");
    let path = folder.join(format!("{id}.wav"));
    std::fs::write(&path, file).expect("write");
    path
}

fn read_plain(path: &Path, key: &[u8; 32]) -> Result<Vec<u8>, SealError> {
    let file = std::fs::read(path).expect("read");
    let id = path.file_stem().and_then(|s| s.to_str()).expect("id");
    let rest_len = wrapped_len(&file[..HEADER_START])?;
    let rest = &file[HEADER_START..HEADER_START + rest_len];
    let sealed = SealedFile::open(&Sealer::new(key), id, rest, file.len() as u64)?;
    let mut out = Vec::new();
    for i in 0..sealed.chunks() {
        let (_, at, _) = sealed.chunk_at(i * CHUNK as u64);
        let at = usize::try_from(at).expect("offset");
        out.extend(sealed.open_chunk(i, &file[at..at + sealed.sealed_len(i)])?);
    }
    Ok(out)
}

#[test]
fn recordings_move_to_the_new_key_and_keep_their_audio() {
    let dir = tempfile::tempdir().expect("tempdir");
    let long = audio(CHUNK * 3 + 5);
    let short = audio(900);
    let a = write_sealed(dir.path(), "ws-1", "rec-a", &OLD, &long);
    let b = write_sealed(dir.path(), "ws-2", "rec-b", &OLD, &short);
    let c = write_sealed(dir.path(), "ws-2", "rec-c", &NEW, &short);
    let plain_wav = dir.path().join("ws-1").join("rec-old.wav");
    std::fs::write(&plain_wav, &short).expect("plaintext");
    let both = Sealer::with_previous(&NEW, &[OLD]);

    let report = rewrap_recordings(dir.path(), &both).expect("rewrap");
    assert_eq!(
        report,
        RewrapReport {
            rewrapped: 2,
            already_current: 1,
            plaintext: 1
        }
    );
    assert_eq!(read_plain(&a, &NEW), Ok(long));
    assert_eq!(read_plain(&b, &NEW), Ok(short.clone()));
    assert_eq!(read_plain(&c, &NEW), Ok(short.clone()));
    assert_eq!(read_plain(&a, &OLD), Err(SealError::KeyDoesNotOpen));
    assert_eq!(std::fs::read(&plain_wav).expect("plaintext"), short);
    assert!(!a.with_extension("wav.rewrap").exists());

    let again = rewrap_recordings(dir.path(), &both).expect("second run");
    assert_eq!(again.rewrapped, 0);
    assert_eq!(again.already_current, 3);
}

#[test]
fn a_recording_under_neither_key_stops_the_run_and_changes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let plain = audio(2000);
    let ours = write_sealed(dir.path(), "ws-1", "rec-a", &OLD, &plain);
    let stranger = write_sealed(dir.path(), "ws-1", "rec-z", &[9; 32], &plain);
    let before = (
        std::fs::read(&ours).expect("a"),
        std::fs::read(&stranger).expect("z"),
    );

    let err = rewrap_recordings(dir.path(), &Sealer::with_previous(&NEW, &[OLD]))
        .expect_err("a recording no key opens");
    assert!(
        matches!(&err, RewrapError::Unopened { path, source: SealError::KeyDoesNotOpen } if path == &stranger),
        "{err}"
    );
    assert!(
        err.to_string().contains("no recording was changed"),
        "{err}"
    );
    let after = (
        std::fs::read(&ours).expect("a"),
        std::fs::read(&stranger).expect("z"),
    );
    assert_eq!(before, after);
}

#[test]
fn no_recordings_folder_is_nothing_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let report = rewrap_recordings(&dir.path().join("absent"), &Sealer::new(&NEW)).expect("ok");
    assert_eq!(report, RewrapReport::default());
}
