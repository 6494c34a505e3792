//! Rotating the secrets key (`freya secrets rotate-key`) on SQLite and PostgreSQL: secrets sealed
//! under key 1 through the API (agents' keys, trunk passwords, webhook secrets, the CA's key),
//! a rotation to key 2 stopped after one batch (what a crash half-way leaves: some values under
//! each key, all readable with both), run again to the end, run a third time (nothing left to
//! do) — then a control plane with key 2 alone starts and reads every secret back. A short or
//! non-hex key file, and a configuration whose key is not the store's, are refused with a clear
//! error before anything changes.

use crate::support;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::json;
use sqlx::{Connection, Row};

use crate::support::http::workspace_with_keys;
use crate::support::{local_snapshot, on_both_engines, Backend, ENCRYPTION_KEY};
use freya_control::recording_seal::{rewrapped_header, wrapped_len, SealingWriter, HEADER_START};
use freya_control::rekey::{self, RekeyError};
use freya_control::store::reseal::{ResealError, ResealOptions};
use freya_control::store::{key_id, PoolSize, Sealer, Store};

const KEY_2: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const KEY_3: &str = "3333333333333333333333333333333333333333333333333333333333333333";

fn key(hex_text: &str) -> [u8; 32] {
    freya_control::config::parse_encryption_key(hex_text).expect("a key")
}

/// Every sealed value in the database, by table, row and column, as stored.
async fn sealed_values(url: &str) -> BTreeMap<String, String> {
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await.expect("connect");
    let mut all = BTreeMap::new();
    for (table, column) in [
        ("providers", "secret"),
        ("webhooks", "secret"),
        ("agents", "spec"),
        ("cluster_trust", "ca_key_sealed"),
        ("cluster_trust", "cluster_secret_sealed"),
        ("recording_keys", "private_key_sealed"),
    ] {
        let sql = format!(
            "SELECT CAST(id AS TEXT) AS id, {column} AS v FROM {table} WHERE {column} IS NOT NULL"
        );
        for row in sqlx::query(&sql)
            .fetch_all(&mut conn)
            .await
            .expect("read sealed values")
        {
            let id: String = row.get("id");
            all.insert(format!("{table}.{column}:{id}"), row.get("v"));
        }
    }
    conn.close().await.ok();
    all
}

/// How many sealed secrets (inside agents' documents too) name each key id.
fn key_ids(values: &BTreeMap<String, String>) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for text in values.values() {
        for part in text.split('"') {
            if Sealer::is_sealed(part) {
                let id = Sealer::sealed_key_id(part).unwrap_or("none").to_owned();
                *counts.entry(id).or_default() += 1;
            }
        }
    }
    counts
}

fn write_key(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write key file");
    path
}

async fn store_with(url: &str, current: &str, previous: &[&str]) -> Store {
    let previous: Vec<[u8; 32]> = previous.iter().map(|k| key(k)).collect();
    Store::connect(
        url,
        PoolSize {
            min_connections: 1,
            max_connections: 2,
        },
    )
    .await
    .expect("connect")
    .with_encryption_keys(&key(current), &previous)
}

