//! The QUIC mesh over real UDP on 127.0.0.1 and 127.0.0.2, with certificates from `rcgen`:
//! two edges of one cluster carry a leg's audio both ways and its control messages; a peer
//! whose certificate comes from another CA is refused in the handshake, both as a client and as
//! a server; a peer of the cluster that sends junk datagrams, an oversized control message, and
//! frames and a hang-up naming another peer's leg has them dropped and counted while the real
//! leg keeps working.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use freya_edge::mesh::remote_leg::{RemotePlayout, FRAME_SAMPLES};
use freya_edge::mesh::tls::{dev_pki, MESH_SERVER_NAME};
use freya_edge::mesh::{
    AudioFrame, AudioHeader, ControlMessage, HangupCause, LegKey, Mesh, MeshInbound, MeshSettings,
    MeshTls, PayloadKind, RemoteLegAudio,
};
use freya_edge::rtp::jitter::JitterConfig;
use tokio::sync::mpsc;

use crate::support::mesh_peer::{key, next_join, start_with, until, LIMIT};

fn start(ip: &str, tls: &MeshTls) -> (Mesh, mpsc::Receiver<(SocketAddr, ControlMessage)>) {
    start_with(ip, tls, MeshSettings::default())
}

fn tone(n: u32, level: i16) -> Vec<u8> {
    (0..FRAME_SAMPLES as u32)
        .flat_map(|i| {
            let t = (n * FRAME_SAMPLES as u32 + i) as f32 / 8_000.0;
            let s = (f32::from(level) * (2.0 * std::f32::consts::PI * 440.0 * t).sin()) as i16;
            s.to_le_bytes()
        })
        .collect()
}

/// Sends `frames` 20 ms frames of a tone on `key` to `peer`, on a real 20 ms clock.
async fn speak(mesh: &Mesh, peer: SocketAddr, key: LegKey, frames: u32, level: i16) -> u32 {
    let mut buf = Vec::new();
    let mut sent = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for n in 0..frames {
        tick.tick().await;
        let payload = tone(n, level);
        let frame = AudioFrame {
            header: AudioHeader {
                key,
                kind: PayloadKind::L16,
                sequence: n as u16,
                timestamp: n * FRAME_SAMPLES as u32,
            },
            payload: &payload,
        };
        if mesh.send_audio(peer, &frame, &mut buf) {
            sent += 1;
        }
    }
    sent
}

/// Plays what arrives for a leg through its jitter buffer for `ticks` ticks; returns the frames
/// played and the loudest sample heard.
async fn hear(rx: &mut mpsc::Receiver<MeshInbound>, ticks: u32) -> (u32, i16) {
    let mut leg = RemoteLegAudio::new(JitterConfig::default()).expect("leg");
    let mut out = [0i16; FRAME_SAMPLES];
    let (mut played, mut loudest) = (0, 0i16);
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for _ in 0..ticks {
        tick.tick().await;
        while let Ok(inbound) = rx.try_recv() {
            if let MeshInbound::Audio { header, payload } = inbound {
                leg.push(Instant::now(), &header, &payload);
            }
        }
        if leg.pop(Instant::now(), &mut out) == RemotePlayout::Frame {
            played += 1;
            loudest = loudest.max(out.iter().copied().max().unwrap_or(0));
        }
    }
    (played, loudest)
}

