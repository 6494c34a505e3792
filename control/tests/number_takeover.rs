//! Phone-number takeover across workspaces, on SQLite and PostgreSQL. The attack: workspace A
//! routes `+15551234567`; workspace B registers `15551234567` (or any other spelling of the same
//! number) to receive A's calls, because the edge matched numbers without their `+`. Numbers are
//! now kept in one normal form and unique by it: B gets 409, a non-number gets 422 naming
//! `number`, and rows written before this — two spellings in two workspaces — are both taken out
//! of routing by the start-up migration, reported, and released when one of them goes.

use crate::support;

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::support::http::{workspace_with_keys, Api};
use crate::support::on_both_engines;
use crate::support::{control_config, local_snapshot, Backend, TestDb};
use freya_control::server::ControlPlane;
use freya_control::store::WorkspaceScope;

/// A workspace with an agent: (owner key, agent id, scope).
async fn tenant(control: &ControlPlane, name: &str) -> (String, String, WorkspaceScope) {
    let (ws, keys) = workspace_with_keys(control, name).await;
    let scope = WorkspaceScope { workspace_id: ws };
    let spec = serde_json::from_value(json!({"name": format!("{name} desk")})).expect("agent");
    let agent = control
        .store
        .create_agent(&scope, "test", &spec)
        .await
        .expect("agent")
        .id;
    let [owner, ..] = keys;
    (owner, agent, scope)
}

fn number(number: &str, agent: &str) -> Option<Value> {
    Some(json!({"number": number, "agent_id": agent}))
}

async fn the_same_number_cannot_be_claimed_twice_in_any_spelling(backend: Backend) {
    let (db, control, api) = support::http::started(backend).await;
    let (key_a, agent_a, _) = tenant(&control, "A").await;
    let (key_b, agent_b, _) = tenant(&control, "B").await;

    let a = api
        .call(
            "POST",
            "/v1/phone-numbers",
            &key_a,
            number("+1 (555) 123-4567", &agent_a),
        )
        .await;
    assert_eq!(a.status, StatusCode::CREATED, "{}", a.body);
    assert_eq!(a.body["number"], "+15551234567", "stored in normal form");

    for spelling in [
        "15551234567",
        "+15551234567",
        "1-555-123-4567",
        "1.555.123.4567",
    ] {
        let b = api
            .call(
                "POST",
                "/v1/phone-numbers",
                &key_b,
                number(spelling, &agent_b),
            )
            .await;
        assert_eq!(b.status, StatusCode::CONFLICT, "{spelling}: {}", b.body);
    }

    // B's own number may not be changed into A's either.
    let own = api
        .expect(
            201,
            "POST",
            "/v1/phone-numbers",
            &key_b,
            number("15550001111", &agent_b),
        )
        .await;
    assert_eq!(own["number"], "+15550001111");
    let id = own["id"].as_str().expect("id");
    api.expect(
        409,
        "PATCH",
        &format!("/v1/phone-numbers/{id}"),
        &key_b,
        Some(json!({"number": "15551234567"})),
    )
    .await;

    for junk in [
        "+1555abc",
        "020 7946 0000",
        "+1",
        "sip:x@y",
        "../15551234567",
    ] {
        let refused = api
            .call("POST", "/v1/phone-numbers", &key_b, number(junk, &agent_b))
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{junk}");
        assert_eq!(
            refused.body["errors"][0]["field"], "number",
            "{junk}: {}",
            refused.body
        );
    }

    // The edge's snapshot carries A's number once, and a dialled spelling routes to A's agent.
    let snapshot = local_snapshot(&control).await;
    let route = snapshot.route("15551234567").expect("routed");
    assert_eq!(
        route.number.workspace_id,
        a.body["workspace_id"].as_str().expect("ws")
    );

    control.stop().await;
    db.cleanup().await;
}

