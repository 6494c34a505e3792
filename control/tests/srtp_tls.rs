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

use std::path::PathBuf;
use std::time::Duration;

use crate::support::baresip::{self, Baresip, Codec, Setup};
use crate::support::caller::{free_udp_port, sipp_uas};
use crate::support::eventually;
use crate::support::two_way_audio::{assert_heard_both_ways, greeting_desk};
use crate::support::world::{udp_trunk, World};
use freya_edge::config::SrtpMode;
use freya_edge::EdgeConfig;
use freya_shared::model::{SipTransport, SipTrunkSpec, TrunkSrtp};

const NUMBER: &str = "+15550191";

fn testdata(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../edge/src/sip/transport/tls/testdata")
        .join(name)
        .display()
        .to_string()
}

/// An edge with a TLS listener (the test CA's leaf for 127.0.0.1) that trusts the test CA for
/// trunks, and an agent that greets and records.
async fn world(configure: fn(&mut EdgeConfig)) -> World {
    greeting_desk("SRTP over TLS", NUMBER, move |config| {
        config.sip.tls_listen = Some("127.0.0.1:0".into());
        config.sip.tls_cert_file = Some(testdata("edge.pem"));
        config.sip.tls_key_file = Some(testdata("edge.key"));
        config.sip.tls_ca_file = Some(testdata("ca.pem"));
        configure(config);
    })
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outbound_call_over_a_tls_trunk_with_srtp_required_is_heard_both_ways() {
    if !baresip::installed() {
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
    let offer = phone.sdp_of("INVITE ");
    let answer = phone.sdp_of("SIP/2.0 200 ");
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
    assert_heard_both_ways(&w, &phone, &call_id, "").await;
    phone.stop().await;
    w.stop().await;
}

/// baresip dials `sip:...;transport=tls` (it cannot dial `sips:`) and sends its ACK to our
/// Contact, so that Contact must be `sip:...;transport=tls` too (RFC 3261 section 12.1.1
/// asks for `sips:` only when the INVITE's Request-URI was `sips:`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baresip_caller_over_tls_with_mandatory_srtp_is_heard_both_ways() {
    if !baresip::installed() {
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
    let answer = phone.sdp_of("SIP/2.0 200 ");
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
    assert_heard_both_ways(&w, &phone, &call.id, "").await;
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
    let media_port = free_udp_port().to_string();
    let (mut sipp, _work, port) = sipp_uas(
        "uas_answer_keyed.xml",
        &[
            "-m",
            "1",
            "-mp",
            &media_port,
            "-key",
            "proto",
            proto,
            "-key",
            "attr",
            attr,
        ],
        "30s",
    );
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
