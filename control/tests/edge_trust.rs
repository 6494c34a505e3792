//! The cluster's trust, end to end over real gRPC and TLS on loopback, on SQLite and
//! PostgreSQL: an edge enrols with a join token made through the API, links over mutual TLS,
//! registers and renews its certificate; and each attack gets its refusal and its trust-audit
//! entry — a wrong, an expired and a replayed join token, a certificate from another cluster's
//! CA, an expired certificate and a revoked edge. A revocation bites at once: the revoked edge's
//! open command stream ends, and every other edge's command stream carries the new list; deleting
//! an edge (admin only) revokes it the same way. Two control planes starting at once end with
//! one CA.

use std::time::{Duration, SystemTime};

use crate::support::http::{workspace_with_keys, Api};
use crate::support::{
    control_config, edge_config, eventually, join_token, on_both_engines, Backend, TestDb, SECRET,
};
use freya_control::server::ControlPlane;
use freya_control::store::{PoolSize, Store};
use freya_control::trust::ClusterCa;
use freya_edge::control_link::{mtls_client, ControlClient};
use freya_edge::trust::{enrol, mtls_client_config, new_key_and_csr, ClusterIdentity, ControlTls};
use freya_edge::Edge;
use freya_proto::v1::edge_command::Command;
use freya_proto::v1::{CommandsRequest, EdgeCommand, RegisterRequest};
use freya_shared::model::EdgeStatus;
use serde_json::Value;

/// A control plane in cluster mode (mutual TLS, no shared secret) whose edge certificates live
/// `certificate_lifetime`.
async fn cluster_control(backend: Backend, certificate_lifetime: u32) -> (TestDb, ControlPlane) {
    let db = TestDb::new(backend).await;
    let mut config = control_config(&db.url);
    config.edges.shared_secret = None;
    config.edges.certificate_lifetime_seconds = certificate_lifetime;
    let control = ControlPlane::start(&config).await.expect("control starts");
    (db, control)
}

fn url(control: &ControlPlane) -> String {
    format!("https://{}", control.grpc_addr)
}

fn client_for(control: &ControlPlane, identity: &ClusterIdentity, edge_id: &str) -> ControlClient {
    let tls = ControlTls::new(mtls_client_config(identity).expect("tls config"));
    mtls_client(&url(control), tls, edge_id, Duration::from_secs(2)).expect("client")
}

fn registration(edge_id: &str) -> RegisterRequest {
    RegisterRequest {
        edge_id: edge_id.into(),
        region: "local".into(),
        sip_addr: "127.0.0.1:5060".into(),
        ..Default::default()
    }
}

/// The trust-audit entry with `action` and `outcome` (and, when given, whose detail's text holds
/// `detail`), once it is written.
async fn audited(control: &ControlPlane, action: &str, outcome: &str, detail: &str) -> Value {
    eventually(
        Duration::from_secs(10),
        &format!("a trust-audit entry {action} {outcome} {detail}"),
        || async {
            let entries = control.store.trust_audit(200).await.ok()?;
            entries
                .into_iter()
                .find(|e| {
                    e.action == action
                        && e.outcome == outcome
                        && e.detail.to_string().contains(detail)
                })
                .map(|e| serde_json::to_value(e).expect("json"))
        },
    )
    .await
}

