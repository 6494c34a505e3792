//! A trunk set to register shows its registration on the provider API: an edge linked to a
//! real control plane registers with a sipp registrar (401 challenge, MD5 digest checked by
//! sipp, a 2 s binding), reports it in its heartbeat, and `GET /v1/providers/{id}` (and the
//! list the dashboard reads) shows `registered` with `expires_at`; when the registrar is gone
//! the refresh fails and the API shows `failed` with the error. A trunk that does not register
//! shows no `registration`.

use std::time::Duration;

use serde_json::{json, Value};

use crate::support::caller::free_udp_port;
use crate::support::http::Api;
use crate::support::world::World;
use freya_control::store::Role;

/// Longest any step waits (a hang guard, not a measure).
const HANG_GUARD: Duration = Duration::from_secs(60);

/// sipp running `registrar_brief.xml` once on 127.0.0.1:`port`.
fn registrar(port: u16, work: &tempfile::TempDir) -> tokio::process::Child {
    let scenario =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/registrar_brief.xml");
    tokio::process::Command::new("sipp")
        .arg("-sf")
        .arg(scenario)
        .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-m", "1"])
        .args(["-timeout", "40s", "-nostdin", "-trace_err"])
        .current_dir(work.path())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp runs (deploy/test.sh installs it)")
}

/// Waits until provider `id`'s registration is in `state`, and returns it; on timeout the
/// message shows the API's last answer and the edge's own view (`GET /registrations`).
async fn until_state(api: &Api, world: &World, key: &str, id: &str, state: &str) -> Value {
    let path = format!("/v1/providers/{id}");
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    loop {
        let provider = api.expect(200, "GET", &path, key, None).await;
        if provider["registration"]["state"] == state {
            return provider["registration"].clone();
        }
        if tokio::time::Instant::now() > deadline {
            let edge = reqwest::get(format!("http://{}/registrations", world.edge.http_addr))
                .await
                .expect("the edge answers")
                .text()
                .await
                .unwrap_or_default();
            panic!("never {state}: the API shows {provider}; the edge shows {edge}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn the_provider_api_shows_a_trunk_registered_then_failed_when_its_registrar_goes_away() {
    let world = World::builder()
        .edge_config(|c| {
            c.sip.registration_retry_base_ms = 300;
            c.sip.registration_retry_max_ms = 1_000;
        })
        .start()
        .await;
    let api = Api::of(&world.control);
    let admin = world.key(Role::Admin).await;
    let port = free_udp_port();
    let work = tempfile::tempdir().expect("sipp dir");
    let mut sipp = registrar(port, &work);
    tokio::time::sleep(Duration::from_millis(300)).await; // sipp binds its port

    let plain = api
        .create(
            "/v1/providers",
            &admin,
            json!({"name": "Carrier", "host": "127.0.0.1", "port": 5999}),
        )
        .await;
    let trunk = api
        .create(
            "/v1/providers",
            &admin,
            json!({
                "name": "PBX", "host": "127.0.0.1", "port": port,
                "username": "1001", "password": "secret",
                "registration": {"expires_seconds": 60, "number": world.number},
            }),
        )
        .await;
    let id = trunk["id"].as_str().expect("id").to_owned();

    let registered = until_state(&api, &world, &admin, &id, "registered").await;
    let expires_at = registered["expires_at"].as_str().expect("expires_at");
    assert!(expires_at.ends_with('Z'), "RFC 3339: {registered}");
    assert!(registered["last_error"].is_null(), "{registered}");
    let listed = api.expect(200, "GET", "/v1/providers", &admin, None).await;
    let shown = listed["data"]
        .as_array()
        .expect("list")
        .iter()
        .find(|p| p["id"] == id.as_str())
        .expect("the trunk is listed")
        .clone();
    assert_eq!(shown["registration"]["state"], "registered", "{shown}");
    let carrier = api
        .expect(
            200,
            "GET",
            &format!("/v1/providers/{}", plain["id"].as_str().expect("id")),
            &admin,
            None,
        )
        .await;
    assert!(carrier.get("registration").is_none(), "{carrier}");

    // The registrar took the challenge and the credentials, granted 2 s, and is gone.
    let status = tokio::time::timeout(HANG_GUARD, sipp.wait())
        .await
        .expect("sipp finishes in time")
        .expect("sipp status");
    assert!(
        status.success(),
        "the registrar's scenario went as scripted"
    );

    let failed = until_state(&api, &world, &admin, &id, "failed").await;
    assert!(
        failed["last_error"].as_str().is_some_and(|e| !e.is_empty()),
        "the API says why: {failed}"
    );
    world.teardown().await;
}
