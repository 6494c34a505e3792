//! `POST /v1/providers/{id}/test` served by a control-plane replica that does not hold the
//! edge's command stream (`grpc/relay.rs`), on SQLite (two replicas on one file) and
//! PostgreSQL: the `TestTrunk` goes down through the outbox and the edge's answer comes back
//! through the command's row. Edge A is linked to the world's replica; the second replica has
//! no edge. A silent trunk fails (the edge's own words, with its timeout) and a TCP trunk
//! answers 200, so what comes back is the edge's answer, not a constant. With the replica
//! holding A gone, the test is a 503 problem+json once no replica took the command.

use serde_json::{json, Value};

use crate::provider_test::tcp_trunk;
use crate::support::http::Api;
use crate::support::world::World;
use crate::support::{control_config, eventually, on_both_engines, Backend};
use freya_control::server::ControlPlane;
use freya_control::store::Role;

const LIMIT: std::time::Duration = std::time::Duration::from_secs(20);

async fn create(api: &Api, admin: &str, body: Value) -> String {
    let created = api.create("/v1/providers", admin, body).await;
    created["id"].as_str().expect("id").to_owned()
}

async fn a_trunk_is_tested_through_a_replica_not_holding_the_edge(backend: Backend) {
    let w = World::builder()
        .backend(backend)
        .workspace("Relayed provider tests")
        .edge_config(|config| {
            config.sip.options_interval_ms = 0;
            config.sip.options_timeout_ms = 500;
        })
        .start()
        .await;
    // The second replica counts an edge online for a minute after its last heartbeat, so
    // that once A's replica is gone, A is still chosen and the relay itself must refuse.
    let mut config = control_config(&w.db.url);
    config.edges.offline_after_ms = 60_000;
    let second = ControlPlane::start(&config).await.expect("second replica");
    let a = w.edge.id.clone();
    let (world_api, second_api) = (Api::of(&w.control), Api::of(&second));
    let admin = w.key(Role::Admin).await;
    let editor = w.key(Role::Editor).await;

    // Bound, so nothing answers with ICMP: the OPTIONS is simply never answered.
    let silent = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let silent_port = silent.local_addr().expect("addr").port();
    let (_tcp, tcp_port) = tcp_trunk().await;
    let trunk = |name: &str, port: u16, transport: &str| {
        json!({"kind": "sip_trunk", "name": name, "host": "127.0.0.1", "port": port,
               "transport": transport})
    };
    let silent_id = create(&world_api, &admin, trunk("silent", silent_port, "udp")).await;
    let tcp_id = create(&world_api, &admin, trunk("tcp", tcp_port, "tcp")).await;
    let orphan_id = create(&world_api, &admin, trunk("orphan", 9, "udp")).await;
    let edge = &w.edge;
    eventually(LIMIT, "A's configuration holding the trunks", || async {
        let snapshot = edge.state.snapshot();
        let known = |id: &str| snapshot.providers.iter().any(|p| p.id == id);
        (known(&silent_id) && known(&tcp_id)).then_some(())
    })
    .await;
    assert!(
        w.control.commands.is_connected(&a) && !second.commands.is_connected(&a),
        "A's stream is on the world's replica only"
    );

    let path = |id: &str| format!("/v1/providers/{id}/test");
    let failed = second_api
        .call("POST", &path(&silent_id), &editor, None)
        .await;
    assert_eq!(failed.status.as_u16(), 200, "{}", failed.body);
    assert_eq!(failed.body["ok"], false, "{}", failed.body);
    assert_eq!(
        failed.body["detail"], "no answer to OPTIONS within 500 ms",
        "the edge's own answer: {}",
        failed.body
    );
    assert_eq!(
        failed.body["checks"][0]["edge"],
        a.as_str(),
        "{}",
        failed.body
    );

    let passed = second_api.call("POST", &path(&tcp_id), &editor, None).await;
    assert_eq!(passed.status.as_u16(), 200, "{}", passed.body);
    assert_eq!(passed.body["ok"], true, "{}", passed.body);
    let check = &passed.body["checks"][0];
    assert_eq!(check["status"], 200, "{check}");
    assert_eq!(check["edge"], a.as_str(), "{check}");
    assert_eq!(check["name"], "sip_options", "{check}");
    // The second replica's own view of the provider shows the test it ran.
    let provider = second_api
        .expect(200, "GET", &format!("/v1/providers/{tcp_id}"), &admin, None)
        .await;
    assert_eq!(provider["health"]["last_test"]["ok"], true, "{provider}");

    // No replica holds A's stream any more: refused once nobody took the command.
    let World {
        db, control, edge, ..
    } = w;
    control.stop().await;
    let refused = second_api
        .call("POST", &path(&orphan_id), &editor, None)
        .await;
    assert_eq!(refused.status.as_u16(), 503, "{}", refused.body);
    assert_eq!(refused.content_type(), "application/problem+json");
    let detail = refused.body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&format!(
            "edge {a} is not connected to any control-plane process"
        )),
        "{detail}"
    );
    drop(silent);
    edge.stop().await;
    second.stop().await;
    db.cleanup().await;
}

on_both_engines!(multi_thread;
    a_trunk_is_tested_through_a_replica_not_holding_the_edge,
);