async fn an_edge_enrols_links_over_mutual_tls_registers_and_renews(backend: Backend) {
    let (db, control) = cluster_control(backend, 6).await;
    let api = Api::of(&control);
    let (_ws, [_owner, admin, editor, _viewer]) = workspace_with_keys(&control, "Trust").await;
    api.expect(
        403,
        "POST",
        "/v1/edges/join-tokens",
        &editor,
        Some(serde_json::json!({})),
    )
    .await;
    let created = api
        .create(
            "/v1/edges/join-tokens",
            &admin,
            serde_json::json!({ "expires_in_seconds": 600 }),
        )
        .await;
    let token = created["token"]
        .as_str()
        .expect("token shown once")
        .to_owned();
    assert_eq!(created["ca_fingerprint"], control.ca.fingerprint());
    assert!(token.contains(&control.ca.fingerprint()));

    let dir = tempfile::tempdir().expect("temp dir");
    let mut config = edge_config(dir.path(), control.grpc_addr, SECRET);
    config.control.url = url(&control);
    config.control.shared_secret = None;
    config.control.join_token = Some(token);
    let edge_id = config.id.clone().expect("id");
    let edge = Edge::start(&config)
        .await
        .expect("the edge enrols and starts");
    let identity = edge.identity.clone().expect("an mTLS edge has an identity");
    assert_eq!(identity.cluster_id, control.ca.cluster_id());
    let trust = dir.path().join("trust");
    let key = std::fs::metadata(trust.join("key.pem")).expect("key kept");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&key.permissions()) & 0o077,
        0
    );

    let store = control.store.clone();
    eventually(
        Duration::from_secs(10),
        "the edge online over mTLS",
        || async {
            let edges = store.edges(2_000).await.ok()?;
            edges
                .into_iter()
                .find(|e| e.id == edge_id && e.status == EdgeStatus::Online)
        },
    )
    .await;
    audited(&control, "edge.enrol", "ok", "").await;
    // Six-second certificates: renewed at about four seconds, over the mTLS link.
    eventually(Duration::from_secs(30), "a renewed certificate", || async {
        (store.edge_certificate_count(&edge_id).await.ok()? >= 2).then_some(())
    })
    .await;
    audited(&control, "edge.renew", "ok", "").await;
    let kept = eventually(
        Duration::from_secs(10),
        "the renewed certificate kept",
        || async {
            ClusterIdentity::load(&trust)
                .ok()
                .flatten()
                .filter(|kept| kept.cert_pem != identity.cert_pem)
        },
    )
    .await;
    assert_ne!(
        kept.key_pem, identity.key_pem,
        "each renewal makes a new key"
    );
    // Past the first certificate's expiry, the certificate the edge keeps now (renewed again
    // since) opens a new connection.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let latest = ClusterIdentity::load(&trust).expect("read").expect("kept");
    let mut fresh = client_for(&control, &latest, &edge_id);
    fresh
        .register(registration(&edge_id))
        .await
        .expect("the renewed certificate is accepted");
    let audit = api
        .expect(200, "GET", "/v1/edges/trust-audit", &admin, None)
        .await;
    assert!(audit
        .as_array()
        .expect("list")
        .iter()
        .any(|e| e["action"] == "join_token.created"));

    edge.stop().await;
    control.stop().await;
    db.cleanup().await;
}

async fn bad_join_tokens_are_refused_and_audited(backend: Backend) {
    let (db, control) = cluster_control(backend, 3_600).await;
    let url = url(&control);
    let timeout = Duration::from_secs(2);

    // A wrong secret for a real token id.
    let good = join_token(&control, Duration::from_secs(600)).await;
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    parts[2] = "0".repeat(64);
    let wrong = parts.join(".");
    let refused = enrol(&url, &wrong, "edge-wrong", timeout)
        .await
        .expect_err("a wrong token is refused");
    assert!(
        refused.to_string().contains("unknown or wrong token"),
        "{refused}"
    );
    audited(&control, "edge.enrol", "wrong_token", "").await;

    // An expired token.
    let expired = join_token(&control, Duration::ZERO).await;
    let refused = enrol(&url, &expired, "edge-late", timeout)
        .await
        .expect_err("an expired token is refused");
    assert!(refused.to_string().contains("expired"), "{refused}");
    audited(&control, "edge.enrol", "expired_token", "").await;

    // A replayed enrolment: the token works once.
    enrol(&url, &good, "edge-first", timeout)
        .await
        .expect("the first enrolment");
    let refused = enrol(&url, &good, "edge-second", timeout)
        .await
        .expect_err("a replay is refused");
    assert!(refused.to_string().contains("already used"), "{refused}");
    audited(&control, "edge.enrol", "used_token", "").await;
    assert_eq!(
        control
            .store
            .edge_certificate_count("edge-second")
            .await
            .expect("count"),
        0
    );

    // A token that pins another cluster's CA is never even sent to this control plane.
    let foreign =
        ClusterCa::from_stored(&ClusterCa::generate("elsewhere").expect("ca")).expect("ca");
    let pinned_elsewhere = good.replace(&control.ca.fingerprint(), &foreign.fingerprint());
    let refused = enrol(&url, &pinned_elsewhere, "edge-misled", timeout)
        .await
        .expect_err("the server's CA is not the pinned one");
    assert!(!refused.to_string().contains("already used"), "{refused}");

    control.stop().await;
    db.cleanup().await;
}

