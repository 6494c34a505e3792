//! A second party on a call, over real sockets: a hand-written SIP caller dials the world's
//! agent, the API dials a second party (a hand-written SIP UAS behind the workspace's trunk),
//! bridges them with the agent muted, and RTP crosses from caller to party and back — told
//! apart by tone: the caller sends 440 Hz, the party 1800 Hz, and each side's received audio is
//! measured at the other's frequency. The hostile requests are tried on the same call: a
//! destination the agent may not transfer to (422 naming `to`), unknown legs (404), a leg
//! bridged with itself (422) and one not yet up (409). When the caller hangs up, the party gets
//! our BYE. And the agent's own warm transfer: its model (the fake OpenAI server) asks for one,
//! the party answers, hears the whisper alone, and is bridged to the caller with the agent muted.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tokio::net::UdpSocket;

use freya_control::store::{Role, StoredEvent};
use freya_edge::llm::fakes::FakeReply;
use freya_edge::media::g711::{decode_ulaw, encode_ulaw};
use freya_edge::rtp::packet::{OutgoingHeader, Packetizer, RtpPacket};
use freya_edge::sip::sdp::SessionDescription;
use freya_loadtest::audio::Utterance;
use support::http::Api;
use support::raw_sip::Call;
use support::world::{udp_trunk, World};
use support::{eventually, on_both_engines, Backend};

const CALLER_HZ: f64 = 440.0;
const PARTY_HZ: f64 = 1800.0;
const PARTY: &str = "+4733333333";

