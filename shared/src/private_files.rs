//! Files and directories that hold secrets or customer data — the edge's configuration cache
//! (provider secrets), its event spool and recordings, the control plane's SQLite database and
//! recordings, `freya dev`'s `auth.json` — are readable by their owner only: files 0600,
//! directories 0700, set explicitly rather than left to the umask. At start-up, whatever an
//! earlier run (or a person) left looser is named in a warning and corrected.
//!
//! On other platforms than unix these are plain file operations.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

/// The mode of a private file.
pub const FILE_MODE: u32 = 0o600;
/// The mode of a private directory.
pub const DIR_MODE: u32 = 0o700;

/// Creates `dir` and any missing parents owner-only, and corrects `dir` itself if it already
/// existed open to others.
pub fn create_dir(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, DIR_MODE);
    builder.create(dir)?;
    restrict(dir, DIR_MODE)
}

/// Options that create a file owner-only; add `write`, `append`, `create`... as needed. A file
/// that already exists keeps its mode: see [`create_file`] and [`restrict_file`].
pub fn open_options() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, FILE_MODE);
    options
}

/// Creates (or truncates) `path` for writing, owner-only even when it already existed.
pub fn create_file(path: &Path) -> io::Result<File> {
    let file = open_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if file.metadata()?.permissions().mode() & 0o777 != FILE_MODE {
            file.set_permissions(std::fs::Permissions::from_mode(FILE_MODE))?;
        }
    }
    Ok(file)
}

/// Opens `path` for appending, creating it owner-only; an existing file is corrected.
pub fn append_file(path: &Path) -> io::Result<File> {
    restrict_file(path)?;
    open_options().create(true).append(true).open(path)
}

/// Writes `bytes` to `path` (replacing it), owner-only.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    io::Write::write_all(&mut create_file(path)?, bytes)
}

/// Corrects `path` to 0600 if it exists and is open to others; a missing file is no error.
pub fn restrict_file(path: &Path) -> io::Result<()> {
    match restrict(path, FILE_MODE) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Corrects `dir` and everything under it: directories to 0700, files to 0600. Symbolic links
/// are left alone (and not followed).
pub fn restrict_tree(dir: &Path) -> io::Result<()> {
    restrict(dir, DIR_MODE)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            restrict_tree(&entry.path())?;
        } else if kind.is_file() {
            restrict_file(&entry.path())?;
        }
    }
    Ok(())
}

/// Sets `path` to `mode` when group or others have any access, with a warning naming it.
#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let current = std::fs::symlink_metadata(path)?.permissions().mode() & 0o777;
    if current & 0o077 != 0 {
        tracing::warn!(
            path = %path.display(),
            mode = format_args!("{current:o}"),
            corrected = format_args!("{mode:o}"),
            "this holds secrets or customer data but others could read it; restricting it to its owner"
        );
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

#[cfg(not(unix))]
fn restrict(path: &Path, _mode: u32) -> io::Result<()> {
    std::fs::symlink_metadata(path).map(|_| ())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    fn loosen(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn new_files_and_directories_are_owner_only() {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("a/b");
        create_dir(&dir).expect("dir");
        assert_eq!(mode(&dir), DIR_MODE);
        assert_eq!(mode(&root.path().join("a")), DIR_MODE);
        let file = dir.join("secret.json");
        write(&file, b"{}").expect("write");
        assert_eq!(mode(&file), FILE_MODE);
        let log = dir.join("events.log");
        append_file(&log).expect("append");
        assert_eq!(mode(&log), FILE_MODE);
    }

    #[test]
    fn looser_files_and_directories_are_corrected() {
        let root = tempfile::tempdir().expect("temp dir");
        let dir = root.path().join("data");
        std::fs::create_dir(&dir).expect("dir");
        loosen(&dir, 0o755);
        let nested = dir.join("ws");
        std::fs::create_dir(&nested).expect("dir");
        loosen(&nested, 0o755);
        let file = nested.join("call.wav");
        std::fs::write(&file, b"RIFF").expect("write");
        loosen(&file, 0o644);
        let rewritten = dir.join("dev.json");
        std::fs::write(&rewritten, b"{}").expect("write");
        loosen(&rewritten, 0o644);

        create_dir(&dir).expect("dir");
        assert_eq!(mode(&dir), DIR_MODE);
        write(&rewritten, b"{}").expect("write");
        assert_eq!(mode(&rewritten), FILE_MODE);
        restrict_tree(&dir).expect("tree");
        assert_eq!(mode(&nested), DIR_MODE);
        assert_eq!(mode(&file), FILE_MODE);
        restrict_file(&dir.join("absent")).expect("a missing file is fine");
    }
}
