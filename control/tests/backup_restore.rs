//! `freya backup` and `freya restore` on a SQLite store, run as the binary: a backup taken while
//! the control plane keeps writing is a sound database holding every row committed before it
//! began, and restoring it brings exactly that back; a restore over a database a running control
//! plane holds is refused (the database untouched) unless forced, as is one over an existing
//! database without `--force`; a file that is not a Freya backup, or one a newer release wrote,
//! is refused before anything is replaced.

use crate::support;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::support::{Backend, TestDb};
use sqlx::Connection;

fn freya(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_freya"))
        .args(args)
        .env_remove("FREYA_DATABASE_URL")
        .output()
        .expect("run freya")
}

async fn freya_async(args: Vec<String>) -> Output {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        freya(&args)
    })
    .await
    .expect("freya ran")
}

/// `freya backup --database-url url --to to`.
async fn take_backup(url: &str, to: &Path) -> Output {
    let args = [
        "backup",
        "--database-url",
        url,
        "--to",
        &to.display().to_string(),
    ];
    freya_async(args.iter().map(|a| a.to_string()).collect()).await
}

/// `freya restore --from from --database-url url`, with `--force` when `force`.
async fn restore_from(from: &Path, url: &str, force: bool) -> Output {
    let mut args = vec![
        "restore".into(),
        "--from".into(),
        from.display().to_string(),
    ];
    args.extend(["--database-url".into(), url.to_owned()]);
    if force {
        args.push("--force".into());
    }
    freya_async(args).await
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

async fn count(url: &str, sql: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    let n = sqlx::query_scalar(sql)
        .fetch_one(&mut conn)
        .await
        .expect("count");
    conn.close().await.ok();
    n
}

fn url_of(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_writing_restores_every_row_committed_before_it() {
    let (db, control) = support::control_plane(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let backup = dir.path().join("freya-backup.db");
    let mut before = Vec::new();
    for n in 0..20 {
        before.push(
            control
                .store
                .create_workspace(&format!("before-{n}"))
                .await
                .expect("workspace"),
        );
    }

    // A writer that keeps committing while the backup runs.
    let writing = Arc::new(AtomicBool::new(true));
    let writer = {
        let (store, writing) = (control.store.clone(), writing.clone());
        tokio::spawn(async move {
            let mut written = 0u32;
            while writing.load(Ordering::Relaxed) {
                store
                    .create_workspace(&format!("during-{written}"))
                    .await
                    .expect("writes go on during the backup");
                written += 1;
            }
            written
        })
    };
    let output = take_backup(&db.url, &backup).await;
    assert!(output.status.success(), "backup: {}", stderr(&output));
    writing.store(false, Ordering::Relaxed);
    let during = writer.await.expect("writer");
    assert!(during > 0, "the control plane wrote while the backup ran");

    // After the backup: a row the restore must take back.
    control
        .store
        .create_workspace("after-backup")
        .await
        .expect("workspace");
    let in_backup = count(
        &url_of(&backup),
        "SELECT COUNT(*) FROM workspaces WHERE name LIKE 'before-%'",
    )
    .await;
    assert_eq!(in_backup, 20, "every row committed before the backup");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&backup)
            .expect("backup")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "a backup holds customer data");
    }
    control.stop().await;

    // An existing database is not replaced without --force.
    let target = db.url.split('?').next().unwrap_or(&db.url).to_owned();
    let refused = restore_from(&backup, &target, false).await;
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("--force"), "{}", stderr(&refused));
    assert_eq!(
        count(
            &db.url,
            "SELECT COUNT(*) FROM workspaces WHERE name = 'after-backup'"
        )
        .await,
        1,
        "a refused restore changes nothing"
    );

    let restored = restore_from(&backup, &target, true).await;
    assert!(restored.status.success(), "restore: {}", stderr(&restored));
    let control = freya_control::server::ControlPlane::start(&support::control_config(&db.url))
        .await
        .expect("a control plane starts on the restored database");
    for id in &before {
        assert!(
            db.read_text("SELECT name FROM workspaces WHERE id = $1", id)
                .await
                .starts_with("before-"),
            "{id} restored"
        );
    }
    assert_eq!(
        count(
            &db.url,
            "SELECT COUNT(*) FROM workspaces WHERE name = 'after-backup'"
        )
        .await,
        0,
        "the restore is the backup, not the database it replaced"
    );
    control.stop().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_over_a_running_control_planes_database_is_refused() {
    let (db, control) = support::control_plane(Backend::Sqlite).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let backup = dir.path().join("b.db");
    control.store.create_workspace("kept").await.expect("ws");
    let output = take_backup(&db.url, &backup).await;
    assert!(output.status.success(), "backup: {}", stderr(&output));
    control.store.create_workspace("live").await.expect("ws");

    let refused = restore_from(&backup, &db.url, false).await;
    assert!(!refused.status.success(), "refused while running");
    let message = stderr(&refused);
    assert!(
        message.contains("in use by a running freya process") && message.contains("--force"),
        "{message}"
    );
    // The running control plane still has its own data, and still writes.
    control
        .store
        .create_workspace("still-writing")
        .await
        .expect("the control plane is undisturbed");
    assert_eq!(
        count(
            &db.url,
            "SELECT COUNT(*) FROM workspaces WHERE name IN ('live', 'still-writing')"
        )
        .await,
        2
    );

    // A second backup to the same file is refused rather than overwriting it.
    let again = take_backup(&db.url, &backup).await;
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    control.stop().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_is_not_a_freya_backup_of_this_release_is_refused_before_anything_changes() {
    sqlx::any::install_default_drivers();
    let dir = tempfile::tempdir().expect("temp dir");
    let target = dir.path().join("freya.db");
    let target_url = url_of(&target);

    // Not a database at all.
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, b"this is not a database, only some bytes").expect("write");
    // A SQLite database without Freya's schema.
    let foreign = dir.path().join("foreign.db");
    {
        let mut conn = sqlx::AnyConnection::connect(&format!("{}?mode=rwc", url_of(&foreign)))
            .await
            .expect("create");
        sqlx::query("CREATE TABLE t (x INTEGER)")
            .execute(&mut conn)
            .await
            .expect("table");
        conn.close().await.ok();
    }
    // A backup a newer release wrote (a migration this one does not know).
    let db = TestDb::new(Backend::Sqlite).await;
    let store = freya_control::store::Store::connect(
        &db.url,
        freya_control::store::PoolSize {
            min_connections: 1,
            max_connections: 1,
        },
    )
    .await
    .expect("connect");
    store.migrate().await.expect("migrate");
    store.close().await;
    let newer = dir.path().join("newer.db");
    let output = take_backup(&db.url, &newer).await;
    assert!(output.status.success(), "backup: {}", stderr(&output));
    {
        let mut conn = sqlx::AnyConnection::connect(&url_of(&newer))
            .await
            .expect("open");
        sqlx::query(
            "INSERT INTO _sqlx_migrations \
             (version, description, installed_on, success, checksum, execution_time) \
             VALUES (99990101000000, 'from the future', CURRENT_TIMESTAMP, TRUE, x'00', 0)",
        )
        .execute(&mut conn)
        .await
        .expect("record a future migration");
        conn.close().await.ok();
    }

    for (file, expected) in [
        (&garbage, "not a SQLite database"),
        (&foreign, "no Freya schema"),
        (&newer, "a newer freya wrote it"),
    ] {
        let refused = restore_from(file, &target_url, false).await;
        assert!(!refused.status.success(), "{} refused", file.display());
        assert!(
            stderr(&refused).contains(expected),
            "{}: {}",
            file.display(),
            stderr(&refused)
        );
        assert!(!target.exists(), "nothing restored from {}", file.display());
    }

    // A PostgreSQL URL is pointed at the engine's own tools.
    let postgres = freya(&[
        "backup",
        "--database-url",
        "postgres://freya:secret@127.0.0.1:1/freya",
        "--to",
        &dir.path().join("pg.db").display().to_string(),
    ]);
    assert!(!postgres.status.success());
    let message = stderr(&postgres);
    assert!(message.contains("pg_dump"), "{message}");
    assert!(
        !message.contains("secret"),
        "no password in messages: {message}"
    );

    // A fresh machine: restoring where no database is needs no --force.
    let good = dir.path().join("good.db");
    let output = take_backup(&db.url, &good).await;
    assert!(output.status.success(), "backup: {}", stderr(&output));
    let restored = restore_from(&good, &target_url, false).await;
    assert!(restored.status.success(), "{}", stderr(&restored));
    assert!(count(&target_url, "SELECT COUNT(*) FROM _sqlx_migrations").await > 0);
    db.cleanup().await;
}