/// A 20 ms frame of `hz` at amplitude 3000, the `i`-th of its stream.
fn tone(hz: f64, i: usize) -> [i16; 160] {
    let mut f = [0i16; 160];
    for (k, s) in f.iter_mut().enumerate() {
        let t = (i * 160 + k) as f64 / 8000.0;
        *s = (3000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16;
    }
    f
}

/// The amplitude of `hz` in `frame` (Goertzel): about 3000 for a [`tone`] of it, near 0 without.
fn amplitude(frame: &[i16], hz: f64) -> f64 {
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * hz / 8000.0).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for x in frame {
        let s0 = f64::from(*x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    2.0 * (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0).sqrt() / frame.len() as f64
}

/// Sends `hz` as PCMU every 20 ms from `socket` to `to` until aborted.
fn send_tone(socket: Arc<UdpSocket>, to: SocketAddr, hz: f64) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut packetizer = Packetizer::new(rand::random());
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for i in 0usize.. {
            tick.tick().await;
            let mut payload = [0u8; 160];
            encode_ulaw(&tone(hz, i), &mut payload);
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

/// Sends `samples` (8 kHz) as PCMU every 20 ms, then silence, until aborted.
fn send_speech(
    socket: Arc<UdpSocket>,
    to: SocketAddr,
    samples: Vec<i16>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut packetizer = Packetizer::new(rand::random());
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        for i in 0usize.. {
            tick.tick().await;
            let mut frame = [0i16; 160];
            if let Some(chunk) = samples.get(i * 160..(i + 1) * 160) {
                frame.copy_from_slice(chunk);
            }
            let mut payload = [0u8; 160];
            encode_ulaw(&frame, &mut payload);
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

/// Reads RTP on `socket` for up to `limit`; how many PCMU packets carried `hz` clearly.
async fn packets_with(socket: &UdpSocket, hz: f64, wanted: usize, limit: Duration) -> usize {
    let mut buf = [0u8; 2048];
    let mut found = 0;
    let _ = tokio::time::timeout(limit, async {
        while found < wanted {
            let Ok((n, _)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            let Ok(packet) = RtpPacket::parse(&buf[..n]) else {
                continue;
            };
            let mut pcm = [0i16; 160];
            let len = decode_ulaw(packet.payload, &mut pcm);
            if packet.payload_type == 0 && amplitude(&pcm[..len], hz) > 1000.0 {
                found += 1;
            }
        }
    })
    .await;
    found
}

/// The header `name:` of a SIP message (first occurrence), whole line.
fn header<'a>(message: &'a str, name: &str) -> &'a str {
    message
        .lines()
        .find(|l| {
            l.len() > name.len()
                && l[..name.len()].eq_ignore_ascii_case(name)
                && l[name.len()..].starts_with(':')
        })
        .unwrap_or_else(|| panic!("no {name} in {message}"))
}

/// Answers `invite` 200 OK with PCMU on `rtp_port`; returns where the edge wants the party's
/// RTP.
async fn answer(sip: &UdpSocket, invite: &str, from: SocketAddr, rtp_port: u16) -> SocketAddr {
    let vias: Vec<&str> = invite
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("via:"))
        .collect();
    let sdp = format!(
        "v=0\r\no=- 2 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {rtp_port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    );
    let local = sip.local_addr().expect("addr");
    let ok = format!(
        "SIP/2.0 200 OK\r\n{}\r\n{}\r\n{};tag=party\r\n{}\r\n{}\r\n\
         Contact: <sip:party@{local}>\r\nContent-Type: application/sdp\r\n\
         Content-Length: {}\r\n\r\n{sdp}",
        vias.join("\r\n"),
        header(invite, "From"),
        header(invite, "To"),
        header(invite, "Call-ID"),
        header(invite, "CSeq"),
        sdp.len()
    );
    sip.send_to(ok.as_bytes(), from).await.expect("200");
    let offer = invite.split("\r\n\r\n").nth(1).expect("offer");
    let offer = SessionDescription::parse(offer.as_bytes()).expect("SDP offer");
    SocketAddr::new("127.0.0.1".parse().expect("ip"), offer.media[0].port)
}

/// Waits for a request starting with `prefix` on the party's SIP socket; the text and its source.
async fn party_receives(sip: &UdpSocket, prefix: &str) -> (String, SocketAddr) {
    let mut buf = vec![0u8; 65_536];
    tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let (n, from) = sip.recv_from(&mut buf).await.expect("recv");
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with(prefix) {
                return (text, from);
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the party got no {prefix}"))
}

async fn the_api_dials_a_second_party_bridges_it_and_rtp_crosses_both_ways(backend: Backend) {
    let w = World::builder()
        .backend(backend)
        .agent(json!({"transfer_destinations": [PARTY]}))
        .start()
        .await;
    let party_sip = UdpSocket::bind("127.0.0.1:0").await.expect("party sip");
    let party_port = party_sip.local_addr().expect("addr").port();
    w.set_trunks(vec![udp_trunk("party", party_port, 1)]);
    let (api, key) = (Api::of(&w.control), w.key(Role::Editor).await);

    let caller_rtp = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("rtp"));
    let call = Call::dial(
        w.edge.sip_addr,
        &caller_rtp,
        &w.number,
        "legs-1@caller.test",
    )
    .await;
    let caller_tone = send_tone(caller_rtp.clone(), call.edge_rtp, CALLER_HZ);
    let id = w.call_in_status("in_progress").await.id;
    let path = |tail: &str| format!("/v1/calls/{id}{tail}");

    // A destination the agent may not transfer to is refused, naming the field.
    let refused = api
        .call(
            "POST",
            &path("/legs"),
            &key,
            Some(json!({"to": "+4700000000"})),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(refused.body["errors"][0]["field"], "to", "{}", refused.body);
    let unknown = api.call("DELETE", &path("/legs/5"), &key, None).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    let unknown_call = api
        .call(
            "POST",
            "/v1/calls/nope/bridge",
            &key,
            Some(json!({"legs": [0, 1], "agent": "muted"})),
        )
        .await;
    assert_eq!(unknown_call.status, StatusCode::NOT_FOUND);
    let itself = api
        .call(
            "POST",
            &path("/bridge"),
            &key,
            Some(json!({"legs": [0, 0], "agent": "muted"})),
        )
        .await;
    assert_eq!(itself.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(itself.body["errors"][0]["field"], "legs");

    let dialled = api
        .call("POST", &path("/legs"), &key, Some(json!({"to": PARTY})))
        .await;
    assert_eq!(dialled.status, StatusCode::ACCEPTED, "{}", dialled.body);
    assert_eq!(dialled.body["leg"], 1);
    let (invite, edge_sip) = party_receives(&party_sip, "INVITE").await;
    assert!(invite
        .lines()
        .next()
        .is_some_and(|l| l.contains("4733333333")));
    w.event("call.leg_added").await;
    // Ringing, not up: it cannot be bridged yet.
    let early = api
        .call(
            "POST",
            &path("/bridge"),
            &key,
            Some(json!({"legs": [0, 1], "agent": "muted"})),
        )
        .await;
    assert_eq!(early.status, StatusCode::CONFLICT, "{}", early.body);

    let party_rtp = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("party rtp"));
    let rtp_port = party_rtp.local_addr().expect("addr").port();
    let edge_leg_rtp = answer(&party_sip, &invite, edge_sip, rtp_port).await;
    party_receives(&party_sip, "ACK").await;
    w.event("call.leg_answered").await;
    let party_tone = send_tone(party_rtp.clone(), edge_leg_rtp, PARTY_HZ);

    let bridged = api
        .call(
            "POST",
            &path("/bridge"),
            &key,
            Some(json!({"legs": [0, 1], "agent": "muted"})),
        )
        .await;
    assert_eq!(bridged.status, StatusCode::ACCEPTED, "{}", bridged.body);
    w.event("call.bridged").await;
    let limit = Duration::from_secs(10);
    let (to_party, to_caller) = tokio::join!(
        packets_with(&party_rtp, CALLER_HZ, 25, limit),
        packets_with(&caller_rtp, PARTY_HZ, 25, limit),
    );
    assert_eq!(to_party, 25, "the caller's tone reaches the party");
    assert_eq!(to_caller, 25, "the party's tone reaches the caller");

    // The caller hangs up: the party is hung up too.
    call.hang_up(2).await;
    let (bye, from) = party_receives(&party_sip, "BYE").await;
    let ok = format!(
        "SIP/2.0 200 OK\r\n{}\r\n{}\r\n{}\r\n{}\r\n{}\r\nContent-Length: 0\r\n\r\n",
        header(&bye, "Via"),
        header(&bye, "From"),
        header(&bye, "To"),
        header(&bye, "Call-ID"),
        header(&bye, "CSeq"),
    );
    party_sip.send_to(ok.as_bytes(), from).await.expect("200");
    let ended = w.event("call.leg_ended").await;
    assert_eq!(ended.payload["reason"], "call_ended");
    caller_tone.abort();
    party_tone.abort();
    w.teardown().await;
}

on_both_engines!(multi_thread; the_api_dials_a_second_party_bridges_it_and_rtp_crosses_both_ways);

/// Reads RTP on `socket` for up to `limit`; how many PCMU packets were not silence.
async fn loud_packets(socket: &UdpSocket, wanted: usize, limit: Duration) -> usize {
    let mut buf = [0u8; 2048];
    let mut found = 0;
    let _ = tokio::time::timeout(limit, async {
        while found < wanted {
            let Ok((n, _)) = socket.recv_from(&mut buf).await else {
                continue;
            };
            let Ok(packet) = RtpPacket::parse(&buf[..n]) else {
                continue;
            };
            let mut pcm = [0i16; 160];
            let len = decode_ulaw(packet.payload, &mut pcm);
            if pcm[..len].iter().any(|s| s.unsigned_abs() > 500) {
                found += 1;
            }
        }
    })
    .await;
    found
}

/// The agent's model asks for a warm transfer: the party is dialled through the trunk, hears
/// the whisper alone, and is then bridged to the caller, the agent gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agents_warm_transfer_whispers_to_the_party_then_bridges_the_caller() {
    let w = World::builder()
        .voice()
        .agent(json!({"name": "Switchboard", "transfer_destinations": [PARTY]}))
        .start()
        .await;
    w.speech()
        .set_default_transcript("Put me through to sales, please.");
    w.llm().push_reply(FakeReply::tool_call(
        "call_1",
        "transfer_call",
        json!({"destination": PARTY, "mode": "warm", "whisper": "A caller for sales."}),
    ));
    w.llm().respond_with(|_| FakeReply::text("One moment."));
    let party_sip = UdpSocket::bind("127.0.0.1:0").await.expect("party sip");
    let party_port = party_sip.local_addr().expect("addr").port();
    w.set_trunks(vec![udp_trunk("party", party_port, 1)]);

    let caller_rtp = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("rtp"));
    let call = Call::dial(
        w.edge.sip_addr,
        &caller_rtp,
        &w.number,
        "warm-1@caller.test",
    )
    .await;
    let spoken = Utterance::speak("Put me through to sales, please.").expect("espeak-ng");
    let caller_speech = send_speech(caller_rtp.clone(), call.edge_rtp, spoken.samples.to_vec());

    let (invite, edge_sip) = party_receives(&party_sip, "INVITE").await;
    let party_rtp = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("party rtp"));
    let rtp_port = party_rtp.local_addr().expect("addr").port();
    let edge_leg_rtp = answer(&party_sip, &invite, edge_sip, rtp_port).await;
    // The party listens (silence) while the whisper plays.
    let party_line = send_speech(party_rtp.clone(), edge_leg_rtp, Vec::new());
    let whispered = loud_packets(&party_rtp, 10, Duration::from_secs(10)).await;
    assert_eq!(whispered, 10, "the party hears the agent's whisper");
    let call_id = w.call_in_status("in_progress").await.id;
    let of_kind = |events: &[StoredEvent], kind: &str| -> Vec<serde_json::Value> {
        events
            .iter()
            .filter(|e| e.kind == kind)
            .map(|e| e.payload.clone())
            .collect()
    };
    let events = eventually(
        Duration::from_secs(15),
        "the warm transfer to succeed",
        || async {
            let events = w.events_of(&call_id).await;
            let done = of_kind(&events, "call.transfer")
                .iter()
                .any(|t| t["status"] == "succeeded");
            done.then_some(events)
        },
    )
    .await;
    let statuses: Vec<serde_json::Value> = of_kind(&events, "call.transfer")
        .into_iter()
        .map(|t| t["status"].clone())
        .collect();
    assert_eq!(statuses, [json!("requested"), json!("succeeded")]);
    assert_eq!(
        of_kind(&events, "call.bridged"),
        [
            json!({"legs": [1], "agent": "whisper", "whisper_to": 1}),
            json!({"legs": [0, 1], "agent": "muted"})
        ]
    );
    assert_eq!(
        of_kind(&events, "call.leg_added"),
        [json!({"leg": 1, "to": PARTY, "by": "agent"})]
    );
    caller_speech.abort();
    party_line.abort();
    call.hang_up(2).await;
    let (bye, from) = party_receives(&party_sip, "BYE").await;
    let ok = format!(
        "SIP/2.0 200 OK\r\n{}\r\n{}\r\n{}\r\n{}\r\n{}\r\nContent-Length: 0\r\n\r\n",
        header(&bye, "Via"),
        header(&bye, "From"),
        header(&bye, "To"),
        header(&bye, "Call-ID"),
        header(&bye, "CSeq"),
    );
    party_sip.send_to(ok.as_bytes(), from).await.expect("200");
    w.teardown().await;
}
