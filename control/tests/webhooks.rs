//! Webhooks end to end on SQLite and PostgreSQL, against a real receiver on loopback: a delivery
//! outlives a receiver that fails twice, and a control-plane restart; its signature verifies;
//! the delivery log tells what happened and a delivery can be sent again; two control planes on
//! one database never deliver the same row twice; private targets are refused when sending too.

use crate::support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use hmac::{Hmac, Mac};
use reqwest::StatusCode;
use serde_json::{json, Value};
use sha2::Sha256;
use tokio_util::sync::CancellationToken;

use crate::support::http::{workspace_with_keys, Api};
use crate::support::local_http::serve_until;
use crate::support::on_both_engines;
use crate::support::{control_config, eventually, Backend, TestDb};
use freya_control::server::ControlPlane;
use freya_shared::ids::new_id;
use freya_shared::model::{CallEvent, CallEventKind};

const SECRET: &str = "whsec-0123456789abcdef";

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Received {
    signature: String,
    body: String,
}

/// A webhook receiver that answers 500 to its first `fail_first` requests, then 200.
#[derive(Clone)]
struct Receiver {
    fail_first: Arc<AtomicU32>,
    seen: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(fail_first: u32, stop: CancellationToken) -> (Self, SocketAddr) {
        let receiver = Receiver {
            fail_first: Arc::new(AtomicU32::new(fail_first)),
            seen: Arc::default(),
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(receiver.clone());
        (receiver, serve_until(app, stop).await)
    }

    fn seen(&self) -> Vec<Received> {
        self.seen.lock().expect("lock").clone()
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> AxumStatus {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    r.seen.lock().expect("lock").push(Received {
        signature: header("freya-signature"),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    let failing = r
        .fail_first
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok();
    if failing {
        AxumStatus::INTERNAL_SERVER_ERROR
    } else {
        AxumStatus::OK
    }
}

/// Verifies a delivery the way a customer would: `Freya-Signature: t=<ts>,v1=<hex>`, the
/// HMAC-SHA256 over "{t}.{body}".
fn signature_verifies(r: &Received) -> bool {
    let Some((timestamp, hex_sig)) = r
        .signature
        .strip_prefix("t=")
        .and_then(|rest| rest.split_once(",v1="))
    else {
        return false;
    };
    let Ok(sig) = hex::decode(hex_sig) else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).expect("key");
    mac.update(format!("{timestamp}.{}", r.body).as_bytes());
    mac.verify_slice(&sig).is_ok()
}

async fn subscribe(api: &Api, key: &str, addr: SocketAddr) -> String {
    let created = api
        .create(
            "/v1/webhooks",
            key,
            json!({
                "url": format!("http://{addr}/hook"),
                "events": ["call.started", "call.ended", "call.transcript_ready"],
                "secret": SECRET
            }),
        )
        .await;
    assert!(created.get("secret").is_none());
    assert!(!created.to_string().contains(SECRET));
    created["id"].as_str().expect("id").to_owned()
}

async fn log(api: &Api, key: &str, hook: &str) -> Vec<Value> {
    let answer = api
        .expect(
            200,
            "GET",
            &format!("/v1/webhooks/{hook}/deliveries"),
            key,
            None,
        )
        .await;
    answer["data"].as_array().expect("deliveries").clone()
}

fn event(ws: &str, call: &str, kind: CallEventKind) -> CallEvent {
    CallEvent::raw(call, ws, kind, json!({"reason": "completed"}))
}

async fn a_receiver_failing_twice_gets_the_delivery_signed(backend: Backend) {
    let db = TestDb::new(backend).await;
    let stop = CancellationToken::new();
    let (receiver, addr) = Receiver::start(2, stop.clone()).await;
    let control = ControlPlane::start(&control_config(&db.url))
        .await
        .expect("control starts");
    let api = Api::of(&control);
    let (ws, [_, admin, ..]) = workspace_with_keys(&control, "W").await;
    let hook = subscribe(&api, &admin, addr).await;
    let call = new_id();
    let started = event(&ws, &call, CallEventKind::Started);
    control
        .store
        .record_call_event("edge-1", &started)
        .await
        .expect("event");
    // Answered is not subscribed to: no delivery.
    control
        .store
        .record_call_event("edge-1", &event(&ws, &call, CallEventKind::Answered))
        .await
        .expect("event");

    let delivered = eventually(Duration::from_secs(10), "the third attempt", || async {
        let entries = log(&api, &admin, &hook).await;
        (entries.len() == 1 && entries[0]["status"] == "delivered").then_some(entries)
    })
    .await;
    assert_eq!(delivered[0]["attempts"], 3);
    assert_eq!(delivered[0]["last_status_code"], 200);
    assert_eq!(delivered[0]["event"], "call.started");
    let seen = receiver.seen();
    assert_eq!(seen.len(), 3);
    assert!(seen.iter().all(signature_verifies), "{seen:?}");
    let body: Value = serde_json::from_str(&seen[2].body).expect("JSON body");
    assert_eq!(body["id"], started.id.as_str());
    assert_eq!(body["type"], "call.started");
    assert_eq!(body["data"]["call_id"], call.as_str());
    // A tampered body does not verify.
    let mut forged = seen[2].clone();
    forged.body = forged.body.replace("call.started", "call.ended");
    assert!(!signature_verifies(&forged));

    // A transcript event becomes call.transcript_ready.
    control
        .store
        .record_call_event("edge-1", &event(&ws, &call, CallEventKind::Transcript))
        .await
        .expect("event");
    eventually(
        Duration::from_secs(10),
        "the transcript delivery",
        || async { (receiver.seen().len() == 4).then_some(()) },
    )
    .await;
    assert!(receiver.seen()[3].body.contains("call.transcript_ready"));

    // The log pages newest first with an opaque cursor.
    let first = api
        .call(
            "GET",
            &format!("/v1/webhooks/{hook}/deliveries?limit=1"),
            &admin,
            None,
        )
        .await;
    assert_eq!(first.body["data"][0]["event"], "call.transcript_ready");
    let cursor = first.body["next_cursor"].as_str().expect("a next page");
    let second = api
        .call(
            "GET",
            &format!("/v1/webhooks/{hook}/deliveries?limit=1&cursor={cursor}"),
            &admin,
            None,
        )
        .await;
    assert_eq!(second.body["data"][0]["event"], "call.started");
    assert!(second.body["next_cursor"].is_null());
    let garbage = api
        .expect(
            400,
            "GET",
            &format!("/v1/webhooks/{hook}/deliveries?cursor=zz"),
            &admin,
            None,
        )
        .await;
    assert_eq!(garbage["errors"][0]["field"], "cursor");

    // Redelivery sends the same body again.
    let id = delivered[0]["id"].as_str().expect("id");
    api.expect(
        202,
        "POST",
        &format!("/v1/webhooks/{hook}/deliveries/{id}/redeliver"),
        &admin,
        None,
    )
    .await;
    eventually(Duration::from_secs(10), "the redelivery", || async {
        (receiver.seen().len() == 5).then_some(())
    })
    .await;
    assert_eq!(receiver.seen()[4].body, seen[2].body);
    control.stop().await;
    stop.cancel();
    db.cleanup().await;
}

async fn a_queued_delivery_survives_a_control_plane_restart(backend: Backend) {
    let db = TestDb::new(backend).await;
    let stop = CancellationToken::new();
    // Fails "for ever" until the test lets it succeed.
    let (receiver, addr) = Receiver::start(u32::MAX, stop.clone()).await;
    let first = ControlPlane::start(&control_config(&db.url))
        .await
        .expect("control starts");
    let api = Api::of(&first);
    let (ws, [_, admin, ..]) = workspace_with_keys(&first, "R").await;
    let hook = subscribe(&api, &admin, addr).await;
    let ended = event(&ws, &new_id(), CallEventKind::Ended);
    first
        .store
        .record_call_event("edge-1", &ended)
        .await
        .expect("event");
    eventually(Duration::from_secs(10), "a failed attempt", || async {
        (!receiver.seen().is_empty()).then_some(())
    })
    .await;
    first.stop().await;

    receiver.fail_first.store(0, Ordering::SeqCst);
    let second = ControlPlane::start(&control_config(&db.url))
        .await
        .expect("control restarts");
    let api = Api::of(&second);
    let entries = eventually(
        Duration::from_secs(10),
        "delivery after restart",
        || async {
            let entries = log(&api, &admin, &hook).await;
            (entries[0]["status"] == "delivered").then_some(entries)
        },
    )
    .await;
    assert!(entries[0]["attempts"].as_i64().expect("attempts") >= 2);
    let last = receiver.seen().last().cloned().expect("a request");
    assert!(last.body.contains(&ended.id) && signature_verifies(&last));
    second.stop().await;
    stop.cancel();
    db.cleanup().await;
}

async fn two_control_planes_never_deliver_a_row_twice(backend: Backend) {
    let db = TestDb::new(backend).await;
    let stop = CancellationToken::new();
    let (receiver, addr) = Receiver::start(0, stop.clone()).await;
    let a = ControlPlane::start(&control_config(&db.url))
        .await
        .expect("control starts");
    let b = ControlPlane::start(&control_config(&db.url))
        .await
        .expect("second control starts");
    let api = Api::of(&a);
    let (ws, [_, admin, ..]) = workspace_with_keys(&a, "D").await;
    subscribe(&api, &admin, addr).await;
    let mut ids = Vec::new();
    for n in 0..30 {
        let store = if n % 2 == 0 { &a.store } else { &b.store };
        let e = event(&ws, &new_id(), CallEventKind::Started);
        store.record_call_event("edge-1", &e).await.expect("event");
        ids.push(e.id);
    }
    eventually(Duration::from_secs(20), "30 deliveries", || async {
        (receiver.seen().len() >= 30).then_some(())
    })
    .await;
    // Give a double delivery, if there were one, time to arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut count: HashMap<String, u32> = HashMap::new();
    for r in receiver.seen() {
        let body: Value = serde_json::from_str(&r.body).expect("JSON");
        *count
            .entry(body["id"].as_str().expect("id").to_owned())
            .or_default() += 1;
    }
    assert_eq!(count.len(), 30);
    assert!(count.values().all(|&n| n == 1), "{count:?}");
    assert!(ids.iter().all(|id| count.contains_key(id)));
    a.stop().await;
    b.stop().await;
    stop.cancel();
    db.cleanup().await;
}

async fn subscriptions_hide_their_secret_and_name_bad_fields(backend: Backend) {
    let (db, control, api) = support::http::started(backend).await;
    let (_, [owner, ..]) = workspace_with_keys(&control, "S").await;
    let hook = subscribe(&api, &owner, "127.0.0.1:9".parse().expect("addr")).await;
    let patched = api
        .expect(
            200,
            "PATCH",
            &format!("/v1/webhooks/{hook}"),
            &owner,
            Some(json!({"events": ["*"]})),
        )
        .await;
    assert_eq!(patched["events"], json!(["*"]));
    for (body, field) in [
        (
            json!({"url": "ftp://x", "events": ["call.ended"], "secret": SECRET}),
            "url",
        ),
        (
            json!({"url": "https://x.example", "events": ["call.exploded"], "secret": SECRET}),
            "events[0]",
        ),
        (
            json!({"url": "https://x.example", "events": ["call.ended"]}),
            "secret",
        ),
        (
            json!({"url": "https://x.example", "events": ["call.ended"], "secret": "short"}),
            "secret",
        ),
        (
            json!({"url": "https://x.example", "events": [], "secret": SECRET, "extra": 1}),
            "extra",
        ),
    ] {
        let answer = api
            .expect(422, "POST", "/v1/webhooks", &owner, Some(body))
            .await;
        assert_eq!(answer["errors"][0]["field"], field, "{}", answer);
    }
    let listed = api.call("GET", "/v1/webhooks", &owner, None).await;
    assert!(!listed.body.to_string().contains(SECRET));
    control.stop().await;
    db.cleanup().await;
}

async fn private_targets_are_refused_at_delivery_time_too(backend: Backend) {
    let db = TestDb::new(backend).await;
    let stop = CancellationToken::new();
    let (receiver, addr) = Receiver::start(0, stop.clone()).await;
    let mut config = control_config(&db.url);
    config.webhooks.allow_private_targets = false;
    let control = ControlPlane::start(&config).await.expect("control starts");
    let api = Api::of(&control);
    let (ws, [owner, ..]) = workspace_with_keys(&control, "P").await;
    let scope = freya_control::store::WorkspaceScope {
        workspace_id: ws.clone(),
    };
    // The API refuses such targets; these rows stand for subscriptions accepted before the
    // setting changed, or a name whose DNS changed since.
    let mut hooks = Vec::new();
    for url in [
        format!("http://localhost:{}/hook", addr.port()),
        format!("http://{addr}/hook"),
    ] {
        let refused = api
            .call(
                "POST",
                "/v1/webhooks",
                &owner,
                Some(json!({"url": url, "events": ["*"], "secret": SECRET})),
            )
            .await;
        assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        let hook = control
            .store
            .create_webhook(
                &scope,
                "test",
                &freya_control::store::NewWebhook {
                    url,
                    events: vec!["*".into()],
                    secret: Some(SECRET.into()),
                },
            )
            .await
            .expect("webhook");
        hooks.push(hook.id);
    }
    control
        .store
        .record_call_event("edge-1", &event(&ws, &new_id(), CallEventKind::Ended))
        .await
        .expect("event");
    for (hook, why) in hooks.iter().zip(["no public address", "private address"]) {
        let entry = eventually(Duration::from_secs(10), "a refused attempt", || async {
            let entries = log(&api, &owner, hook).await;
            (entries.first()?["attempts"].as_i64()? >= 1).then(|| entries[0].clone())
        })
        .await;
        let error = entry["last_error"].as_str().expect("an error");
        assert!(error.contains(why), "{error}");
    }
    assert!(receiver.seen().is_empty(), "{:?}", receiver.seen());
    control.stop().await;
    stop.cancel();
    db.cleanup().await;
}

on_both_engines!(
    a_receiver_failing_twice_gets_the_delivery_signed,
    a_queued_delivery_survives_a_control_plane_restart,
    two_control_planes_never_deliver_a_row_twice,
    subscriptions_hide_their_secret_and_name_bad_fields,
    private_targets_are_refused_at_delivery_time_too,
);