#[tokio::test]
async fn a_leg_s_audio_and_hang_up_cross_the_mesh_both_ways() {
    let pki = dev_pki("test cluster", &["edge-a", "edge-b"]).expect("pki");
    let (a, mut a_joins) = start("127.0.0.1", &pki[0]);
    let (b, _b_joins) = start("127.0.0.2", &pki[1]);
    let (a_addr, b_addr) = (a.local_addr().expect("a"), b.local_addr().expect("b"));
    let key = key();

    // B's leg asks into A's call; A takes the join and listens for the leg.
    let join = ControlMessage::Join {
        key,
        kind: PayloadKind::L16,
        from_edge: "edge-b".into(),
    };
    b.send_control(a_addr, &join).await.expect("join sent");
    let (from, got) = next_join(&mut a_joins).await;
    assert_eq!((from, &got), (b_addr, &join));
    let mut at_a = a.join(key, b_addr).expect("a joins");
    let mut at_b = b.join(key, a_addr).expect("b joins");

    let (sent, (played, loudest)) =
        tokio::join!(speak(&b, a_addr, key, 50, 8_000), hear(&mut at_a, 60));
    assert!(sent >= 45, "B sent {sent} of 50 frames");
    assert!(played >= 40, "A played {played} of {sent} frames");
    assert!(loudest > 7_000, "A heard B's tone at {loudest}");

    let (sent, (played, loudest)) =
        tokio::join!(speak(&a, b_addr, key, 50, 6_000), hear(&mut at_b, 60));
    assert!(sent >= 45, "A sent {sent} of 50 frames");
    assert!(played >= 40, "B played {played} of {sent} frames");
    assert!(
        (5_000..7_000).contains(&loudest),
        "B heard A's tone at {loudest}"
    );

    // B's party hangs up: A's leg hears of it.
    let hangup = ControlMessage::Hangup {
        key,
        cause: HangupCause::Remote,
    };
    b.send_control(a_addr, &hangup).await.expect("hang-up sent");
    let ended = tokio::time::timeout(LIMIT, async {
        loop {
            match at_a.recv().await {
                Some(MeshInbound::Control(m)) => break Some(m),
                Some(MeshInbound::Audio { .. }) => continue,
                Some(MeshInbound::Lost) | None => break None,
            }
        }
    })
    .await
    .expect("hang-up in time");
    assert_eq!(ended, Some(hangup));
    a.leave(key, b_addr);
    b.leave(key, a_addr);
    a.close();
    b.close();
}