async fn a_rotation_stopped_half_way_is_finished_by_a_rerun_and_key_2_alone_reads_everything(
    backend: Backend,
) {
    let (db, control, api) = support::http::started(backend).await;
    let (ws, [_, admin, editor, _]) = workspace_with_keys(&control, "Rotate").await;
    let mut agents = Vec::new();
    for n in 0..3 {
        let created = api
            .create(
                "/v1/agents",
                &editor,
                json!({
                    "name": format!("Desk {n}"),
                    "llm": {"provider": "openai", "model": "gpt-4o-mini", "api_key": format!("sk-llm-{n}")},
                    "tool_secret": format!("tool-secret-{n}")
                }),
            )
            .await;
        agents.push(created["id"].as_str().expect("id").to_owned());
    }
    for n in 0..2 {
        api.create(
            "/v1/providers",
            &admin,
            json!({
                "name": format!("Carrier {n}"), "host": "sip.carrier.example", "username": "acme",
                "password": format!("trunk-pass-{n}"), "priority": n + 1
            }),
        )
        .await;
    }
    let mut webhooks = Vec::new();
    for n in 0..2 {
        let hook = api
            .create(
                "/v1/webhooks",
                &admin,
                json!({
                    "url": format!("http://127.0.0.1:9/hook{n}"),
                    "events": ["call.ended"],
                    "secret": format!("webhook-secret-{n}-0123456789")
                }),
            )
            .await;
        webhooks.push(hook["id"].as_str().expect("id").to_owned());
    }
    let fingerprint = control.ca.fingerprint();
    control.stop().await;

    let before = sealed_values(&db.url).await;
    let old_id = key_id(&key(ENCRYPTION_KEY));
    let new_id = key_id(&key(KEY_2));
    // 3 agents × 2 secrets, 2 trunk passwords, 2 webhook secrets, the CA's key, the recording
    // keypair's private key.
    assert_eq!(key_ids(&before), BTreeMap::from([(old_id.clone(), 12)]));

    let dir = tempfile::tempdir().expect("dir");
    let new_key = write_key(dir.path(), "new.key", &format!("{KEY_2}\n"));
    let mut config = support::control_config(&db.url);
    // A recording sealed under key 1: its data key is re-wrapped once the store is done.
    config.recordings.dir = dir.path().join("recordings");
    let recording = dir.path().join("recordings").join(&ws).join("rec-1.wav");
    std::fs::create_dir_all(recording.parent().expect("folder")).expect("folder");
    let audio: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let mut writer =
        SealingWriter::new(&Sealer::new(&key(ENCRYPTION_KEY)), "rec-1").expect("writer");
    let mut sealed_file = writer.header().to_vec();
    writer.push(&audio, &mut sealed_file).expect("seal");
    writer.finish(&mut sealed_file).expect("seal");
    std::fs::write(&recording, &sealed_file).expect("recording");

    // A rotation that stops after one batch of two rows: what a crash half-way leaves.
    let partial = rekey::rotate(
        &config,
        Some(&new_key),
        ResealOptions {
            batch_size: 2,
            stop_after_batches: Some(1),
        },
    )
    .await
    .expect("a first batch");
    assert!(!partial.complete);
    assert_eq!(partial.total_resealed(), 2, "{partial:?}");
    assert_eq!(std::fs::read(&recording).expect("recording"), sealed_file);
    let halfway = key_ids(&sealed_values(&db.url).await);
    assert_eq!(halfway.get(&new_id), Some(&2), "{halfway:?}");
    assert_eq!(halfway.get(&old_id), Some(&10), "{halfway:?}");
    // Halfway, every value opens with both keys, and not with the new one alone.
    let both = store_with(&db.url, KEY_2, &[ENCRYPTION_KEY]).await;
    assert_eq!(both.unopened_secrets().await.expect("check"), Vec::new());
    both.close().await;
    let only_new = store_with(&db.url, KEY_2, &[]).await;
    // Rows holding a value under key 1 only: 2 webhooks, 3 agents, the CA, the recording key.
    assert_eq!(only_new.unopened_secrets().await.expect("check").len(), 7);
    only_new.close().await;

    // Run again: carries on from where it stopped.
    let rest = rekey::rotate(&config, Some(&new_key), ResealOptions::default())
        .await
        .expect("the rest");
    assert!(rest.complete);
    assert_eq!(rest.total_resealed(), 11, "{rest:?}");
    assert_eq!(rest.resealed.get("recording_keypair"), Some(&1), "{rest:?}");
    assert_eq!(rest.already_current, 2, "{rest:?}");
    assert_eq!(rest.resealed.get("agent"), Some(&6), "{rest:?}");
    assert_eq!(rest.resealed.get("recording key"), Some(&1), "{rest:?}");
    // Key 2 alone opens its data key (already current: nothing to re-wrap), and the sealed
    // audio after the header is the same bytes (`recording_rewrap_tests.rs` opens such files).
    let rewrapped = std::fs::read(&recording).expect("recording");
    let old_header = HEADER_START + wrapped_len(&sealed_file[..HEADER_START]).expect("header");
    let new_header = HEADER_START + wrapped_len(&rewrapped[..HEADER_START]).expect("header");
    assert_eq!(
        rewrapped_header(&Sealer::new(&key(KEY_2)), "rec-1", &rewrapped[..new_header]),
        Ok(None)
    );
    assert_eq!(rewrapped[new_header..], sealed_file[old_header..]);
    let after = sealed_values(&db.url).await;
    assert_eq!(key_ids(&after), BTreeMap::from([(new_id.clone(), 12)]));
    // And a third time: nothing left to do.
    let again = rekey::rotate(&config, Some(&new_key), ResealOptions::default())
        .await
        .expect("a no-op");
    assert_eq!(again.total_resealed(), 0);
    assert_eq!(again.already_current, 13, "{again:?}");
    let record = store_with(&db.url, KEY_2, &[]).await;
    let (finished, resealed) = record
        .secret_rotation_record(&new_id)
        .await
        .expect("record")
        .expect("a rotation recorded");
    assert!(finished.is_some());
    assert_eq!(resealed, 12);
    record.close().await;

    // A control plane with key 2 alone reads every secret back.
    let mut config = support::control_config(&db.url);
    config.auth.encryption_key = KEY_2.into();
    let control = freya_control::server::ControlPlane::start(&config)
        .await
        .expect("the control plane starts with the new key alone");
    assert_eq!(control.ca.fingerprint(), fingerprint, "the same CA, opened");
    let scope = freya_control::store::WorkspaceScope {
        workspace_id: ws.clone(),
    };
    for (n, id) in agents.iter().enumerate() {
        let agent = control.store.agent(&scope, id).await.expect("agent opens");
        let llm_key = agent.spec.llm.as_ref().and_then(|l| l.api_key.clone());
        assert_eq!(llm_key.as_deref(), Some(format!("sk-llm-{n}").as_str()));
        let tool_secret = format!("tool-secret-{n}");
        assert_eq!(
            agent.spec.tool_secret.as_deref(),
            Some(tool_secret.as_str())
        );
    }
    let snapshot = local_snapshot(&control).await;
    let mut passwords: Vec<String> = snapshot
        .providers
        .iter()
        .filter_map(|p| p.spec.secret().map(str::to_owned))
        .collect();
    passwords.sort();
    assert_eq!(passwords, ["trunk-pass-0", "trunk-pass-1"]);
    let sealer = Sealer::new(&key(KEY_2));
    for (n, id) in webhooks.iter().enumerate() {
        let stored = &after[&format!("webhooks.secret:{id}")];
        assert_eq!(
            sealer.open(&format!("webhook:{id}"), stored).expect("open"),
            format!("webhook-secret-{n}-0123456789")
        );
    }
    assert_eq!(
        control.store.unopened_secrets().await.expect("check"),
        Vec::new()
    );
    control.stop().await;
    db.cleanup().await;
}