async fn a_shared_token_enrols_its_count_of_new_edges_and_no_more(backend: Backend) {
    let (db, control) = cluster_control(backend, 3_600).await;
    let api = Api::of(&control);
    let (_ws, [_owner, admin, ..]) = workspace_with_keys(&control, "Fleet").await;
    let tokens = "/v1/edges/join-tokens";
    for uses in [0, 1_001] {
        let body = serde_json::json!({ "uses": uses });
        let refused = api.expect(422, "POST", tokens, &admin, Some(body)).await;
        assert_eq!(refused["errors"][0]["field"], "uses", "{refused}");
    }
    let fleet = |uses: u32| {
        let (api, admin) = (&api, &admin);
        async move {
            let body = serde_json::json!({ "uses": uses });
            let created = api.create(tokens, admin, body).await;
            assert_eq!(created["uses"], uses, "{created}");
            created["token"].as_str().expect("token").to_owned()
        }
    };
    let url = url(&control);
    let timeout = Duration::from_secs(2);

    let token = fleet(2).await;
    enrol(&url, &token, "fleet-1", timeout)
        .await
        .expect("the first node enrols");
    // Attack: a copy of the shared token names a running edge, to be issued its identity.
    let refused = enrol(&url, &token, "fleet-1", timeout)
        .await
        .expect_err("an edge id with a live certificate is refused");
    assert!(
        refused.to_string().contains("live certificate"),
        "{refused}"
    );
    audited(&control, "edge.enrol", "edge_id_taken", "").await;
    enrol(&url, &token, "fleet-2", timeout)
        .await
        .expect("the second node enrols: the refusal took no use");
    let refused = enrol(&url, &token, "fleet-3", timeout)
        .await
        .expect_err("no use is left");
    assert!(refused.to_string().contains("already used"), "{refused}");
    assert_eq!(
        control
            .store
            .edge_certificate_count("fleet-3")
            .await
            .expect("count"),
        0
    );

    // Two nodes racing for a token's last use: exactly one enrols.
    let token = fleet(1).await;
    let (a, b) = tokio::join!(
        enrol(&url, &token, "racer-a", timeout),
        enrol(&url, &token, "racer-b", timeout)
    );
    assert_eq!(
        usize::from(a.is_ok()) + usize::from(b.is_ok()),
        1,
        "one winner: {:?} / {:?}",
        a.err().map(|e| e.to_string()),
        b.err().map(|e| e.to_string())
    );

    control.stop().await;
    db.cleanup().await;
}

/// A client identity whose certificate `issuer` made, trusting this control plane's CA.
fn identity_from(
    control: &ControlPlane,
    issuer: &ClusterCa,
    edge_id: &str,
    when: (SystemTime, SystemTime),
) -> ClusterIdentity {
    let (key_pem, csr) = new_key_and_csr(edge_id).expect("csr");
    let issued = issuer
        .issue_between(edge_id, &csr, when.0, when.1)
        .expect("issued");
    ClusterIdentity {
        ca_pem: control.ca.certificate_pem().to_owned(),
        cert_pem: issued.certificate_pem,
        key_pem,
        cluster_id: control.ca.cluster_id().to_owned(),
        cluster_secret: String::new(),
    }
}

async fn foreign_expired_and_revoked_certificates_are_refused(backend: Backend) {
    let (db, control) = cluster_control(backend, 3_600).await;
    let now = SystemTime::now();
    let hour = Duration::from_secs(3_600);

    // Another cluster's CA: the handshake is refused.
    let foreign =
        ClusterCa::from_stored(&ClusterCa::generate("elsewhere").expect("ca")).expect("ca");
    let intruder = identity_from(
        &control,
        &foreign,
        "edge-intruder",
        (now - hour, now + hour),
    );
    client_for(&control, &intruder, "edge-intruder")
        .register(registration("edge-intruder"))
        .await
        .expect_err("a certificate from another cluster's CA is refused");
    audited(
        &control,
        "tls.handshake",
        "bad_certificate",
        "UnknownIssuer",
    )
    .await;

    // This cluster's CA, but expired.
    let stale = identity_from(
        &control,
        control.ca.current().issuing(),
        "edge-stale",
        (now - 2 * hour, now - hour),
    );
    client_for(&control, &stale, "edge-stale")
        .register(registration("edge-stale"))
        .await
        .expect_err("an expired certificate is refused");
    audited(&control, "tls.handshake", "bad_certificate", "Expired").await;

    // An enrolled edge, then revoked.
    let token = join_token(&control, Duration::from_secs(600)).await;
    let identity = enrol(
        &url(&control),
        &token,
        "edge-revoked",
        Duration::from_secs(2),
    )
    .await
    .expect("enrolled");
    let mut linked = client_for(&control, &identity, "edge-revoked");
    linked
        .register(registration("edge-revoked"))
        .await
        .expect("registered over mTLS");
    // Its certificate speaks for itself only.
    let refused = linked
        .register(registration("edge-someone-else"))
        .await
        .expect_err("an edge may not speak for another");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);

    // Its command stream is open and starts with the (empty) revocation list; another edge
    // watches too.
    let mut stream = commands(&mut linked, "edge-revoked").await;
    assert_eq!(
        revocations(&mut stream).await,
        Vec::<(String, String)>::new()
    );
    let token = join_token(&control, Duration::from_secs(600)).await;
    let watcher = enrol(
        &url(&control),
        &token,
        "edge-watcher",
        Duration::from_secs(2),
    )
    .await
    .expect("enrolled");
    let mut watching = client_for(&control, &watcher, "edge-watcher");
    let mut watcher_stream = commands(&mut watching, "edge-watcher").await;
    assert_eq!(
        revocations(&mut watcher_stream).await,
        Vec::<(String, String)>::new()
    );

    let api = Api::of(&control);
    let (_ws, [_owner, admin, editor, _viewer]) = workspace_with_keys(&control, "Revoker").await;
    let revoked = api
        .expect(200, "POST", "/v1/edges/edge-revoked/revoke", &admin, None)
        .await;
    assert_eq!(revoked["revoked_certificates"], 1);
    audited(&control, "edge.revoke", "ok", "").await;
    // The revoked edge's open stream ends at the revocation, not at its next request ...
    stream_ends(&mut stream).await;
    // ... the other edge is handed the list naming it ...
    let list = revocations(&mut watcher_stream).await;
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].1, "edge-revoked");
    // ... the open connection is gone ...
    linked
        .register(registration("edge-revoked"))
        .await
        .expect_err("a revoked edge is refused on its open connection");
    // ... and so is a new connection, at the handshake.
    client_for(&control, &identity, "edge-revoked")
        .register(registration("edge-revoked"))
        .await
        .expect_err("a revoked certificate's handshake is refused");
    audited(&control, "tls.handshake", "bad_certificate", "Revoked").await;

    // Deleting an edge is admin-only, and revokes its certificates with the same bite.
    api.expect(403, "DELETE", "/v1/edges/edge-watcher", &editor, None)
        .await;
    watching
        .register(registration("edge-watcher"))
        .await
        .expect("registered");
    let deleted = api
        .expect(200, "DELETE", "/v1/edges/edge-watcher", &admin, None)
        .await;
    assert_eq!(deleted["revoked_certificates"], 1);
    assert_eq!(deleted["removed"], true);
    audited(&control, "edge.delete", "ok", "revoked_certificates").await;
    stream_ends(&mut watcher_stream).await;
    client_for(&control, &watcher, "edge-watcher")
        .register(registration("edge-watcher"))
        .await
        .expect_err("a deleted edge's certificate is refused");
    api.expect(404, "DELETE", "/v1/edges/edge-never-was", &admin, None)
        .await;

    control.stop().await;
    db.cleanup().await;
}