#[tokio::test]
async fn a_peer_with_a_certificate_from_another_ca_is_refused_both_ways() {
    let ours = dev_pki("test cluster", &["edge-a"]).expect("pki");
    let foreign = dev_pki("another cluster", &["edge-x"]).expect("foreign pki");
    // Our CA on their side, but their own certificate: still not one of ours.
    let forged = MeshTls {
        ca_cert_pem: ours[0].ca_cert_pem.clone(),
        ..foreign[0].clone()
    };
    let (a, mut a_joins) = start("127.0.0.1", &ours[0]);
    let a_addr = a.local_addr().expect("a");
    let settings = MeshSettings {
        connect_timeout: Duration::from_secs(2),
        ..MeshSettings::default()
    };
    let (x, _) = Mesh::bind("127.0.0.2:0".parse().expect("addr"), &forged, settings).expect("x");
    let x_addr = x.local_addr().expect("x");
    let join = ControlMessage::Join {
        key: key(),
        kind: PayloadKind::Pcmu,
        from_edge: "edge-x".into(),
    };
    // In TLS 1.3 the client finishes first and learns of the refusal late, so X's send may
    // look done: what matters is that A refuses the handshake and reads nothing from X.
    let _ = x.send_control(a_addr, &join).await;
    until("A counted the refusal", || {
        a.counters().refused.load(Ordering::Relaxed) >= 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(a_joins.try_recv().is_err(), "nothing from X reached A");

    // And A, dialling X, does not accept X's certificate as a server.
    let leave = ControlMessage::Leave { key: key() };
    let (a2, _) = Mesh::bind("127.0.0.3:0".parse().expect("addr"), &ours[0], settings).expect("a2");
    assert!(
        a2.send_control(x_addr, &leave).await.is_err(),
        "A must not trust X"
    );
    assert!(a2.counters().refused.load(Ordering::Relaxed) >= 1);
    a.close();
    a2.close();
    x.close();
}

#[tokio::test]
async fn junk_from_a_cluster_peer_is_dropped_and_counted_and_the_leg_keeps_working() {
    let pki = dev_pki("test cluster", &["edge-a", "edge-b", "edge-h"]).expect("pki");
    let (a, _a_joins) = start("127.0.0.1", &pki[0]);
    let (b, _) = start("127.0.0.2", &pki[1]);
    let (a_addr, b_addr) = (a.local_addr().expect("a"), b.local_addr().expect("b"));
    let key = key();
    let mut at_a = a.join(key, b_addr).expect("join");
    b.send_control(a_addr, &ControlMessage::Mute { key, muted: false })
        .await
        .expect("connected");
    let first = tokio::time::timeout(LIMIT, at_a.recv())
        .await
        .expect("in time");
    assert_eq!(
        first,
        Some(MeshInbound::Control(ControlMessage::Mute {
            key,
            muted: false
        })),
        "the leg's own peer reaches it"
    );

    // A hostile member of the cluster: a raw quinn client with a valid certificate.
    let mut hostile = quinn::Endpoint::client("127.0.0.4:0".parse().expect("addr")).expect("h");
    hostile.set_default_client_config(quinn::ClientConfig::new(std::sync::Arc::new(
        pki[2].quic_client().expect("client"),
    )));
    let conn = hostile
        .connect(a_addr, MESH_SERVER_NAME)
        .expect("connect")
        .await
        .expect("a cluster certificate is accepted");
    let dropped_before = a.counters().dropped.load(Ordering::Relaxed);
    for n in 0..200u32 {
        let junk: Vec<u8> = (0..(n % 90)).map(|i| (i * 31 + n) as u8).collect();
        let _ = conn.send_datagram(junk.into());
    }
    // A frame for a leg the sender is not part of: also dropped.
    let mut forged = Vec::new();
    AudioFrame {
        header: AudioHeader {
            key: LegKey {
                call: uuid::Uuid::now_v7(),
                leg: 9,
            },
            kind: PayloadKind::Pcmu,
            sequence: 1,
            timestamp: 160,
        },
        payload: &[0u8; 160],
    }
    .encode_into(&mut forged)
    .expect("encode");
    let _ = conn.send_datagram(forged.into());
    // Frames and a hang-up naming the real leg, from a connection it was not joined with.
    let mut injected = Vec::new();
    AudioFrame {
        header: AudioHeader {
            key,
            kind: PayloadKind::L16,
            sequence: 7,
            timestamp: 7 * 160,
        },
        payload: &[0x7f; 320],
    }
    .encode_into(&mut injected)
    .expect("encode");
    for _ in 0..10 {
        let _ = conn.send_datagram(injected.clone().into());
    }
    let mut hangup = Vec::new();
    ControlMessage::Hangup {
        key,
        cause: HangupCause::Remote,
    }
    .encode_into(&mut hangup)
    .expect("encode");
    let mut side = conn.open_uni().await.expect("stream");
    side.write_all(&hangup).await.expect("hang-up");
    let _ = side.finish();
    let mut stream = conn.open_uni().await.expect("stream");
    stream
        .write_all(&u16::MAX.to_be_bytes())
        .await
        .expect("prefix");
    stream.write_all(&[0u8; 1024]).await.ok();
    let _ = stream.finish();

    until("the junk dropped and counted", || {
        a.counters().bad_control.load(Ordering::Relaxed) >= 1
            && a.counters().dropped.load(Ordering::Relaxed) >= dropped_before + 150
    })
    .await;
    assert_eq!(a.counters().bad_control.load(Ordering::Relaxed), 1);
    let dropped = a.counters().dropped.load(Ordering::Relaxed) - dropped_before;
    assert!(dropped >= 150, "junk dropped and counted: {dropped}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        at_a.try_recv().is_err(),
        "nothing from a connection the leg was not joined with reaches it"
    );

    let (sent, (played, _)) = tokio::join!(speak(&b, a_addr, key, 30, 8_000), hear(&mut at_a, 40));
    assert!(
        sent >= 25 && played >= 20,
        "the real leg still works: {sent} sent, {played} played"
    );
    conn.close(0u32.into(), b"done");
    a.close();
    b.close();
}
