//! Identity and access over real HTTP, on SQLite and PostgreSQL: logging in and refreshing,
//! tokens that must be refused (expired, tampered, another algorithm, unsigned), workspaces and
//! their members (the last owner stays), API keys issued, listed and revoked with immediate
//! effect, and the audit log.

mod support;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::json;

use freya_control::Claims;
use support::http::started;
use support::http::try_login;
use support::http::{login, make_user};
use support::on_both_engines;
use support::{Backend, JWT_SECRET};

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

    let created = api
        .call(
            "POST",
            "/v1/workspaces",
            &token,
            Some(json!({"name": "Acme"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    assert_eq!(created.body["role"], "owner");
    let ws = created.body["id"].as_str().expect("id").to_owned();
    let mine = api.call("GET", "/v1/workspaces", &token, None).await;
    assert_eq!(mine.body["data"][0]["id"], ws.as_str());

    // The workspace comes from the path or the X-Workspace-Id header.
    let got = api
        .call("GET", &format!("/v1/workspaces/{ws}"), &token, None)
        .await;
    assert_eq!(got.status, StatusCode::OK);
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
    let unnamed = api.call("GET", "/v1/agents", &token, None).await;
    assert_eq!(unnamed.status, StatusCode::BAD_REQUEST);
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
    let renamed = api
        .call(
            "PATCH",
            &format!("/v1/workspaces/{ws}"),
            &token,
            Some(json!({"name": "Acme Inc"})),
        )
        .await;
    assert_eq!(renamed.body["name"], "Acme Inc");

    let refreshed = api.call("POST", "/v1/auth/refresh", &token, None).await;
    assert_eq!(refreshed.status, StatusCode::OK);
    let fresh = refreshed.body["token"].as_str().expect("token");
    assert_eq!(
        api.call("GET", &format!("/v1/workspaces/{ws}"), fresh, None)
            .await
            .status,
        StatusCode::OK
    );
    // An API key cannot act as a person.
    let key = api
        .call(
            "POST",
            &format!("/v1/workspaces/{ws}/api-keys"),
            &token,
            Some(json!({"name": "ci", "role": "viewer"})),
        )
        .await;
    let key = key.body["key"].as_str().expect("key").to_owned();
    assert_eq!(
        api.call("GET", "/v1/workspaces", &key, None).await.status,
        StatusCode::FORBIDDEN
    );
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
    let ws = api
        .call("POST", "/v1/workspaces", &token, Some(json!({"name": "B"})))
        .await
        .body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let path = format!("/v1/workspaces/{ws}");
    assert_eq!(
        api.call("GET", &path, &token, None).await.status,
        StatusCode::OK
    );

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
    let ws = api
        .call("POST", "/v1/workspaces", &owner, Some(json!({"name": "M"})))
        .await
        .body["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let members = format!("/v1/workspaces/{ws}/members");
    assert_eq!(
        api.call("GET", &format!("/v1/workspaces/{ws}"), &carol_token, None)
            .await
            .status,
        StatusCode::NOT_FOUND,
        "not a member yet"
    );
    let unknown = api
        .call(
            "POST",
            &members,
            &owner,
            Some(json!({"email": "x@example.com", "role": "viewer"})),
        )
        .await;
    assert_eq!(unknown.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(unknown.body["errors"][0]["field"], "email");
    let bad_role = api
        .call(
            "POST",
            &members,
            &owner,
            Some(json!({"email": "carol@example.com", "role": "king"})),
        )
        .await;
    assert_eq!(bad_role.body["errors"][0]["field"], "role");
    let added = api
        .call(
            "POST",
            &members,
            &owner,
            Some(json!({"email": "carol@example.com", "role": "admin"})),
        )
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.body);
    let again = api
        .call(
            "POST",
            &members,
            &owner,
            Some(json!({"email": "carol@example.com", "role": "admin"})),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    let owner_id = api.call("GET", &members, &carol_token, None).await.body["data"]
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["role"] == "owner")
        .expect("owner")["user_id"]
        .as_str()
        .expect("id")
        .to_owned();

    // An admin cannot touch an owner or make one.
    let owner_path = format!("{members}/{owner_id}");
    assert_eq!(
        api.call("DELETE", &owner_path, &carol_token, None)
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.call(
            "PATCH",
            &format!("{members}/{carol}"),
            &carol_token,
            Some(json!({"role": "owner"}))
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    // The last owner can be neither removed nor demoted.
    assert_eq!(
        api.call("DELETE", &owner_path, &owner, None).await.status,
        StatusCode::CONFLICT
    );
    assert_eq!(
        api.call("PATCH", &owner_path, &owner, Some(json!({"role": "admin"})))
            .await
            .status,
        StatusCode::CONFLICT
    );
    // With a second owner, the first may go.
    let promoted = api
        .call(
            "PATCH",
            &format!("{members}/{carol}"),
            &owner,
            Some(json!({"role": "owner"})),
        )
        .await;
    assert_eq!(promoted.body["role"], "owner", "{}", promoted.body);
    assert_eq!(
        api.call("DELETE", &owner_path, &carol_token, None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.call("GET", &format!("/v1/workspaces/{ws}"), &owner, None)
            .await
            .status,
        StatusCode::NOT_FOUND,
        "a removed member loses access at once"
    );
    // Only an owner deletes the workspace.
    assert_eq!(
        api.call(
            "DELETE",
            &format!("/v1/workspaces/{ws}"),
            &carol_token,
            None
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
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
    let too_high = api
        .call(
            "POST",
            &keys,
            &admin,
            Some(json!({"name": "x", "role": "owner"})),
        )
        .await;
    assert_eq!(too_high.status, StatusCode::FORBIDDEN);
    assert_eq!(
        api.call(
            "POST",
            &keys,
            &editor,
            Some(json!({"name": "x", "role": "viewer"}))
        )
        .await
        .status,
        StatusCode::FORBIDDEN
    );
    let created = api
        .call(
            "POST",
            &keys,
            &admin,
            Some(json!({"name": "ci", "role": "editor"})),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let key = created.body["key"].as_str().expect("key").to_owned();
    let id = created.body["id"].as_str().expect("id").to_owned();
    assert!(key.starts_with(created.body["prefix"].as_str().expect("prefix")));
    assert_eq!(
        api.call("GET", "/v1/agents", &key, None).await.status,
        StatusCode::OK
    );
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
    assert_eq!(
        api.call("DELETE", &format!("{keys}/{id}"), &admin, None)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.call("GET", "/v1/agents", &key, None).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api.call("DELETE", &format!("{keys}/{id}"), &admin, None)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
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
    assert_eq!(
        api.call("GET", "/v1/audit-log", &viewer, None).await.status,
        StatusCode::FORBIDDEN
    );
    let mut seen = Vec::new();
    let mut path = "/v1/audit-log?limit=2".to_owned();
    loop {
        let page = api.call("GET", &path, &owner, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        for entry in page.body["data"].as_array().expect("data") {
            assert_eq!(entry["action"], "agent.created");
            assert!(entry["actor"]
                .as_str()
                .is_some_and(|a| a.starts_with("api_key:")));
            // Every change records where it came from.
            assert_eq!(entry["source_ip"], "127.0.0.1", "{entry}");
            seen.push(entry["id"].as_str().expect("id").to_owned());
        }
        match page.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/v1/audit-log?limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    seen.dedup();
    assert_eq!(seen.len(), 5);
    let bad = api
        .call("GET", "/v1/audit-log?cursor=nonsense", &owner, None)
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.body["errors"][0]["field"], "cursor");
    let unknown = api.call("GET", "/v1/audit-log?limt=2", &owner, None).await;
    assert_eq!(unknown.status, StatusCode::BAD_REQUEST);
    assert_eq!(unknown.body["errors"][0]["field"], "limt");
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