async fn commands(client: &mut ControlClient, edge_id: &str) -> tonic::Streaming<EdgeCommand> {
    client
        .commands(CommandsRequest {
            edge_id: edge_id.into(),
        })
        .await
        .expect("command stream")
        .into_inner()
}

/// The next revocation list on `stream`, as (serial, edge id) pairs.
async fn revocations(stream: &mut tonic::Streaming<EdgeCommand>) -> Vec<(String, String)> {
    loop {
        let next = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("a command in time")
            .expect("the stream is up")
            .expect("the stream is open");
        if let Some(Command::Revocations(list)) = next.command {
            return list
                .certificates
                .into_iter()
                .map(|c| (c.serial, c.edge_id))
                .collect();
        }
    }
}

/// Waits (at most 10 s, a hang guard) for `stream` to end, skipping what it still carries.
async fn stream_ends(stream: &mut tonic::Streaming<EdgeCommand>) {
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Ok(Some(_)) = stream.message().await {}
    })
    .await
    .expect("the revoked edge's stream ends at the revocation");
}

async fn two_control_planes_starting_at_once_end_with_one_ca(backend: Backend) {
    let db = TestDb::new(backend).await;
    let key = [7u8; 32];
    let open = || async {
        let size = PoolSize {
            min_connections: 1,
            max_connections: 2,
        };
        Store::connect(&db.url, size)
            .await
            .expect("connect")
            .with_encryption_key(&key)
    };
    let (a, b) = (open().await, open().await);
    a.migrate().await.expect("migrate");
    let (first, second) =
        tokio::join!(ClusterCa::load_or_create(&a), ClusterCa::load_or_create(&b));
    let (first, second) = (first.expect("first"), second.expect("second"));
    assert_eq!(first.fingerprint(), second.fingerprint());
    assert_eq!(first.cluster_id(), second.cluster_id());
    let again = ClusterCa::load_or_create(&a).await.expect("a restart");
    assert_eq!(again.fingerprint(), first.fingerprint());
    a.close().await;
    b.close().await;
    db.cleanup().await;
}

on_both_engines!(
    multi_thread;
    an_edge_enrols_links_over_mutual_tls_registers_and_renews,
    bad_join_tokens_are_refused_and_audited,
    a_shared_token_enrols_its_count_of_new_edges_and_no_more,
    foreign_expired_and_revoked_certificates_are_refused,
    two_control_planes_starting_at_once_end_with_one_ca,
);
