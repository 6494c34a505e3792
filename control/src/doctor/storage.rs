//! Checks on where Freya keeps its state: the database (reachable, and migrated to exactly the
//! migrations this binary carries) and the data directory, which holds secrets — `auth.json`'s
//! signing and encryption keys, `dev.json`'s API key and admin password, the dev database — and
//! so must be writable by Freya and readable by nobody else.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::store::{self, Engine};

use super::Check;

/// How long the database gets to answer.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// The dev database inside a data directory (`freya dev` names it so).
pub(super) fn dev_database(data_dir: &Path) -> PathBuf {
    data_dir.join("freya.db")
}

/// `url` with its password replaced, fit to print.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{scheme}://{user}:***{}", &rest[at..]),
        None => url.to_owned(),
    }
}

/// The file a SQLite URL opens, unless it is in memory.
fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && !path.starts_with(":memory:")).then(|| PathBuf::from(path))
}

pub(super) async fn database(data_dir: &Path, database_url: Option<&str>) -> Check {
    let (url, shown) = match database_url {
        Some(url) => (url.to_owned(), redacted(url)),
        None => {
            let file = dev_database(data_dir);
            if !file.exists() {
                return Check::passed(
                    "database",
                    format!(
                        "{} will be created on first start of `freya dev`",
                        file.display()
                    ),
                );
            }
            // `rw`, not `rwc`: looking must not create.
            let url = format!("sqlite://{}?mode=rw", file.display());
            (url, file.display().to_string())
        }
    };
    let engine = match Engine::from_url(&url) {
        Ok(engine) => engine,
        Err(e) => {
            return Check::failed(
                "database",
                e.to_string(),
                "pass --database-url sqlite://PATH or postgres://USER@HOST:PORT/DB",
            )
        }
    };
    if let Some(file) = sqlite_file(&url).filter(|f| !f.exists()) {
        return if url.contains("mode=rwc") {
            Check::passed(
                "database",
                format!("{} will be created on first start", file.display()),
            )
        } else {
            Check::failed(
                "database",
                format!("{} does not exist", file.display()),
                format!("create it: freya migrate --database-url '{shown}?mode=rwc'"),
            )
        };
    }
    let migrate = format!("freya migrate --database-url '{}'", redacted(&url));
    let status = match tokio::time::timeout(CONNECT_TIMEOUT, store::migration_status(&url)).await {
        Err(_) => {
            return Check::failed(
                "database",
                format!("{shown}: no answer within {} s", CONNECT_TIMEOUT.as_secs()),
                "start the database, or check the host and port in --database-url",
            )
        }
        Ok(Err(e)) => {
            let fix = match engine {
                Engine::Postgres => {
                    "start the database, or check the host, port, user and password in the URL"
                }
                Engine::Sqlite => "check the file's permissions, or pass another --data-dir",
            };
            return Check::failed("database", format!("{shown}: {e}"), fix);
        }
        Ok(Ok(status)) => status,
    };
    if !status.unknown.is_empty() {
        return Check::failed(
            "database",
            format!(
                "{shown}: migrated by a newer freya (migrations {:?} are unknown to this binary)",
                status.unknown
            ),
            "run the newer freya binary",
        );
    }
    if !status.pending.is_empty() {
        let pending = format!(
            "{shown}: {} of {} migrations not applied",
            status.pending.len(),
            status.known
        );
        // The dev database is migrated by `freya dev` itself as it starts.
        return if database_url.is_none() {
            Check::warning(
                "database",
                format!("{pending}; `freya dev` applies them at start"),
                None,
            )
        } else {
            Check::failed("database", pending, migrate)
        };
    }
    Check::passed(
        "database",
        format!(
            "{shown}: reachable, all {} migrations applied",
            status.known
        ),
    )
}

/// The data directory's line, then one line for its files (or one per exposed file).
pub(super) fn data_directory(dir: &Path) -> Vec<Check> {
    let name = "data directory";
    let shown = dir.display();
    let fix_elsewhere = format!(
        "pass --data-dir a directory you can write, or: mkdir -p {shown} && chmod 700 {shown}"
    );
    match std::fs::metadata(dir) {
        Ok(meta) if !meta.is_dir() => {
            return vec![Check::failed(
                name,
                format!("{shown} is not a directory"),
                fix_elsewhere,
            )]
        }
        Ok(_) => {}
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            // It will be created: the nearest existing ancestor must be a writable directory.
            let ancestor = dir
                .ancestors()
                .skip(1)
                .find(|a| a.as_os_str().is_empty() || a.exists())
                .map(|a| {
                    if a.as_os_str().is_empty() {
                        Path::new(".")
                    } else {
                        a
                    }
                })
                .unwrap_or(Path::new("."));
            return vec![match probe_write(ancestor) {
                Ok(()) => Check::passed(
                    name,
                    format!("{shown} does not exist yet; it will be created"),
                ),
                Err(e) => Check::failed(
                    name,
                    format!("{shown} cannot be created: {}: {e}", ancestor.display()),
                    fix_elsewhere,
                ),
            }];
        }
        Err(e) => return vec![Check::failed(name, format!("{shown}: {e}"), fix_elsewhere)],
    }
    if let Err(e) = probe_write(dir) {
        return vec![Check::failed(
            name,
            format!("{shown} is not writable: {e}"),
            fix_elsewhere,
        )];
    }
    let mut checks = vec![match exposure(dir) {
        Some(mode) => Check::failed(
            name,
            format!("{shown} is open to group/other (mode {mode:o}); secrets live there"),
            format!("chmod 700 {shown}"),
        ),
        None => Check::passed(name, format!("{shown}, writable, owner only")),
    }];
    checks.extend(data_files(dir));
    checks
}

