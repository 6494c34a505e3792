//! Identity and access over real HTTP, on SQLite and PostgreSQL: logging in and refreshing,
//! tokens that must be refused (expired, tampered, another algorithm, unsigned), workspaces and
//! their members (the last owner stays), API keys issued, listed and revoked with immediate
//! effect, and the audit log.

use crate::support;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::http::started;
use crate::support::http::try_login;
use crate::support::http::{login, make_user};
use crate::support::on_both_engines;
use crate::support::{Backend, JWT_SECRET};
use freya_control::Claims;

async fn a_person_logs_in_creates_a_workspace_and_acts_in_it(backend: Backend) {
    let (db, control, api) = started(backend).await;
    make_user(&control, "ada@example.com", "correct horse").await;
    let wrong = try_login(&api, "ada@example.com", "wrong").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let unknown = try_login(&api, "nobody@example.com", "x").await;
    assert_eq!(unknown.status, StatusCode::UNAUTHORIZED);
    let answer = try_login(&api, "ADA@example.com", "correct horse").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert!(answer.body["expires_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    let token = answer.body["token"].as_str().expect("token").to_owned();

    let acme = json!({"name": "Acme"});
    let created = api.create("/v1/workspaces", &token, acme).await;
    assert_eq!(created["role"], "owner");
    let ws = created["id"].as_str().expect("id").to_owned();
    let mine = api.call("GET", "/v1/workspaces", &token, None).await;
    assert_eq!(mine.body["data"][0]["id"], ws.as_str());

    // The workspace comes from the path or the X-Workspace-Id header.
    let path = format!("/v1/workspaces/{ws}");
    api.expect(200, "GET", &path, &token, None).await;
    let agent = api
        .send(
            "POST",
            "/v1/agents",
            &token,
            &[("x-workspace-id", &ws)],
            Some(json!({"name": "Desk"})),
        )
        .await;
    assert_eq!(agent.status, StatusCode::CREATED, "{}", agent.body);
    api.expect(400, "GET", "/v1/agents", &token, None).await;
    let foreign = control.store.create_workspace("Other").await.expect("ws");
    let not_member = api
        .send(
            "GET",
            "/v1/agents",
            &token,
            &[("x-workspace-id", &foreign)],
            None,
        )
        .await;
    assert_eq!(not_member.status, StatusCode::NOT_FOUND);
    let renamed = json!({"name": "Acme Inc"});
    let renamed = api.call("PATCH", &path, &token, Some(renamed)).await;
    assert_eq!(renamed.body["name"], "Acme Inc");

    let refreshed = api
        .expect(200, "POST", "/v1/auth/refresh", &token, None)
        .await;
    let fresh = refreshed["token"].as_str().expect("token");
    api.expect(200, "GET", &path, fresh, None).await;
    // An API key cannot act as a person.
    let keys = format!("{path}/api-keys");
    let key = json!({"name": "ci", "role": "viewer"});
    let key = api.call("POST", &keys, &token, Some(key)).await;
    let key = key.body["key"].as_str().expect("key").to_owned();
    api.expect(403, "GET", "/v1/workspaces", &key, None).await;
    control.stop().await;
    db.cleanup().await;
}

fn sign(claims: &Claims, algorithm: Algorithm, secret: &str) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

async fn expired_tampered_and_wrong_algorithm_tokens_answer_401(backend: Backend) {
    let (db, control, api) = started(backend).await;
    let user = make_user(&control, "bob@example.com", "pw").await;
    let token = login(&api, "bob@example.com", "pw").await;
    let ws = api.new_workspace(&token, "B").await;
    let path = format!("/v1/workspaces/{ws}");
    api.expect(200, "GET", &path, &token, None).await;

    let now = freya_shared::ids::now_ms() as u64 / 1000;
    let claims = |exp: u64| Claims {
        sub: user.clone(),
        exp,
        iat: now - 100,
        iss: "freya".into(),
    };
    let expired = sign(&claims(now - 1), Algorithm::HS256, JWT_SECRET);
    let other_secret = sign(
        &claims(now + 600),
        Algorithm::HS256,
        "another-secret-another-secret-0123",
    );
    let hs512 = sign(&claims(now + 600), Algorithm::HS512, JWT_SECRET);
    let parts: Vec<&str> = token.split('.').collect();
    let forged_payload = {
        use std::fmt::Write;
        // The same header and signature over a payload naming another user.
        let json = format!(
            "{{\"sub\":\"{}\",\"exp\":{},\"iat\":{},\"iss\":\"freya\"}}",
            freya_shared::ids::new_id(),
            now + 600,
            now
        );
        let mut b64 = String::new();
        for chunk in base64_url(json.as_bytes()).chars() {
            let _ = write!(b64, "{chunk}");
        }
        format!("{}.{}.{}", parts[0], b64, parts[2])
    };
    let mut flipped = token.clone().into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).expect("ascii");
    let unsigned = format!(
        "{}.{}.",
        base64_url(br#"{"alg":"none","typ":"JWT"}"#),
        parts[1]
    );
    for (what, bad) in [
        ("expired", expired),
        ("signed with another secret", other_secret),
        ("signed with HS512", hs512),
        ("payload swapped", forged_payload),
        ("signature altered", flipped),
        ("alg none", unsigned),
        ("garbage", "not.a.jwt".to_owned()),
    ] {
        let answer = api.call("GET", &path, &bad, None).await;
        assert_eq!(
            answer.status,
            StatusCode::UNAUTHORIZED,
            "{what}: {}",
            answer.body
        );
        assert!(answer.headers.contains_key("www-authenticate"), "{what}");
    }
    control.stop().await;
    db.cleanup().await;
}

/// Base64url without padding (the JWT alphabet), enough for forging test tokens.
fn base64_url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
        }
    }
    out
}

