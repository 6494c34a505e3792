//! No role reaches above itself: every actor role × every target role × creating, changing and
//! revoking API keys and members, on SQLite and PostgreSQL. An actor creates keys and adds or
//! changes members only at a role up to its own, revokes keys and removes members only up to
//! its own role, and raises nobody (itself included) above it; anything else is a 403
//! problem+json that leaves the key or member as it was. Editors and viewers manage neither.

use std::sync::atomic::{AtomicU32, Ordering};

use reqwest::StatusCode;
use serde_json::json;

use crate::support::http::started;
use crate::support::http::{workspace_with_keys, Answer};
use crate::support::on_both_engines;
use crate::support::Backend;
use freya_control::server::ControlPlane;
use freya_control::store::{Role, WorkspaceScope};

const ROLES: [Role; 4] = [Role::Owner, Role::Admin, Role::Editor, Role::Viewer];

static SEQUENCE: AtomicU32 = AtomicU32::new(0);

fn unique() -> u32 {
    SEQUENCE.fetch_add(1, Ordering::Relaxed)
}

/// A workspace with one key per role (owner first) and a spare owner member, so that demoting
/// or removing an owner never trips the last-owner rule instead of the role rule.
struct World {
    ws: String,
    scope: WorkspaceScope,
    keys: [String; 4],
}

async fn world(control: &ControlPlane) -> World {
    let (ws, keys) = workspace_with_keys(control, "Ceiling").await;
    let scope = WorkspaceScope {
        workspace_id: ws.clone(),
    };
    member(control, &scope, Role::Owner).await;
    World { ws, scope, keys }
}

/// A new user, made a member of `scope` with `role`; returns the user id.
async fn member(control: &ControlPlane, scope: &WorkspaceScope, role: Role) -> String {
    let user = user(control).await.0;
    control
        .store
        .add_member(scope, &user, role)
        .await
        .expect("member");
    user
}

/// A new user who belongs to no workspace: (id, email).
async fn user(control: &ControlPlane) -> (String, String) {
    let email = format!("person{}@example.com", unique());
    let id = control
        .store
        .create_user(&email, "P", "no-login")
        .await
        .expect("user");
    (id, email)
}

fn key_of(w: &World, role: Role) -> &str {
    let n = ROLES.iter().position(|r| *r == role).expect("role");
    &w.keys[n]
}

/// Whether `actor` may act on something of every role in `targets`.
fn allowed(actor: Role, targets: &[Role]) -> bool {
    actor >= Role::Admin && targets.iter().all(|t| *t <= actor)
}

/// What the cell expected against what it got, or `None` when they agree. A refusal must be
/// a problem+json 403.
fn verdict(what: String, expected: StatusCode, answer: &Answer) -> Option<String> {
    let problem_json = answer
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/problem+json"));
    if answer.status != expected {
        Some(format!(
            "{what}: expected {expected}, got {} {}",
            answer.status, answer.body
        ))
    } else if expected == StatusCode::FORBIDDEN && !problem_json {
        Some(format!("{what}: the 403 is not problem+json"))
    } else {
        None
    }
}

fn expect(allowed: bool, success: StatusCode) -> StatusCode {
    if allowed {
        success
    } else {
        StatusCode::FORBIDDEN
    }
}

