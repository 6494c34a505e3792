//! `/v1/providers` on SQLite and PostgreSQL: a trunk's password is sealed at rest, masked on
//! every read, kept by a PATCH that does not name it, and delivered in clear only inside the
//! edge snapshot of the regions the trunk serves; every change moves the configuration version
//! and lands in the audit log. Every member reads providers; only admins change them.

use crate::support;

use reqwest::StatusCode;
use serde_json::{json, Value};
use sqlx::Row;

use crate::support::http::{workspace_with_keys, Api};
use crate::support::on_both_engines;
use crate::support::Backend;

async fn stored_provider_columns(url: &str, id: &str) -> (String, Option<String>) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url).await.expect("connect");
    let row = sqlx::query("SELECT spec, secret FROM providers WHERE id = $1")
        .bind(id)
        .fetch_one(&pool)
        .await
        .expect("row");
    let columns = (row.get("spec"), row.get("secret"));
    pool.close().await;
    columns
}

/// What an edge of `region` is given.
async fn edge_snapshot(
    control: &freya_control::server::ControlPlane,
    region: &str,
) -> freya_shared::snapshot::EdgeConfigSnapshot {
    control.store.edge_snapshot(region).await.expect("snapshot")
}

/// Each of `patches` applied to provider `id`, each answered 200 with its `secret` field
/// still masked.
async fn patch_masked(api: &Api, admin: &str, id: &str, secret: &str, patches: &[Value]) {
    let path = format!("/v1/providers/{id}");
    for patch in patches {
        let answer = api
            .expect(200, "PATCH", &path, admin, Some(patch.clone()))
            .await;
        assert_eq!(answer[secret], "********", "{patch}: {answer}");
    }
}

/// `patch` to provider `id` refused with 422 naming `field`.
async fn patch_refused(api: &Api, admin: &str, id: &str, patch: Value, field: &str) {
    let path = format!("/v1/providers/{id}");
    let refused = api.expect(422, "PATCH", &path, admin, Some(patch)).await;
    assert_eq!(refused["errors"][0]["field"], field, "{refused}");
}

async fn trunk_password_is_sealed_masked_kept_and_reaches_the_snapshot(backend: Backend) {
    let (db, control, api) = support::http::started(backend).await;
    let (_, [_, admin, ..]) = workspace_with_keys(&control, "P").await;
    let before = control.store.config_version().await.expect("version");

    let created = api
        .call(
            "POST",
            "/v1/providers",
            &admin,
            Some(json!({
                "name": "Carrier", "host": "sip.carrier.example", "username": "acme",
                "password": "s3cret-trunk-pass", "priority": 2, "caller_id": "+15550100"
            })),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["password"], "********");
    assert_eq!(created.body["kind"], "sip_trunk");
    let id = created.body["id"].as_str().expect("id").to_owned();
    let elsewhere = api
        .create(
            "/v1/providers",
            &admin,
            json!({"name": "EU only", "host": "sip.eu.example", "regions": ["eu-west"]}),
        )
        .await;
    assert!(elsewhere.get("password").is_none());

    // At rest: neither column holds the password.
    let (spec, secret) = stored_provider_columns(&db.url, &id).await;
    assert!(!spec.contains("s3cret"), "{spec}");
    let secret = secret.expect("a sealed password");
    assert!(secret.starts_with("v2:") && !secret.contains("s3cret"));

    // Reads mask it.
    for answer in [
        api.call("GET", &format!("/v1/providers/{id}"), &admin, None)
            .await,
        api.call("GET", "/v1/providers", &admin, None).await,
    ] {
        assert_eq!(answer.status, StatusCode::OK);
        assert!(
            !answer.body.to_string().contains("s3cret"),
            "{}",
            answer.body
        );
    }

    // The snapshot of region `local` carries the usable trunk in clear, not the EU one.
    let snapshot = edge_snapshot(&control, "local").await;
    assert!(snapshot.version > before);
    assert_eq!(snapshot.providers.len(), 1, "{:?}", snapshot.providers);
    assert_eq!(
        snapshot.providers[0].spec.secret(),
        Some("s3cret-trunk-pass")
    );
    let eu = edge_snapshot(&control, "eu-west").await;
    assert_eq!(eu.providers.len(), 2);

    // A PATCH that does not name the password (or sends the mask back) keeps it; a new host
    // needs the password given again (see `secret_destinations.rs`).
    let patches = [
        json!({"host": "sip2.carrier.example", "password": "s3cret-trunk-pass"}),
        json!({"priority": 1, "password": "********"}),
    ];
    patch_masked(&api, &admin, &id, "password", &patches).await;
    let snapshot = edge_snapshot(&control, "local").await;
    let freya_shared::model::ProviderSpec::SipTrunk(trunk) = &snapshot.providers[0].spec else {
        panic!("a trunk");
    };
    assert_eq!(trunk.host, "sip2.carrier.example");
    assert_eq!(trunk.priority, 1);
    assert_eq!(trunk.password.as_deref(), Some("s3cret-trunk-pass"));

    // Dropping the username while a password is stored names the field.
    patch_refused(&api, &admin, &id, json!({"username": null}), "username").await;

    // A new password replaces it; null removes it.
    let changed = api
        .call(
            "PATCH",
            &format!("/v1/providers/{id}"),
            &admin,
            Some(json!({"password": "rotated"})),
        )
        .await;
    assert_eq!(changed.status, StatusCode::OK, "{}", changed.body);
    let snapshot = edge_snapshot(&control, "local").await;
    assert_eq!(snapshot.providers[0].spec.secret(), Some("rotated"));
    let cleared = api
        .call(
            "PATCH",
            &format!("/v1/providers/{id}"),
            &admin,
            Some(json!({"password": null})),
        )
        .await;
    assert!(cleared.body.get("password").is_none(), "{}", cleared.body);
    assert_eq!(stored_provider_columns(&db.url, &id).await.1, None);

    let deleted = api
        .call("DELETE", &format!("/v1/providers/{id}"), &admin, None)
        .await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let snapshot = edge_snapshot(&control, "local").await;
    assert!(snapshot.providers.is_empty());

    let audit = api.call("GET", "/v1/audit-log", &admin, None).await;
    let actions: Vec<&str> = audit.body["data"]
        .as_array()
        .expect("entries")
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("provider."))
        .collect();
    assert_eq!(
        actions,
        [
            "provider.deleted",
            "provider.updated",
            "provider.updated",
            "provider.updated",
            "provider.updated",
            "provider.created",
            "provider.created"
        ]
    );
    assert!(!audit.body.to_string().contains("s3cret"));
    control.stop().await;
    db.cleanup().await;
}

