//! The migration lint: every file in `control/migrations/` must run well on CockroachDB as on
//! PostgreSQL and SQLite, and stay forward-only and expand-only, so that a rolling upgrade can
//! run two releases against one database. It refuses, with the rule's name and the file and
//! line:
//!
//! - advisory locks (`pg_advisory_lock` and kin: CockroachDB has none; `migrate.rs` serialises
//!   migrators with a lock row instead);
//! - `SERIAL`/`BIGSERIAL`/identity columns on hot tables (one sequence is one contended range on
//!   CockroachDB; hot rows are keyed by UUIDv7);
//! - sequences at all (`CREATE SEQUENCE`, `nextval`): call ids are UUIDv7 made by the edge;
//! - triggers and stored functions (logic stays in Rust, where both engines run it);
//! - `LISTEN`/`NOTIFY` (CockroachDB has neither; changes are seen through the version row);
//! - `DROP TABLE`, `DROP COLUMN` and `RENAME` without a `-- contract:` comment above the
//!   statement (the previous release still reads what they remove), and down migrations.
//!
//! The control plane's own SQL is searched for advisory locks and LISTEN/NOTIFY as well. Each
//! rule is proven by a fixture it rejects; the real tree must pass. The second half applies the
//! last migration to a database holding rows the previous schema wrote, on both engines.

use std::borrow::Cow;
use std::path::{Path, PathBuf};

use crate::support::{on_both_engines, Backend, TestDb};
use freya_control::store::{PoolSize, Store, WorkspaceScope};

/// Tables written on every call or every few seconds.
const HOT_TABLES: [&str; 7] = [
    "CALLS",
    "CALL_EVENTS",
    "WEBHOOK_DELIVERIES",
    "TURN_LATENCY_HOURLY",
    "AUDIT_LOG",
    "IDEMPOTENCY_KEYS",
    "EDGES",
];

/// One refused statement.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Finding {
    rule: &'static str,
    line: usize,
}

/// One statement: its words (upper case; string literals and comments removed), the comments
/// above and inside it, and the line it starts on.
#[derive(Debug, Default)]
struct Statement {
    words: Vec<String>,
    comments: String,
    line: usize,
}

/// Cuts SQL into statements of words. Quoted strings and dollar-quoted bodies are skipped (a
/// word in a string is data, not SQL); `"identifiers"` are words.
fn statements(sql: &str) -> Vec<Statement> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut current = Statement {
        line: 1,
        ..Statement::default()
    };
    let (mut i, mut line) = (0, 1);
    let mut word = String::new();
    let flush = |word: &mut String, current: &mut Statement, line: usize| {
        if !word.is_empty() {
            if current.words.is_empty() {
                current.line = line;
            }
            current.words.push(word.to_uppercase());
            word.clear();
        }
    };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '\n' {
            line += 1;
        }
        if c == '-' && next == Some('-') {
            flush(&mut word, &mut current, line);
            while i < chars.len() && chars[i] != '\n' {
                current.comments.push(chars[i]);
                i += 1;
            }
            current.comments.push('\n');
            continue;
        }
        if c == '/' && next == Some('*') {
            flush(&mut word, &mut current, line);
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                if chars[i] == '\n' {
                    line += 1;
                }
                current.comments.push(chars[i]);
                i += 1;
            }
            i += 2;
            continue;
        }
        if c == '\'' {
            flush(&mut word, &mut current, line);
            i += 1;
            while i < chars.len() {
                if chars[i] == '\n' {
                    line += 1;
                }
                if chars[i] == '\'' && chars.get(i + 1) == Some(&'\'') {
                    i += 2;
                } else if chars[i] == '\'' {
                    break;
                } else {
                    i += 1;
                }
            }
            i += 1;
            current.words.push("'…'".into());
            continue;
        }
        if c == '$' && (next == Some('$') || next.is_some_and(char::is_alphabetic)) {
            // A dollar-quoted body: $tag$ ... $tag$ (a function's source).
            let close = chars[i + 1..].iter().position(|&c| c == '$');
            if let Some(len) = close {
                let tag: String = chars[i..i + len + 2].iter().collect();
                flush(&mut word, &mut current, line);
                let body_start = i + tag.chars().count();
                let rest: String = chars[body_start..].iter().collect();
                let end = rest.find(&tag).map_or(rest.len(), |e| e + tag.len());
                line += rest[..end].matches('\n').count();
                i = body_start + rest[..end].chars().count();
                current.words.push("$…$".into());
                continue;
            }
        }
        if c == '"' {
            flush(&mut word, &mut current, line);
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                word.push(chars[i]);
                i += 1;
            }
            i += 1;
            flush(&mut word, &mut current, line);
            continue;
        }
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut current, line);
            if c == ';' {
                out.push(std::mem::take(&mut current));
            } else if c == '(' || c == ')' || c == ',' {
                current.words.push(c.to_string());
            }
        }
        i += 1;
    }
    flush(&mut word, &mut current, line);
    if !current.words.is_empty() {
        out.push(current);
    }
    out
}