async fn keys_are_created_and_revoked_only_up_to_the_callers_role(backend: Backend) {
    let (db, control, api) = started(backend).await;
    let mut failures = Vec::new();
    for actor in ROLES {
        for target in ROLES {
            let ok = allowed(actor, &[target]);

            let w = world(&control).await;
            let path = format!("/v1/workspaces/{}/api-keys", w.ws);
            let created = api
                .call(
                    "POST",
                    &path,
                    key_of(&w, actor),
                    Some(json!({"name": "new", "role": target.as_str()})),
                )
                .await;
            failures.extend(verdict(
                format!("{} creates a {} key", actor.as_str(), target.as_str()),
                expect(ok, StatusCode::CREATED),
                &created,
            ));

            let w = world(&control).await;
            let key = control
                .store
                .create_api_key(&w.scope, "target", target)
                .await
                .expect("key");
            let revoked = api
                .call(
                    "DELETE",
                    &format!("/v1/workspaces/{}/api-keys/{}", w.ws, key.id),
                    key_of(&w, actor),
                    None,
                )
                .await;
            let what = format!("{} revokes a {} key", actor.as_str(), target.as_str());
            failures.extend(verdict(
                what.clone(),
                expect(ok, StatusCode::NO_CONTENT),
                &revoked,
            ));
            let still = api.call("GET", "/v1/agents", &key.key, None).await.status;
            let expected = if ok {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::OK
            };
            if still != expected {
                failures.push(format!(
                    "{what}: the key then answers {still}, expected {expected}"
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    control.stop().await;
    db.cleanup().await;
}

async fn members_are_added_changed_and_removed_only_up_to_the_callers_role(backend: Backend) {
    let (db, control, api) = started(backend).await;
    let mut failures = Vec::new();
    for actor in ROLES {
        for target in ROLES {
            let w = world(&control).await;
            let members = format!("/v1/workspaces/{}/members", w.ws);
            let (_, email) = user(&control).await;
            let added = api
                .call(
                    "POST",
                    &members,
                    key_of(&w, actor),
                    Some(json!({"email": email, "role": target.as_str()})),
                )
                .await;
            failures.extend(verdict(
                format!("{} adds a {} member", actor.as_str(), target.as_str()),
                expect(allowed(actor, &[target]), StatusCode::CREATED),
                &added,
            ));

            let w = world(&control).await;
            let someone = member(&control, &w.scope, target).await;
            let removed = api
                .call(
                    "DELETE",
                    &format!("/v1/workspaces/{}/members/{someone}", w.ws),
                    key_of(&w, actor),
                    None,
                )
                .await;
            let ok = allowed(actor, &[target]);
            let what = format!("{} removes a {} member", actor.as_str(), target.as_str());
            failures.extend(verdict(
                what.clone(),
                expect(ok, StatusCode::NO_CONTENT),
                &removed,
            ));
            let still = control.store.member(&w.scope, &someone).await.is_ok();
            if still == ok {
                failures.push(format!("{what}: the member is still there: {still}"));
            }

            for to in ROLES {
                let w = world(&control).await;
                let someone = member(&control, &w.scope, target).await;
                let changed = api
                    .call(
                        "PATCH",
                        &format!("/v1/workspaces/{}/members/{someone}", w.ws),
                        key_of(&w, actor),
                        Some(json!({"role": to.as_str()})),
                    )
                    .await;
                let ok = allowed(actor, &[target, to]);
                let what = format!(
                    "{} changes a {} member to {}",
                    actor.as_str(),
                    target.as_str(),
                    to.as_str()
                );
                failures.extend(verdict(what.clone(), expect(ok, StatusCode::OK), &changed));
                let now = control
                    .store
                    .member(&w.scope, &someone)
                    .await
                    .expect("member")
                    .role;
                let expected = if ok { to } else { target };
                if now != expected {
                    failures.push(format!("{what}: the member is now {}", now.as_str()));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    control.stop().await;
    db.cleanup().await;
}

/// The probe's attack as it was: an admin key revokes the owner's key, mints an owner key and
/// makes a member an owner. Each is refused and the owner's key keeps working.
async fn an_admin_cannot_revoke_the_owners_key_or_make_an_owner(backend: Backend) {
    let (db, control, api) = started(backend).await;
    let w = world(&control).await;
    let owner_id = control
        .store
        .api_keys(&w.scope)
        .await
        .expect("keys")
        .into_iter()
        .find(|k| k.role == Role::Owner)
        .expect("owner key")
        .id;
    let admin = key_of(&w, Role::Admin);
    api.expect(
        403,
        "DELETE",
        &format!("/v1/workspaces/{}/api-keys/{owner_id}", w.ws),
        admin,
        None,
    )
    .await;
    assert_eq!(
        api.call("GET", "/v1/agents", key_of(&w, Role::Owner), None)
            .await
            .status,
        StatusCode::OK,
        "the owner's key still works"
    );
    api.expect(
        403,
        "POST",
        &format!("/v1/workspaces/{}/api-keys", w.ws),
        admin,
        Some(json!({"name": "mine now", "role": "owner"})),
    )
    .await;
    let editor = member(&control, &w.scope, Role::Editor).await;
    let promote = api
        .call(
            "PATCH",
            &format!("/v1/workspaces/{}/members/{editor}", w.ws),
            admin,
            Some(json!({"role": "owner"})),
        )
        .await;
    assert_eq!(promote.status, StatusCode::FORBIDDEN, "{}", promote.body);
    assert_eq!(
        control
            .store
            .member(&w.scope, &editor)
            .await
            .expect("member")
            .role,
        Role::Editor
    );
    control.stop().await;
    db.cleanup().await;
}

on_both_engines!(
    keys_are_created_and_revoked_only_up_to_the_callers_role,
    members_are_added_changed_and_removed_only_up_to_the_callers_role,
    an_admin_cannot_revoke_the_owners_key_or_make_an_owner,
);
