//! `freya backup` and `freya restore` for a SQLite store. A backup is taken online with
//! `VACUUM INTO`: one read transaction, so the copy is a consistent database as of one commit
//! while the control plane keeps writing. A restore checks the copy (integrity, a Freya schema
//! this binary knows) and replaces the database file by rename, so a reader never sees half a
//! file; it refuses a database a running process holds (see [`InUseLock`]) unless forced.
//!
//! A running store holds a shared `flock` on its database file for its whole life; a restore
//! takes it exclusive. `flock` locks are apart from the POSIX record locks SQLite itself takes
//! on the same file, so the two never interfere.

use std::fs::File;
use std::path::{Path, PathBuf};

use sqlx::{Connection, SqliteConnection};
use thiserror::Error;

use super::{migrate, sqlite_file, Engine, StoreError};

/// Why a backup or a restore did not happen.
#[derive(Debug, Error)]
pub enum BackupError {
    /// Backups of PostgreSQL and CockroachDB are the engines' own tools' job.
    #[error(
        "`{0}` is not a SQLite database: back up PostgreSQL with pg_dump or pg_basebackup and \
         CockroachDB with BACKUP (see deploy/README.md)"
    )]
    NotSqlite(String),
    #[error("{}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} already exists; choose another file or remove it first", .0.display())]
    TargetExists(PathBuf),
    #[error(
        "{} is in use by a running freya process; stop it first, or pass --force to replace \
         the database under it (its writes after the restore are lost)",
        .0.display()
    )]
    InUse(PathBuf),
    #[error(
        "{} already holds a database; pass --force to replace it",
        .0.display()
    )]
    WouldOverwrite(PathBuf),
    #[error("{} is not a usable Freya backup: {reason}", path.display())]
    BadBackup { path: PathBuf, reason: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// The SQLite file a database URL names, or why it names none.
pub fn sqlite_path(url: &str) -> Result<PathBuf, BackupError> {
    match Engine::from_url(url)? {
        Engine::Sqlite => sqlite_file(url).ok_or_else(|| BackupError::NotSqlite(url.into())),
        Engine::Postgres => Err(BackupError::NotSqlite(redacted(url))),
    }
}

/// A URL without its password, for messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.into(),
    }
}

/// Writes a consistent copy of the SQLite database at `url` to `dest` (which must not exist),
/// while other processes keep reading and writing it. The copy is owner-only (0600).
pub async fn backup(url: &str, dest: &Path) -> Result<(), BackupError> {
    let source = sqlite_path(url)?;
    if !source.exists() {
        return Err(BackupError::File {
            path: source,
            source: std::io::ErrorKind::NotFound.into(),
        });
    }
    if dest.exists() {
        return Err(BackupError::TargetExists(dest.to_owned()));
    }
    let dest_text = dest.to_str().ok_or_else(|| BackupError::File {
        path: dest.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "path is not UTF-8"),
    })?;
    let mut conn = open(&source, true).await?;
    // One read transaction over the WAL: the copy is the database as of one commit.
    let copied = sqlx::query("VACUUM INTO $1")
        .bind(dest_text)
        .execute(&mut conn)
        .await;
    let _ = conn.close().await;
    copied?;
    freya_shared::private_files::restrict_file(dest).map_err(|e| BackupError::File {
        path: dest.to_owned(),
        source: e,
    })?;
    sync_file(dest)?;
    Ok(())
}

/// Replaces the SQLite database at `url` with the backup at `from`. Refuses a backup that is
/// not a sound Freya database or was written by a newer `freya`, and (without `force`) a
/// target that exists or that a running process holds.
pub async fn restore(from: &Path, url: &str, force: bool) -> Result<(), BackupError> {
    let target = sqlite_path(url)?;
    check_backup(from).await?;
    let _held = if target.exists() {
        match InUseLock::try_exclusive(&target)? {
            Some(lock) if force => Some(lock),
            Some(_) => return Err(BackupError::WouldOverwrite(target)),
            None if force => {
                tracing::warn!(path = %target.display(), "replacing a database in use (--force)");
                None
            }
            None => return Err(BackupError::InUse(target)),
        }
    } else {
        None
    };
    let staged = with_suffix(&target, ".restoring");
    let _ = std::fs::remove_file(&staged);
    copy_private(from, &staged)?;
    // The old database's journal belongs to it, not to the restored file.
    for suffix in ["-wal", "-shm"] {
        let journal = with_suffix(&target, suffix);
        match std::fs::remove_file(&journal) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(file_error(&journal, e)),
        }
    }
    std::fs::rename(&staged, &target).map_err(|e| file_error(&target, e))?;
    if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
        sync_file(dir)?;
    }
    Ok(())
}

