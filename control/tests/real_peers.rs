//! A real edge and control plane against SIP software nobody on this project wrote: baresip 1.0
//! from Debian, driven over its control port (see `support/baresip.rs`).
//!
//! - a call that the phone hangs up, and one that the agent hangs up (our BYE reaches the phone);
//! - both again through kamailio with `record_route()`: the phone's ACK and BYE and the edge's BYE
//!   all go through the proxy, and the record says our BYE was answered;
//! - hold with `a=sendonly` past the RTP inactivity timeout, answered `a=recvonly` with a new
//!   `o=` version, then resumed, with `call.held` and `call.resumed` recorded;
//! - a call cancelled while ringing: the 200 to the CANCEL carries the To tag of the 180 and the
//!   487;
//! - a G.722-only phone: refused with 488 and `Warning: 305`, and recorded as `call.failed`;
//! - keys pressed on the phone (RFC 4733, on PCMU and beside Opus at 8000 Hz) reach the call
//!   record.
//!
//! The test script installs baresip; where it is absent (a machine set up by hand) the tests say
//! so and pass, but never under CI.

use std::time::Duration;

use crate::support::baresip::{self, Baresip, Codec};
use crate::support::kamailio::Kamailio;
use crate::support::world::World;
use freya_edge::EdgeConfig;

const NUMBER: &str = "+15550100";

/// The agent `agent` answers [`NUMBER`] on an edge configured by `configure`.
async fn world(agent: serde_json::Value, configure: fn(&mut EdgeConfig)) -> World {
    World::builder()
        .workspace("Real peers")
        .agent(agent)
        .number(NUMBER)
        .edge_config(configure)
        .start()
        .await
}

/// The world's number at its edge, as a phone dials it.
fn number_uri(w: &World) -> String {
    format!("sip:{NUMBER}@{}", w.edge.sip_addr)
}

/// A world (see [`world`]) and a phone offering `codec` that has dialled its number; `None`
/// where baresip is not installed (see [`baresip::installed`]).
async fn phone_calling(
    agent: serde_json::Value,
    configure: fn(&mut EdgeConfig),
    codec: Codec,
) -> Option<(World, Baresip)> {
    if !baresip::installed() {
        return None;
    }
    let w = world(agent, configure).await;
    let phone = dialling(&w, codec).await;
    Some((w, phone))
}

/// A phone offering `codec` that has dialled the world's number.
async fn dialling(w: &World, codec: Codec) -> Baresip {
    let mut phone = Baresip::start(codec).await;
    phone.dial(&number_uri(w)).await;
    phone
}

fn desk() -> serde_json::Value {
    serde_json::json!({"name": "Desk", "greeting": "Hello, you are through to the desk."})
}

fn kinds(events: &[freya_control::store::StoredEvent]) -> Vec<&str> {
    events.iter().map(|e| e.kind.as_str()).collect()
}

/// The value of header `name` in one SIP message, if present.
fn header<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then_some(value.trim())
    })
}

/// The tag parameter of a To or From header value.
fn tag(value: &str) -> Option<&str> {
    value.split(';').find_map(|p| p.trim().strip_prefix("tag="))
}

/// The SIP messages in `messages` (baresip's trace) whose start line begins with `start` and
/// whose CSeq method is `method`.
fn messages_of<'a>(messages: &'a [String], start: &str, method: &str) -> Vec<&'a str> {
    messages
        .iter()
        .filter_map(|m| m.split_once('\n').map(|(_, message)| message))
        .filter(|m| m.starts_with(start))
        .filter(|m| header(m, "CSeq").is_some_and(|c| c.ends_with(method)))
        .collect()
}

/// Checks that `phone`'s trace `messages` hold exactly one SIP message whose start line begins
/// with `start` and whose CSeq method is `method`; `what` says what it is.
fn assert_once(phone: &Baresip, messages: &[String], start: &str, method: &str, what: &str) {
    assert_eq!(
        messages_of(messages, start, method).len(),
        1,
        "{what}:\n{}",
        phone.trace()
    );
}