/// One line per file in `dir` that group or other can read, or one line saying none can.
fn data_files(dir: &Path) -> Vec<Check> {
    let name = "data files";
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect();
    files.sort();
    let exposed: Vec<Check> = files
        .iter()
        .filter_map(|file| {
            let mode = readable_by_others(file)?;
            Some(Check::failed(
                name,
                format!(
                    "{} is readable by group/other (mode {mode:o})",
                    file.display()
                ),
                format!("chmod 600 {}", file.display()),
            ))
        })
        .collect();
    if exposed.is_empty() {
        let count = files.len();
        let what = if count == 1 { "file" } else { "files" };
        vec![Check::passed(
            name,
            format!("{count} {what}, none readable by group/other"),
        )]
    } else {
        exposed
    }
}

/// Creates and removes a probe file in `dir`.
fn probe_write(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".freya-doctor-{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(&probe)
}

/// The directory's permission bits when group or other has any access to it.
#[cfg(unix)]
fn exposure(dir: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

/// The file's permission bits when group or other can read it.
#[cfg(unix)]
fn readable_by_others(file: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(file).ok()?.permissions().mode() & 0o777;
    (mode & 0o044 != 0).then_some(mode)
}

#[cfg(not(unix))]
fn exposure(_dir: &Path) -> Option<u32> {
    None
}

#[cfg(not(unix))]
fn readable_by_others(_file: &Path) -> Option<u32> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_kept_out_of_printed_urls() {
        assert_eq!(
            redacted("postgres://freya:s3cret@db:5432/freya"),
            "postgres://freya:***@db:5432/freya"
        );
        assert_eq!(
            redacted("postgres://nobody@127.0.0.1:1/x"),
            "postgres://nobody@127.0.0.1:1/x"
        );
        assert_eq!(
            redacted("sqlite:///var/lib/freya.db?mode=rwc"),
            "sqlite:///var/lib/freya.db?mode=rwc"
        );
    }

    #[test]
    fn sqlite_urls_name_their_file() {
        assert_eq!(
            sqlite_file("sqlite:///tmp/x/freya.db?mode=rwc"),
            Some(PathBuf::from("/tmp/x/freya.db"))
        );
        assert_eq!(
            sqlite_file("sqlite:./freya.db"),
            Some(PathBuf::from("./freya.db"))
        );
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://h/db"), None);
    }

    #[tokio::test]
    async fn a_fresh_data_directory_will_get_its_database_on_first_start() {
        let dir = tempfile::tempdir().expect("temp dir");
        let check = database(&dir.path().join("new"), None).await;
        assert!(!check.is_failed(), "{check}");
        assert!(check.to_string().contains("will be created"), "{check}");
        assert!(!dir.path().join("new").exists(), "looking created nothing");
    }

    #[tokio::test]
    async fn pending_migrations_fail_a_named_database_but_only_warn_for_the_dev_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dev_database(dir.path());
        let url = format!("sqlite://{}?mode=rwc", file.display());
        store::migration_status(&url)
            .await
            .expect("create an empty database");
        let dev = database(dir.path(), None).await;
        assert!(
            matches!(dev.outcome, crate::doctor::CheckOutcome::Warning { .. }),
            "{dev}"
        );
        let named = database(dir.path(), Some(&url)).await;
        assert!(named.is_failed(), "{named}");
        assert!(named.to_string().contains("fix: freya migrate"), "{named}");
    }

    #[tokio::test]
    async fn a_missing_sqlite_file_without_rwc_is_reported() {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}/none.db", dir.path().display());
        let check = database(dir.path(), Some(&url)).await;
        assert!(check.is_failed(), "{check}");
        assert!(!dir.path().join("none.db").exists());
    }

    #[cfg(unix)]
    #[test]
    fn an_open_directory_and_a_readable_file_are_reported_with_their_chmod() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let set = |path: &Path, mode: u32| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod")
        };
        set(dir.path(), 0o700);
        let secret = dir.path().join("auth.json");
        std::fs::write(&secret, b"{}").expect("write");
        set(&secret, 0o600);
        let checks = data_directory(dir.path());
        assert!(checks.iter().all(|c| !c.is_failed()), "{checks:?}");

        set(&secret, 0o640);
        set(dir.path(), 0o755);
        let text: Vec<String> = data_directory(dir.path())
            .iter()
            .map(ToString::to_string)
            .collect();
        let text = text.join("\n");
        assert!(
            text.contains(&format!("fix: chmod 700 {}", dir.path().display())),
            "{text}"
        );
        assert!(
            text.contains(&format!("fix: chmod 600 {}", secret.display())),
            "{text}"
        );
    }

    #[test]
    fn a_data_directory_under_a_file_cannot_be_created() {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let dir = file.path().join("sub");
        let checks = data_directory(&dir);
        assert_eq!(checks.len(), 1);
        assert!(checks[0].is_failed(), "{}", checks[0]);
        assert!(
            checks[0].to_string().contains(&dir.display().to_string()),
            "{}",
            checks[0]
        );
    }
}
