//! Attacks on a live call by someone who is not in it, end to end with real sockets on
//! 127.0.0.1: a caller written by hand (SIP and RTP on this test's sockets) calls an edge linked
//! to a real control plane, and a stranger on sockets of its own
//! - sends RTP to the call's port mid-call: the edge must keep its audio with the caller, drop
//!   the stranger's packets and count them (the call record's `rtp.foreign`, the edge's
//!   `freya_edge_rtp_foreign_packets_total`);
//! - sends BYE and INFO (DTMF relay) naming the call's Call-ID without its dialog's tags: both
//!   get 481 and the call goes on, without the stranger's key press.

use std::time::Duration;

use crate::support::raw_sip::{recv_sip, Call, CALLER_TAG};
use crate::support::world::World;
use freya_edge::rtp::packet::RtpPacket;
use tokio::net::UdpSocket;

/// The Call-ID of the call under attack.
const CALL_ID: &str = "integrity-1";

/// An RTP packet of 20 ms of µ-law `level` (0xff silence, 0x00 loudest) from `ssrc`.
fn rtp(seq: u16, ssrc: u32, level: u8) -> Vec<u8> {
    let mut packet = vec![0x80, 0];
    packet.extend_from_slice(&seq.to_be_bytes());
    packet.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    packet.extend_from_slice(&ssrc.to_be_bytes());
    packet.extend_from_slice(&[level; 160]);
    packet
}

/// RTP packets from the edge that reached `socket` within `window`.
async fn count_rtp(socket: &UdpSocket, window: Duration) -> usize {
    let mut buf = [0u8; 2048];
    let mut count = 0;
    let deadline = tokio::time::Instant::now() + window;
    while let Ok(Ok((n, _))) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
        if RtpPacket::parse(&buf[..n]).is_ok_and(|p| p.payload_type == 0) {
            count += 1;
        }
    }
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtp_from_a_second_address_mid_call_is_dropped_and_counted_and_the_caller_keeps_the_stream()
{
    let w = World::builder().workspace("Integrity").start().await;
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").await.expect("rtp");
    let stranger = UdpSocket::bind("127.0.0.1:0").await.expect("stranger");
    let call = Call::dial(w.edge.sip_addr, &caller_rtp, "demo", CALL_ID).await;

    // The caller talks for three seconds (silence); in the second one a stranger sends its own
    // loud audio to the call's port as well. The caller's socket is drained as it goes.
    const STRANGER_PACKETS: u16 = 50;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    let mut caller_sent = 0u64;
    let mut heard_by_caller = [0usize; 3];
    let mut buf = [0u8; 2048];
    for n in 0..150u16 {
        tick.tick().await;
        caller_rtp
            .send_to(&rtp(n, 0x00c0_ffee, 0xff), call.edge_rtp)
            .await
            .expect("caller RTP");
        caller_sent += 1;
        if (50..50 + STRANGER_PACKETS).contains(&n) {
            stranger
                .send_to(&rtp(1000 + n, 0xbad_5eed, 0x00), call.edge_rtp)
                .await
                .expect("stranger RTP");
        }
        while let Ok((len, _)) = caller_rtp.try_recv_from(&mut buf) {
            if RtpPacket::parse(&buf[..len]).is_ok() {
                heard_by_caller[usize::from(n / 50)] += 1;
            }
        }
    }
    let heard_by_stranger = count_rtp(&stranger, Duration::from_millis(200)).await;
    let metrics = reqwest::get(format!("http://{}/metrics", w.edge.http_addr))
        .await
        .expect("edge /metrics")
        .text()
        .await
        .expect("metrics text");
    call.hang_up(2).await;

    assert_eq!(heard_by_stranger, 0, "the edge sent the stranger nothing");
    for (second, heard) in heard_by_caller.iter().enumerate() {
        assert!(
            *heard >= 30,
            "the caller kept hearing the edge in second {second}: {heard_by_caller:?}"
        );
    }
    assert!(
        metrics.contains(&format!(
            "freya_edge_rtp_foreign_packets_total {STRANGER_PACKETS}"
        )),
        "{metrics}"
    );
    let (call_record, events) = w.ended_call().await;
    assert_eq!(call_record.end_reason.as_deref(), Some("caller_hangup"));
    let ended = events
        .iter()
        .find(|e| e.kind == "call.ended")
        .expect("call.ended");
    let rtp_record = &ended.payload["rtp"];
    assert_eq!(
        rtp_record["foreign"],
        u64::from(STRANGER_PACKETS),
        "{rtp_record}"
    );
    let received = rtp_record["received"].as_u64().expect("received");
    assert!(
        received <= caller_sent,
        "none of the stranger's packets reached the call: {rtp_record}"
    );
    w.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_strangers_bye_and_info_naming_the_call_id_get_481_and_the_call_goes_on() {
    let w = World::builder().workspace("Integrity").start().await;
    let caller_rtp = UdpSocket::bind("127.0.0.1:0").await.expect("rtp");
    let call = Call::dial(w.edge.sip_addr, &caller_rtp, "demo", CALL_ID).await;
    let stranger = UdpSocket::bind("127.0.0.1:0").await.expect("stranger");
    let from = stranger.local_addr().expect("addr");

    // The stranger knows the Call-ID (and even the caller's tag), not the edge's tag.
    let forgeries = [
        call.request("BYE", 7, from, CALLER_TAG, None, "", ""),
        call.request("BYE", 8, from, CALLER_TAG, Some("guessed"), "", ""),
        call.request(
            "INFO",
            9,
            from,
            "stranger",
            Some(&call.tag),
            "application/dtmf-relay",
            "Signal=9\r\nDuration=160\r\n",
        ),
    ];
    for forged in &forgeries {
        stranger
            .send_to(forged.as_bytes(), w.edge.sip_addr)
            .await
            .expect("forged request");
        let answer = recv_sip(&stranger, "SIP/2.0", Duration::from_secs(5)).await;
        assert!(
            answer.starts_with("SIP/2.0 481 Call/Transaction Does Not Exist"),
            "{forged}\n->\n{answer}"
        );
    }
    // The call goes on: the edge still sends the caller its audio.
    assert!(count_rtp(&caller_rtp, Duration::from_millis(500)).await >= 15);
    assert_eq!(w.edge.state.active_calls(), 1);
    call.hang_up(2).await;

    let (call_record, events) = w.ended_call().await;
    assert_eq!(call_record.end_reason.as_deref(), Some("caller_hangup"));
    assert!(
        !events.iter().any(|e| e.kind == "call.dtmf"),
        "the stranger pressed no key: {events:#?}"
    );
    w.teardown().await;
}