async fn a_bad_key_file_or_the_wrong_configured_key_changes_nothing(backend: Backend) {
    let (db, control, api) = support::http::started(backend).await;
    let (_, [_, admin, ..]) = workspace_with_keys(&control, "Keep").await;
    api.create("/v1/providers", &admin, json!({"name": "Carrier", "host": "sip.carrier.example", "username": "a", "password": "pw-1"}))
    .await;
    control.stop().await;
    let before = sealed_values(&db.url).await;
    let dir = tempfile::tempdir().expect("dir");
    let config = support::control_config(&db.url);

    let short = write_key(dir.path(), "short.key", &KEY_2[..40]);
    let refused = rekey::rotate(&config, Some(&short), ResealOptions::default())
        .await
        .expect_err("a short key");
    assert!(
        matches!(refused, RekeyError::NotAKey { found: 40, .. }),
        "{refused}"
    );
    let message = refused.to_string();
    assert!(
        message.contains("64 hex characters") && message.contains("short.key"),
        "{message}"
    );

    let not_hex = write_key(dir.path(), "words.key", &"z".repeat(64));
    let refused = rekey::rotate(&config, Some(&not_hex), ResealOptions::default())
        .await
        .expect_err("not hex");
    assert!(
        refused.to_string().contains("not all of them hex"),
        "{refused}"
    );

    let missing = rekey::rotate(
        &config,
        Some(&dir.path().join("absent.key")),
        ResealOptions::default(),
    )
    .await
    .expect_err("no file");
    assert!(
        matches!(missing, RekeyError::ReadKeyFile { .. }),
        "{missing}"
    );

    // The configuration's key is not the one the store was sealed with.
    let good = write_key(dir.path(), "new.key", KEY_2);
    let mut wrong = support::control_config(&db.url);
    wrong.auth.encryption_key = KEY_3.into();
    let refused = rekey::rotate(&wrong, Some(&good), ResealOptions::default())
        .await
        .expect_err("the wrong old key");
    assert!(
        matches!(
            refused,
            // The trunk's password, the CA's key and the recording keypair's private key.
            RekeyError::Reseal(ResealError::Unopened { count: 3, .. })
        ),
        "{refused}"
    );
    assert!(
        refused.to_string().contains("nothing was changed"),
        "{refused}"
    );

    assert_eq!(sealed_values(&db.url).await, before, "nothing changed");
    db.cleanup().await;
}

on_both_engines!(
    a_rotation_stopped_half_way_is_finished_by_a_rerun_and_key_2_alone_reads_everything,
    a_bad_key_file_or_the_wrong_configured_key_changes_nothing,
);
