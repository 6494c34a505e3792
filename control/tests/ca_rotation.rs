//! Rotating the cluster CA with real processes: `freya dev --edges 2` (the first edge in the dev
//! process, the second a `freya edge` process, both enrolled under the cluster CA). The admin
//! rotates the CA; the second edge is told to renew and takes a certificate from the new CA and
//! a bundle of both CAs; during the overlap each edge's certificate (one under each CA) still
//! links to the control plane over mutual TLS, the two still gossip and the mesh still answers.
//! Then the old CA is retired: the renewed edge still links, a certificate from the old CA is
//! refused in the handshake with a trust-audit entry, a join token made before the retirement is
//! refused naming the new CA, and one made after pins the new CA and enrols. In process, on
//! SQLite and PostgreSQL, `edges.ca_overlap_seconds` retires the old CA without a second call.

use crate::support;

use std::time::Duration;

use freya_edge::control_link::mtls_client;
use freya_edge::mesh::{ControlMessage, MeshTls};
use freya_edge::trust::{enrol, mtls_client_config, ClusterIdentity, ControlTls};
use freya_proto::v1::HeartbeatRequest;
use freya_shared::join_token::fingerprint;

use crate::support::dev_cluster::{state_of, DevCluster};
use crate::support::http::Api;
use crate::support::mesh_probe::{join_unknown_call, probe};
use crate::support::{eventually, Backend};

/// Hang guard for each wait.
const LIMIT: Duration = Duration::from_secs(60);

/// Whether a new mutual TLS link with `identity` gets a heartbeat through to the handler as
/// `edge_id` (an edge that never registered is answered NOT_FOUND by the handler: linked too).
async fn links(url: &str, identity: &ClusterIdentity, edge_id: &str) -> Result<(), String> {
    let tls = ControlTls::new(mtls_client_config(identity).map_err(|e| e.to_string())?);
    let mut client =
        mtls_client(url, tls, edge_id, Duration::from_secs(3)).map_err(|e| e.to_string())?;
    client
        .heartbeat(HeartbeatRequest {
            edge_id: edge_id.into(),
            health: None,
            registrations: Vec::new(),
        })
        .await
        .map(|_| ())
        .or_else(|status| match status.code() {
            tonic::Code::NotFound => Ok(()),
            _ => Err(format!("{status:?}")),
        })
}