/// The table a `CREATE TABLE` or `ALTER TABLE` statement names.
fn table_of(words: &[String]) -> Option<&str> {
    let at = words.iter().position(|w| w == "TABLE")?;
    let mut rest = words[at + 1..].iter().map(String::as_str);
    let mut name = rest.next()?;
    for skip in ["IF", "NOT", "EXISTS", "ONLY"] {
        if name == skip {
            name = rest.next()?;
        }
    }
    Some(name)
}

fn has(words: &[String], sequence: &[&str]) -> bool {
    words.windows(sequence.len()).any(|w| w == sequence)
}

/// What the lint refuses in one migration file's text.
fn lint(sql: &str) -> Vec<Finding> {
    let mut findings = Vec::new();
    for statement in statements(sql) {
        let words = &statement.words;
        let mut refuse = |rule| {
            findings.push(Finding {
                rule,
                line: statement.line,
            })
        };
        let first = words.first().map(String::as_str).unwrap_or("");
        if words.iter().any(|w| w.contains("ADVISORY")) {
            refuse("advisory lock");
        }
        if matches!(first, "LISTEN" | "NOTIFY" | "UNLISTEN")
            || words.iter().any(|w| w == "PG_NOTIFY")
        {
            refuse("LISTEN/NOTIFY");
        }
        if first == "CREATE" && words.iter().take(5).any(|w| w == "TRIGGER") {
            refuse("trigger");
        }
        if first == "CREATE"
            && words
                .iter()
                .take(4)
                .any(|w| w == "FUNCTION" || w == "PROCEDURE")
        {
            refuse("stored function");
        }
        if has(words, &["CREATE", "SEQUENCE"])
            || words
                .iter()
                .any(|w| matches!(w.as_str(), "NEXTVAL" | "SETVAL" | "CURRVAL"))
        {
            refuse("sequence");
        }
        let counter = words.iter().any(|w| {
            matches!(
                w.as_str(),
                "SERIAL"
                    | "BIGSERIAL"
                    | "SMALLSERIAL"
                    | "SERIAL2"
                    | "SERIAL4"
                    | "SERIAL8"
                    | "AUTOINCREMENT"
            )
        }) || has(words, &["AS", "IDENTITY"]);
        let hot = table_of(words).is_some_and(|t| HOT_TABLES.contains(&t));
        if counter && hot && matches!(first, "CREATE" | "ALTER") {
            refuse("SERIAL on a hot table");
        }
        let removes = (first == "DROP" && words.get(1).is_some_and(|w| w == "TABLE"))
            || has(words, &["DROP", "COLUMN"])
            || (first == "ALTER" && words.iter().any(|w| w == "RENAME"));
        if removes && !statement.comments.contains("contract:") {
            refuse("not expand-only");
        }
    }
    findings
}

fn migrations_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations")
}

/// The migration files, in order.
fn migration_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(migrations_dir())
        .expect("control/migrations")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    files
}

fn rules(sql: &str) -> Vec<&'static str> {
    lint(sql).into_iter().map(|f| f.rule).collect()
}

#[test]
fn every_migration_in_the_tree_passes_the_lint() {
    let files = migration_files();
    assert!(files.len() >= 10, "the tree is there: {files:?}");
    for file in files {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("");
        assert!(
            !name.ends_with(".down.sql") && !name.contains(".down."),
            "{name}: migrations are forward-only; no down migrations"
        );
        let sql = std::fs::read_to_string(&file).expect("read migration");
        let findings = lint(&sql);
        assert!(findings.is_empty(), "{name}: {findings:?}");
    }
}

