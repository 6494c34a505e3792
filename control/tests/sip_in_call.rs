//! What the edge does inside a call, end to end against sipp (a foreign SIP peer): an agent
//! whose model (the fake OpenAI server, driven through the real client) calls the built-in
//! `transfer_call` (REFER, NOTIFY progress, our BYE) or `send_dtmf` (SIP INFO when the caller
//! offered no telephone-event), and RFC 4028 session timers (422 for a too-short interval).
//! Checked: what sipp saw (its scenarios assert the requests' contents) and what the control
//! plane recorded.

use std::time::Duration;

use crate::support::caller::sipp_with_media;
use crate::support::pcap::pcap;
use crate::support::raw_sip::{Call, CallerVoice, Offer};
use crate::support::world::World;
use freya_control::store::StoredEvent;
use freya_edge::llm::fakes::FakeReply;
use freya_edge::media::g711::G711;
use freya_loadtest::audio::Utterance;

/// A pcap (Ethernet/IPv4/UDP/RTP, PCMA, 20 ms packets) of espeak-ng saying `text` followed by
/// `silence_ms` of silence, for sipp's `play_pcap_audio`: the silence is what ends the
/// caller's turn (sipp's own sample audio never pauses long enough).
fn speech_pcap(text: &str, silence_ms: usize) -> Vec<u8> {
    let spoken = Utterance::speak(text).expect("espeak-ng speaks");
    let mut samples = spoken.samples.to_vec();
    samples.extend(std::iter::repeat_n(0i16, silence_ms * 8));
    let packets: Vec<(u32, Vec<u8>)> = samples
        .chunks_exact(160)
        .enumerate()
        .map(|(i, frame)| {
            let mut payload = [0u8; 160];
            G711::Alaw.encode(frame, &mut payload);
            let i = u32::try_from(i).expect("index");
            let mut rtp = vec![0x80, 8];
            rtp.extend_from_slice(&(i as u16).to_be_bytes());
            rtp.extend_from_slice(&(i * 160).to_be_bytes());
            rtp.extend_from_slice(&0x5eed_u32.to_be_bytes());
            rtp.extend_from_slice(&payload);
            (i * 20_000, rtp)
        })
        .collect();
    pcap(&packets)
}

/// Runs sipp once with `scenario` against `target`, dialling `number`; returns its exit code.
async fn sipp(target: std::net::SocketAddr, scenario: &str, number: &str) -> i32 {
    let pcap = speech_pcap("Put me through to sales, please.", 3000);
    sipp_with_media(target, number, scenario, &[("speech.pcap", &pcap)]).await
}

/// A control plane, an edge, the fake providers, and number `demo` answered by `agent`; the
/// caller's every turn transcribes as a request for sales.
async fn world(agent: serde_json::Value) -> World {
    let w = World::builder()
        .workspace("In call")
        .voice()
        .agent(agent)
        .start()
        .await;
    w.speech()
        .set_default_transcript("Put me through to sales, please.");
    w
}

/// A world whose agent's model first sends the keys `1#` (the `send_dtmf` tool), then says
/// "Done." to anything.
async fn menu_world() -> World {
    let w = world(serde_json::json!({"name": "Menu", "system_prompt": "Press 1 then #."})).await;
    w.llm().push_reply(FakeReply::tool_call(
        "call_1",
        "send_dtmf",
        serde_json::json!({"digits": "1#"}),
    ));
    w.llm().respond_with(|_| FakeReply::text("Done."));
    w
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_transfers_a_sipp_caller_by_refer_and_hangs_up_when_notified() {
    let w = world(serde_json::json!({
        "name": "Switchboard",
        "system_prompt": "Transfer callers who ask for sales.",
        "transfer_destinations": ["+15550100"]
    }))
    .await;
    // The first answer transfers; anything after it (more of the caller's audio) is plain text.
    w.llm().push_reply(FakeReply::tool_call(
        "call_1",
        "transfer_call",
        serde_json::json!({"destination": "+15550100"}),
    ));
    w.llm().respond_with(|_| FakeReply::text("One moment."));

    let code = sipp(w.edge.sip_addr, "uac_transfer.xml", "demo").await;

    let (call, events) = w.ended_call().await;
    assert_eq!(
        code, 0,
        "sipp received the REFER, reported progress and got our BYE; events: {events:#?}"
    );
    assert_eq!(call.end_reason.as_deref(), Some("transferred"));
    let transfer: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == "call.transfer")
        .filter_map(|e| e.payload["status"].as_str())
        .collect();
    assert_eq!(
        transfer,
        ["requested", "accepted", "trying", "succeeded"],
        "{events:?}"
    );
    let ended = events
        .iter()
        .find(|e| e.kind == "call.ended")
        .expect("ended");
    assert_eq!(ended.payload["transferred_to"], "+15550100");
    assert_eq!(ended.payload["hangup_by"], "agent");
    let tools = &w.llm().requests()[0].body["tools"];
    assert!(
        tools
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["function"]["name"] == "transfer_call")),
        "the model was offered transfer_call: {tools}"
    );
    w.teardown().await;
}

