//! SRTP over SIP over TLS, end to end with real peers, both directions, and the answers an
//! edge must not carry as plain RTP:
//!
//! - the edge places a call through a TLS trunk with `srtp: required` to baresip (TLS
//!   listener with the test CA's certificate, `mediaenc=srtp-mand`, answering at once): the
//!   offer is `RTP/SAVP` with keys, and both sides decode each other's audio (the phone's tone
//!   in the call's recording, the agent's greeting in the phone's dump);
//! - baresip calls the edge over TLS with mandatory SRTP, keys never allowed over plain SIP:
//!   answered `RTP/SAVP` and both sides heard (the edge's Contact says `sip:...;transport=tls`,
//!   which baresip, unable to dial `sips:`, follows);
//! - a callee (sipp) answers our SRTP offer with plain RTP, with a broken key, with a key
//!   under a tag we never offered, or with two keys: each call is ended by our BYE (sipp's
//!   scenario waits for it) and recorded `call.failed` with reason `srtp_mismatch`.
//!
//! The test script installs baresip; where it is absent the baresip tests say so and pass,
//! but never under CI.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use freya_control::store::Role;
use freya_edge::config::SrtpMode;
use freya_edge::EdgeConfig;
use freya_shared::model::{SipTransport, SipTrunkSpec, TrunkSrtp};
use reqwest::StatusCode;
use support::baresip::{self, Baresip, Codec, Setup};
use support::caller::free_udp_port;
use support::eventually;
use support::http::Api;
use support::world::{udp_trunk, World};

const NUMBER: &str = "+15550191";

fn testdata(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../edge/src/sip/transport/tls/testdata")
        .join(name)
        .display()
        .to_string()
}

fn baresip_installed() -> bool {
    if baresip::available() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "baresip is missing: deploy/test.sh installs it (package baresip-core)"
    );
    eprintln!("SKIPPED: baresip is not installed (apt-get install baresip-core)");
    false
}

/// An edge with a TLS listener (the test CA's leaf for 127.0.0.1) that trusts the test CA for
/// trunks, and an agent that greets and records.
async fn world(configure: fn(&mut EdgeConfig)) -> World {
    World::builder()
        .workspace("SRTP over TLS")
        .agent(serde_json::json!({
            "name": "Desk",
            "first_message": "Hello, you are through to the desk. How can I help you today?",
            "record": true,
        }))
        .number(NUMBER)
        .voice()
        .edge_config(move |config| {
            config.sip.tls_listen = Some("127.0.0.1:0".into());
            config.sip.tls_cert_file = Some(testdata("edge.pem"));
            config.sip.tls_key_file = Some(testdata("edge.key"));
            config.sip.tls_ca_file = Some(testdata("ca.pem"));
            configure(config);
        })
        .start()
        .await
}

fn tls_srtp_phone() -> Setup {
    Setup {
        mediaenc: Some("srtp-mand"),
        tone_hz: Some(440),
        keep_received_audio: true,
        tls: true,
        auto_answer: true,
        ..Setup::plain(Codec::Pcmu)
    }
}

/// Samples louder than a quiet room, in milliseconds at 8 kHz.
fn audible_ms(samples: &[i16]) -> usize {
    samples.iter().filter(|s| s.unsigned_abs() > 1_000).count() / 8
}

/// The first SIP message in `messages` that starts with `start` and carries SDP.
fn sdp_of(messages: &[String], start: &str) -> String {
    messages
        .iter()
        .filter_map(|m| m.split_once('\n').map(|(_, message)| message))
        .find(|m| m.starts_with(start) && m.contains("\nm=audio"))
        .unwrap_or_else(|| panic!("a {start} with SDP in {messages:#?}"))
        .to_owned()
}