#[test]
fn advisory_locks_are_refused() {
    assert_eq!(rules("SELECT pg_advisory_lock(42);"), ["advisory lock"]);
    assert_eq!(
        rules("SELECT 1;\nSELECT pg_try_advisory_xact_lock(1, 2);"),
        ["advisory lock"]
    );
    assert_eq!(lint("SELECT 1;\nSELECT pg_advisory_lock(1);")[0].line, 2);
}

#[test]
fn serial_on_a_hot_table_is_refused_and_elsewhere_allowed() {
    assert_eq!(
        rules("CREATE TABLE calls (id BIGSERIAL PRIMARY KEY, started_at_ms BIGINT);"),
        ["SERIAL on a hot table"]
    );
    assert_eq!(
        rules("ALTER TABLE call_events ADD COLUMN seq SERIAL;"),
        ["SERIAL on a hot table"]
    );
    assert_eq!(
        rules(
            "CREATE TABLE IF NOT EXISTS webhook_deliveries (n INTEGER PRIMARY KEY AUTOINCREMENT);"
        ),
        ["SERIAL on a hot table"]
    );
    assert_eq!(
        rules("CREATE TABLE edges (n BIGINT GENERATED ALWAYS AS IDENTITY);"),
        ["SERIAL on a hot table"]
    );
    assert!(rules("CREATE TABLE report_kinds (id SERIAL PRIMARY KEY, name TEXT);").is_empty());
}

#[test]
fn sequences_as_call_ids_are_refused() {
    assert_eq!(rules("CREATE SEQUENCE call_ids;"), ["sequence"]);
    assert_eq!(
        rules("CREATE TABLE calls (id BIGINT PRIMARY KEY DEFAULT nextval('call_ids'));"),
        ["sequence"]
    );
}

#[test]
fn triggers_and_stored_functions_are_refused() {
    let sql = "CREATE FUNCTION bump() RETURNS trigger AS $$ BEGIN NEW.n := NEW.n + 1; \
               RETURN NEW; END; $$ LANGUAGE plpgsql;\n\
               CREATE TRIGGER calls_bump BEFORE UPDATE ON calls FOR EACH ROW EXECUTE FUNCTION bump();";
    assert_eq!(rules(sql), ["stored function", "trigger"]);
    assert_eq!(
        rules(
            "CREATE OR REPLACE TRIGGER t AFTER INSERT ON calls FOR EACH ROW EXECUTE FUNCTION f();"
        ),
        ["trigger"]
    );
}

#[test]
fn listen_and_notify_are_refused() {
    assert_eq!(rules("LISTEN config_changed;"), ["LISTEN/NOTIFY"]);
    assert_eq!(rules("NOTIFY config_changed, 'v2';"), ["LISTEN/NOTIFY"]);
    assert_eq!(
        rules("SELECT pg_notify('config_changed', '2');"),
        ["LISTEN/NOTIFY"]
    );
}

#[test]
fn drops_and_renames_need_a_contract_comment() {
    assert_eq!(
        rules("ALTER TABLE calls DROP COLUMN region;"),
        ["not expand-only"]
    );
    assert_eq!(rules("DROP TABLE agents;"), ["not expand-only"]);
    assert_eq!(
        rules("ALTER TABLE calls RENAME COLUMN region TO home;"),
        ["not expand-only"]
    );
    assert!(rules(
        "-- contract: 0.3 stopped reading calls.legacy_flag; every supported release is past it\n\
         ALTER TABLE calls DROP COLUMN legacy_flag;"
    )
    .is_empty());
}

#[test]
fn words_in_comments_and_strings_are_not_statements() {
    let sql = "-- no pg_advisory_lock here, no LISTEN/NOTIFY, no CREATE TRIGGER\n\
               /* SERIAL on calls would be refused */\n\
               INSERT INTO audit_log (detail) VALUES ('NOTIFY; CREATE SEQUENCE x; DROP TABLE calls');";
    assert!(lint(sql).is_empty(), "{:?}", lint(sql));
}

/// The control plane's own SQL, outside the migrations: no advisory lock, no LISTEN/NOTIFY.
#[test]
fn the_control_planes_code_takes_no_advisory_lock_and_listens_for_nothing() {
    let forbidden = [
        "pg_advisory",
        "pg_notify",
        "PgListener",
        "\"LISTEN ",
        "\"NOTIFY ",
    ];
    let mut seen = 0;
    let mut stack = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("src")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            seen += 1;
            let text = std::fs::read_to_string(&path).expect("read source");
            for (n, line) in text.lines().enumerate() {
                if line.trim_start().starts_with("//") {
                    continue;
                }
                for word in forbidden {
                    assert!(
                        !line.contains(word),
                        "{}:{}: `{word}` (CockroachDB has no advisory locks nor LISTEN/NOTIFY)",
                        path.display(),
                        n + 1
                    );
                }
            }
        }
    }
    assert!(seen > 50, "walked the sources ({seen} files)");
}