/// The call's one `call.dtmf_sent` record.
fn one_dtmf_sent(events: &[StoredEvent]) -> &StoredEvent {
    let sent: Vec<&StoredEvent> = events
        .iter()
        .filter(|e| e.kind == "call.dtmf_sent")
        .collect();
    assert_eq!(sent.len(), 1, "{events:#?}");
    sent[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_dtmf_reaches_a_caller_without_telephone_event_by_sip_info() {
    let w = menu_world().await;

    let code = sipp(w.edge.sip_addr, "uac_dtmf_info.xml", "demo").await;

    let (call, events) = w.ended_call().await;
    assert_eq!(code, 0, "sipp received both INFOs; events: {events:#?}");
    assert_eq!(call.end_reason.as_deref(), Some("caller_hangup"));
    let sent = one_dtmf_sent(&events);
    assert_eq!(sent.payload["digits"], "1#");
    assert_eq!(sent.payload["via"], "sip_info");
    w.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_interval_below_our_minimum_is_refused_with_422() {
    let w = world(serde_json::json!({"name": "Desk"})).await;
    assert_eq!(
        sipp(w.edge.sip_addr, "uac_session_too_small.xml", "demo").await,
        0,
        "sipp got 422 with Min-SE: 90"
    );
    w.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_dtmf_reaches_the_caller_as_rfc_4733_events_in_our_rtp_stream() {
    use freya_edge::rtp::dtmf::DtmfReceiver;
    use freya_edge::rtp::packet::RtpPacket;

    let w = menu_world().await;
    // A caller written by hand: SIP and RTP on sockets of this test.
    let (call, rtp) = Call::dialled(
        w.edge.sip_addr,
        &w.number,
        "raw-dtmf-1",
        Offer::PcmuWithEvents,
    )
    .await;
    let edge_rtp = call.edge_rtp;

    // Speak one turn (espeak-ng, then silence to end it) while collecting what the edge sends.
    let mut voice = CallerVoice::saying("Press one then hash, please.", Duration::from_secs(6));
    let mut receiver = DtmfReceiver::new(8000);
    let mut digits = String::new();
    let mut voice_ssrcs = std::collections::BTreeSet::new();
    let mut event_ssrcs = std::collections::BTreeSet::new();
    let mut event_followed_voice_in_sequence = false;
    let mut last: Option<(u8, u16)> = None;
    let mut ticker = tokio::time::interval(Duration::from_millis(20));
    let mut buf = [0u8; 2048];
    let started = tokio::time::Instant::now();
    while digits.len() < 2 && started.elapsed() < Duration::from_secs(20) {
        tokio::select! {
            _ = ticker.tick() => voice.send_frame(&rtp, edge_rtp).await,
            received = rtp.recv_from(&mut buf) => {
                let (n, _) = received.expect("RTP recv");
                let Ok(packet) = RtpPacket::parse(&buf[..n]) else { continue };
                if packet.payload_type == 101 {
                    event_ssrcs.insert(packet.ssrc);
                    if matches!(last, Some((0, s)) if s.wrapping_add(1) == packet.sequence) {
                        event_followed_voice_in_sequence = true;
                    }
                    receiver
                        .handle_packet(std::time::Instant::now(), packet.timestamp, packet.payload)
                        .expect("a telephone event");
                    while let Some(event) = receiver.poll_event() {
                        digits.push(event.digit.as_char());
                    }
                } else {
                    voice_ssrcs.insert(packet.ssrc);
                }
                last = Some((packet.payload_type, packet.sequence));
            }
        }
    }
    call.hang_up(2).await;

    assert_eq!(digits, "1#", "the caller decoded the agent's key presses");
    assert_eq!(voice_ssrcs.len(), 1, "{voice_ssrcs:?}");
    assert_eq!(
        event_ssrcs, voice_ssrcs,
        "events ride the call's own stream"
    );
    assert!(
        event_followed_voice_in_sequence,
        "the events take the next sequence numbers of the stream"
    );
    let (call, events) = w.ended_call().await;
    assert_eq!(call.end_reason.as_deref(), Some("caller_hangup"));
    let sent = one_dtmf_sent(&events);
    assert_eq!(sent.payload["via"], "rfc4733");
    w.teardown().await;
}
