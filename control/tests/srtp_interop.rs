//! SRTP with SDES keys against a real peer: baresip 1.0 with its `srtp` module and an account
//! set to `mediaenc=srtp-mand` (an `RTP/SAVP` offer with `a=crypto` lines, no plain fallback).
//!
//! - the phone calls an edge whose inbound SRTP is `required`: both sides hear each other — the
//!   edge decrypts and decodes the phone's 440 Hz tone (it is in the call's recording, caller
//!   channel), and the phone decrypts and decodes the agent's greeting (its `sndfile` dump);
//! - during that call, junk, packets under another key and a flood of one replayed packet
//!   reach the edge's RTP port: each is refused and counted
//!   (`freya_edge_srtp_packets_dropped_total{reason}`), and the call goes on;
//! - the refusals, answered 488 with the reason in the phrase and recorded `srtp_mismatch`: a
//!   plain RTP phone when SRTP is required, an SRTP-only phone when it is disabled, and an
//!   SRTP-only phone over UDP when keys may only travel over TLS.
//!
//! The test script installs baresip; where it is absent the tests say so and pass, but never
//! under CI.

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use crate::support::baresip::{self, Baresip, Codec, Setup};
use crate::support::two_way_audio::{assert_heard_both_ways, greeting_desk};
use crate::support::world::World;
use freya_edge::config::SrtpMode;
use freya_edge::rtp::srtp::{SrtpSession, DEFAULT_REPLAY_WINDOW};
use freya_edge::sip::sdp::{CryptoAttribute, KeyMaterial};
use freya_edge::EdgeConfig;

const NUMBER: &str = "+15550190";

async fn world(configure: fn(&mut EdgeConfig)) -> World {
    greeting_desk("SRTP", NUMBER, configure).await
}

fn srtp_phone(tone_hz: Option<u32>) -> Setup {
    Setup {
        mediaenc: Some("srtp-mand"),
        tone_hz,
        keep_received_audio: true,
        ..Setup::plain(Codec::Pcmu)
    }
}

/// The edge's count of refused SRTP packets for `reason`.
async fn dropped(w: &World, reason: &str) -> u64 {
    let text = reqwest::get(format!("http://{}/metrics", w.edge.http_addr))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    let series = format!("freya_edge_srtp_packets_dropped_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&series))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// The edge's RTP address from its answer.
fn answered_rtp(answer: &str) -> SocketAddr {
    let port = answer
        .lines()
        .find_map(|l| l.strip_prefix("m=audio "))
        .and_then(|m| m.split_whitespace().next())
        .and_then(|p| p.parse::<u16>().ok())
        .expect("an m=audio port");
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The phone's own key, from its offer: what the edge decrypts its packets with.
fn offered_key(offer: &str) -> KeyMaterial {
    offer
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix("a=crypto:"))
        .find_map(|value| CryptoAttribute::parse(value).map(|a| a.key))
        .expect("a usable a=crypto line in the phone's offer")
}

/// A PCMU packet of SSRC `ssrc`.
fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0xff; 160]);
    p
}

