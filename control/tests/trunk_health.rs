//! A trunk's health through real sockets: the edge pings each UDP trunk with SIP OPTIONS, and
//! `GET /v1/providers/{id}` shows what the pings say. A sipp UAS answering OPTIONS is up (with
//! a round trip), then down once the sipp process is killed; a dead port is down; a trunk that
//! answers with junk, or never, is down within the ping timeout with a `last_error` saying so.
//!
//! The trunks are created through the API, so they reach the edge by its configuration watch.

use std::time::Duration;

use crate::support::caller::{free_udp_port, sipp_uas};
use crate::support::eventually;
use crate::support::http::Api;
use crate::support::world::World;
use freya_control::store::Role;
use serde_json::{json, Value};

/// A world whose edge pings every second and waits 300 ms for an answer.
async fn world() -> World {
    World::builder()
        .workspace("Trunks")
        .edge_config(|config| {
            config.sip.options_interval_ms = 1_000;
            config.sip.options_timeout_ms = 300;
        })
        .start()
        .await
}

/// A sipp UAS on 127.0.0.1 answering every OPTIONS (`uas_options.xml`).
async fn options_trunk() -> (tokio::process::Child, tempfile::TempDir, u16) {
    sipp_uas("uas_options.xml", &["-m", "100000"], "120s")
}

/// Creates a UDP trunk to 127.0.0.1 `port` through the API; its id.
async fn create_trunk(api: &Api, admin: &str, name: &str, port: u16) -> String {
    let body = json!({"kind": "sip_trunk", "name": name, "host": "127.0.0.1", "port": port});
    let created = api.create("/v1/providers", admin, body).await;
    assert_eq!(created["health"]["state"], "unknown", "{created}");
    created["id"].as_str().expect("id").to_owned()
}

/// The provider's `health` once `state` is what it shows (hang guard: 20 s).
async fn health_in(api: &Api, key: &str, id: &str, state: &str) -> Value {
    let path = format!("/v1/providers/{id}");
    let what = format!("provider {id} to be {state}");
    eventually(Duration::from_secs(20), &what, || async {
        let answer = api.call("GET", &path, key, None).await;
        let health = answer.body["health"].clone();
        (health["state"] == state).then_some(health)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_answering_options_is_up_then_down_once_it_is_killed() {
    let s = world().await;
    let api = Api::of(&s.control);
    let admin = s.key(Role::Admin).await;
    let (mut sipp, _work, port) = options_trunk().await;
    let id = create_trunk(&api, &admin, "sipp", port).await;

    let up = health_in(&api, &admin, &id, "up").await;
    assert!(up["rtt_ms"].is_u64(), "{up}");
    assert!(up["checked_at"].is_string(), "{up}");
    assert_eq!(up["last_error"], Value::Null, "{up}");
    let edges = up["edges"].as_array().expect("edges");
    assert_eq!(edges.len(), 1, "{up}");
    assert_eq!(edges[0]["edge"], s.edge.id.as_str(), "{up}");
    assert_eq!(edges[0]["last_status"], 200, "{up}");
    // The list shows it too.
    let list = api.expect(200, "GET", "/v1/providers", &admin, None).await;
    assert_eq!(list["data"][0]["health"]["state"], "up", "{list}");

    sipp.kill().await.expect("sipp killed");
    let down = health_in(&api, &admin, &id, "down").await;
    let error = down["last_error"].as_str().expect("a reason");
    assert_eq!(error, "no answer to OPTIONS within 300 ms", "{down}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_port_is_down() {
    let s = world().await;
    let api = Api::of(&s.control);
    let admin = s.key(Role::Admin).await;
    let id = create_trunk(&api, &admin, "dead", free_udp_port()).await;
    let down = health_in(&api, &admin, &id, "down").await;
    assert!(down["last_error"].is_string(), "{down}");
    assert_eq!(down["rtt_ms"], Value::Null, "{down}");
    s.stop().await;
}

/// A hostile trunk: answers every ping with `answer(request)`.
async fn hostile_trunk(answer: fn(&[u8]) -> Option<Vec<u8>>) -> (tokio::task::JoinHandle<()>, u16) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = socket.local_addr().expect("addr").port();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        while let Ok((n, from)) = socket.recv_from(&mut buf).await {
            if let Some(reply) = answer(&buf[..n]) {
                let _ = socket.send_to(&reply, from).await;
            }
        }
    });
    (task, port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trunk_answering_junk_or_never_is_down_with_a_clear_reason() {
    let s = world().await;
    let api = Api::of(&s.control);
    let admin = s.key(Role::Admin).await;
    let (junk, junk_port) =
        hostile_trunk(|_| Some(b"\x00\xffHELLO garbage\r\n\r\n".to_vec())).await;
    // A reply that looks like SIP but answers no ping of ours (another Call-ID).
    let (stray, stray_port) = hostile_trunk(|_| {
        Some(b"SIP/2.0 200 OK\r\nCall-ID: someone-else\r\nContent-Length: 0\r\n\r\n".to_vec())
    })
    .await;
    let (silent, silent_port) = hostile_trunk(|_| None).await;
    let junk_id = create_trunk(&api, &admin, "junk", junk_port).await;
    let stray_id = create_trunk(&api, &admin, "stray", stray_port).await;
    let silent_id = create_trunk(&api, &admin, "silent", silent_port).await;

    let down = health_in(&api, &admin, &junk_id, "down").await;
    let error = down["last_error"].as_str().expect("a reason");
    assert!(
        error.starts_with("no valid answer to OPTIONS within 300 ms (received: 19 bytes that are not a SIP answer"),
        "{down}"
    );
    assert!(error.contains("HELLO garbage"), "{down}");
    let down = health_in(&api, &admin, &stray_id, "down").await;
    assert_eq!(
        down["last_error"], "no answer to OPTIONS within 300 ms",
        "{down}"
    );
    let down = health_in(&api, &admin, &silent_id, "down").await;
    assert_eq!(
        down["last_error"], "no answer to OPTIONS within 300 ms",
        "{down}"
    );
    for task in [junk, stray, silent] {
        task.abort();
    }
    s.stop().await;
}
