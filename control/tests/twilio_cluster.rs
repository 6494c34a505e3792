//! The Twilio voice webhook in a cluster: two edges in-process gossiping over real UDP, one
//! control plane. The webhook of an edge that takes the call answers with its own media stream;
//! once that edge drains, with the live peer's (whose stream opens with the ticket and carries
//! the call, recorded on the peer); once the peer has left the cluster, never with the dead
//! peer's: the call is rejected `busy`.

use crate::support;

use std::time::Duration;

use freya_edge::twilio::fakes::{post_voice_webhook, CallerAction, StreamCaller};
use freya_edge::Edge;
use serde_json::{json, Value};

use crate::support::twilio::{finished_call, teardown, webhook_form, NUMBER, SID, TOKEN};
use crate::support::{eventually, SECRET};

/// Hang guard for each wait.
const LIMIT: Duration = Duration::from_secs(30);

/// `peer`'s (state, draining) in `GET /cluster` of the edge at `http`, its newest run; a peer
/// whose health has not arrived yet counts as draining (nothing can be sent to it).
async fn member(http: std::net::SocketAddr, peer: &str) -> Option<(String, bool)> {
    let report: Value = reqwest::get(format!("http://{http}/cluster"))
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    report["members"]
        .as_array()?
        .iter()
        .filter(|m| m["id"] == peer)
        .max_by_key(|m| m["generation"].as_u64().unwrap_or(0))
        .map(|m| {
            (
                m["state"].as_str().unwrap_or_default().to_owned(),
                m["draining"].as_bool().unwrap_or(true),
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_voice_webhook_sends_a_call_to_a_live_peer_never_to_a_dead_one() {
    let w = support::world::World::builder()
        .workspace("Twilio")
        .voice()
        .agent(json!({"name": "Front desk", "first_message": "Hello."}))
        .number(NUMBER)
        .edge_config(|c| {
            c.id = Some("twilio-a".into());
            c.cluster.bind = Some("127.0.0.1:0".into());
        })
        .start()
        .await;
    let w = support::twilio::with_account(w).await;
    let dir_b = tempfile::tempdir().expect("temp dir");
    let mut config_b = support::edge_config(dir_b.path(), w.control.grpc_addr, SECRET);
    config_b.id = Some("twilio-b".into());
    config_b.cluster.bind = Some("127.0.0.1:0".into());
    let b = Edge::start(&config_b).await.expect("edge b starts");
    for edge in [&w.edge, &b] {
        let state = &edge.state;
        eventually(LIMIT, "each edge to learn the account", || async move {
            (state.snapshot().providers.len() == 1).then_some(())
        })
        .await;
    }
    let (a_http, b_http) = (w.edge.http_addr, b.http_addr);
    eventually(LIMIT, "b alive and taking calls at a", || async move {
        (member(a_http, "twilio-b").await? == ("alive".to_owned(), false)).then_some(())
    })
    .await;
    eventually(LIMIT, "a alive and taking calls at b", || async move {
        (member(b_http, "twilio-a").await? == ("alive".to_owned(), false)).then_some(())
    })
    .await;
    let url = format!("http://{a_http}/twilio/voice");

    // A takes the call itself.
    let here = post_voice_webhook(&url, TOKEN, &webhook_form("CA1", NUMBER))
        .await
        .expect("answer");
    assert_eq!(here.status, 200, "{}", here.body);
    let stream = here.stream.expect("a stream");
    assert_eq!(stream.url, format!("ws://{a_http}/twilio/media"));

    // Draining, A sends it to B's stream, which takes A's ticket and carries the call.
    w.edge.state.set_draining(true);
    let moved = post_voice_webhook(&url, TOKEN, &webhook_form("CA2", NUMBER))
        .await
        .expect("answer");
    assert_eq!(moved.status, 200, "{}", moved.body);
    let Some(stream) = moved.stream else {
        let view = reqwest::get(format!("http://{a_http}/cluster"))
            .await
            .expect("view");
        panic!(
            "no stream on the peer: {}\n{}",
            moved.body,
            view.text().await.unwrap_or_default()
        );
    };
    assert_eq!(stream.url, format!("ws://{b_http}/twilio/media"));
    let heard = StreamCaller::new(stream, SID, "CA2")
        .signed_with(TOKEN)
        .run(&[CallerAction::ListenFor {
            voiced_frames: 10,
            limit: Duration::from_secs(10),
        }])
        .await
        .expect("stream runs");
    assert!(!heard.closed_by_edge, "{heard:?}");
    assert!(heard.media_messages > 0, "{heard:?}");
    let (call, _) = finished_call(&w, "inbound").await;
    assert_eq!(call.edge_id.as_deref(), Some("twilio-b"), "{call:?}");

    // B leaves the cluster; A, still draining, has nowhere live to send a call.
    b.stop().await;
    eventually(LIMIT, "b down at a", || async move {
        (member(a_http, "twilio-b").await?.0 == "down").then_some(())
    })
    .await;
    let nowhere = post_voice_webhook(&url, TOKEN, &webhook_form("CA3", NUMBER))
        .await
        .expect("answer");
    assert_eq!(nowhere.status, 200, "{}", nowhere.body);
    assert!(nowhere.stream.is_none(), "{}", nowhere.body);
    assert!(nowhere.body.contains("Reject"), "{}", nowhere.body);
    assert!(
        !nowhere.body.contains(&b_http.to_string()),
        "{}",
        nowhere.body
    );
    teardown(w).await;
}
