//! Password guessing over real HTTP, on SQLite and PostgreSQL: after five wrong passwords an
//! account (and the address guessing it) is refused with 429 and `Retry-After` — the right
//! password too — without a password being checked, and the lockout is in the audit log of the
//! account's workspace; a crowd of concurrent logins is partly refused with 429 rather than all
//! hashed at once (each argon2 check allocates its memory cost).

use reqwest::StatusCode;

use crate::support::http::started;
use crate::support::http::try_login;
use crate::support::http::{login, make_user, Answer};
use crate::support::on_both_engines;
use crate::support::Backend;
use freya_control::store::{Role, WorkspaceScope};

fn retry_after(answer: &Answer) -> u64 {
    answer
        .headers
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("a Retry-After in seconds: {:?}", answer.headers))
}

async fn the_sixth_wrong_password_is_refused_and_so_is_the_right_one(backend: Backend) {
    let (db, control, api) = started(backend).await;
    let ada = make_user(&control, "ada@example.com", "correct horse").await;
    let ws = control.store.create_workspace("Ada's").await.expect("ws");
    let scope = WorkspaceScope {
        workspace_id: ws.clone(),
    };
    control
        .store
        .add_member(&scope, &ada, Role::Owner)
        .await
        .expect("member");
    let token = login(&api, "ada@example.com", "correct horse").await;

    for attempt in 1..=5 {
        let wrong = try_login(&api, "ada@example.com", &format!("guess {attempt}")).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "attempt {attempt}");
    }
    let sixth = try_login(&api, "ADA@example.com", "guess 6").await;
    assert_eq!(
        sixth.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        sixth.body
    );
    assert!(sixth.headers["content-type"]
        .to_str()
        .is_ok_and(|t| t.starts_with("application/problem+json")));
    assert_eq!(sixth.body["status"], 429);
    assert!(retry_after(&sixth) >= 1);
    let right = try_login(&api, "ada@example.com", "correct horse").await;
    assert_eq!(
        right.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        right.body
    );
    assert!(retry_after(&right) >= 1);

    // The lockout of the account and of the address guessing it, in Ada's workspace's log.
    let log = api
        .send(
            "GET",
            "/v1/audit-log",
            &token,
            &[("x-workspace-id", &ws)],
            None,
        )
        .await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.body);
    let mut locked: Vec<(String, String)> = log.body["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter(|e| e["action"] == "login.locked")
        .map(|e| {
            assert_eq!(e["detail"]["failures"], 5, "{e}");
            (
                e["actor"].as_str().unwrap_or_default().to_owned(),
                e["resource_type"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    locked.sort();
    assert_eq!(
        locked,
        [
            ("127.0.0.1".to_owned(), "client_address".to_owned()),
            ("ada@example.com".to_owned(), "account".to_owned()),
        ],
        "{}",
        log.body
    );
    control.stop().await;
    db.cleanup().await;
}

async fn concurrent_wrong_logins_beyond_the_cores_are_refused_not_hashed(backend: Backend) {
    let (db, control, api) = started(backend).await;
    make_user(&control, "ada@example.com", "correct horse").await;
    let attempts = (0..50).map(|i| {
        let api = api.clone();
        tokio::spawn(async move {
            // Different accounts, so only the hashing bound (and the address) can refuse.
            let answer = try_login(&api, &format!("user{i}@example.com"), "wrong").await;
            let detail = answer.body["detail"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if answer.status == StatusCode::TOO_MANY_REQUESTS {
                assert!(retry_after(&answer) >= 1);
            }
            (answer.status, detail)
        })
    });
    let mut answers = Vec::new();
    for attempt in attempts.collect::<Vec<_>>() {
        answers.push(attempt.await.expect("attempt"));
    }
    let refused_in_progress = answers
        .iter()
        .filter(|(s, d)| *s == StatusCode::TOO_MANY_REQUESTS && d.contains("in progress"))
        .count();
    let checked = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::UNAUTHORIZED)
        .count();
    assert!(
        answers
            .iter()
            .all(|(s, _)| [StatusCode::UNAUTHORIZED, StatusCode::TOO_MANY_REQUESTS].contains(s)),
        "{answers:?}"
    );
    assert!(refused_in_progress > 0, "all 50 were hashed: {answers:?}");
    assert!(checked > 0, "none was checked: {answers:?}");
    control.stop().await;
    db.cleanup().await;
}

on_both_engines!(
    multi_thread;
    the_sixth_wrong_password_is_refused_and_so_is_the_right_one,
    concurrent_wrong_logins_beyond_the_cores_are_refused_not_hashed,
);