/// The issuer (CA) fingerprint `identity`'s certificate chains to, among its bundle.
fn issuer_of(identity: &ClusterIdentity) -> String {
    use x509_parser::prelude::{FromDer, X509Certificate};
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(identity.cert_pem.as_bytes())
        .map(|d: rustls::pki_types::CertificateDer<'static>| d.to_vec())
        .expect("cert pem");
    let (_, cert) = X509Certificate::from_der(&der).expect("cert");
    let issuer = cert.issuer().to_string();
    identity
        .ca_bundle_der()
        .iter()
        .find(|ca| {
            X509Certificate::from_der(ca)
                .map(|(_, c)| c.subject().to_string() == issuer)
                .unwrap_or(false)
        })
        .map(|ca| fingerprint(ca))
        .unwrap_or_default()
}

/// Whether edge 1's mesh answers a join from `identity`'s edge `edge_id` (for a call it does
/// not host) with a hang-up.
async fn mesh_answers(
    identity: &ClusterIdentity,
    edge_id: &str,
    target: std::net::SocketAddr,
) -> bool {
    let mesh = probe(&MeshTls::from_identity(identity), "127.0.0.1");
    let answer = join_unknown_call(&mesh, target, edge_id).await;
    mesh.close();
    matches!(answer, Some(ControlMessage::Hangup { .. }))
}

/// `peer` alive in the gossip view of edge `i`.
async fn gossip_sees(cluster: &DevCluster, i: usize, peer: &str) {
    cluster
        .until_view(i, "the peer alive in gossip", |view| {
            state_of(view, peer) == Some("alive")
        })
        .await;
}

async fn trust_audit_has(api: &Api, key: &str, action: &str, outcome: &str, detail: &str) {
    eventually(
        LIMIT,
        &format!("trust audit {action} {outcome} {detail}"),
        || async {
            let audit = api
                .call("GET", "/v1/edges/trust-audit?limit=500", key, None)
                .await;
            audit
                .body
                .as_array()?
                .iter()
                .any(|e| {
                    e["action"] == action
                        && e["outcome"] == outcome
                        && e.to_string().contains(detail)
                })
                .then_some(())
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rotated_ca_overlaps_then_retires_with_real_edges() {
    let cluster = DevCluster::start(2).await;
    let (edge_1, edge_2) = (cluster.id(0), cluster.id(1));
    let mesh_1 = cluster.mesh(0);
    let api = cluster.api();
    let key = cluster.api_key().to_owned();
    let url = cluster.control_grpc_url();
    eventually(LIMIT, "edge 2 enrolled", || async { cluster.identity(2) }).await;

    let before = api.expect(200, "GET", "/v1/edges/ca", &key, None).await;
    assert_eq!(before["cas"].as_array().expect("cas").len(), 1, "{before}");
    let old_ca = before["cas"][0]["fingerprint"]
        .as_str()
        .expect("fp")
        .to_owned();
    let old_token = api
        .create("/v1/edges/join-tokens", &key, serde_json::json!({}))
        .await;
    assert_eq!(old_token["ca_fingerprint"], old_ca.as_str());

    // Rotate: both CAs trusted, the new one issues; a second rotation now is refused.
    let rotated = api
        .expect(200, "POST", "/v1/edges/ca/rotate", &key, None)
        .await;
    let cas = rotated["cas"].as_array().expect("cas");
    assert_eq!(cas.len(), 2, "{rotated}");
    assert_eq!(cas[0]["fingerprint"], old_ca.as_str());
    assert_eq!(cas[0]["serving"], true);
    assert_eq!(cas[1]["issuing"], true);
    let new_ca = cas[1]["fingerprint"].as_str().expect("fp").to_owned();
    assert_ne!(new_ca, old_ca);
    api.expect(409, "POST", "/v1/edges/ca/rotate", &key, None)
        .await;
    trust_audit_has(&api, &key, "ca.rotate", "ok", &new_ca).await;

    // Edge 2 renews now, onto the new CA, and keeps the bundle of both.
    api.expect(
        202,
        "POST",
        &format!("/v1/edges/{edge_2}/renew"),
        &key,
        None,
    )
    .await;
    let renewed = eventually(LIMIT, "edge 2 renewed onto the new CA", || async {
        let identity = cluster.identity(2)?;
        (identity.ca_bundle_der().len() == 2 && issuer_of(&identity) == new_ca).then_some(identity)
    })
    .await;
    trust_audit_has(&api, &key, "edge.renew", "ok", &new_ca).await;
    let old_identity = cluster.identity(1).expect("an enrolled edge");
    assert_eq!(issuer_of(&old_identity), old_ca, "edge 1 was not renewed");

    // The overlap: an edge under each CA links to the control plane; gossip and mesh work.
    links(&url, &old_identity, &edge_1)
        .await
        .expect("edge 1 (old CA) links");
    links(&url, &renewed, &edge_2)
        .await
        .expect("edge 2 (new CA) links");
    gossip_sees(&cluster, 0, &edge_2).await;
    gossip_sees(&cluster, 1, &edge_1).await;
    // The mesh: an edge not yet renewed trusts the old CA alone, so every edge is renewed
    // during the overlap (the runbook's step); then edge 1, now on the new CA too, answers a
    // join from edge 2's new certificate.
    api.expect(
        202,
        "POST",
        &format!("/v1/edges/{edge_1}/renew"),
        &key,
        None,
    )
    .await;
    eventually(LIMIT, "edge 1 renewed onto the new CA", || async {
        let identity = cluster.identity(1)?;
        (identity.ca_bundle_der().len() == 2 && issuer_of(&identity) == new_ca).then_some(())
    })
    .await;
    assert!(
        mesh_answers(&renewed, &edge_2, mesh_1).await,
        "the mesh answers during the overlap"
    );

    // Retire the old CA.
    let retired = api
        .expect(200, "POST", "/v1/edges/ca/retire", &key, None)
        .await;
    assert_eq!(
        retired["cas"].as_array().expect("cas").len(),
        1,
        "{retired}"
    );
    assert_eq!(retired["cas"][0]["fingerprint"], new_ca.as_str());
    assert_eq!(retired["join_token_fingerprint"], new_ca.as_str());
    api.expect(409, "POST", "/v1/edges/ca/retire", &key, None)
        .await;
    trust_audit_has(&api, &key, "ca.retire", "ok", &old_ca).await;

    // The renewed edge still links; edge 1's old-CA certificate is refused at the handshake,
    // even presented by a client that trusts the new CA, and the refusal is audited.
    links(&url, &renewed, &edge_2)
        .await
        .expect("edge 2 links after retirement");
    let new_ca_pem = retired["cas"][0]["certificate_pem"].as_str().expect("pem");
    let stale = ClusterIdentity {
        ca_pem: new_ca_pem.to_owned(),
        ..old_identity.clone()
    };
    let refused = links(&url, &stale, &edge_1)
        .await
        .expect_err("an old-CA certificate");
    assert!(!refused.is_empty());
    trust_audit_has(
        &api,
        &key,
        "tls.handshake",
        "bad_certificate",
        "UnknownIssuer",
    )
    .await;
    // Edge 1 as it is (trusting the old CA alone) no longer trusts the control plane either.
    links(&url, &old_identity, &edge_1)
        .await
        .expect_err("the server now presents the new CA");
    assert!(
        mesh_answers(&renewed, &edge_2, mesh_1).await,
        "the mesh answers after the retirement"
    );

    // A join token from before the retirement pins the retired CA: refused, naming the new one.
    let timeout = Duration::from_secs(3);
    let old_token = old_token["token"].as_str().expect("token");
    let refused = enrol(&url, old_token, "edge-late", timeout)
        .await
        .expect_err("a token pinning the retired CA");
    let message = format!("{refused:?}");
    assert!(message.contains(&new_ca), "{message}");
    // One made now pins the new CA and enrols.
    let fresh = api
        .create("/v1/edges/join-tokens", &key, serde_json::json!({}))
        .await;
    assert_eq!(fresh["ca_fingerprint"], new_ca.as_str());
    let enrolled = enrol(
        &url,
        fresh["token"].as_str().expect("token"),
        "edge-new",
        timeout,
    )
    .await
    .expect("a fresh token enrols");
    assert_eq!(issuer_of(&enrolled), new_ca);
    links(&url, &enrolled, "edge-new")
        .await
        .expect("the new edge links");
}

/// In process, on both engines: with `edges.ca_overlap_seconds`, the old CA retires itself once
/// the new one is that old, without a second call — audited under the setting's name — and an
/// edge certificate from the old CA is refused from then on, while one from the new CA links.
async fn the_old_ca_retires_itself_after_the_configured_overlap(backend: Backend) {
    use freya_control::trust::rotation::{rotate, RotationActor};
    let db = support::TestDb::new(backend).await;
    let mut config = support::control_config(&db.url);
    config.edges.shared_secret = None;
    config.edges.revocation_poll_ms = 200;
    config.edges.ca_overlap_seconds = Some(1);
    let control = freya_control::server::ControlPlane::start(&config)
        .await
        .expect("control starts");
    let url = format!("https://{}", control.grpc_addr);
    let token = support::join_token(&control, Duration::from_secs(600)).await;
    let timeout = Duration::from_secs(3);
    let before = enrol(&url, &token, "edge-before", timeout)
        .await
        .expect("enrolled under the first CA");
    let old_ca = control.ca.fingerprint();

    let by = RotationActor {
        actor: "test",
        source_ip: None,
    };
    let rotated = rotate(&control.store, &control.ca, &by)
        .await
        .expect("rotated");
    assert_eq!(rotated.cas.len(), 2);
    let new_ca = rotated.cas[1].fingerprint.clone();
    let token = support::join_token(&control, Duration::from_secs(600)).await;
    assert!(token.contains(&old_ca), "tokens pin the serving CA");
    let after = enrol(&url, &token, "edge-after", timeout)
        .await
        .expect("enrolled during the overlap");
    assert_eq!(after.ca_bundle_der().len(), 2, "the bundle of both CAs");
    assert_eq!(issuer_of(&after), new_ca, "issued by the new CA");
    links(&url, &before, "edge-before")
        .await
        .expect("old CA, overlap");
    links(&url, &after, "edge-after")
        .await
        .expect("new CA, overlap");

    eventually(LIMIT, "the old CA retired by itself", || async {
        (control.ca.current().cas().len() == 1).then_some(())
    })
    .await;
    assert_eq!(control.ca.fingerprint(), new_ca);
    // The audit entry follows the retirement it records.
    eventually(LIMIT, "the retirement in the trust audit", || async {
        let audit = control.store.trust_audit(100).await.ok()?;
        audit
            .iter()
            .any(|e| {
                e.action == "ca.retire"
                    && e.detail["actor"] == "edges.ca_overlap_seconds"
                    && e.detail.to_string().contains(&old_ca)
            })
            .then_some(())
    })
    .await;
    let stale = ClusterIdentity {
        ca_pem: after.ca_pem.clone(),
        ..before.clone()
    };
    links(&url, &stale, "edge-before")
        .await
        .expect_err("an old-CA certificate after the overlap");
    links(&url, &after, "edge-after")
        .await
        .expect("new CA, after");
    control.stop().await;
    db.cleanup().await;
}

support::on_both_engines!(multi_thread; the_old_ca_retires_itself_after_the_configured_overlap);