/// A world (see [`world`]) for `agent` and a kamailio proxy in front of its edge; `None` where
/// baresip or kamailio is not installed.
async fn world_behind_kamailio(agent: serde_json::Value) -> Option<(World, Kamailio)> {
    if !baresip::installed() {
        return None;
    }
    let w = world(agent, |_| {}).await;
    let proxy = Kamailio::start(w.edge.sip_addr)?;
    Some((w, proxy))
}

/// A desk whose calls last two seconds at the most: then the agent hangs up.
fn brief_desk() -> serde_json::Value {
    let mut agent = desk();
    agent["max_call_seconds"] = serde_json::json!(2);
    agent
}

/// Waits for `phone`'s call to be answered and then ended by the agent (at the call's
/// limit); the record says so. The call's events.
async fn hung_up_by_the_agent(
    w: &World,
    phone: &mut Baresip,
) -> Vec<freya_control::store::StoredEvent> {
    phone.event("CALL_ESTABLISHED").await;
    phone.event("CALL_CLOSED").await;
    let (call, events) = w.ended_call().await;
    assert_eq!(
        call.end_reason.as_deref(),
        Some("max_duration"),
        "{:?}",
        kinds(&events)
    );
    events
}

/// A PCMU phone dials `uri`, talks a second and hangs up; the record says the caller hung up.
async fn talk_and_hang_up(w: &World, uri: &str) -> Baresip {
    let mut phone = Baresip::start(Codec::Pcmu).await;
    phone.dial(uri).await;
    phone.event("CALL_ESTABLISHED").await;
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    phone.command("hangup", "").await.expect("hangup");
    phone.event("CALL_CLOSED").await;
    let (call, events) = w.ended_call().await;
    assert_eq!(
        call.end_reason.as_deref(),
        Some("caller_hangup"),
        "{:?}",
        kinds(&events)
    );
    phone
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baresip_caller_talks_and_hangs_up() {
    if !baresip::installed() {
        return;
    }
    let w = world(desk(), |_| {}).await;
    let phone = talk_and_hang_up(&w, &number_uri(&w)).await;
    let messages = phone.sip_messages();
    let what = "the phone's BYE answered once";
    assert_once(&phone, &messages, "SIP/2.0 200", "BYE", what);
    phone.stop().await;
    w.stop().await;
}

/// The `o=` version and the direction attribute of an SDP body inside a SIP message.
fn sdp_version_and_direction(message: &str) -> (u64, &'static str) {
    let version = message
        .lines()
        .find_map(|l| l.strip_prefix("o="))
        .and_then(|o| o.split_whitespace().nth(2))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("an o= line: {message}"));
    let direction = ["sendrecv", "sendonly", "recvonly", "inactive"]
        .into_iter()
        .find(|d| message.lines().any(|l| l == format!("a={d}")))
        .unwrap_or("sendrecv");
    (version, direction)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baresip_caller_holds_past_the_rtp_timeout_and_resumes() {
    if !baresip::installed() {
        return;
    }
    // One second without RTP would end a call that is not on hold.
    let w = world(desk(), |config| config.rtp.inactivity_timeout_ms = 1_000).await;
    let mut phone = dialling(&w, Codec::Pcmu).await;
    phone.event("CALL_ESTABLISHED").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    phone.command("hold", "").await.expect("hold");
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    phone.command("resume", "").await.expect("resume");
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    phone.command("hangup", "").await.expect("hangup");
    phone.event("CALL_CLOSED").await;

    let messages = phone.sip_messages();
    let offers = messages_of(&messages, "INVITE ", "INVITE");
    let answers = messages_of(&messages, "SIP/2.0 200", "INVITE");
    assert_eq!(offers.len(), 3, "call, hold, resume:\n{}", phone.trace());
    assert_eq!(answers.len(), 3, "each answered:\n{}", phone.trace());
    assert_eq!(sdp_version_and_direction(offers[1]).1, "sendonly");
    let versions: Vec<_> = answers
        .iter()
        .map(|a| sdp_version_and_direction(a))
        .collect();
    assert_eq!(
        versions.iter().map(|v| v.1).collect::<Vec<_>>(),
        ["sendrecv", "recvonly", "sendrecv"],
        "hold answered recvonly, resume sendrecv"
    );
    assert!(
        versions[0].0 < versions[1].0 && versions[1].0 < versions[2].0,
        "o= version bumped on each change: {versions:?}"
    );

    let (call, events) = w.ended_call().await;
    assert_eq!(
        call.end_reason.as_deref(),
        Some("caller_hangup"),
        "{:?}",
        kinds(&events)
    );
    let at = |kind: &str| {
        events
            .iter()
            .find(|e| e.kind == kind)
            .unwrap_or_else(|| panic!("{kind} recorded: {:?}", kinds(&events)))
    };
    let held_ms = at("call.resumed").at_ms - at("call.held").at_ms;
    assert!(
        held_ms >= 3_000,
        "held for {held_ms} ms, past the RTP timeout"
    );
    let ended = &at("call.ended").payload;
    let sent = ended["rtp"]["sent"].as_i64().expect("rtp.sent");
    let duration_ms = ended["duration_ms"].as_i64().expect("duration_ms");
    // 50 packets a second while not held, none while held (and some slack for the edges of
    // each change): sending through the hold would add 150 or more.
    let most = (duration_ms - held_ms) / 20 + 40;
    assert!(
        sent <= most,
        "{sent} packets sent in {duration_ms} ms with {held_ms} ms on hold (at most {most})"
    );
    assert!(sent > 20, "audio flowed outside the hold: {sent} packets");
    phone.stop().await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_hangs_up_on_a_baresip_caller() {
    let Some((w, mut phone)) = phone_calling(brief_desk(), |_| {}, Codec::Pcmu).await else {
        return;
    };
    hung_up_by_the_agent(&w, &mut phone).await;
    let messages = phone.sip_messages();
    assert_once(
        &phone,
        &messages,
        "BYE ",
        "BYE",
        "our BYE reached the phone",
    );
    let what = "the phone answered our BYE";
    assert_once(&phone, &messages, "SIP/2.0 200", "BYE", what);
    phone.stop().await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baresip_caller_cancels_while_ringing_and_every_answer_has_one_to_tag() {
    let Some((w, mut phone)) =
        phone_calling(desk(), |config| config.sip.ring_ms = 5_000, Codec::Pcmu).await
    else {
        return;
    };
    phone.event("CALL_RINGING").await;
    phone.command("hangup", "").await.expect("hangup");
    phone.event("CALL_CLOSED").await;
    // The 487 may follow the CLOSED event: wait for the whole exchange.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let messages = loop {
        let messages = phone.sip_messages();
        if !messages_of(&messages, "SIP/2.0 487", "INVITE").is_empty()
            || std::time::Instant::now() > deadline
        {
            break messages;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let to_tag_of = |start: &str, method: &str| {
        let found = messages_of(&messages, start, method);
        let message = found
            .first()
            .unwrap_or_else(|| panic!("{start} to {method}:\n{}", phone.trace()));
        header(message, "To").and_then(tag).map(str::to_owned)
    };
    let ringing = to_tag_of("SIP/2.0 180", "INVITE");
    assert!(ringing.is_some(), "the 180 has a To tag");
    assert_eq!(to_tag_of("SIP/2.0 200", "CANCEL"), ringing, "200 to CANCEL");
    assert_eq!(to_tag_of("SIP/2.0 487", "INVITE"), ringing, "487");
    let (call, events) = w.ended_call().await;
    assert_eq!(call.answered_at_ms, None, "{:?}", kinds(&events));
    phone.stop().await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_g722_only_baresip_is_refused_with_488_and_the_refusal_is_recorded() {
    let Some((w, mut phone)) = phone_calling(desk(), |_| {}, Codec::G722).await else {
        return;
    };
    phone.event("CALL_CLOSED").await;
    let messages = phone.sip_messages();
    let refusals = messages_of(&messages, "SIP/2.0 488", "INVITE");
    let refusal = refusals
        .first()
        .unwrap_or_else(|| panic!("a 488:\n{}", phone.trace()));
    let warning = header(refusal, "Warning").unwrap_or_else(|| panic!("a Warning: {refusal}"));
    assert!(warning.starts_with("305 "), "{warning}");
    let failed = w.refusal_record().await;
    assert_eq!(failed["reason"], "no_common_codec", "{}", failed);
    assert_eq!(failed["code"], 488);
    phone.stop().await;
    w.stop().await;
}

/// baresip presses `digits` one key at a time in a call on `codec`; the record has them.
async fn baresip_presses_keys(codec: Codec) {
    let Some((w, mut phone)) = phone_calling(desk(), |_| {}, codec).await else {
        return;
    };
    phone.event("CALL_ESTABLISHED").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for key in ["4", "2", "#"] {
        phone.command("sndcode", key).await.expect("sndcode");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    phone.command("hangup", "").await.expect("hangup");
    let (_, events) = w.ended_call().await;
    let digits: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "call.dtmf")
        .map(|e| e.payload.clone())
        .collect();
    assert_eq!(
        digits
            .iter()
            .map(|d| d["digit"].as_str().unwrap_or("?"))
            .collect::<String>(),
        "42#",
        "{digits:?}\n{}",
        phone.trace()
    );
    assert!(
        digits.iter().all(|d| d["via"] == "rfc4733"),
        "as RTP events: {digits:?}"
    );
    phone.stop().await;
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_presses_keys_on_pcmu() {
    baresip_presses_keys(Codec::Pcmu).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn baresip_presses_keys_on_opus() {
    baresip_presses_keys(Codec::Opus).await;
}

/// The direction lines of baresip's trace for messages whose start line begins with `start`.
fn routes_of(messages: &[String], start: &str) -> Vec<String> {
    messages
        .iter()
        .filter_map(|m| m.split_once('\n'))
        .filter(|(_, message)| message.starts_with(start))
        .map(|(direction, _)| direction.to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_baresip_caller_through_kamailio_acks_and_hangs_up_through_it() {
    let Some((w, proxy)) = world_behind_kamailio(desk()).await else {
        return;
    };
    let phone = talk_and_hang_up(&w, &format!("sip:{NUMBER}@{}", proxy.addr)).await;

    let messages = phone.sip_messages();
    let answer = messages_of(&messages, "SIP/2.0 200", "INVITE");
    let record_route = answer
        .first()
        .and_then(|a| header(a, "Record-Route"))
        .unwrap_or_else(|| {
            panic!(
                "the 200 carries kamailio's Record-Route:\n{}",
                phone.trace()
            )
        });
    assert!(
        record_route.contains(&proxy.addr.ip().to_string()),
        "{record_route}"
    );
    let to_proxy = format!("-> {}", proxy.addr);
    for start in ["ACK ", "BYE "] {
        let routes = routes_of(&messages, start);
        assert!(
            !routes.is_empty() && routes.iter().all(|r| r.ends_with(&to_proxy)),
            "the phone's {start}went to the proxy: {routes:?}\n{}",
            proxy.log()
        );
    }
    let what = "the BYE answered through the proxy";
    assert_once(&phone, &messages, "SIP/2.0 200", "BYE", what);
    phone.stop().await;
    drop(proxy);
    w.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_hangs_up_on_a_baresip_caller_through_kamailio() {
    let Some((w, proxy)) = world_behind_kamailio(brief_desk()).await else {
        return;
    };
    let mut phone = Baresip::start(Codec::Pcmu).await;
    phone.dial(&format!("sip:{NUMBER}@{}", proxy.addr)).await;
    let events = hung_up_by_the_agent(&w, &mut phone).await;
    let ended = events
        .iter()
        .find(|e| e.kind == "call.ended")
        .expect("call.ended");
    assert_eq!(ended.payload["bye_outcome"], "200", "{}", ended.payload);
    let messages = phone.sip_messages();
    let from_proxy = format!("UDP {} ->", proxy.addr);
    let byes = routes_of(&messages, "BYE ");
    assert!(
        byes.len() == 1 && byes[0].starts_with(&from_proxy),
        "our BYE reached the phone through the proxy: {byes:?}\n{}",
        proxy.log()
    );
    phone.stop().await;
    drop(proxy);
    w.stop().await;
}