async fn members_are_managed_and_the_last_owner_stays(backend: Backend) {
    let (db, control, api) = started(backend).await;
    make_user(&control, "owner@example.com", "pw").await;
    let carol = make_user(&control, "carol@example.com", "pw").await;
    let owner = login(&api, "owner@example.com", "pw").await;
    let carol_token = login(&api, "carol@example.com", "pw").await;
    let ws = api.new_workspace(&owner, "M").await;
    let path = format!("/v1/workspaces/{ws}");
    let members = format!("{path}/members");
    // Not a member yet.
    api.expect(404, "GET", &path, &carol_token, None).await;
    for (member, field) in [
        (json!({"email": "x@example.com", "role": "viewer"}), "email"),
        (
            json!({"email": "carol@example.com", "role": "king"}),
            "role",
        ),
    ] {
        api.refused_naming(422, "POST", &members, &owner, Some(member), field)
            .await;
    }
    let carol_admin = json!({"email": "carol@example.com", "role": "admin"});
    api.expect_each(&[
        ("POST", &members, &owner, Some(carol_admin.clone()), 201),
        ("POST", &members, &owner, Some(carol_admin), 409),
    ])
    .await;
    let owner_id = api.call("GET", &members, &carol_token, None).await.body["data"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["role"] == "owner")
        .expect("owner")["user_id"]
        .as_str()
        .expect("id")
        .to_owned();

    let owner_path = format!("{members}/{owner_id}");
    let carol_path = format!("{members}/{carol}");
    let (make_owner, make_admin) = (json!({"role": "owner"}), json!({"role": "admin"}));
    api.expect_each(&[
        // An admin cannot touch an owner or make one.
        ("DELETE", &owner_path, &carol_token, None, 403),
        (
            "PATCH",
            &carol_path,
            &carol_token,
            Some(make_owner.clone()),
            403,
        ),
        // The last owner can be neither removed nor demoted.
        ("DELETE", &owner_path, &owner, None, 409),
        ("PATCH", &owner_path, &owner, Some(make_admin), 409),
    ])
    .await;
    // With a second owner, the first may go.
    let promoted = api
        .expect(200, "PATCH", &carol_path, &owner, Some(make_owner))
        .await;
    assert_eq!(promoted["role"], "owner", "{promoted}");
    api.expect_each(&[
        ("DELETE", &owner_path, &carol_token, None, 204),
        // A removed member loses access at once.
        ("GET", &path, &owner, None, 404),
        // Only an owner deletes the workspace.
        ("DELETE", &path, &carol_token, None, 204),
    ])
    .await;
    assert_eq!(
        api.call("GET", "/v1/workspaces", &carol_token, None)
            .await
            .body["data"],
        json!([])
    );
    control.stop().await;
    db.cleanup().await;
}