async fn invalid_trunks_are_refused_naming_the_field(backend: Backend) {
    let (db, control, api) = support::http::started(backend).await;
    let (_, [owner, ..]) = workspace_with_keys(&control, "V").await;
    for (body, field) in [
        (json!({"name": "x", "host": "bad host"}), "host"),
        (
            json!({"name": "x", "host": "h", "password": "p"}),
            "username",
        ),
        (json!({"name": "x", "host": "h", "prot": 1}), "prot"),
        (json!({"name": "x", "host": "h", "port": "five"}), "port"),
        (json!({"host": "h"}), "name"),
        (
            json!({"name": "x", "host": "h", "outbound_proxy": "sip:p;lr>\r\nX: y"}),
            "outbound_proxy",
        ),
    ] {
        api.refused_naming(422, "POST", "/v1/providers", &owner, Some(body), field)
            .await;
    }
    control.stop().await;
    db.cleanup().await;
}

const SID: &str = "AC0123456789abcdef0123456789abcdef";

async fn twilio_token_is_sealed_masked_rotated_and_reaches_the_snapshot(backend: Backend) {
    let (db, control, api) = support::http::started(backend).await;
    let (_, [_, admin, ..]) = workspace_with_keys(&control, "T").await;
    let created = api
        .create(
            "/v1/providers",
            &admin,
            json!({"kind": "twilio", "name": "Twilio", "account_sid": SID,
                        "auth_token": "tw-s3cret-token", "priority": 1}),
        )
        .await;
    assert_eq!(created["kind"], "twilio");
    assert_eq!(created["auth_token"], "********");
    assert_eq!(created["api_base_url"], "https://api.twilio.com");
    assert!(created.get("host").is_none(), "{}", created);
    let id = created["id"].as_str().expect("id").to_owned();

    let (spec, secret) = stored_provider_columns(&db.url, &id).await;
    assert!(!spec.contains("tw-s3cret"), "{spec}");
    assert!(secret.expect("sealed token").starts_with("v2:"));
    let listed = api.call("GET", "/v1/providers", &admin, None).await;
    assert_eq!(listed.body["data"][0]["kind"], "twilio");
    assert!(!listed.body.to_string().contains("tw-s3cret"));

    let snapshot = edge_snapshot(&control, "local").await;
    let (_, account) = snapshot
        .twilio_account(&snapshot.providers[0].workspace_id, SID)
        .expect("the account in the snapshot");
    assert_eq!(account.auth_token.as_deref(), Some("tw-s3cret-token"));

    // The mask keeps the token, a new one replaces it; the kind cannot change.
    let patches = [
        json!({"name": "Twilio US", "auth_token": "********"}),
        json!({"auth_token": "rotated-token", "api_base_url": "http://127.0.0.1:9"}),
    ];
    patch_masked(&api, &admin, &id, "auth_token", &patches).await;
    let snapshot = edge_snapshot(&control, "local").await;
    assert_eq!(snapshot.providers[0].spec.secret(), Some("rotated-token"));
    assert_eq!(snapshot.providers[0].spec.name(), "Twilio US");
    patch_refused(&api, &admin, &id, json!({"kind": "sip_trunk"}), "kind").await;
    patch_refused(&api, &admin, &id, json!({"auth_token": null}), "auth_token").await;
    assert!(!api
        .call("GET", "/v1/audit-log", &admin, None)
        .await
        .body
        .to_string()
        .contains("rotated-token"));
    control.stop().await;
    db.cleanup().await;
}