/// The caller and agent channels of the workspace's recorded call.
async fn recording(w: &World) -> (Vec<i16>, Vec<i16>) {
    let recorded = eventually(Duration::from_secs(30), "the call's recording", || {
        let (store, scope) = (w.control.store.clone(), w.scope.clone());
        async move {
            let calls = store.calls(&scope, 10).await.ok()?;
            calls.into_iter().find(|c| c.recording.is_some())
        }
    })
    .await;
    let api = Api::of(&w.control);
    let viewer = w.key(Role::Viewer).await;
    let detail = api
        .call("GET", &format!("/v1/calls/{}", recorded.id), &viewer, None)
        .await;
    assert_eq!(detail.status, StatusCode::OK, "{}", detail.body);
    let url = detail.body["recording"]["url"]
        .as_str()
        .expect("a recording url")
        .to_owned();
    let wav = api
        .http
        .get(format!("{}{url}", api.base))
        .bearer_auth(&viewer)
        .send()
        .await
        .expect("recording")
        .bytes()
        .await
        .expect("recording bytes");
    wav.get(44..)
        .unwrap_or_default()
        .chunks_exact(4)
        .map(|f| {
            (
                i16::from_le_bytes([f[0], f[1]]),
                i16::from_le_bytes([f[2], f[3]]),
            )
        })
        .unzip()
}