/// Junk, packets under a stranger's key, and one packet under the phone's own key replayed
/// `replays` times, all sent to the edge's RTP port from another socket.
fn attack(edge_rtp: SocketAddr, phone_key: &KeyMaterial, replays: usize) -> (u64, u64) {
    let attacker = UdpSocket::bind("127.0.0.1:0").expect("attacker socket");
    let mut forged = 0;
    for i in 0..50u16 {
        let mut junk = rtp(i, 0xdead_beef);
        junk.extend_from_slice(&[0x42; 10]);
        attacker.send_to(&junk, edge_rtp).expect("send");
        forged += 1;
    }
    let stranger = KeyMaterial::generate(phone_key.suite());
    let mut mallory = SrtpSession::from_material(&stranger, &stranger, DEFAULT_REPLAY_WINDOW);
    for i in 0..50u16 {
        let mut p = rtp(i, 0x0bad_cafe);
        mallory.protect_rtp(&mut p).expect("protect");
        attacker.send_to(&p, edge_rtp).expect("send");
        forged += 1;
    }
    // Under the phone's real key (read from its offer, as an eavesdropper on plain SIP could)
    // but on an SSRC of its own: accepted once (then dropped as foreign), refused as a replay
    // every time after.
    let mut copier = SrtpSession::from_material(phone_key, phone_key, DEFAULT_REPLAY_WINDOW);
    let mut p = rtp(30_000, 0x00c0_ffee);
    copier.protect_rtp(&mut p).expect("protect");
    // Paced (500 a second) so that the edge's per-tick read budget and the socket's buffer
    // take them all: what is measured is the replay list, not the kernel dropping a flood.
    for _ in 0..=replays {
        attacker.send_to(&p, edge_rtp).expect("send");
        std::thread::sleep(Duration::from_millis(2));
    }
    (forged, replays as u64)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baresip_caller_with_mandatory_srtp_hears_and_is_heard_through_an_attack() {
    if !baresip::installed() {
        return;
    }
    let w = world(|config| {
        config.srtp.inbound = SrtpMode::Required;
        // The phone speaks SIP over UDP on loopback; keys over plain SIP are allowed here.
        config.srtp.allow_without_tls = true;
    })
    .await;
    let mut phone = Baresip::start_with(srtp_phone(Some(440))).await;
    phone
        .dial(&format!("sip:{NUMBER}@{}", w.edge.sip_addr))
        .await;
    phone.event("CALL_ESTABLISHED").await;
    let offer = phone.sdp_of("INVITE ");
    let answer = phone.sdp_of("SIP/2.0 200 OK");
    assert!(
        offer.contains("m=audio") && offer.contains("RTP/SAVP"),
        "{offer}"
    );
    assert!(answer.contains(" RTP/SAVP "), "answered SRTP: {answer}");
    let ours = answer
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("a=crypto:"))
        .and_then(CryptoAttribute::parse)
        .expect("our a=crypto in the answer");
    let theirs = offered_key(&offer);
    assert_ne!(ours.key, theirs, "the edge's key is its own");

    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let (auth_before, replay_before) = (dropped(&w, "auth").await, dropped(&w, "replay").await);
    let edge_rtp = answered_rtp(&answer);
    let (forged, replays) = tokio::task::spawn_blocking(move || attack(edge_rtp, &theirs, 300))
        .await
        .expect("attack");
    // The call goes on: the tone keeps arriving and the greeting keeps playing.
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    phone.command("hangup", "").await.expect("hangup");
    phone.event("CALL_CLOSED").await;

    let auth = dropped(&w, "auth").await - auth_before;
    let replay = dropped(&w, "replay").await - replay_before;
    assert!(
        auth >= forged,
        "junk and a stranger's key refused: {auth} of {forged}"
    );
    assert_eq!(
        replay, replays,
        "every copy after the first refused as a replay"
    );

    let (call, events) = w.ended_call().await;
    assert_eq!(call.end_reason.as_deref(), Some("caller_hangup"));
    let ended = events
        .iter()
        .find(|e| e.kind == "call.ended")
        .expect("call.ended");
    let received = ended.payload["rtp"]["received"].as_u64().unwrap_or(0);
    assert!(
        received > 150,
        "the phone's SRTP decrypted: {received} packets"
    );

    // The edge heard the phone (the recording's caller channel holds the tone), and the
    // phone the agent.
    let kinds: Vec<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_heard_both_ways(&w, &phone, &call.id, &format!("events {kinds:?}")).await;
    phone.stop().await;
    w.stop().await;
}

/// A phone set up as `setup` calls an edge configured by `configure`: refused with 488, whose
/// phrase says why, and recorded as `call.failed` with reason `srtp_mismatch`.
async fn refused(configure: fn(&mut EdgeConfig), setup: Setup, phrase: &str) {
    let w = world(configure).await;
    let mut phone = Baresip::start_with(setup).await;
    phone
        .dial(&format!("sip:{NUMBER}@{}", w.edge.sip_addr))
        .await;
    phone.event("CALL_CLOSED").await;
    let messages = phone.sip_messages();
    let refusal = messages
        .iter()
        .find(|m| m.contains("\nSIP/2.0 488 "))
        .unwrap_or_else(|| panic!("a 488:\n{}", phone.trace()));
    assert!(refusal.contains(phrase), "{refusal}");
    let payload = w.refusal_record().await;
    assert_eq!(payload["reason"], "srtp_mismatch", "{payload}");
    assert_eq!(payload["code"], 488);
    phone.stop().await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_rtp_caller_is_refused_when_srtp_is_required() {
    if !baresip::installed() {
        return;
    }
    refused(
        |config| {
            config.srtp.inbound = SrtpMode::Required;
            config.srtp.allow_without_tls = true;
        },
        Setup::plain(Codec::Pcmu),
        "SRTP required",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_srtp_only_caller_is_refused_when_srtp_is_disabled_or_without_tls() {
    if !baresip::installed() {
        return;
    }
    refused(
        |config| config.srtp.inbound = SrtpMode::Disabled,
        srtp_phone(None),
        "SRTP not accepted",
    )
    .await;
    // The default: optional, keys only over TLS. This phone's SIP is UDP.
    refused(|_| {}, srtp_phone(None), "without SIP over TLS").await;
}