async fn invalid_twilio_accounts_are_refused_naming_the_field(backend: Backend) {
    let (db, control, api) = support::http::started(backend).await;
    let (_, [owner, ..]) = workspace_with_keys(&control, "V").await;
    for (body, field) in [
        (
            json!({"kind": "twilio", "name": "t", "account_sid": "AC1", "auth_token": "x"}),
            "account_sid",
        ),
        (
            json!({"kind": "twilio", "name": "t", "account_sid": SID}),
            "auth_token",
        ),
        (
            json!({"kind": "twilio", "name": "t", "account_sid": SID, "auth_token": "x", "host": "h"}),
            "host",
        ),
        (
            json!({"kind": "twilio", "name": "t", "account_sid": SID, "auth_token": "x",
                   "api_base_url": "api.twilio.com"}),
            "api_base_url",
        ),
        (json!({"kind": "skype", "name": "t"}), "kind"),
        (json!({"kind": "twilio", "account_sid": SID}), "name"),
    ] {
        api.refused_naming(422, "POST", "/v1/providers", &owner, Some(body), field)
            .await;
    }
    control.stop().await;
    db.cleanup().await;
}

/// Editors and viewers read every provider, each secret masked; only admins and owners write
/// them (the dashboard's Providers page shows them to every member, the write controls only to
/// admins).
async fn every_member_reads_providers_masked_and_only_admins_change_them(backend: Backend) {
    let (db, control, api) = support::http::started(backend).await;
    let (_, [_, admin, editor, viewer]) = workspace_with_keys(&control, "R").await;
    let trunk = api
        .create(
            "/v1/providers",
            &admin,
            json!({"name": "Carrier", "host": "sip.carrier.example", "username": "acme",
                   "password": "r3ad-only-pass"}),
        )
        .await;
    let account = api
        .create(
            "/v1/providers",
            &admin,
            json!({"kind": "twilio", "name": "Twilio", "account_sid": SID,
                   "auth_token": "r3ad-only-token"}),
        )
        .await;
    for reader in [&editor, &viewer] {
        let listed = api.expect(200, "GET", "/v1/providers", reader, None).await;
        let names: Vec<&str> = listed["data"]
            .as_array()
            .expect("a page")
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        assert_eq!(names.len(), 2, "{listed}");
        assert!(!listed.to_string().contains("r3ad-only"), "{listed}");
        for (provider, secret) in [(&trunk, "password"), (&account, "auth_token")] {
            let path = format!("/v1/providers/{}", provider["id"].as_str().expect("id"));
            let one = api.expect(200, "GET", &path, reader, None).await;
            assert_eq!(one[secret], "********", "{one}");
            assert_eq!(one["health"]["state"], provider["health"]["state"], "{one}");
            let refused = api
                .call("PATCH", &path, reader, Some(json!({"priority": 1})))
                .await;
            assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
            assert_eq!(refused.body["status"], 403, "a problem: {}", refused.body);
            let kept = api.call("DELETE", &path, reader, None).await;
            assert_eq!(kept.status, StatusCode::FORBIDDEN, "{}", kept.body);
        }
        let made = api
            .call(
                "POST",
                "/v1/providers",
                reader,
                Some(json!({"name": "Mine", "host": "sip.mine.example"})),
            )
            .await;
        assert_eq!(made.status, StatusCode::FORBIDDEN, "{}", made.body);
    }
    let after = api.expect(200, "GET", "/v1/providers", &admin, None).await;
    assert_eq!(after["data"].as_array().map(Vec::len), Some(2), "{after}");
    assert!(
        after["data"]
            .as_array()
            .expect("a page")
            .iter()
            .all(|p| p["priority"] != 1),
        "a refused PATCH changed nothing: {after}"
    );
    control.stop().await;
    db.cleanup().await;
}

on_both_engines!(
    trunk_password_is_sealed_masked_kept_and_reaches_the_snapshot,
    invalid_trunks_are_refused_naming_the_field,
    twilio_token_is_sealed_masked_rotated_and_reaches_the_snapshot,
    invalid_twilio_accounts_are_refused_naming_the_field,
    every_member_reads_providers_masked_and_only_admins_change_them,
);