/// Both sides heard each other through SRTP: the phone's tone in the edge's recording of the
/// far party, the agent's greeting in what the phone decoded.
async fn both_heard(w: &World, phone: &Baresip) {
    let (far, agent) = recording(w).await;
    let heard = phone.received_audio();
    let report = format!(
        "audible ms: phone sent {}, edge recorded the phone {}, the agent {}, phone decoded {}; \
         spoken {:?}",
        audible_ms(&phone.sent_audio()),
        audible_ms(&far),
        audible_ms(&agent),
        audible_ms(&heard),
        w.spoken(),
    );
    assert!(
        audible_ms(&far) > 1_500,
        "the edge decrypted and decoded the phone's tone: {report}"
    );
    assert!(
        audible_ms(&heard) > 300,
        "the phone decrypted and decoded the agent's greeting: {report}\n{}",
        phone.trace()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbound_call_over_a_tls_trunk_with_srtp_required_is_heard_both_ways() {
    if !baresip_installed() {
        return;
    }
    let w = world(|_| {}).await;
    let mut phone = Baresip::start_with(tls_srtp_phone()).await;
    w.set_trunks(vec![SipTrunkSpec {
        transport: SipTransport::Tls,
        srtp: TrunkSrtp::Required,
        ..udp_trunk("secure", phone.sip_tls_addr.port(), 1)
    }]);
    let call_id = w.place_call_by_command("phone").await;
    phone.event("CALL_ESTABLISHED").await;
    let messages = phone.sip_messages();
    let offer = sdp_of(&messages, "INVITE ");
    let answer = sdp_of(&messages, "SIP/2.0 200 ");
    assert!(
        messages.iter().any(|m| m.starts_with("TLS ")),
        "signalling over TLS: {messages:#?}"
    );
    assert!(
        offer.contains(" RTP/SAVP "),
        "we offered SRTP only: {offer}"
    );
    assert!(
        offer.contains("a=crypto:1 AEAD_AES_128_GCM inline:")
            && offer.contains("a=crypto:2 AES_CM_128_HMAC_SHA1_80 inline:"),
        "both suites offered: {offer}"
    );
    assert!(answer.contains(" RTP/SAVP "), "answered SRTP: {answer}");
    tokio::time::sleep(Duration::from_millis(5_000)).await;
    phone.command("hangup", "").await.expect("hangup");
    phone.event("CALL_CLOSED").await;
    w.finished_call(&call_id).await;
    let kinds: Vec<String> = w
        .events_of(&call_id)
        .await
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(
        kinds.iter().any(|k| k == "call.answered") && !kinds.iter().any(|k| k == "call.failed"),
        "{kinds:?}"
    );
    both_heard(&w, &phone).await;
    phone.stop().await;
    w.stop().await;
}

/// baresip dials `sip:...;transport=tls` (it cannot dial `sips:`) and sends its ACK to our
/// Contact, so that Contact must be `sip:...;transport=tls` too (RFC 3261 section 12.1.1
/// asks for `sips:` only when the INVITE's Request-URI was `sips:`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baresip_caller_over_tls_with_mandatory_srtp_is_heard_both_ways() {
    if !baresip_installed() {
        return;
    }
    // Required, and keys never over plain SIP (the default): only TLS can carry this call.
    let w = world(|config| config.srtp.inbound = SrtpMode::Required).await;
    let tls = w.edge.sip_tls_addr.expect("the edge's TLS listener");
    let mut phone = Baresip::start_with(Setup {
        auto_answer: false,
        ..tls_srtp_phone()
    })
    .await;
    phone
        .dial(&format!("sip:{NUMBER}@{tls};transport=tls"))
        .await;
    phone.event("CALL_ESTABLISHED").await;
    let messages = phone.sip_messages();
    let answer = sdp_of(&messages, "SIP/2.0 200 ");
    assert!(
        messages.iter().any(|m| m.starts_with("TLS ")),
        "{messages:#?}"
    );
    assert!(
        answer.contains(" RTP/SAVP ") && answer.contains("a=crypto:"),
        "{answer}"
    );
    tokio::time::sleep(Duration::from_millis(5_000)).await;
    phone.command("hangup", "").await.expect("hangup");
    phone.event("CALL_CLOSED").await;
    let (call, _) = w.ended_call().await;
    assert_eq!(call.end_reason.as_deref(), Some("caller_hangup"));
    both_heard(&w, &phone).await;
    phone.stop().await;
    w.stop().await;
}

/// A sipp callee answering with `proto` and `a=<attr>` to our offer through a UDP trunk with
/// `srtp` (keys allowed over UDP on loopback): whether sipp saw our BYE, and the call's
/// `call.failed` payload.
async fn hostile_answer(srtp: TrunkSrtp, proto: &str, attr: &str) -> serde_json::Value {
    let w = World::builder()
        .workspace("Hostile answers")
        .agent(serde_json::json!({"name": "Caller"}))
        .start()
        .await;
    let work = tempfile::tempdir().expect("temp dir");
    let port = free_udp_port();
    let scenario =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/sipp/uas_answer_keyed.xml");
    let mut sipp = tokio::process::Command::new("sipp")
        .arg("-sf")
        .arg(scenario)
        .args(["-p", &port.to_string(), "-m", "1", "-i", "127.0.0.1"])
        .args(["-mp", &free_udp_port().to_string()])
        .args(["-key", "proto", proto, "-key", "attr", attr])
        .args(["-timeout", "30s", "-nostdin", "-trace_err"])
        .current_dir(work.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("sipp runs (install sip-tester: deploy/test.sh does)");
    tokio::time::sleep(Duration::from_millis(400)).await;
    w.set_trunks(vec![SipTrunkSpec {
        srtp,
        srtp_allow_without_tls: true,
        ..udp_trunk("keyed", port, 1)
    }]);
    let call_id = w.place_call_by_command("+15557770010").await;
    let status = tokio::time::timeout(Duration::from_secs(30), sipp.wait())
        .await
        .expect("sipp finishes")
        .expect("sipp status");
    assert!(
        status.success(),
        "the callee got our BYE ({proto}, a={attr})"
    );
    let failed = eventually(Duration::from_secs(10), "call.failed", || {
        let (store, scope, id) = (w.control.store.clone(), w.scope.clone(), call_id.clone());
        async move {
            let events = store.call_events(&scope, &id).await.ok()?;
            events
                .into_iter()
                .find(|e| e.kind == "call.failed")
                .map(|e| e.payload)
        }
    })
    .await;
    w.stop().await;
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_that_would_carry_srtp_calls_as_plain_rtp_end_the_call() {
    const KEY: &str = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR";
    let cases = [
        (
            TrunkSrtp::Required,
            "RTP/AVP",
            "sendrecv".to_owned(),
            "plain RTP",
        ),
        (
            TrunkSrtp::Required,
            "RTP/SAVP",
            "crypto:1 AEAD_AES_128_GCM inline:!!!!notbase64!!!!".to_owned(),
            "unusable",
        ),
        (
            TrunkSrtp::Optional,
            "RTP/SAVP",
            format!("crypto:2 AES_CM_128_HMAC_SHA1_80 inline:{KEY}|2^20|1:4"),
            "unusable",
        ),
        (
            TrunkSrtp::Required,
            "RTP/SAVP",
            format!("crypto:9 AES_CM_128_HMAC_SHA1_80 inline:{KEY}"),
            "tag 9 was not offered",
        ),
        (
            TrunkSrtp::Required,
            "RTP/SAVP",
            format!("crypto:1 AES_CM_128_HMAC_SHA1_80 inline:{KEY}"),
            "offered as AEAD_AES_128_GCM",
        ),
    ];
    for (srtp, proto, attr, says) in cases {
        let failed = hostile_answer(srtp, proto, &attr).await;
        assert_eq!(failed["reason"], "srtp_mismatch", "{attr}: {failed}");
        let description = failed.to_string();
        assert!(description.contains(says), "{attr}: {failed}");
    }
}