/// A backup is restorable when SQLite finds it intact and its migrations are all known here.
async fn check_backup(path: &Path) -> Result<(), BackupError> {
    let bad = |reason: String| BackupError::BadBackup {
        path: path.to_owned(),
        reason,
    };
    if !path.is_file() {
        return Err(bad("no such file".into()));
    }
    let mut conn = open(path, true)
        .await
        .map_err(|e| bad(format!("not a SQLite database, or unreadable ({e})")))?;
    let checked = check_open_backup(&mut conn).await;
    let _ = conn.close().await;
    checked.map_err(bad)
}

async fn check_open_backup(conn: &mut SqliteConnection) -> Result<(), String> {
    let verdict: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| format!("not a SQLite database ({e})"))?;
    if verdict != "ok" {
        return Err(format!("integrity check failed: {verdict}"));
    }
    let tables: i64 = sqlx::query_scalar(migrate::migration_table_count_sql(Engine::Sqlite))
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
    if tables == 0 {
        return Err("no Freya schema in it (no _sqlx_migrations table)".into());
    }
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations")
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| e.to_string())?;
    let known = migrate::known_versions();
    let newer: Vec<i64> = applied.into_iter().filter(|v| !known.contains(v)).collect();
    if !newer.is_empty() {
        return Err(format!(
            "a newer freya wrote it (migrations {newer:?} unknown here); restore with that release"
        ));
    }
    Ok(())
}

async fn open(path: &Path, read_only: bool) -> Result<SqliteConnection, BackupError> {
    let options = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(read_only);
    Ok(SqliteConnection::connect_with(&options).await?)
}

fn copy_private(from: &Path, to: &Path) -> Result<(), BackupError> {
    let mut source = File::open(from).map_err(|e| file_error(from, e))?;
    let mut dest = freya_shared::private_files::create_file(to).map_err(|e| file_error(to, e))?;
    std::io::copy(&mut source, &mut dest).map_err(|e| file_error(to, e))?;
    dest.sync_all().map_err(|e| file_error(to, e))
}

fn sync_file(path: &Path) -> Result<(), BackupError> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| file_error(path, e))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

fn file_error(path: &Path, source: std::io::Error) -> BackupError {
    BackupError::File {
        path: path.to_owned(),
        source,
    }
}

/// A `flock` on a SQLite database file: shared while a store has it open, exclusive while a
/// restore replaces it. Released when dropped (the descriptor closes).
#[derive(Debug)]
pub(crate) struct InUseLock {
    _file: File,
}

impl InUseLock {
    /// A shared hold, `None` when a restore holds the file exclusively.
    pub(crate) fn try_shared(path: &Path) -> Result<Option<Self>, StoreError> {
        Self::take(path, false).map_err(|e| StoreError::File {
            path: path.to_owned(),
            source: e,
        })
    }

    /// The exclusive hold a restore needs, `None` when any process has the database open.
    fn try_exclusive(path: &Path) -> Result<Option<Self>, BackupError> {
        Self::take(path, true).map_err(|e| file_error(path, e))
    }

    #[cfg(unix)]
    fn take(path: &Path, exclusive: bool) -> std::io::Result<Option<Self>> {
        use std::os::fd::AsRawFd;
        let file = File::open(path)?;
        let mode = if exclusive {
            libc::LOCK_EX
        } else {
            libc::LOCK_SH
        };
        // SAFETY: flock only reads the descriptor, which `file` keeps open for the call.
        let taken = unsafe { libc::flock(file.as_raw_fd(), mode | libc::LOCK_NB) };
        if taken == 0 {
            return Ok(Some(Self { _file: file }));
        }
        let error = std::io::Error::last_os_error();
        if error.kind() == std::io::ErrorKind::WouldBlock {
            Ok(None)
        } else {
            Err(error)
        }
    }

    #[cfg(not(unix))]
    fn take(path: &Path, _exclusive: bool) -> std::io::Result<Option<Self>> {
        Ok(Some(Self {
            _file: File::open(path)?,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_hold_keeps_a_restore_out_and_its_end_lets_it_in() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("freya.db");
        std::fs::write(&path, b"").expect("file");
        let first = InUseLock::try_shared(&path).expect("lock").expect("shared");
        let second = InUseLock::try_shared(&path).expect("lock");
        assert!(second.is_some(), "shared holds coexist");
        assert!(InUseLock::try_exclusive(&path).expect("lock").is_none());
        drop((first, second));
        let restore = InUseLock::try_exclusive(&path).expect("lock");
        assert!(restore.is_some(), "free once every store let go");
        assert!(InUseLock::try_shared(&path).expect("lock").is_none());
    }

    #[test]
    fn a_postgres_url_is_not_backed_up_here_and_its_password_is_not_shown() {
        match sqlite_path("postgres://freya:hunter2@db:5432/freya") {
            Err(BackupError::NotSqlite(shown)) => {
                assert!(!shown.contains("hunter2"), "{shown}");
                assert!(shown.contains("db:5432"), "{shown}");
            }
            other => panic!("refused as not SQLite, not {other:?}"),
        }
    }
}