async fn a_revoked_key_stops_working_at_once(backend: Backend) {
    let (db, control, api) = started(backend).await;
    let (ws, [_, admin, editor, _]) = support::http::workspace_with_keys(&control, "K").await;
    let keys = format!("/v1/workspaces/{ws}/api-keys");
    let (owner_key, viewer_key) = (
        json!({"name": "x", "role": "owner"}),
        json!({"name": "x", "role": "viewer"}),
    );
    api.expect_each(&[
        ("POST", &keys, &admin, Some(owner_key), 403),
        ("POST", &keys, &editor, Some(viewer_key), 403),
    ])
    .await;
    let editor_key = json!({"name": "ci", "role": "editor"});
    let created = api.create(&keys, &admin, editor_key).await;
    let key = created["key"].as_str().expect("key").to_owned();
    let id = created["id"].as_str().expect("id").to_owned();
    assert!(key.starts_with(created["prefix"].as_str().expect("prefix")));
    api.expect(200, "GET", "/v1/agents", &key, None).await;
    let listed = api.call("GET", &keys, &admin, None).await;
    let entry = listed.body["data"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["id"] == id.as_str())
        .expect("listed")
        .clone();
    assert!(
        entry.get("key").is_none(),
        "the secret is never listed: {entry}"
    );
    assert!(entry["last_used_at"].is_string());
    let key_path = format!("{keys}/{id}");
    api.expect_each(&[
        ("DELETE", &key_path, &admin, None, 204),
        ("GET", "/v1/agents", &key, None, 401),
        ("DELETE", &key_path, &admin, None, 404),
    ])
    .await;
    control.stop().await;
    db.cleanup().await;
}

async fn the_audit_log_pages_through_every_change(backend: Backend) {
    let (db, control, api) = started(backend).await;
    let (_, [owner, _, _, viewer]) = support::http::workspace_with_keys(&control, "A").await;
    for n in 0..5 {
        api.call(
            "POST",
            "/v1/agents",
            &owner,
            Some(json!({"name": format!("a{n}")})),
        )
        .await;
    }
    api.expect(403, "GET", "/v1/audit-log", &viewer, None).await;
    let mut seen = Vec::new();
    let mut path = "/v1/audit-log?limit=2".to_owned();
    loop {
        let page = api.expect(200, "GET", &path, &owner, None).await;
        for entry in page["data"].as_array().expect("data") {
            assert_eq!(entry["action"], "agent.created");
            assert!(entry["actor"]
                .as_str()
                .is_some_and(|a| a.starts_with("api_key:")));
            // Every change records where it came from.
            assert_eq!(entry["source_ip"], "127.0.0.1", "{entry}");
            seen.push(entry["id"].as_str().expect("id").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/audit-log?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    seen.dedup();
    assert_eq!(seen.len(), 5);
    for (query, field) in [("cursor=nonsense", "cursor"), ("limt=2", "limt")] {
        let path = format!("/v1/audit-log?{query}");
        api.refused_naming(400, "GET", &path, &owner, None, field)
            .await;
    }
    control.stop().await;
    db.cleanup().await;
}

on_both_engines!(
    a_person_logs_in_creates_a_workspace_and_acts_in_it,
    expired_tampered_and_wrong_algorithm_tokens_answer_401,
    members_are_managed_and_the_last_owner_stays,
    a_revoked_key_stops_working_at_once,
    the_audit_log_pages_through_every_change,
);