// ---- Forward-only: the newest migration over data the previous schema wrote. ----

/// Applies every migration but the last, as the previous release did.
async fn migrate_to_previous(url: &str) -> i64 {
    sqlx::any::install_default_drivers();
    let mut migrator = sqlx::migrate::Migrator::new(migrations_dir())
        .await
        .expect("read the migrations");
    let all = migrator.migrations.to_vec();
    let (last, previous) = all.split_last().expect("migrations");
    migrator.migrations = Cow::Owned(previous.to_vec());
    migrator.set_locking(false);
    let pool = sqlx::AnyPool::connect(url).await.expect("connect");
    migrator.run(&pool).await.expect("migrate to N-1");
    pool.close().await;
    last.version
}

/// Rows as the previous release wrote them: its columns only.
async fn write_with_previous_schema(url: &str) {
    let pool = sqlx::AnyPool::connect(url).await.expect("connect");
    let statements = [
        "INSERT INTO workspaces (id, name, created_at_ms, updated_at_ms) \
         VALUES ('ws-old', 'Old', 1, 1)",
        "INSERT INTO edges (id, region, sip_addr, rtp_addr, http_addr, version, capacity, \
         registered_at_ms, last_seen_ms) \
         VALUES ('edge-old', 'eu', '127.0.0.1:5060', '127.0.0.1', '127.0.0.1:8081', '0.1.0', \
         10, 1, 1)",
        "INSERT INTO calls (id, workspace_id, edge_id, region, direction, from_number, to_number, \
         status, started_at_ms, answered_at_ms, ended_at_ms, end_reason) \
         VALUES ('call-old', 'ws-old', 'edge-old', 'eu', 'inbound', '+4790000001', '+15550100', \
         'ended', 1000, 2000, 9000, 'caller_hangup')",
        "INSERT INTO call_events (id, call_id, workspace_id, edge_id, kind, at_ms, payload, \
         received_at_ms) VALUES ('event-old', 'call-old', 'ws-old', 'edge-old', 'call.ended', \
         9000, '{\"reason\":\"caller_hangup\"}', 9001)",
    ];
    for sql in statements {
        sqlx::query(sql)
            .execute(&pool)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    pool.close().await;
}

async fn the_newest_migration_applies_over_data_of_the_previous_schema(backend: Backend) {
    let db = TestDb::new(backend).await;
    let newest = migrate_to_previous(&db.url).await;
    write_with_previous_schema(&db.url).await;

    let size = PoolSize {
        min_connections: 1,
        max_connections: 2,
    };
    let store = Store::connect(&db.url, size).await.expect("connect");
    store
        .migrate()
        .await
        .expect("the newest migration applies over old rows");
    let status = freya_control::store::migration_status(&db.url)
        .await
        .expect("status");
    assert!(status.is_current(), "{status:?} (newest {newest})");

    let scope = WorkspaceScope {
        workspace_id: "ws-old".into(),
    };
    let call = store.call(&scope, "call-old").await.expect("the old call");
    assert_eq!(call.status, "ended");
    assert_eq!(call.end_reason.as_deref(), Some("caller_hangup"));
    assert_eq!(call.region.as_deref(), Some("eu"));
    let events = store
        .call_events(&scope, "call-old")
        .await
        .expect("the old call's events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "call.ended");

    // The new column fills from now on: an event's region is its edge's.
    let event = freya_shared::model::CallEvent::raw(
        "call-old",
        "ws-old",
        "call.dtmf",
        serde_json::json!({"digit": "5"}),
    );
    let stored = store
        .record_call_events("edge-old", std::slice::from_ref(&event))
        .await
        .expect("a new event over the old rows");
    assert_eq!(stored, [true]);
    assert_eq!(
        db.read_text("SELECT region FROM call_events WHERE id = $1", &event.id)
            .await,
        "eu"
    );
    store.close().await;
    db.cleanup().await;
}

on_both_engines!(the_newest_migration_applies_over_data_of_the_previous_schema);