/// Writes a number row the way a release before normalisation could have, bypassing the API.
async fn legacy_row(db: &TestDb, scope: &WorkspaceScope, agent: &str, written: &str) -> String {
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&db.url)
        .await
        .expect("connect");
    let id = freya_shared::ids::new_id();
    sqlx::query(
        "INSERT INTO phone_numbers (id, workspace_id, number, agent_id, created_at_ms, updated_at_ms) \
         VALUES ($1, $2, $3, $4, 0, 0)",
    )
    .bind(&id)
    .bind(&scope.workspace_id)
    .bind(written)
    .bind(agent)
    .execute(&mut conn)
    .await
    .expect("legacy row");
    id
}

async fn stored_duplicates_are_reported_and_routed_for_neither_until_one_goes(backend: Backend) {
    let db = TestDb::new(backend).await;
    let config = control_config(&db.url);
    let control = ControlPlane::start(&config).await.expect("control starts");
    let (key_a, agent_a, scope_a) = tenant(&control, "A").await;
    let (key_b, agent_b, scope_b) = tenant(&control, "B").await;
    control.stop().await;

    // What an older release let in: two spellings of one number in two workspaces, one more
    // number written without its `+`, and one that is no number at all.
    let a = legacy_row(&db, &scope_a, &agent_a, "+15551234567").await;
    let b = legacy_row(&db, &scope_b, &agent_b, "15551234567").await;
    let single = legacy_row(&db, &scope_b, &agent_b, "1 555 000 2222").await;
    let national = legacy_row(&db, &scope_b, &agent_b, "020 7946 0000").await;
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&db.url)
        .await
        .expect("connect");
    sqlx::query("DELETE FROM data_migrations")
        .execute(&mut conn)
        .await
        .expect("forget the normalisation, as a database from before it");

    let control = ControlPlane::start(&config)
        .await
        .expect("control restarts");
    let api = Api::of(&control);
    let read = |key: &str, id: &str| {
        let (api, key, path) = (
            api.clone(),
            key.to_owned(),
            format!("/v1/phone-numbers/{id}"),
        );
        async move { api.call("GET", &path, &key, None).await.body }
    };
    for (key, id) in [(&key_a, &a), (&key_b, &b), (&key_b, &national)] {
        let shown = read(key, id).await;
        assert!(shown["conflict"].is_string(), "{id} is flagged: {shown}");
    }
    assert_eq!(read(&key_b, &single).await["number"], "+15550002222");
    assert!(read(&key_b, &single).await.get("conflict").is_none());

    let snapshot = local_snapshot(&control).await;
    let routed: Vec<&str> = snapshot.numbers.iter().map(|n| n.number.as_str()).collect();
    assert_eq!(
        routed,
        ["+15550002222"],
        "neither claim on +15551234567 is routed"
    );
    assert!(snapshot.route("+15551234567").is_none());

    // A third workspace cannot slip in while the two claims stand.
    let (key_c, agent_c, _) = tenant(&control, "C").await;
    api.expect(
        409,
        "POST",
        "/v1/phone-numbers",
        &key_c,
        number("+15551234567", &agent_c),
    )
    .await;

    // B lets its claim go: A's number is routed again, in normal form.
    api.expect(
        204,
        "DELETE",
        &format!("/v1/phone-numbers/{b}"),
        &key_b,
        None,
    )
    .await;
    let kept = read(&key_a, &a).await;
    assert!(kept.get("conflict").is_none(), "{kept}");
    assert_eq!(kept["number"], "+15551234567");
    let snapshot = local_snapshot(&control).await;
    let route = snapshot
        .route("15551234567")
        .expect("A's number is answered again");
    assert_eq!(route.number.workspace_id, scope_a.workspace_id);

    // The number that was no number is released by changing it.
    let fixed = api
        .call(
            "PATCH",
            &format!("/v1/phone-numbers/{national}"),
            &key_b,
            Some(json!({"number": "+44 20 7946 0000"})),
        )
        .await;
    assert_eq!(fixed.status, StatusCode::OK, "{}", fixed.body);
    assert!(fixed.body.get("conflict").is_none(), "{}", fixed.body);

    control.stop().await;
    db.cleanup().await;
}

on_both_engines!(
    the_same_number_cannot_be_claimed_twice_in_any_spelling,
    stored_duplicates_are_reported_and_routed_for_neither_until_one_goes,
);
