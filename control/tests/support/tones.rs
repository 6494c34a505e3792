//! Audio a test can tell apart without a recogniser: PCMU over RTP carrying a sine tone (or
//! speech samples), sent every 20 ms like a phone, and received audio measured for a tone's
//! amplitude (Goertzel). Each side of a bridged call sends its own frequency, so what the
//! other side hears says which way the audio crossed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use freya_edge::media::g711::{decode_ulaw, encode_ulaw};
use freya_edge::rtp::packet::{OutgoingHeader, Packetizer, RtpPacket};
use tokio::net::UdpSocket;

/// The tone the caller of a bridged call sends.
pub const CALLER_HZ: f64 = 440.0;
/// The tone the second party of a bridged call sends.
pub const PARTY_HZ: f64 = 1800.0;

/// A 20 ms frame of `hz` at amplitude 3000, the `i`-th of its stream.
pub fn tone(hz: f64, i: usize) -> [i16; 160] {
    let mut f = [0i16; 160];
    for (k, s) in f.iter_mut().enumerate() {
        let t = (i * 160 + k) as f64 / 8000.0;
        *s = (3000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16;
    }
    f
}

/// The amplitude of `hz` in `frame` (Goertzel): about 3000 for a [`tone`] of it, near 0 without.
pub fn amplitude(frame: &[i16], hz: f64) -> f64 {
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * hz / 8000.0).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for x in frame {
        let s0 = f64::from(*x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    2.0 * (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0).sqrt() / frame.len() as f64
}

/// Whether `frame` is not silence.
pub fn loud(frame: &[i16]) -> bool {
    frame.iter().any(|s| s.unsigned_abs() > 500)
}

/// Sends `frame(i)` as PCMU every 20 ms from `socket` to `to` until aborted.
fn send_frames(
    socket: Arc<UdpSocket>,
    to: SocketAddr,
    frame: impl Fn(usize) -> [i16; 160] + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut packetizer = Packetizer::new(rand::random());
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for i in 0usize.. {
            tick.tick().await;
            let mut payload = [0u8; 160];
            encode_ulaw(&frame(i), &mut payload);
            let header = OutgoingHeader {
                sequence: i as u16,
                timestamp: (i * 160) as u32,
                marker: i == 0,
            };
            if let Ok(packet) = packetizer.packetize(0, header, &payload) {
                let _ = socket.send_to(packet, to).await;
            }
        }
    })
}

/// Sends `hz` (or silence) as PCMU every 20 ms from `socket` to `to` until aborted.
pub fn send_tone(
    socket: Arc<UdpSocket>,
    to: SocketAddr,
    hz: Option<f64>,
) -> tokio::task::JoinHandle<()> {
    send_frames(socket, to, move |i| hz.map_or([0; 160], |hz| tone(hz, i)))
}

/// Sends `samples` (8 kHz) as PCMU every 20 ms, then silence, until aborted.
pub fn send_speech(
    socket: Arc<UdpSocket>,
    to: SocketAddr,
    samples: Vec<i16>,
) -> tokio::task::JoinHandle<()> {
    send_frames(socket, to, move |i| {
        let mut frame = [0i16; 160];
        if let Some(chunk) = samples.get(i * 160..(i + 1) * 160) {
            frame.copy_from_slice(chunk);
        }
        frame
    })
}

/// Reads RTP on `socket` for up to `limit`: how many PCMU packets (up to `wanted`) `heard`
/// says yes to, and where the last of them came from.
pub async fn packets_where(
    socket: &UdpSocket,
    wanted: usize,
    limit: Duration,
    heard: impl Fn(&[i16]) -> bool,
) -> (usize, Option<SocketAddr>) {
    let mut buf = [0u8; 2048];
    let (mut found, mut source) = (0, None);
    let _ = tokio::time::timeout(limit, async {
        while found < wanted {
            let Ok((n, from)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            let Ok(packet) = RtpPacket::parse(&buf[..n]) else {
                continue;
            };
            let mut pcm = [0i16; 160];
            let len = decode_ulaw(packet.payload, &mut pcm);
            if packet.payload_type == 0 && heard(&pcm[..len]) {
                found += 1;
                source = Some(from);
            }
        }
    })
    .await;
    (found, source)
}

/// [`packets_where`] the packet clearly carries `hz`.
pub async fn packets_with(
    socket: &UdpSocket,
    hz: f64,
    wanted: usize,
    limit: Duration,
) -> (usize, Option<SocketAddr>) {
    packets_where(socket, wanted, limit, |pcm| amplitude(pcm, hz) > 1000.0).await
}

/// Milliseconds of `samples` (8 kHz) louder than a quiet room.
pub fn audible_ms(samples: &[i16]) -> usize {
    samples.iter().filter(|s| s.unsigned_abs() > 1_000).count() / 8
}

/// Checks that a bridge across edges carries both tones, 25 packets each way within `limit`:
/// the party on `party_rtp` hears [`CALLER_HZ`] from the media address of the edge holding its
/// leg (`leg_edge_ip`), and the caller on `caller_rtp` hears [`PARTY_HZ`] from its own edge's
/// socket, `call_edge_rtp`. `(leg_edge, call_edge)` name the two edges in a failure.
pub async fn assert_tones_cross(
    party_rtp: &UdpSocket,
    caller_rtp: &UdpSocket,
    leg_edge_ip: std::net::IpAddr,
    call_edge_rtp: SocketAddr,
    (leg_edge, call_edge): (&str, &str),
    limit: Duration,
) {
    let ((to_party, from_leg_edge), (to_caller, from_call_edge)) = tokio::join!(
        packets_with(party_rtp, CALLER_HZ, 25, limit),
        packets_with(caller_rtp, PARTY_HZ, 25, limit),
    );
    assert_eq!(
        to_party, 25,
        "the caller's tone reaches the party behind {leg_edge}"
    );
    assert_eq!(
        to_caller, 25,
        "the party's tone reaches the caller on {call_edge}"
    );
    assert_eq!(from_leg_edge.map(|a| a.ip()), Some(leg_edge_ip));
    assert_eq!(
        from_call_edge,
        Some(call_edge_rtp),
        "the caller hears it from {call_edge}'s socket"
    );
}
